//! Rotation schedules: rates, cron expressions and windows, against known answers.

use super::*;
use crate::time::parse_rfc3339;

fn t(text: &str) -> i64 {
    parse_rfc3339(text).expect("a valid time")
}

fn next(expression: &str, after: &str) -> Option<String> {
    Schedule::parse(expression).expect("valid").next_after(t(after)).map(crate::time::format_rfc3339_ms)
}

#[test]
fn rate_adds_days_or_hours() {
    assert_eq!(next("rate(10 days)", "2026-01-01T12:00:00Z").as_deref(), Some("2026-01-11T12:00:00.000Z"));
    assert_eq!(next("rate(1 day)", "2026-02-28T00:00:00Z").as_deref(), Some("2026-03-01T00:00:00.000Z"));
    assert_eq!(next("rate(4 hours)", "2026-01-01T22:30:00Z").as_deref(), Some("2026-01-02T02:30:00.000Z"));
    for bad in ["rate(0 days)", "rate(1001 days)", "rate(3 hours)", "rate(5 minutes)", "rate(days)", "rate 5 days"] {
        assert!(Schedule::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn cron_finds_the_next_minute_it_names() {
    // 16:00 on the 1st and 15th of every month.
    assert_eq!(next("cron(0 16 1,15 * ? *)", "2026-01-01T16:00:00Z").as_deref(), Some("2026-01-15T16:00:00.000Z"));
    assert_eq!(next("cron(0 16 1,15 * ? *)", "2026-01-01T15:59:00Z").as_deref(), Some("2026-01-01T16:00:00.000Z"));
    // Every Monday at 08:30 (2026-01-01 is a Thursday).
    assert_eq!(next("cron(30 8 ? * MON *)", "2026-01-01T00:00:00Z").as_deref(), Some("2026-01-05T08:30:00.000Z"));
    assert_eq!(next("cron(30 8 ? * 2 *)", "2026-01-05T08:30:00Z").as_deref(), Some("2026-01-12T08:30:00.000Z"));
    // Steps and ranges; the last day of February; a year field.
    assert_eq!(next("cron(0 0/6 * * ? *)", "2026-01-01T07:00:00Z").as_deref(), Some("2026-01-01T12:00:00.000Z"));
    assert_eq!(next("cron(0 10 29 FEB ? *)", "2026-01-01T00:00:00Z").as_deref(), Some("2028-02-29T10:00:00.000Z"));
    assert_eq!(
        next("cron(0 10 1 JAN-MAR ? 2027)", "2026-05-01T00:00:00Z").as_deref(),
        Some("2027-01-01T10:00:00.000Z")
    );
    assert_eq!(next("cron(0 10 1 JAN ? 2025)", "2026-05-01T00:00:00Z"), None, "only in the past");
    for bad in [
        "cron(0 16 1 * * *)",  // both day fields
        "cron(0 16 ? * ? *)",  // neither
        "cron(0 24 1 * ? *)",  // hour out of range
        "cron(0 16 1 * ?)",    // five fields
        "cron(0 16 32 * ? *)", // day out of range
        "cron(0 16 5-1 * ? *)",
        "cron(0 16 1 FOO ? *)",
    ] {
        assert!(Schedule::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn rules_are_checked_as_rotate_secret_does() {
    let rules = |days: Option<i64>, expression: Option<&str>, duration: Option<&str>| RotationRules {
        automatically_after_days: days,
        schedule_expression: expression.map(str::to_string),
        duration: duration.map(str::to_string),
    };
    let now = t("2026-01-01T00:00:00Z");
    assert!(check_rules(&rules(Some(30), None, None), now).is_ok());
    assert!(check_rules(&rules(None, Some("cron(0 8 1 * ? *)"), Some("3h")), now).is_ok());
    let e = check_rules(&rules(Some(0), None, None), now).unwrap_err();
    assert_eq!(e.to_string(), "RotationRules.AutomaticallyAfterDays must be within 1-1000.");
    assert!(check_rules(&rules(Some(1001), None, None), now).is_err());
    assert!(check_rules(&rules(Some(3), Some("rate(3 days)"), None), now).is_err());
    assert!(check_rules(&rules(None, Some("rate(3 days)"), Some("25h")), now).is_err());
    assert!(check_rules(&rules(None, Some("rate(3 days)"), Some("3")), now).is_err());
    // Schedules that never come (30 February; a year in the past) are refused.
    assert!(check_rules(&rules(None, Some("cron(0 0 30 2 ? *)"), None), now).is_err());
    assert!(check_rules(&rules(None, Some("cron(0 0 1 1 ? 2020)"), None), now).is_err());
    // Neither a period nor a schedule: refused, with or without a window.
    assert!(check_rules(&rules(None, None, None), now).is_err());
    assert!(check_rules(&rules(None, None, Some("3h")), now).is_err());
}
