//! NextRotationDate and LastRotatedDate on an injected clock: AutomaticallyAfterDays, rate()
//! and cron() schedules, counted from the later of the configuration and the last AWSCURRENT
//! move (a PutSecretValue by hand counts as a rotation).

use ledger_core::time::{format_rfc3339_ms, parse_rfc3339};
use ledger_core::*;

use crate::fixture::{tok, Fixture, T0};

const LAMBDA: &str = "arn:aws:lambda:us-east-1:123456789012:function:rotate";
const HOUR_MS: i64 = 3_600_000;

fn rotate(f: &mut Fixture, rules: RotationRules, immediately: bool, token: usize) -> Result<Reply, SmError> {
    f.exec(Command::RotateSecret(RotateSecret {
        secret_id: "db".into(),
        client_request_token: Some(tok(token)),
        rotation_lambda_arn: Some(LAMBDA.into()),
        rotation_rules: Some(rules),
        rotate_immediately: Some(immediately),
        by_runner: false,
    }))
}

fn dates(f: &Fixture) -> (Option<String>, Option<String>) {
    let d = f.ledger().describe_secret(&f.scope, "db").unwrap();
    (d.last_rotated_ms.map(format_rfc3339_ms), d.next_rotation_ms.map(format_rfc3339_ms))
}

fn schedule(expression: &str) -> RotationRules {
    RotationRules { schedule_expression: Some(expression.into()), ..RotationRules::default() }
}

#[test]
fn next_rotation_follows_the_rules_on_the_ledger_clock() {
    let mut f = Fixture::new();
    f.create("db", Some("v1")).unwrap(); // 2026-01-01T00:00Z
    f.clock.advance(5 * HOUR_MS);
    let days = RotationRules { automatically_after_days: Some(7), ..RotationRules::default() };
    rotate(&mut f, days, false, 1).unwrap();
    assert_eq!(dates(&f), (None, Some("2026-01-08T05:00:00.000Z".into())), "7 days after the configuration");
    // A PutSecretValue by hand counts as a rotation for AutomaticallyAfterDays.
    f.clock.advance(24 * HOUR_MS);
    f.put("db", &tok(2), "v2", None).unwrap();
    assert_eq!(dates(&f).1.as_deref(), Some("2026-01-09T05:00:00.000Z"));

    // rate(): the same arithmetic in hours or days.
    f.clock.advance(HOUR_MS);
    rotate(&mut f, schedule("rate(12 hours)"), false, 3).unwrap();
    assert_eq!(dates(&f).1.as_deref(), Some("2026-01-02T18:00:00.000Z"));

    // cron(): the first minute it names after the base (2026-01-02T06:00Z is a Friday).
    rotate(&mut f, schedule("cron(0 4 ? * MON *)"), false, 4).unwrap();
    assert_eq!(dates(&f).1.as_deref(), Some("2026-01-05T04:00:00.000Z"));
    rotate(&mut f, schedule("cron(30 6 2 * ? *)"), false, 5).unwrap();
    assert_eq!(dates(&f).1.as_deref(), Some("2026-01-02T06:30:00.000Z"));

    // A rotation run to the end sets LastRotatedDate; the next date counts from it.
    f.clock.advance(10 * HOUR_MS);
    rotate(&mut f, schedule("rate(4 hours)"), true, 6).unwrap();
    f.put("db", &tok(6), "v3", Some(&["AWSPENDING"])).unwrap();
    f.clock.advance(HOUR_MS);
    let current =
        f.ledger().with_state(|s| s.by_name("us-east-1", "db").unwrap().holder(AWSCURRENT).unwrap().to_string());
    f.stage("db", AWSCURRENT, Some(&tok(6)), Some(&current)).unwrap();
    let now = T0 + 5 * HOUR_MS + 24 * HOUR_MS + HOUR_MS + 10 * HOUR_MS + HOUR_MS;
    assert_eq!(dates(&f), (Some(format_rfc3339_ms(now)), Some(format_rfc3339_ms(now + 4 * HOUR_MS))));
    assert_eq!(parse_rfc3339("2026-01-02T17:00:00Z"), Some(now));

    // Cancelled: no next date, the last rotation stays.
    f.exec(Command::CancelRotateSecret(CancelRotateSecret { secret_id: "db".into() })).unwrap();
    assert_eq!(dates(&f), (Some(format_rfc3339_ms(now)), None));
    // A runner's start that the cancel overtook is refused and does not turn rotation on again.
    let late = RotateSecret {
        secret_id: "db".into(),
        client_request_token: Some(tok(7)),
        by_runner: true,
        ..RotateSecret::default()
    };
    assert_eq!(f.exec(Command::RotateSecret(late)).unwrap_err().code(), ErrorCode::InvalidRequestException);
    assert_eq!(dates(&f), (Some(format_rfc3339_ms(now)), None));
    f.verify_ok();
    // All of it is in the log: a restart rebuilds the same answers.
    f.reopen();
    assert_eq!(dates(&f), (Some(format_rfc3339_ms(now)), None));
}
