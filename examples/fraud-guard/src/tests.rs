use super::*;
use switchyard_sdk::fake::FakeHost;
use switchyard_sdk::{Caller, CallerHeader};

fn call(account: &str, callee: &str) -> Call {
    Call {
        call_id: "c".into(),
        account: account.into(),
        tenant: "t".into(),
        ingress_gateway: String::new(),
        source_address: String::new(),
        caller: Caller {
            user: "1".into(),
            display: None,
            source: CallerHeader::From,
        },
        callee: callee.into(),
        request_uri: String::new(),
        headers: vec![],
        codecs: vec![],
        arrived_at_ms: 0,
    }
}

/// A host whose clock is past the epoch, so sliding windows hold what they count.
fn host() -> FakeHost {
    FakeHost::new().with_now_ms(1_000_000)
}

fn screen(host: &FakeHost, account: &str, callee: &str) -> Verdict {
    FraudGuard::screen(host, &call(account, callee))
}

fn refused_with(v: &Verdict) -> Option<u16> {
    match v {
        Verdict::Reject(r) => Some(r.code),
        _ => None,
    }
}

fn kinds(host: &FakeHost) -> Vec<String> {
    host.events()
        .iter()
        .map(|e| e.detail.split(':').next().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn without_tables_every_call_passes_and_nothing_is_raised() {
    let host = FakeHost::new();
    for _ in 0..100 {
        assert!(matches!(screen(&host, "a", "4420"), Verdict::Allow));
    }
    assert!(host.events().is_empty());
}

#[test]
fn account_rate_warns_then_blocks_per_account_and_expires_with_its_window() {
    let host = FakeHost::new()
        .with_table(ACCOUNTS, &[("a", &["2", "3"])])
        .with_now_ms(1_000_000);
    let verdicts: Vec<_> = (0..4)
        .map(|_| refused_with(&screen(&host, "a", "4420")))
        .collect();
    assert_eq!(verdicts, [None, None, None, Some(503)]);
    assert_eq!(
        kinds(&host),
        ["warn calls-per-minute", "block calls-per-minute"]
    );
    assert_eq!(host.events()[1].subject, "a");
    assert!(matches!(host.events()[1].level, Level::Error));
    assert!(
        matches!(screen(&host, "b", "4420"), Verdict::Allow),
        "an account without a row and no default row has no rate rule"
    );
    host.set_now_ms(1_000_000 + 61_000);
    assert!(
        matches!(screen(&host, "a", "4420"), Verdict::Allow),
        "the window slid"
    );
}

#[test]
fn the_default_row_applies_to_accounts_without_their_own() {
    let host = host().with_table(ACCOUNTS, &[("", &["0", "1"]), ("vip", &["0", "0"])]);
    assert_eq!(refused_with(&screen(&host, "x", "1")), None);
    assert_eq!(refused_with(&screen(&host, "x", "1")), Some(503));
    for _ in 0..5 {
        assert!(matches!(screen(&host, "vip", "1"), Verdict::Allow));
    }
}

#[test]
fn sequential_dialling_is_counted_as_a_run_and_broken_by_another_number() {
    let host = host().with_table(ACCOUNTS, &[("a", &["", "", "2", "4"])]);
    let run: Vec<_> = ["4420700", "4420701", "4420702", "4420703", "4420704"]
        .iter()
        .map(|n| refused_with(&screen(&host, "a", n)))
        .collect();
    assert_eq!(run, [None, None, None, None, Some(403)]);
    assert_eq!(
        kinds(&host),
        ["warn sequential", "warn sequential", "block sequential"]
    );
    assert!(
        matches!(screen(&host, "a", "33123"), Verdict::Allow),
        "another number starts a new run"
    );
    assert!(matches!(screen(&host, "a", "33124"), Verdict::Allow));
}

#[test]
fn numbers_follow_each_other_only_at_the_same_length() {
    assert!(follows("4420700", "4420701"));
    assert!(follows("4420709", "4420710"));
    assert!(!follows("99", "100"));
    assert!(!follows("12a", "12b"));
    assert!(follows("1234567890123456789012", "1234567890123456789013"));
}

#[test]
fn high_risk_destinations_warn_or_block() {
    let host = host().with_table(HIGH_RISK, &[("881", &["block"]), ("252", &["warn"])]);
    assert_eq!(refused_with(&screen(&host, "a", "88112345")), Some(403));
    assert!(matches!(screen(&host, "a", "25261"), Verdict::Allow));
    assert_eq!(kinds(&host), ["block high-risk", "warn high-risk"]);
}

#[test]
fn destination_rate_is_per_account_and_prefix() {
    let host = host().with_table(DESTINATIONS, &[("252", &["", "2"])]);
    assert_eq!(refused_with(&screen(&host, "a", "25261")), None);
    assert_eq!(refused_with(&screen(&host, "a", "25262")), None);
    assert_eq!(refused_with(&screen(&host, "a", "25263")), Some(503));
    assert_eq!(refused_with(&screen(&host, "b", "25261")), None);
    assert_eq!(
        refused_with(&screen(&host, "a", "4420")),
        None,
        "other prefixes"
    );
}

#[test]
fn concurrency_is_the_hosts_count_of_calls_in_progress() {
    let host = host().with_table(DESTINATIONS, &[("252", &["", "", "1", "2"])]);
    host.set_live_calls("a", &["25261"]);
    assert!(matches!(screen(&host, "a", "25261"), Verdict::Allow));
    host.set_live_calls("a", &["25261", "25262"]);
    assert!(matches!(screen(&host, "a", "25262"), Verdict::Allow));
    assert_eq!(kinds(&host), ["warn concurrent"]);
    host.set_live_calls("a", &["25261", "25262", "25263", "4420"]);
    assert_eq!(refused_with(&screen(&host, "a", "25263")), Some(503));
    host.set_live_calls("a", &[]);
    assert!(
        matches!(screen(&host, "a", "25264"), Verdict::Allow),
        "calls that ended no longer count"
    );
}

#[test]
fn a_destination_can_cap_the_duration() {
    let host = host().with_table(DESTINATIONS, &[("252", &["", "", "", "", "120"])]);
    assert!(matches!(
        screen(&host, "a", "25261"),
        Verdict::AllowWithLimits(Limits {
            max_duration_secs: 120
        })
    ));
    assert!(matches!(screen(&host, "a", "4420"), Verdict::Allow));
}
