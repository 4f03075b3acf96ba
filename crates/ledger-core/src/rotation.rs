//! Rotation schedules: checking `RotationRules` as RotateSecret does, and the next rotation date
//! DescribeSecret shows.
//!
//! `AutomaticallyAfterDays` (1–1000) and `ScheduleExpression` (`rate(N days|hours)` or AWS's
//! six-field `cron(Minutes Hours Day-of-month Month Day-of-week Year)`) exclude each other;
//! `Duration` (`Nh`, 1–24 hours) is the window a rotation may start in. The next rotation counts
//! from the latest of the time rotation was configured, the last failed rotation step (whose
//! reattempt waits for the next due time, as on AWS) and the last rotation: for
//! `AutomaticallyAfterDays` any move of `AWSCURRENT` (a change by hand counts as a rotation), for
//! a schedule the last completed rotation.

use crate::error::SmError;
use crate::event::RotationRules;
use crate::limits::DAY_MS;
use crate::state::{SecretState, State};
use crate::time::civil_from_days;
use crate::SecretUid;

const HOUR_MS: i64 = 60 * 60 * 1000;
const MINUTE_MS: i64 = 60 * 1000;
/// How far ahead a cron schedule is searched for its next date.
const CRON_HORIZON_DAYS: i64 = 5 * 366;

fn invalid(message: impl Into<String>) -> SmError {
    SmError::InvalidParameter(message.into())
}

/// Checks `rules` as RotateSecret does, before the secret is looked up; a schedule must name a
/// date within five years of `now_ms`.
pub fn check_rules(rules: &RotationRules, now_ms: i64) -> Result<(), SmError> {
    if rules.automatically_after_days.is_none() && rules.schedule_expression.is_none() {
        return Err(invalid("RotationRules must specify either AutomaticallyAfterDays or ScheduleExpression."));
    }
    if let Some(days) = rules.automatically_after_days {
        if !(1..=1000).contains(&days) {
            return Err(invalid("RotationRules.AutomaticallyAfterDays must be within 1-1000."));
        }
        if rules.schedule_expression.is_some() {
            return Err(invalid("You can't specify both AutomaticallyAfterDays and ScheduleExpression."));
        }
    }
    if let Some(expression) = &rules.schedule_expression {
        if Schedule::parse(expression)?.next_after(now_ms).is_none() {
            return Err(invalid("The ScheduleExpression names no date in the next five years."));
        }
    }
    if let Some(duration) = &rules.duration {
        let hours = duration.strip_suffix('h').and_then(|h| h.parse::<u32>().ok());
        if !hours.is_some_and(|h| (1..=24).contains(&h)) {
            return Err(invalid("RotationRules.Duration must be between 1h and 24h, such as 3h."));
        }
    }
    Ok(())
}

/// When `secret` rotates next: `None` while rotation is off, without rules, or when a cron
/// schedule has no date within five years.
pub fn next_rotation(secret: &SecretState) -> Option<i64> {
    let rotation = &secret.rotation;
    if !rotation.enabled {
        return None;
    }
    let rules = rotation.rules.as_ref()?;
    let since = rotation.configured_at_ms.max(rotation.failed_at_ms);
    if let Some(days) = rules.automatically_after_days {
        // A change of AWSCURRENT by hand counts as a rotation here.
        let base = since.max(secret.current_moved_at_ms)?;
        return base.checked_add(days.checked_mul(DAY_MS)?);
    }
    let base = since.max(rotation.last_rotated_at_ms)?;
    Schedule::parse(rules.schedule_expression.as_deref()?).ok()?.next_after(base)
}

/// A parsed `ScheduleExpression`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Schedule {
    /// `rate(N days)` or `rate(N hours)`, in milliseconds.
    Rate(i64),
    Cron(Cron),
}

impl Schedule {
    pub fn parse(expression: &str) -> Result<Schedule, SmError> {
        let bad =
            || invalid(format!("Invalid ScheduleExpression: {}", expression.chars().take(64).collect::<String>()));
        if let Some(body) = expression.strip_prefix("rate(").and_then(|r| r.strip_suffix(')')) {
            let (n, unit) = body.trim().split_once(' ').ok_or_else(bad)?;
            let n: i64 = n.parse().map_err(|_| bad())?;
            let ms = match unit.trim() {
                "day" | "days" if (1..=1000).contains(&n) => n * DAY_MS,
                "hour" | "hours" if (4..=24_000).contains(&n) => n * HOUR_MS,
                _ => return Err(bad()),
            };
            return Ok(Schedule::Rate(ms));
        }
        if let Some(body) = expression.strip_prefix("cron(").and_then(|r| r.strip_suffix(')')) {
            return Cron::parse(body).map(Schedule::Cron).ok_or_else(bad);
        }
        Err(bad())
    }

    /// The first date strictly after `after_ms`.
    pub fn next_after(&self, after_ms: i64) -> Option<i64> {
        match self {
            Schedule::Rate(ms) => after_ms.checked_add(*ms),
            Schedule::Cron(cron) => cron.next_after(after_ms),
        }
    }
}

/// AWS's six-field cron, as bit sets (UTC).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cron {
    minutes: u64,
    hours: u32,
    /// Bits 1..=31; `None` for `?`.
    days_of_month: Option<u32>,
    /// Bits 1..=12.
    months: u16,
    /// Bits 1..=7, 1 = Sunday; `None` for `?`.
    days_of_week: Option<u8>,
    /// Years 1970..=2199 as offsets from 1970; `None` for `*`.
    years: Option<Vec<bool>>,
}

const MONTHS: [&str; 12] = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"];
const DAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// One cron field as the set of values in `min..=max`; `names[i]` stands for `min + i`.
fn field(text: &str, min: u32, max: u32, names: &[&str]) -> Option<Vec<bool>> {
    let value = |t: &str| -> Option<u32> {
        if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(t)) {
            return Some(min + u32::try_from(i).ok()?);
        }
        t.parse().ok().filter(|v| (min..=max).contains(v))
    };
    let mut set = vec![false; usize::try_from(max + 1).ok()?];
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (r, s.parse::<u32>().ok().filter(|&s| s > 0)?),
            None => (part, 1),
        };
        let (lo, hi) = match range {
            "*" => (min, max),
            r => match r.split_once('-') {
                Some((a, b)) => (value(a)?, value(b)?),
                None if part.contains('/') => (value(r)?, max),
                None => (value(r)?, value(r)?),
            },
        };
        if lo > hi {
            return None;
        }
        for v in (lo..=hi).step_by(usize::try_from(step).ok()?) {
            set[usize::try_from(v).ok()?] = true;
        }
    }
    Some(set)
}

fn bits<T: Default + std::ops::BitOr<Output = T> + std::ops::Shl<usize, Output = T> + From<u8>>(set: &[bool]) -> T {
    set.iter().enumerate().filter(|(_, &on)| on).fold(T::default(), |acc, (i, _)| acc | (T::from(1) << i))
}

impl Cron {
    fn parse(body: &str) -> Option<Cron> {
        let fields: Vec<&str> = body.split_whitespace().collect();
        let [minutes, hours, dom, month, dow, year] = fields[..] else { return None };
        // Exactly one of day-of-month and day-of-week is `?`.
        if (dom == "?") == (dow == "?") {
            return None;
        }
        let days_of_month = if dom == "?" { None } else { Some(bits::<u32>(&field(dom, 1, 31, &[])?)) };
        let days_of_week = if dow == "?" { None } else { Some(bits::<u8>(&field(dow, 1, 7, &DAYS)?)) };
        let years =
            if year == "*" { None } else { Some(field(year, 1970, 2199, &[])?.into_iter().skip(1970).collect()) };
        Some(Cron {
            minutes: bits(&field(minutes, 0, 59, &[])?),
            hours: bits(&field(hours, 0, 23, &[])?),
            days_of_month,
            months: bits(&field(month, 1, 12, &MONTHS)?),
            days_of_week,
            years,
        })
    }

    fn day_matches(&self, days: i64) -> bool {
        let (year, month, day) = civil_from_days(days);
        let year_ok = match &self.years {
            None => true,
            Some(set) => usize::try_from(year - 1970).ok().and_then(|i| set.get(i)).copied().unwrap_or(false),
        };
        // 1970-01-01 was a Thursday (5 with Sunday = 1).
        let weekday = (days.rem_euclid(7) + 4) % 7 + 1;
        year_ok
            && self.months & (1 << month) != 0
            && self.days_of_month.is_none_or(|d| d & (1 << day) != 0)
            && self.days_of_week.is_none_or(|d| d & (1 << weekday) != 0)
    }

    /// The first minute strictly after `after_ms` that the expression names.
    pub fn next_after(&self, after_ms: i64) -> Option<i64> {
        let first_day = after_ms.div_euclid(DAY_MS);
        for days in first_day..first_day + CRON_HORIZON_DAYS {
            if !self.day_matches(days) {
                continue;
            }
            let midnight = days.checked_mul(DAY_MS)?;
            for hour in (0..24).filter(|h| self.hours & (1 << h) != 0) {
                for minute in (0..60).filter(|m| self.minutes & (1u64 << m) != 0) {
                    let t = midnight + hour * HOUR_MS + minute * MINUTE_MS;
                    if t > after_ms {
                        return Some(t);
                    }
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests;

/// Secrets whose rotation is due at `now_ms` (rotation on, a function configured, not
/// scheduled for deletion, next rotation date reached, or a rotation interrupted before it
/// failed or finished), with the version of the rotation under way if one is (to be
/// resumed or reattempted with its token).
pub fn due_rotations(state: &State, now_ms: i64) -> Vec<(SecretUid, Option<String>)> {
    state
        .secrets()
        .filter(|s| !s.is_scheduled() && s.rotation.enabled && s.rotation.lambda_arn.is_some())
        .filter(|s| s.rotation_interrupted() || next_rotation(s).is_some_and(|next| next <= now_ms))
        .map(|s| (s.uid, s.rotation_in_progress().then(|| s.holder(crate::AWSPENDING).map(str::to_string)).flatten()))
        .collect()
}
