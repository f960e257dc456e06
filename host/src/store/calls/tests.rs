use super::*;
use switchyard_model::{AttemptRecord, CallCharges, EndReason};

fn record(n: u64, account: &str, ingress: &str, tried: &[&str]) -> CallRecord {
    CallRecord {
        call_id: format!("call-{n}"),
        tenant: "t".into(),
        account: account.into(),
        ingress_gateway: ingress.into(),
        egress_gateway: tried.last().map(|g| g.to_string()),
        caller_in: "1000".into(),
        callee_in: format!("44{n:02}"),
        caller_out: None,
        callee_out: None,
        invite_ms: n,
        ring_ms: None,
        answer_ms: None,
        end_ms: 1_000 + n,
        pdd_ms: None,
        final_code: 503,
        final_reason: None,
        codec_in: None,
        codec_out: None,
        reason: EndReason::FailoverExhausted,
        module: None,
        module_version: None,
        attempts: tried
            .iter()
            .map(|g| AttemptRecord {
                gateway: g.to_string(),
                leg_call_id: String::new(),
                callee: "4420".into(),
                caller: "1000".into(),
                started_ms: n,
                pdd_ms: None,
                code: Some(503),
                reason: String::new(),
                timed_out: false,
                ended_ms: None,
            })
            .collect(),
        billing: None,
        refused_by: None,
    }
}

fn ids(found: &[CallRecord]) -> Vec<&str> {
    found.iter().map(|r| r.call_id.as_str()).collect()
}

use super::super::temp_dir;

/// Small segments, so a few records span several.
fn small_segments() -> super::super::StoreOptions {
    super::super::StoreOptions {
        segment_bytes: 1024,
        ..Default::default()
    }
}

#[test]
fn account_and_gateway_queries_read_their_index_and_page_through_it() {
    let dir = temp_dir("calls");
    let store = Store::open_with(&dir, small_segments()).unwrap();
    for n in 0..30 {
        let (account, tried): (&str, &[&str]) = match n % 3 {
            0 => ("a", &["v1"]),
            1 => ("b", &["v1", "v2"]),
            _ => ("c", &[]),
        };
        store
            .record_call_blocking(record(n, account, "in", tried))
            .unwrap();
    }
    assert!(
        store.call_log_stats().segments > 2,
        "{:?}",
        store.call_log_stats()
    );
    let query = |q: CallQuery| store.query_calls(Some("t"), &q).unwrap();
    let (found, next) = query(CallQuery {
        account: Some("b".into()),
        limit: 3,
        ..CallQuery::default()
    });
    assert_eq!(ids(&found), ["call-28", "call-25", "call-22"]);
    let (found, _) = query(CallQuery {
        account: Some("b".into()),
        before: next,
        limit: 2,
        ..CallQuery::default()
    });
    assert_eq!(ids(&found), ["call-19", "call-16"]);
    // v2 was only ever tried, never the last gateway of a's calls.
    let (found, _) = query(CallQuery {
        gateway: Some("v2".into()),
        from_ms: Some(1_010),
        to_ms: Some(1_020),
        ..CallQuery::default()
    });
    assert_eq!(ids(&found), ["call-19", "call-16", "call-13", "call-10"]);
    let (found, next) = query(CallQuery {
        account: Some("nobody".into()),
        ..CallQuery::default()
    });
    assert!(found.is_empty() && next.is_none());
    // A search reading more than its budget ends early with where it stopped,
    // and the next page goes on from there.
    let search = |before| CallQuery {
        callee: Some("5".into()),
        before,
        ..CallQuery::default()
    };
    let (found, next) = store
        .query_calls_within(Some("t"), &search(None), 12)
        .unwrap();
    assert_eq!(ids(&found), ["call-25"]);
    let (found, next) = store
        .query_calls_within(Some("t"), &search(next), 12)
        .unwrap();
    assert_eq!(ids(&found), ["call-15"]);
    let (found, next) = store
        .query_calls_within(Some("t"), &search(next), 12)
        .unwrap();
    assert_eq!((ids(&found), next), (vec!["call-5"], None));
    // Another tenant sees none of them.
    assert!(store
        .query_calls(Some("other"), &CallQuery::default())
        .unwrap()
        .0
        .is_empty());
    // By Call-ID, in sealed segments and the active one, after reopening too.
    assert_eq!(store.call_record("call-3").unwrap().unwrap().account, "a");
    assert!(store.call_record("call-99").unwrap().is_none());
    drop(store);
    let store = Store::reopen_with(&dir, small_segments()).unwrap();
    for n in [0, 17, 29] {
        let found = store.call_record(&format!("call-{n}")).unwrap().unwrap();
        assert_eq!(found, record(n, found.account.as_str(), "in", &tried_of(n)));
    }
    assert_eq!(store.call_log_stats().records, 30);
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

fn tried_of(n: u64) -> Vec<&'static str> {
    match n % 3 {
        0 => vec!["v1"],
        1 => vec!["v1", "v2"],
        _ => vec![],
    }
}

fn billed(n: u64, account: &str, charge: f64) -> CallRecord {
    let mut r = record(n, account, "in", &["v1"]);
    r.billing = Some(CallCharges {
        billed_secs: 60,
        rate_prefix: "44".into(),
        charge: Money::from_units(charge),
        cost: None,
        profit: Money::from_units(charge),
        balance_after: Money::ZERO,
    });
    r
}

fn balance(store: &Store, account: &str) -> Money {
    store.stored_account(account).unwrap().unwrap().balance
}

#[test]
fn a_billed_call_debits_its_account_with_its_record_and_a_crash_cannot_undo_it() {
    let dir = temp_dir("calls-charges");
    let store = Store::open(&dir).unwrap();
    let account = Account {
        tenant: "t".into(),
        balance: Money::from_units(10.0),
        ..Account::default()
    };
    store.carrier_put("acct", &account).unwrap();
    store.commit_blocking().unwrap();
    let first = store.record_call_blocking(billed(1, "acct", 1.5)).unwrap();
    assert_eq!(first.billing.unwrap().balance_after, Money::from_units(8.5));
    let second = store.record_call_blocking(billed(2, "acct", 0.5)).unwrap();
    assert_eq!(
        second.billing.unwrap().balance_after,
        Money::from_units(8.0)
    );
    assert_eq!(balance(&store, "acct"), Money::from_units(8.0));
    assert_eq!(
        store
            .carrier_get::<Account>("acct")
            .unwrap()
            .unwrap()
            .balance,
        Money::from_units(8.0),
        "the cached account follows"
    );
    // A call of a missing account is refused and leaves no record.
    assert!(matches!(
        store.record_call_blocking(billed(3, "nobody", 1.0)),
        Err(Error::Missing(_))
    ));
    assert!(store.call_record("call-3").unwrap().is_none());
    // As if the process died after the journal sync but before sled stored the
    // second call's debit: the balance and marker go back to after the first.
    let mut kinds = store.carrier_cache_lock();
    let mut before = store.stored_account("acct").unwrap().unwrap();
    before.balance = Money::from_units(8.5);
    store
        .write_balances(&[("acct".to_string(), before)].into_iter().collect(), 1)
        .unwrap();
    kinds.remove(Account::KIND);
    drop(kinds);
    store.commit_blocking().unwrap();
    drop(store);
    let store = Store::reopen(&dir).unwrap();
    assert_eq!(balance(&store, "acct"), Money::from_units(8.0));
    assert_eq!(store.charges_applied().unwrap(), 2);
    drop(store);
    // Replaying is done once: opening again changes nothing.
    let store = Store::reopen(&dir).unwrap();
    assert_eq!(balance(&store, "acct"), Money::from_units(8.0));
    // A balance write that failed while running (the marker left behind the
    // journal) is caught up by the next call's batch, not skipped by it.
    let mut stale = store.stored_account("acct").unwrap().unwrap();
    stale.balance = Money::from_units(8.5);
    store
        .write_balances(&[("acct".to_string(), stale)].into_iter().collect(), 1)
        .unwrap();
    let fourth = store.record_call_blocking(billed(4, "acct", 1.0)).unwrap();
    assert_eq!(
        fourth.billing.unwrap().balance_after,
        Money::from_units(7.0)
    );
    assert_eq!(store.charges_applied().unwrap(), 3);
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_torn_tail_is_cut_on_opening_and_what_was_acknowledged_stays() {
    let dir = temp_dir("calls-torn");
    let store = Store::open(&dir).unwrap();
    for n in 0..3 {
        store
            .record_call_blocking(record(n, "a", "in", &["v1"]))
            .unwrap();
    }
    drop(store);
    let segment = dir
        .join(super::super::CALL_LOG_DIR)
        .join(format!("{:016x}.seg", 0));
    let whole = std::fs::read(&segment).unwrap();
    // Half a frame, as a crash in the middle of a write leaves it.
    let mut torn = whole.clone();
    torn.extend_from_slice(&whole[8..40]);
    std::fs::write(&segment, &torn).unwrap();
    let store = Store::reopen(&dir).unwrap();
    assert_eq!(std::fs::read(&segment).unwrap(), whole);
    assert_eq!(store.call_log_stats().records, 3);
    store
        .record_call_blocking(record(3, "a", "in", &["v1"]))
        .unwrap();
    let (found, _) = store.query_calls(None, &CallQuery::default()).unwrap();
    assert_eq!(ids(&found), ["call-3", "call-2", "call-1", "call-0"]);
    drop(store);
    // A flipped byte inside the active segment cuts it there, and what was cut
    // is kept beside it for the operator.
    let mut damaged = std::fs::read(&segment).unwrap();
    let second = 8 + 8 + u32::from_le_bytes(damaged[8..12].try_into().unwrap()) as usize;
    damaged[second + 20] ^= 0xff;
    std::fs::write(&segment, &damaged).unwrap();
    let store = Store::reopen(&dir).unwrap();
    assert_eq!(store.call_log_stats().records, 1);
    let kept = segment.with_extension(format!("seg.cut-at-{second}"));
    assert_eq!(std::fs::read(kept).unwrap(), damaged[second..]);
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn records_of_the_sled_trees_of_earlier_versions_move_to_the_journal_once() {
    let dir = temp_dir("calls-migrate");
    {
        // As the last version stored them: JSON under end time + Call-ID.
        let db = sled::open(dir.join("db")).unwrap();
        let calls = db.open_tree("calls").unwrap();
        for n in 0..5 {
            let r = billed(n, "acct", 1.0);
            let mut k = r.end_ms.to_be_bytes().to_vec();
            k.extend_from_slice(r.call_id.as_bytes());
            calls.insert(k, serde_json::to_vec(&r).unwrap()).unwrap();
        }
        db.open_tree("call_index")
            .unwrap()
            .insert("x", "y")
            .unwrap();
        db.flush().unwrap();
    }
    let store = Store::reopen(&dir).unwrap();
    store
        .carrier_put(
            "acct",
            &Account {
                tenant: "t".into(),
                balance: Money::from_units(5.0),
                ..Account::default()
            },
        )
        .unwrap();
    let (found, _) = store.query_calls(None, &CallQuery::default()).unwrap();
    assert_eq!(
        ids(&found),
        ["call-4", "call-3", "call-2", "call-1", "call-0"]
    );
    assert!(!store
        .engine
        .tree_names()
        .unwrap()
        .iter()
        .any(|n| n == "calls"));
    store.commit_blocking().unwrap();
    drop(store);
    // Their charges were in the balance already: reopening replays none of them.
    let store = Store::reopen(&dir).unwrap();
    assert_eq!(balance(&store, "acct"), Money::from_units(5.0));
    assert_eq!(store.call_log_stats().records, 5);
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn records_past_their_retention_go_a_segment_at_a_time() {
    let dir = temp_dir("calls-retention");
    let options = super::super::StoreOptions {
        retention_days: 30,
        ..small_segments()
    };
    let store = Store::open_with(&dir, options).unwrap();
    let day = 86_400_000;
    let now = crate::now_ms();
    for n in 0..40 {
        let mut r = record(n, "a", "in", &["v1"]);
        // The first twenty ended 40 days ago, the rest today.
        r.end_ms = if n < 20 { now - 40 * day + n } else { now + n };
        store.record_call_blocking(r).unwrap();
    }
    let kept = store.call_log_stats().records;
    assert!((20..40).contains(&kept), "kept {kept} of 40");
    let (found, _) = store.query_calls(None, &CallQuery::default()).unwrap();
    assert!(found.iter().take(20).all(|r| r.end_ms > now));
    assert_eq!(found.len() as u64, kept);
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_record_stored_before_a_field_was_added_at_the_end_still_reads() {
    // Records are stored with fields by position; new fields go at the end with
    // a default, so what is on disk stays readable.
    let r = record(1, "a", "in", &["v1"]);
    let stored = super::super::call_log::encode(&r).unwrap();
    let mut fields: Vec<serde_json::Value> = rmp_serde::from_slice(&stored).unwrap();
    fields.pop(); // as if `billing` had not existed yet
    let older = rmp_serde::to_vec(&fields).unwrap();
    let read = super::super::call_log::decode(&older).unwrap();
    assert_eq!(read, CallRecord { billing: None, ..r });
}
