//! The stock router (examples/stock-router) bound globally and configured over REST,
//! with SIPp callers and vendors on loopback: prefix and priority order, failover rules,
//! skipped and protect gateways, the switch limit, tech prefixes and identity headers.
//! Time-based routing runs real calls on a server started with a settable clock, moved
//! over REST to each instant under test.

use std::path::Path;

use anyhow::Result;
use serde_json::{json, Value};
use switchyard_tests::sip::{
    bind_global, carrier, put, received_messages, scenario, wait_for_records, Sipp, Vendor,
};
use switchyard_tests::{Body, TempDir, TestServer, ADMIN};

/// The test carrier (see [`carrier`]) routed by the stock router: each vendor's
/// routing gateway with `settings` merged in, and `routes` (CSV rows
/// `prefix,gateway[,priority]`) as its routes table.
async fn stock_carrier(
    s: &TestServer,
    customer: Value,
    vendors: &[(&Vendor, Value)],
    routes: &str,
) -> Result<()> {
    let all: Vec<&Vendor> = vendors.iter().map(|(v, _)| *v).collect();
    carrier(s, customer, &all).await?;
    for (v, settings) in vendors {
        let mut gateway = json!({
            "address": format!("127.0.0.1:{}", v.port),
            "invite_timeout_ms": v.invite_timeout_ms,
        });
        if let (Some(g), Some(extra)) = (gateway.as_object_mut(), settings.as_object()) {
            g.extend(extra.clone());
        }
        put(s, &format!("/api/v1/routing-gateways/{}", v.id), gateway).await?;
    }
    let csv = Body::Bytes(routes.as_bytes().to_vec(), "text/csv");
    let (status, body) = s
        .call("PUT", "/api/v1/tables/routes", ADMIN, Some(csv))
        .await?;
    anyhow::ensure!(status == 200, "routes table: {status} {body}");
    bind_global(s, "stock_router").await
}

/// (gateway, code) of each attempt of a call record.
fn attempts(record: &Value) -> Vec<(String, Option<u64>)> {
    record["attempts"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| {
            (
                a["gateway"].as_str().unwrap_or("").to_string(),
                a["code"].as_u64(),
            )
        })
        .collect()
}

fn tried(list: &[(&str, u64)]) -> Vec<(String, Option<u64>)> {
    list.iter()
        .map(|(g, c)| (g.to_string(), Some(*c)))
        .collect()
}

/// One call from SIPp to `callee`, expected to end as `scenario_file` expects.
async fn call(s: &TestServer, callee: &str, scenario_file: &str) -> Result<()> {
    let sf = scenario(scenario_file).to_string_lossy().into_owned();
    Sipp::uac(s.server.sip.addr, &["-s", callee, "-sf", &sf], 1, 1)?
        .succeeds()
        .await
}

/// Simulate the globally bound router on `call` (fields over acme's call through
/// "customers") at `now_ms` (none: the server's clock): the gateways it would try, in
/// order, and the whole answer with the module's log.
async fn simulate(
    s: &TestServer,
    call: Value,
    now_ms: Option<u64>,
) -> Result<(Vec<String>, Value)> {
    let (_, binding) = s.admin("GET", "/api/v1/bindings/global", None).await?;
    let version = binding["version"].as_str().unwrap_or_default();
    let path = format!("/api/v1/modules/router/versions/{version}/simulate");
    let mut full = json!({ "account": "acme", "ingress_gateway": "customers" });
    if let (Some(f), Some(extra)) = (full.as_object_mut(), call.as_object()) {
        f.extend(extra.clone());
    }
    // The deadline real calls get from `bind_global`: on 2 loaded cores these tests are
    // about routing, not about how fast the router is.
    let mut request = json!({ "call": full, "deadline_ms": 200 });
    if let Some(ms) = now_ms {
        request["now_ms"] = json!(ms);
    }
    let (status, sim) = s.admin("POST", &path, Some(request)).await?;
    anyhow::ensure!(status == 200, "simulate: {status} {sim}");
    let gateways = sim["answer"]["decision"]["Attempts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a["gateway"].as_str().map(str::to_string))
        .collect();
    Ok((gateways, sim))
}

/// The user part of the SIP URI in header `name` of `message` (empty when absent).
fn uri_user(message: &str, name: &str) -> String {
    message
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(": "))
        .and_then(|v| v.split("sip:").nth(1))
        .and_then(|v| v.split('@').next())
        .unwrap_or_default()
        .to_string()
}

/// Call `callee` once while each of `failing` answers 503 and `answering` takes the
/// call: the call record (the server's `n`th).
async fn hunt(
    s: &TestServer,
    n: usize,
    callee: &str,
    failing: &[&Vendor],
    answering: &Vendor,
) -> Result<Value> {
    let mut vendors = failing
        .iter()
        .map(|v| uas(v, "uas_unavailable.xml", 1))
        .collect::<Result<Vec<_>>>()?;
    vendors.push(Sipp::uas(answering.port, &["-sn", "uas"], 1)?);
    Sipp::uac(s.server.sip.addr, &["-s", callee, "-sn", "uac"], 1, 1)?
        .succeeds()
        .await?;
    for vendor in vendors {
        vendor.succeeds().await?;
    }
    Ok(wait_for_records(s, n).await?[0].clone())
}

/// SIPp's built-in answering scenario, as `traced_uas` takes it.
const ANSWER: [&str; 2] = ["-sn", "uas"];

/// Vendor `v` taking `calls` calls as `scenario_args` says (`ANSWER`, or `["-sf",
/// path]`), logging every message it receives into `dir`.
fn traced_uas(dir: &Path, v: &Vendor, calls: u32, scenario_args: [&str; 2]) -> Result<Sipp> {
    let (port, calls) = (v.port.to_string(), calls.to_string());
    let mut args = vec!["-i", "127.0.0.1", "-p", &port, "-m", &calls, "-trace_msg"];
    args.extend(scenario_args);
    Sipp::spawn_in(dir, &args)
}

/// The INVITEs a traced vendor received into `dir`, in order.
fn invites(dir: &Path) -> Result<Vec<String>> {
    Ok(received_messages(dir)?
        .into_iter()
        .filter(|m| m.starts_with("INVITE "))
        .collect())
}

fn uas(v: &Vendor, scenario_file: &str, calls: u32) -> Result<Sipp> {
    let sf = scenario(scenario_file).to_string_lossy().into_owned();
    Sipp::uas(v.port, &["-sf", &sf], calls)
}

/// A server whose business clock the test may move (`--settable-clock`).
async fn start_with_settable_clock(dir: &TempDir) -> Result<TestServer> {
    TestServer::start_configured(&dir.0, |c| c.settable_clock = true).await
}

/// Move the server's business clock to `now_ms` (Unix ms).
async fn set_clock(s: &TestServer, now_ms: u64) -> Result<()> {
    let (status, body) = s
        .admin("PUT", "/api/v1/clock", Some(json!({ "now_ms": now_ms })))
        .await?;
    anyhow::ensure!(status == 200, "clock: {status} {body}");
    Ok(())
}

/// One SIPp call to `callee` at `now_ms` on the server's clock, with every vendor
/// answering 503: the gateways its call record shows were tried, in order.
async fn tried_at(s: &TestServer, now_ms: u64, callee: &str, n: usize) -> Result<Vec<String>> {
    set_clock(s, now_ms).await?;
    call(s, callee, "uac_fail.xml").await?;
    let record = &wait_for_records(s, n).await?[0];
    Ok(attempts(record)
        .into_iter()
        .map(|(gateway, code)| {
            assert_eq!(code, Some(503), "{record}");
            gateway
        })
        .collect())
}

#[tokio::test]
async fn longest_prefix_beats_priority_and_503_moves_on_in_priority_order() -> Result<()> {
    let dir = TempDir::new("stock-order");
    let s = TestServer::start(&dir.0).await?;
    let (long, first, second, other) = (
        Vendor::new("v-long"),
        Vendor::new("v-first"),
        Vendor::new("v-second"),
        Vendor::new("v-other"),
    );
    let vendors = [
        (&long, json!({ "priority": 9 })),
        (&first, json!({ "priority": 1 })),
        (&second, json!({ "priority": 2 })),
        (&other, json!({ "priority": 0 })),
    ];
    // Table order is not priority order; the 33 route never matches.
    let routes = "4420,v-long\n44,v-second\n44,v-first\n33,v-other\n";
    stock_carrier(&s, json!({}), &vendors, routes).await?;
    let r = &hunt(&s, 1, "442071234567", &[&long, &first], &second).await?;
    assert_eq!(
        attempts(r),
        tried(&[("v-long", 503), ("v-first", 503), ("v-second", 200)]),
        "{r}"
    );
    s.stop().await
}

#[tokio::test]
async fn a_stop_code_or_a_gateway_that_does_not_switch_ends_the_hunt() -> Result<()> {
    let dir = TempDir::new("stock-stop");
    let s = TestServer::start(&dir.0).await?;
    let (busy, fixed, spare) = (
        Vendor::new("v-busy"),
        Vendor::new("v-fixed"),
        Vendor::new("v-spare"),
    );
    let vendors = [
        (&busy, json!({})),
        (&fixed, json!({ "switch_until_connect": false })),
        (&spare, json!({ "priority": 5 })),
    ];
    // Nothing listens on the spare's port: trying it would add a timed-out attempt.
    let routes = "1,v-busy\n1,v-spare\n2,v-fixed\n2,v-spare\n";
    stock_carrier(&s, json!({}), &vendors, routes).await?;
    let rejecting = uas(&busy, "uas_busy.xml", 1)?;
    call(&s, "1000", "uac_fail.xml").await?;
    rejecting.succeeds().await?;
    let r = &wait_for_records(&s, 1).await?[0];
    assert_eq!(attempts(r), tried(&[("v-busy", 486)]), "{r}");
    assert_eq!(r["final_code"], 486);

    // 503 would move on, but this gateway returns every failure to the caller.
    let rejecting = uas(&fixed, "uas_unavailable.xml", 1)?;
    call(&s, "2000", "uac_fail.xml").await?;
    rejecting.succeeds().await?;
    let r = &wait_for_records(&s, 2).await?[0];
    assert_eq!(attempts(r), tried(&[("v-fixed", 503)]), "{r}");
    assert_eq!(r["final_code"], 503);
    s.stop().await
}

#[tokio::test]
async fn each_gateways_own_invite_and_progress_timeouts_move_the_call_on() -> Result<()> {
    let dir = TempDir::new("stock-timeouts");
    let s = TestServer::start(&dir.0).await?;
    // Nothing listens on v-silent's port; v-ringing rings and never answers.
    let silent = Vendor {
        invite_timeout_ms: 800,
        ..Vendor::new("v-silent")
    };
    let (ringing, answering) = (Vendor::new("v-ringing"), Vendor::new("v-answering"));
    let vendors = [
        (&silent, json!({ "priority": 1 })),
        (
            &ringing,
            json!({ "priority": 2, "progress_timeout_ms": 1200 }),
        ),
        (&answering, json!({ "priority": 3 })),
    ];
    let routes = "44,v-silent\n44,v-ringing\n44,v-answering\n";
    stock_carrier(&s, json!({}), &vendors, routes).await?;
    let (b, c) = (
        uas(&ringing, "uas_ring.xml", 1)?,
        Sipp::uas(answering.port, &["-sn", "uas"], 1)?,
    );
    Sipp::uac(s.server.sip.addr, &["-s", "4411", "-sn", "uac"], 1, 1)?
        .succeeds()
        .await?;
    b.succeeds().await?;
    c.succeeds().await?;
    let r = &wait_for_records(&s, 1).await?[0];
    let summary: Vec<(&str, bool)> = r["attempts"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| {
            let gateway = a["gateway"].as_str().unwrap_or_default();
            (gateway, a["timed_out"] == true)
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("v-silent", true),
            ("v-ringing", true),
            ("v-answering", false)
        ],
        "{r}"
    );
    // v-ringing had rung: its attempt shows the post-dial delay before it timed out.
    assert!(r["attempts"][1]["pdd_ms"].is_u64(), "{r}");
    assert_eq!(r["final_code"], 200, "{r}");
    s.stop().await
}

#[tokio::test]
async fn down_gateways_are_skipped_protect_routes_come_last_and_the_switch_limit_holds(
) -> Result<()> {
    let dir = TempDir::new("stock-protect");
    let s = TestServer::start(&dir.0).await?;
    let (guard, off, failing) = (
        Vendor::new("v-protect"),
        Vendor::new("v-off"),
        Vendor::new("v-failing"),
    );
    let vendors = [
        (&guard, json!({ "protect": true, "priority": 0 })),
        (&off, json!({ "enabled": false, "priority": 1 })),
        (&failing, json!({ "priority": 2 })),
    ];
    let routes = "44,v-protect\n44,v-off\n44,v-failing\n";
    stock_carrier(&s, json!({}), &vendors, routes).await?;
    // The protect route, first by priority, is tried only after the normal one fails.
    let r = &hunt(&s, 1, "4411", &[&failing], &guard).await?;
    assert_eq!(
        attempts(r),
        tried(&[("v-failing", 503), ("v-protect", 200)]),
        "{r}"
    );

    // Simulate says why: the disabled gateway was skipped.
    let (_, sim) = simulate(&s, json!({ "callee": "4411" }), None).await?;
    let logs = sim["logs"].to_string();
    assert!(logs.contains("skip v-off (prefix 44): down"), "{sim}");

    // A switch limit of 1 on the customer's gateway: the protect route is not reached.
    put(
        &s,
        "/api/v1/mapping-gateways/customers",
        json!({ "account": "acme", "sources": ["127.0.0.1/32"], "switch_limit": 1 }),
    )
    .await?;
    let a = uas(&failing, "uas_unavailable.xml", 1)?;
    call(&s, "4411", "uac_fail.xml").await?;
    a.succeeds().await?;
    let r = &wait_for_records(&s, 2).await?[0];
    assert_eq!(attempts(r), tried(&[("v-failing", 503)]), "{r}");
    s.stop().await
}

#[tokio::test]
async fn a_protect_route_serves_its_own_prefix_before_a_shorter_one_and_alone() -> Result<()> {
    let dir = TempDir::new("stock-protect-prefix");
    let s = TestServer::start(&dir.0).await?;
    let (normal, guard, broad) = (
        Vendor::new("v-normal"),
        Vendor::new("v-guard"),
        Vendor::new("v-broad"),
    );
    let vendors = [
        (&normal, json!({ "priority": 5 })),
        (&guard, json!({ "protect": true, "priority": 1 })),
        (&broad, json!({ "priority": 1 })),
    ];
    // 4420's protect route follows its normal one and precedes UK-wide 44 (spec
    // decision 14); 33 has only the protect route, which then carries its calls.
    let routes = "4420,v-normal\n4420,v-guard\n44,v-broad\n33,v-guard\n";
    stock_carrier(&s, json!({}), &vendors, routes).await?;
    let r = &hunt(&s, 1, "442071234567", &[&normal, &guard], &broad).await?;
    assert_eq!(
        attempts(r),
        tried(&[("v-normal", 503), ("v-guard", 503), ("v-broad", 200)]),
        "{r}"
    );
    let r = &hunt(&s, 2, "33123456", &[], &guard).await?;
    assert_eq!(attempts(r), tried(&[("v-guard", 200)]), "{r}");
    // The module log warns the operator that a protect route carries normal traffic.
    let (_, sim) = simulate(&s, json!({ "callee": "33123456" }), None).await?;
    assert!(
        sim["logs"]
            .to_string()
            .contains("every route of prefix 33 is a protect route"),
        "{sim}"
    );
    s.stop().await
}

#[tokio::test]
async fn each_gateway_gets_its_tech_prefix_identity_and_extra_headers() -> Result<()> {
    let dir = TempDir::new("stock-identity");
    let s = TestServer::start(&dir.0).await?;
    let (first, second, third) = (
        Vendor::new("v-first"),
        Vendor::new("v-second"),
        Vendor::new("v-third"),
    );
    let vendors = [
        (
            &first,
            json!({ "priority": 1, "tech_prefix": "*99", "pai": "caller", "privacy": "id", "ppi": "none", "extra_headers": ["x-customer-ref"] }),
        ),
        (
            &second,
            json!({ "priority": 2, "pai": "passthrough", "privacy": "passthrough", "ppi": "passthrough", "extra_headers": "all" }),
        ),
        (
            &third,
            json!({ "priority": 3, "pai": "none", "privacy": "none", "ppi": "caller" }),
        ),
    ];
    let customer = json!({ "support_privacy": true });
    let routes = "44,v-first\n44,v-second\n44,v-third\n";
    stock_carrier(&s, customer, &vendors, routes).await?;
    let (first_dir, second_dir, third_dir) = (
        dir.0.join("first"),
        dir.0.join("second"),
        dir.0.join("third"),
    );
    let unavailable = scenario("uas_unavailable.xml")
        .to_string_lossy()
        .into_owned();
    let fail = ["-sf", unavailable.as_str()];
    let a = traced_uas(&first_dir, &first, 1, fail)?;
    let b = traced_uas(&second_dir, &second, 1, fail)?;
    let c = traced_uas(&third_dir, &third, 1, ANSWER)?;
    call(&s, "4411", "uac_identity.xml").await?;
    for vendor in [a, b, c] {
        vendor.succeeds().await?;
    }

    let invite =
        |dir| -> Result<String> { Ok(invites(dir)?.into_iter().next().unwrap_or_default()) };
    let header = |message: &str, name: &str| -> Option<String> {
        message
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")).map(str::to_string))
    };
    // The first vendor: tech prefix, PAI built from the caller at the switch's address,
    // Privacy id, and the caller's P-Preferred-Identity removed.
    let to_first = invite(&first_dir)?;
    assert!(to_first.starts_with("INVITE sip:*994411@"), "{to_first}");
    let pai = header(&to_first, "P-Asserted-Identity").unwrap_or_default();
    assert!(pai.starts_with("<sip:sipp@127.0.0.1:"), "{to_first}");
    assert_eq!(header(&to_first, "Privacy").as_deref(), Some("id"));
    assert_eq!(
        header(&to_first, "P-Preferred-Identity"),
        None,
        "{to_first}"
    );
    // Its allow-list lets the customer reference through, not the secret.
    assert_eq!(
        header(&to_first, "X-Customer-Ref").as_deref(),
        Some("order-42")
    );
    assert_eq!(header(&to_first, "X-Secret"), None, "{to_first}");
    // The second: no tech prefix, the caller's own three headers passed through.
    let to_second = invite(&second_dir)?;
    assert!(to_second.starts_with("INVITE sip:4411@"), "{to_second}");
    assert_eq!(
        (
            header(&to_second, "P-Asserted-Identity").as_deref(),
            header(&to_second, "Privacy").as_deref(),
            header(&to_second, "P-Preferred-Identity").as_deref(),
        ),
        (
            Some("<sip:+442070000001@customer.example>"),
            Some("id"),
            Some("<sip:+442070000002@customer.example>")
        ),
        "{to_second}"
    );
    // "all": both extra headers.
    assert_eq!(
        (
            header(&to_second, "X-Customer-Ref").as_deref(),
            header(&to_second, "X-Secret").as_deref()
        ),
        (Some("order-42"), Some("s3cr3t"))
    );
    // The third: the caller's PAI and Privacy removed, a PPI built from the caller.
    let to_third = invite(&third_dir)?;
    assert_eq!(
        (
            header(&to_third, "P-Asserted-Identity"),
            header(&to_third, "Privacy")
        ),
        (None, None),
        "{to_third}"
    );
    let ppi = header(&to_third, "P-Preferred-Identity").unwrap_or_default();
    assert!(ppi.starts_with("<sip:sipp@127.0.0.1:"), "{to_third}");
    s.stop().await
}

#[tokio::test]
async fn numbers_pass_the_customers_then_the_vendors_dial_plans_in_order() -> Result<()> {
    let dir = TempDir::new("stock-numbers");
    let s = TestServer::start(&dir.0).await?;
    let vendor = Vendor::new("v-uk");
    // The customer's caller comes from Remote-Party-ID and is made national-free; its
    // callee loses the international 00. The vendor wants national callees behind
    // tech prefix *1 and a + on the caller, which its PAI shows.
    let customer = json!({
        "caller_source": "remote_party_id",
        "caller_rules": [ { "prefix": "0", "replace": "44" } ],
        "callee_rules": [ { "prefix": "00", "strip": 2 } ],
    });
    let settings = json!({
        "tech_prefix": "*1",
        "callee_rules": [ { "prefix": "44", "replace": "0" } ],
        "caller_rules": [ { "add": "+" } ],
        "pai_rules": [ { "prefix": "+44", "replace": "0" } ],
        "pai": "caller",
    });
    stock_carrier(&s, customer, &[(&vendor, settings)], "44,v-uk\n").await?;
    let vendor_dir = dir.0.join("vendor");
    let answering = traced_uas(&vendor_dir, &vendor, 1, ANSWER)?;
    call(&s, "00442071234567", "uac_identity.xml").await?;
    answering.succeeds().await?;

    let invite = invites(&vendor_dir)?.into_iter().next().unwrap_or_default();
    assert!(invite.starts_with("INVITE sip:*102071234567@"), "{invite}");
    let from = invite
        .lines()
        .find(|l| l.starts_with("From: "))
        .unwrap_or_default();
    assert!(from.contains("<sip:+442070000003@"), "{invite}");
    // The vendor's PAI dial plan writes that number nationally, in the PAI only.
    assert!(
        invite.contains("P-Asserted-Identity: <sip:02070000003@"),
        "{invite}"
    );
    let r = &wait_for_records(&s, 1).await?[0];
    assert_eq!(
        (
            &r["caller_in"],
            &r["callee_in"],
            &r["caller_out"],
            &r["callee_out"]
        ),
        (
            &json!("442070000003"),
            &json!("00442071234567"),
            &json!("+442070000003"),
            &json!("*102071234567")
        ),
        "{r}"
    );
    s.stop().await
}

#[tokio::test]
async fn bad_number_rules_and_stop_codes_are_refused_with_the_reason() -> Result<()> {
    let dir = TempDir::new("stock-validate");
    let s = TestServer::start(&dir.0).await?;
    for (path, body, why) in [
        (
            "/api/v1/routing-gateways/v",
            json!({ "caller_rules": [ { "strip": 1, "add": "1" } ] }),
            "caller_rules[0]: a number rule does one of strip, add or replace",
        ),
        (
            "/api/v1/mapping-gateways/m",
            json!({ "account": "acme", "callee_rules": [ {}, { "min_len": 9, "max_len": 3 } ] }),
            "callee_rules[1]: min_len 9 is above max_len 3",
        ),
        (
            "/api/v1/routing-gateways/v",
            json!({ "extra_headers": ["X-Ok", "bad name"] }),
            "extra_headers: \"bad name\" is not a header name",
        ),
        (
            "/api/v1/routing-gateways/v",
            json!({ "stop_codes": [486, 200] }),
            "stop code 200 is not a final failure (300-699)",
        ),
    ] {
        let (status, answer) = s.admin("PUT", path, Some(body)).await?;
        assert_eq!(status, 400, "{answer}");
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(why), "{answer}");
    }
    s.stop().await
}

#[tokio::test]
async fn lcr_order_follows_a_price_change_at_its_time_and_min_profit_skips_dear_vendors(
) -> Result<()> {
    let dir = TempDir::new("stock-lcr");
    let s = start_with_settable_clock(&dir).await?;
    let (a, b, c) = (Vendor::new("v-a"), Vendor::new("v-b"), Vendor::new("v-c"));
    let csv = |text: &str| Body::Bytes(text.as_bytes().to_vec(), "text/csv");
    // b gets cheaper than a from 1 December; c costs more than the customer's 0.10
    // less the 0.01 least profit.
    for (table, rows) in [
        ("cost-a", "44,0.05\n"),
        ("cost-b", "44,0.08\n44,0.03,0,60,60,2026-12-01\n"),
        ("cost-c", "44,0.095\n"),
        ("acme-rates", "44,0.10\n"),
    ] {
        let path = format!("/api/v1/tables/{table}");
        let (status, body) = s.call("PUT", &path, ADMIN, Some(csv(rows))).await?;
        assert_eq!(status, 200, "{body}");
    }
    let customer = json!({ "route_by": "cost", "min_profit": 0.01 });
    let vendors = [
        (&a, json!({ "cost_table": "cost-a" })),
        (&b, json!({ "cost_table": "cost-b" })),
        (&c, json!({ "cost_table": "cost-c" })),
    ];
    stock_carrier(&s, customer, &vendors, "44,v-a\n44,v-b\n44,v-c\n").await?;
    put(
        &s,
        "/api/v1/accounts/acme",
        json!({ "rate_table": "acme-rates" }),
    )
    .await?;
    let top_up = json!({ "amount": 10, "note": "calls to fail over" });
    let (status, body) = s
        .admin("POST", "/api/v1/accounts/acme/payments", Some(top_up))
        .await?;
    assert_eq!(status, 200, "{body}");

    let (va, vb) = (
        uas(&a, "uas_unavailable.xml", 2)?,
        uas(&b, "uas_unavailable.xml", 2)?,
    );
    // Noon UTC on 30 November and on 1 December 2026; v-c is never tried.
    let mut orders = Vec::new();
    for (n, now_ms) in [(1, 1_796_040_000_000u64), (2, 1_796_126_400_000)] {
        orders.push(tried_at(&s, now_ms, "4411", n).await?);
    }
    va.succeeds().await?;
    vb.succeeds().await?;
    assert_eq!(orders, [["v-a", "v-b"], ["v-b", "v-a"]]);
    // Simulate, on the same clock, says why v-c was left out and what v-b costs.
    let (_, sim) = simulate(&s, json!({ "callee": "4411" }), None).await?;
    let logs = sim["logs"].to_string();
    assert!(logs.contains("skip v-c (prefix 44): cost 0.095"), "{sim}");
    assert!(logs.contains("try v-b (priority 0, cost 0.03, "), "{sim}");
    s.stop().await
}

#[tokio::test]
async fn a_route_for_office_hours_is_not_used_on_a_holiday_or_after_hours() -> Result<()> {
    let dir = TempDir::new("stock-calendar");
    let s = start_with_settable_clock(&dir).await?;
    let (office, any) = (Vendor::new("v-office"), Vendor::new("v-any"));
    let vendors = [(&office, json!({})), (&any, json!({}))];
    // v-office serves office hours only (priority 1 then); v-any all the time.
    let routes = "44,v-office,1,office\n44,v-any,2\n";
    stock_carrier(&s, json!({}), &vendors, routes).await?;
    let calendar = json!({
        "time_zone": "Europe/London",
        "holidays": ["2026-12-25"],
        "periods": [ { "name": "office", "start": "09:00", "end": "17:00", "days": "working" } ],
    });
    put(&s, "/api/v1/calendars/uk", calendar).await?;
    put(
        &s,
        "/api/v1/accounts/acme",
        json!({ "rate_table": "acme-free", "calendar": "uk" }),
    )
    .await?;
    let (vo, va) = (
        uas(&office, "uas_unavailable.xml", 1)?,
        uas(&any, "uas_unavailable.xml", 3)?,
    );
    let mut orders = Vec::new();
    // 10:00 on Thursday 24 December, 10:00 on Christmas Day, 18:00 on the 24th (GMT).
    for (n, now_ms) in [
        (1, 1_798_106_400_000u64),
        (2, 1_798_192_800_000),
        (3, 1_798_135_200_000),
    ] {
        orders.push(tried_at(&s, now_ms, "4411", n).await?);
    }
    vo.succeeds().await?;
    va.succeeds().await?;
    assert_eq!(
        orders,
        [vec!["v-office", "v-any"], vec!["v-any"], vec!["v-any"]]
    );
    s.stop().await
}

#[tokio::test]
async fn only_a_server_started_with_a_settable_clock_lets_its_clock_move() -> Result<()> {
    let dir = TempDir::new("stock-clock");
    let s = TestServer::start(&dir.0).await?;
    let (status, body) = s
        .admin("PUT", "/api/v1/clock", Some(json!({ "now_ms": 0 })))
        .await?;
    assert_eq!(status, 409, "{body}");
    assert!(body.to_string().contains("--settable-clock"), "{body}");
    let (_, clock) = s.admin("GET", "/api/v1/clock", None).await?;
    assert_eq!(
        (clock["settable"].clone(), clock["offset_ms"].clone()),
        (json!(false), json!(0))
    );
    s.stop().await?;

    let dir = TempDir::new("stock-clock-lab");
    let s = start_with_settable_clock(&dir).await?;
    set_clock(&s, 1_798_106_400_000).await?;
    let (_, clock) = s.admin("GET", "/api/v1/clock", None).await?;
    let now = clock["now_ms"].as_u64().unwrap_or_default();
    assert!(
        (1_798_106_400_000..1_798_106_460_000).contains(&now),
        "{clock}"
    );
    s.stop().await
}

#[tokio::test]
async fn a_groups_reserved_lines_are_kept_from_first_attempts() -> Result<()> {
    let dir = TempDir::new("stock-groups");
    let s = TestServer::start(&dir.0).await?;
    let (g1, free, g2) = (
        Vendor::new("v-g1"),
        Vendor::new("v-free"),
        Vendor::new("v-g2"),
    );
    // One line in group "bd", and it is reserved: a first attempt may not take it.
    let vendors = [
        (&g1, json!({ "groups": ["bd"], "priority": 1 })),
        (&free, json!({ "priority": 2 })),
        (&g2, json!({ "groups": ["bd"], "priority": 3 })),
    ];
    stock_carrier(&s, json!({}), &vendors, "44,v-g1\n44,v-free\n44,v-g2\n").await?;
    let (status, body) = s
        .admin(
            "PUT",
            "/api/v1/gateway-groups/bd",
            Some(json!({ "capacity": 1, "reserved": 2 })),
        )
        .await?;
    assert_eq!(status, 400, "{body}");
    put(
        &s,
        "/api/v1/gateway-groups/bd",
        json!({ "capacity": 1, "reserved": 1 }),
    )
    .await?;
    let (gateways, sim) = simulate(&s, json!({ "callee": "4411" }), None).await?;
    // v-g1 would be first: skipped; v-g2 comes as a failover and may use the line.
    assert_eq!(gateways, ["v-free", "v-g2"], "{sim}");
    assert!(
        sim["logs"]
            .to_string()
            .contains("skip v-g1: group bd: its 1 free lines are reserved for failover"),
        "{sim}"
    );
    s.stop().await
}

/// Calls to 4411 held for each of `durations_ms`, each placed once the switch carries
/// the ones before it.
async fn hold_calls(s: &TestServer, durations_ms: &[u32]) -> Result<Vec<Sipp>> {
    let mut held = Vec::new();
    for (n, ms) in durations_ms.iter().enumerate() {
        let ms = ms.to_string();
        let args = ["-s", "4411", "-sn", "uac", "-d", &ms];
        held.push(Sipp::uac(s.server.sip.addr, &args, 1, 1)?);
        wait_for_live_calls(s, n as u64 + 1).await?;
    }
    Ok(held)
}

/// Wait until the switch carries `n` calls.
async fn wait_for_live_calls(s: &TestServer, n: u64) -> Result<()> {
    for _ in 0..100 {
        let (_, stats) = s.admin("GET", "/api/v1/sip/stats", None).await?;
        if stats["sip"]["calls"] == n {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    anyhow::bail!("the switch never carried {n} calls")
}

#[tokio::test]
async fn a_full_gateway_and_a_full_group_are_passed_over_while_their_calls_last() -> Result<()> {
    let dir = TempDir::new("stock-full");
    let s = TestServer::start(&dir.0).await?;
    let (one, grouped, free) = (
        Vendor::new("v-one"),
        Vendor::new("v-grouped"),
        Vendor::new("v-free"),
    );
    // v-one has one line of its own; v-grouped shares group bd's one line.
    let vendors = [
        (&one, json!({ "capacity": 1, "priority": 1 })),
        (&grouped, json!({ "groups": ["bd"], "priority": 2 })),
        (&free, json!({ "priority": 3 })),
    ];
    stock_carrier(
        &s,
        json!({}),
        &vendors,
        "44,v-one\n44,v-grouped\n44,v-free\n",
    )
    .await?;
    put(
        &s,
        "/api/v1/gateway-groups/bd",
        json!({ "capacity": 1, "reserved": 0 }),
    )
    .await?;
    let answering = [
        Sipp::uas(one.port, &["-sn", "uas"], 1)?,
        Sipp::uas(grouped.port, &["-sn", "uas"], 1)?,
        Sipp::uas(free.port, &["-sn", "uas"], 1)?,
    ];
    // Two long calls fill v-one, then group bd; the third call finds only v-free.
    let held = hold_calls(&s, &[8_000, 6_000]).await?;
    let (_, sim) = simulate(&s, json!({ "callee": "4411" }), None).await?;
    let logs = sim["logs"].to_string();
    assert!(
        logs.contains("skip v-one (prefix 44): at capacity"),
        "{sim}"
    );
    assert!(
        logs.contains("skip v-grouped: group bd is full (1 calls)"),
        "{sim}"
    );
    Sipp::uac(s.server.sip.addr, &["-s", "4411", "-sn", "uac"], 1, 1)?
        .succeeds()
        .await?;
    for caller in held {
        caller.succeeds().await?;
    }
    for vendor in answering {
        vendor.succeeds().await?;
    }
    // Records come in the order calls ended, latest first: the first long call, the
    // second, then the short one.
    let records = wait_for_records(&s, 3).await?;
    let tried_by_call: Vec<_> = records.iter().map(attempts).collect();
    assert_eq!(
        tried_by_call,
        [
            tried(&[("v-one", 200)]),
            tried(&[("v-grouped", 200)]),
            tried(&[("v-free", 200)]),
        ]
    );
    s.stop().await
}

#[tokio::test]
async fn lcr_order_changes_at_a_calendar_period_boundary() -> Result<()> {
    let dir = TempDir::new("stock-lcr-period");
    let s = start_with_settable_clock(&dir).await?;
    let (a, b) = (Vendor::new("v-a"), Vendor::new("v-b"));
    let csv = |text: &str| Body::Bytes(text.as_bytes().to_vec(), "text/csv");
    for (table, rows) in [
        ("a-off", "44,0.05\n"),
        ("a-peak", "44,0.09\n"),
        ("b-flat", "44,0.07\n"),
    ] {
        let path = format!("/api/v1/tables/{table}");
        let (status, body) = s.call("PUT", &path, ADMIN, Some(csv(rows))).await?;
        assert_eq!(status, 200, "{body}");
    }
    let peak = json!({ "name": "peak", "start": "08:00", "end": "18:00", "days": "working" });
    // a is dearer than b in London's working-day peak, cheaper outside it.
    let vendors = [
        (
            &a,
            json!({ "cost_table": "a-off", "calendar": "uk",
                    "period_cost_tables": { "peak": "a-peak" } }),
        ),
        (&b, json!({ "cost_table": "b-flat" })),
    ];
    stock_carrier(
        &s,
        json!({ "route_by": "cost" }),
        &vendors,
        "44,v-a\n44,v-b\n",
    )
    .await?;
    put(
        &s,
        "/api/v1/calendars/uk",
        json!({ "time_zone": "Europe/London", "periods": [peak] }),
    )
    .await?;
    let (va, vb) = (
        uas(&a, "uas_unavailable.xml", 2)?,
        uas(&b, "uas_unavailable.xml", 2)?,
    );
    let mut orders = Vec::new();
    // Monday 23 November 2026, 09:30 and 20:00 in London (UTC in winter).
    for (n, now_ms) in [(1, 1_795_426_200_000u64), (2, 1_795_464_000_000)] {
        orders.push(tried_at(&s, now_ms, "4411", n).await?);
    }
    va.succeeds().await?;
    vb.succeeds().await?;
    assert_eq!(orders, [["v-b", "v-a"], ["v-a", "v-b"]]);
    s.stop().await
}

/// Two calls that fail on v-poor (first by priority, or by table order at equal
/// `priorities`) and connect on v-good, then a third placed by `customer`'s ASR rule:
/// the gateways the third call tried.
async fn third_call_after_two_poor_answers(
    name: &str,
    customer: Value,
    priorities: [u32; 2],
) -> Result<Value> {
    let dir = TempDir::new(name);
    let s = TestServer::start(&dir.0).await?;
    let (poor, good) = (Vendor::new("v-poor"), Vendor::new("v-good"));
    let vendors = [
        (&poor, json!({ "priority": priorities[0] })),
        (&good, json!({ "priority": priorities[1] })),
    ];
    stock_carrier(&s, customer, &vendors, "44,v-poor\n44,v-good\n").await?;
    let (a, b) = (
        uas(&poor, "uas_unavailable.xml", 2)?,
        Sipp::uas(good.port, &["-sn", "uas"], 3)?,
    );
    Sipp::uac(s.server.sip.addr, &["-s", "4411", "-sn", "uac"], 2, 2)?
        .succeeds()
        .await?;
    for r in wait_for_records(&s, 2).await? {
        assert_eq!(
            attempts(&r),
            tried(&[("v-poor", 503), ("v-good", 200)]),
            "{r}"
        );
    }
    // v-poor's ASR is now 0 over 2 attempts, v-good's 1.
    Sipp::uac(s.server.sip.addr, &["-s", "4411", "-sn", "uac"], 1, 1)?
        .succeeds()
        .await?;
    a.succeeds().await?;
    b.succeeds().await?;
    let third = wait_for_records(&s, 3).await?[0].clone();
    s.stop().await?;
    Ok(third)
}

#[tokio::test]
async fn a_vendor_whose_asr_falls_below_the_threshold_is_tried_later() -> Result<()> {
    // Demotion moves v-poor below v-good's worse priority.
    let customer = json!({ "asr_threshold": 0.5, "asr_min_attempts": 2 });
    let r = third_call_after_two_poor_answers("stock-asr", customer, [1, 2]).await?;
    assert_eq!(attempts(&r), tried(&[("v-good", 200)]), "{r}");
    Ok(())
}

#[tokio::test]
async fn ordering_by_asr_tries_the_best_answering_vendor_first() -> Result<()> {
    // The sort key orders gateways of one priority (spec decision 14).
    let customer = json!({ "route_by": "asr", "asr_min_attempts": 2 });
    let r = third_call_after_two_poor_answers("stock-asr-order", customer, [1, 1]).await?;
    assert_eq!(attempts(&r), tried(&[("v-good", 200)]), "{r}");
    Ok(())
}

#[tokio::test]
async fn pool_numbers_go_round_robin_into_from_and_pai_and_come_back_after_each_call() -> Result<()>
{
    let dir = TempDir::new("stock-pool");
    let s = TestServer::start(&dir.0).await?;
    let vendor = Vendor::new("v-pool");
    let settings = json!({
        "pai": "caller",
        "caller_pool": {
            "numbers": ["442070000001", "442070000002"],
            "selection": "round_robin",
            "multiplexes": 1,
        },
    });
    stock_carrier(&s, json!({}), &[(&vendor, settings)], "44,v-pool\n").await?;
    let vendor_dir = dir.0.join("vendor");
    let answering = traced_uas(&vendor_dir, &vendor, 3, ANSWER)?;
    // Three calls, one after another: each gives its number back as it ends.
    Sipp::uac(s.server.sip.addr, &["-s", "4411", "-sn", "uac"], 3, 1)?
        .succeeds()
        .await?;
    answering.succeeds().await?;
    let invites = invites(&vendor_dir)?;
    let users: Vec<(String, String)> = invites
        .iter()
        .map(|m| (uri_user(m, "From"), uri_user(m, "P-Asserted-Identity")))
        .collect();
    let pair = |n: &str| (n.to_string(), n.to_string());
    assert_eq!(
        users,
        [
            pair("442070000001"),
            pair("442070000002"),
            pair("442070000001")
        ],
        "{invites:?}"
    );
    s.stop().await
}

#[tokio::test]
async fn a_pool_number_at_its_multiplex_limit_is_not_lent_to_a_concurrent_call() -> Result<()> {
    let dir = TempDir::new("stock-pool-multiplex");
    let s = TestServer::start(&dir.0).await?;
    let vendor = Vendor::new("v-pool");
    // Two numbers, one call each; not required, so a third concurrent call keeps the
    // caller's own number (spec decision 10).
    let settings = json!({
        "caller_pool": {
            "numbers": ["442070000001", "442070000002"],
            "selection": "round_robin",
            "multiplexes": 1,
        },
    });
    stock_carrier(&s, json!({}), &[(&vendor, settings)], "44,v-pool\n").await?;
    let vendor_dir = dir.0.join("vendor");
    let answering = traced_uas(&vendor_dir, &vendor, 3, ANSWER)?;
    let held = hold_calls(&s, &[6_000, 4_000]).await?;
    Sipp::uac(s.server.sip.addr, &["-s", "4411", "-sn", "uac"], 1, 1)?
        .succeeds()
        .await?;
    for caller in held {
        caller.succeeds().await?;
    }
    answering.succeeds().await?;
    let callers: Vec<String> = invites(&vendor_dir)?
        .iter()
        .map(|m| uri_user(m, "From"))
        .collect();
    // SIPp's own caller is "sipp".
    assert_eq!(callers, ["442070000001", "442070000002", "sipp"]);
    s.stop().await
}

#[tokio::test]
async fn a_gateway_serves_only_the_customers_it_allows() -> Result<()> {
    let dir = TempDir::new("stock-customers");
    let s = TestServer::start(&dir.0).await?;
    let (premium, open) = (Vendor::new("v-premium"), Vendor::new("v-open"));
    let vendors = [
        (
            &premium,
            json!({ "allowed_customers": ["vip"], "priority": 1 }),
        ),
        (&open, json!({ "priority": 2 })),
    ];
    let routes = "44,v-premium\n44,v-open\n33,v-premium\n";
    stock_carrier(&s, json!({}), &vendors, routes).await?;
    put(
        &s,
        "/api/v1/mapping-gateways/vip",
        json!({ "account": "acme" }),
    )
    .await?;
    // Real calls from "customers": 33 has only v-premium, which is not for them, and 99
    // has no route at all. Each record says why (spec decision 18).
    for (n, callee, code, why) in [
        (1, "3312345", 503, "All gateways busy"),
        (2, "9912345", 404, "No route"),
    ] {
        call(&s, callee, "uac_fail.xml").await?;
        let r = &wait_for_records(&s, n).await?[0];
        assert_eq!(
            (&r["final_code"], &r["final_reason"], &r["callee_in"]),
            (&json!(code), &json!(why), &json!(callee)),
            "{r}"
        );
    }
    let (gateways, sim) = simulate(&s, json!({ "callee": "4411" }), None).await?;
    assert_eq!(gateways, ["v-open"], "{sim}");
    assert!(
        sim["logs"]
            .to_string()
            .contains("skip v-premium (prefix 44): not for customer customers"),
        "{sim}"
    );
    let vip = json!({ "callee": "4411", "ingress_gateway": "vip" });
    assert_eq!(simulate(&s, vip, None).await?.0, ["v-premium", "v-open"]);
    s.stop().await
}
