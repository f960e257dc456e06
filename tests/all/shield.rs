//! The shield against a running switch: silence for unknown sources, flood bans
//! (listed, lifted and lapsing over REST), operators' bans, scanners' User-Agents, and
//! a real SIPVicious scan. Distinct loopback addresses play the customer (127.0.0.1,
//! the mapping gateway's source), scanners and flooders (127.0.0.3 …).

use std::time::Duration;

use anyhow::Result;
use serde_json::{json, Value};
use switchyard_tests::sip::{carrier, put, raw_request, Vendor};
use switchyard_tests::{eventually, TempDir, TestServer, ADMIN};
use tokio::net::UdpSocket;

/// A request of `method` outside any dialog (`LOCAL` becomes the sender).
fn request(method: &str, call_id: &str, user_agent: Option<&str>) -> String {
    let agent = user_agent.map_or(String::new(), |a| format!("User-Agent: {a}\r\n"));
    format!(
        "{method} sip:100@127.0.0.1 SIP/2.0\r\n\
         Via: SIP/2.0/UDP LOCAL;branch=z9hG4bK{call_id}\r\n\
         From: <sip:scan@LOCAL>;tag=t{call_id}\r\n\
         To: <sip:100@127.0.0.1>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: 1 {method}\r\n\
         Max-Forwards: 70\r\n\
         {agent}Content-Length: 0\r\n\r\n"
    )
}

const QUIET: Duration = Duration::from_millis(800);

async fn options(s: &TestServer, from: &str, call_id: &str) -> Result<Option<String>> {
    raw_request(
        from,
        s.server.sip.addr,
        &request("OPTIONS", call_id, None),
        QUIET,
    )
    .await
}

fn answered_200(answer: &Option<String>) -> bool {
    answer
        .as_deref()
        .is_some_and(|a| a.starts_with("SIP/2.0 200"))
}

async fn bans(s: &TestServer) -> Result<Vec<Value>> {
    let (status, body) = s.admin("GET", "/api/v1/security/bans", None).await?;
    anyhow::ensure!(status == 200, "bans: {status} {body}");
    Ok(body.as_array().cloned().unwrap_or_default())
}

fn ban_of<'a>(bans: &'a [Value], address: &str) -> Option<&'a Value> {
    bans.iter().find(|b| b["address"] == address)
}

/// Send `count` OPTIONS from `from` as fast as one socket can.
async fn flood(from: &str, switch: std::net::SocketAddr, count: usize) -> Result<()> {
    let socket = UdpSocket::bind(from).await?;
    let local = socket.local_addr()?.to_string();
    for i in 0..count {
        let msg = request("OPTIONS", &format!("flood-{i}"), None).replace("LOCAL", &local);
        socket.send_to(msg.as_bytes(), switch).await?;
    }
    Ok(())
}

#[tokio::test]
async fn silence_means_no_answer_to_anything_from_an_unknown_source() -> Result<()> {
    let dir = TempDir::new("shield-silent");
    let s = TestServer::start_configured(&dir.0, |c| c.sip.reply_unauthorized = false).await?;
    carrier(&s, json!({}), &[&Vendor::new("vendor-a")]).await?;
    let switch = s.server.sip.addr;
    for method in ["OPTIONS", "BYE", "INFO", "REGISTER", "MESSAGE"] {
        let answer = raw_request(
            "127.0.0.3:0",
            switch,
            &request(method, &format!("unknown-{method}"), None),
            QUIET,
        )
        .await?;
        assert_eq!(answer, None, "{method} from an unknown source");
    }
    let garbage = raw_request("127.0.0.3:0", switch, "GARBAGE\r\n\r\n", QUIET).await?;
    assert_eq!(garbage, None, "not even a 400");
    // The mapping gateway's source (a known peer) is answered: 200 to OPTIONS, 481
    // to a BYE of no dialog.
    assert!(answered_200(
        &options(&s, "127.0.0.1:0", "known-options").await?
    ));
    let bye = raw_request(
        "127.0.0.1:0",
        switch,
        &request("BYE", "known-bye", None),
        QUIET,
    )
    .await?;
    assert!(
        bye.as_deref().is_some_and(|a| a.starts_with("SIP/2.0 481")),
        "{bye:?}"
    );
    s.stop().await
}

#[tokio::test]
async fn a_flooding_source_is_banned_and_listed_until_lifted_or_lapsed() -> Result<()> {
    let dir = TempDir::new("shield-flood");
    let s = TestServer::start_configured(&dir.0, |c| {
        c.sip.shield.flood_limit = 50;
        c.sip.shield.flood_window_ms = 1_000;
        c.sip.shield.flood_ban_secs = 2;
    })
    .await?;
    carrier(&s, json!({}), &[&Vendor::new("vendor-a")]).await?;
    let switch = s.server.sip.addr;
    // Not answering unknown sources is off: a source not banned gets 200 to OPTIONS.
    assert!(answered_200(&options(&s, "127.0.0.3:0", "before").await?));

    flood("127.0.0.3:0", switch, 300).await?;
    let listed = eventually(Duration::from_secs(5), "the flooder's ban", || async {
        Ok(ban_of(&bans(&s).await?, "127.0.0.3").cloned())
    })
    .await?;
    assert!(
        listed["reason"]
            .as_str()
            .unwrap_or_default()
            .starts_with("flood"),
        "{listed}"
    );
    assert!(listed["since_ms"].as_u64().is_some() && listed["until_ms"].as_u64().is_some());
    assert_eq!(options(&s, "127.0.0.3:0", "banned").await?, None);

    // The known customer may send as much as it likes.
    flood("127.0.0.1:0", switch, 300).await?;
    assert!(answered_200(&options(&s, "127.0.0.1:0", "customer").await?));
    assert!(ban_of(&bans(&s).await?, "127.0.0.1").is_none());

    // An operator lifts the ban...
    let (status, _) = s
        .admin("DELETE", "/api/v1/security/bans/127.0.0.3", None)
        .await?;
    assert_eq!(status, 204);
    assert!(answered_200(&options(&s, "127.0.0.3:0", "lifted").await?));
    let (status, _) = s
        .admin("DELETE", "/api/v1/security/bans/127.0.0.3", None)
        .await?;
    assert_eq!(status, 404, "no ban left to lift");

    // ...or it lapses by itself after its 2 s.
    flood("127.0.0.3:0", switch, 300).await?;
    eventually(Duration::from_secs(5), "the second ban", || async {
        Ok(ban_of(&bans(&s).await?, "127.0.0.3").map(drop))
    })
    .await?;
    eventually(Duration::from_secs(8), "the ban to lapse", || async {
        Ok(answered_200(&options(&s, "127.0.0.3:0", "lapsed").await?).then_some(()))
    })
    .await?;
    assert!(ban_of(&bans(&s).await?, "127.0.0.3").is_none());
    s.stop().await
}

#[tokio::test]
async fn an_operators_ban_and_a_scanners_user_agent_silence_their_source() -> Result<()> {
    let dir = TempDir::new("shield-operator");
    let s = TestServer::start(&dir.0).await?;
    carrier(&s, json!({}), &[&Vendor::new("vendor-a")]).await?;
    let (status, body) = s
        .admin(
            "POST",
            "/api/v1/security/bans",
            Some(json!({ "address": "127.0.0.4", "reason": "abuse report 17", "secs": 600 })),
        )
        .await?;
    assert_eq!(status, 201, "{body}");
    assert_eq!(options(&s, "127.0.0.4:0", "operator").await?, None);
    let reason = ban_of(&bans(&s).await?, "127.0.0.4").map(|b| b["reason"].clone());
    assert_eq!(reason, Some(json!("abuse report 17 (by env-admin)")));
    let (status, body) = s
        .admin(
            "POST",
            "/api/v1/security/bans",
            Some(json!({ "address": "not-an-address", "reason": "x", "secs": 1 })),
        )
        .await?;
    assert_eq!(status, 400, "{body}");

    // A scanner's OPTIONS gets nothing, and its source stays banned for what follows.
    let scan = raw_request(
        "127.0.0.5:0",
        s.server.sip.addr,
        &request("OPTIONS", "scan-1", Some("friendly-scanner")),
        QUIET,
    )
    .await?;
    assert_eq!(scan, None);
    let ban = ban_of(&bans(&s).await?, "127.0.0.5").cloned();
    assert!(
        ban.as_ref()
            .and_then(|b| b["reason"].as_str())
            .is_some_and(|r| r.contains("friendly-scanner")),
        "{ban:?}"
    );
    assert_eq!(options(&s, "127.0.0.5:0", "after-scan").await?, None);
    let (status, stats) = s.admin("GET", "/api/v1/sip/stats", None).await?;
    assert_eq!(status, 200);
    assert!(
        stats["sip"]["shield"]["dropped_scanner"].as_u64() >= Some(1),
        "{stats}"
    );
    s.stop().await
}

#[tokio::test]
async fn a_sipvicious_scan_from_an_unknown_source_finds_nothing() -> Result<()> {
    let dir = TempDir::new("shield-svmap");
    let s = TestServer::start_configured(&dir.0, |c| c.sip.reply_unauthorized = false).await?;
    carrier(&s, json!({}), &[&Vendor::new("vendor-a")]).await?;
    let port = s.server.sip.addr.port().to_string();
    // svmap probes with OPTIONS and lists every address that answers.
    let scan = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new("svmap")
            .args(["-p", &port, "-b", "127.0.0.3", "127.0.0.1"])
            .kill_on_drop(true)
            .output(),
    )
    .await??;
    let out = String::from_utf8_lossy(&scan.stdout);
    assert!(
        scan.status.success(),
        "svmap failed: {out} {}",
        String::from_utf8_lossy(&scan.stderr)
    );
    assert!(
        !out.contains(&format!("127.0.0.1:{port}")),
        "the scan found the switch:\n{out}"
    );
    let listed = bans(&s).await?;
    assert!(
        ban_of(&listed, "127.0.0.3").is_some(),
        "the scanner is banned: {listed:?}"
    );
    s.stop().await
}

/// A carrier with phones 1001..=1003 (1001's password is `password`), scanned from an
/// unknown source by a SIPVicious tool with `args`; its output. The scanner
/// User-Agent list is emptied: a careful scanner sends its own, and what is tested
/// here is what the switch answers. svwar 0.3.3 ignores `-b` and sends from
/// 127.0.0.1, so here the customers' gateway is 127.0.0.2 and the vendor 127.0.0.9:
/// 127.0.0.1 is nobody the switch knows.
async fn scanned_by(
    tool: &str,
    args: &[&str],
    password: &str,
    configure: impl FnOnce(&mut switchyard::config::Config),
) -> Result<String> {
    let dir = TempDir::new(&format!("shield-{tool}"));
    let s = TestServer::start_configured(&dir.0, |c| {
        c.sip.shield.scanner_user_agents.clear();
        c.sip.shield.flood_limit = 0;
        configure(c);
    })
    .await?;
    let vendor = Vendor::new("vendor-a");
    carrier(&s, json!({ "sources": ["127.0.0.2/32"] }), &[&vendor]).await?;
    put(
        &s,
        "/api/v1/routing-gateways/vendor-a",
        json!({ "address": format!("127.0.0.9:{}", vendor.port) }),
    )
    .await?;
    for (phone, secret) in [
        ("1001", password),
        ("1002", "x-92jd-7fk1"),
        ("1003", "y-k2n8-0qpz"),
    ] {
        put(
            &s,
            &format!("/api/v1/phones/{phone}"),
            json!({ "mapping_gateway": "customers", "password": secret }),
        )
        .await?;
    }
    let port = s.server.sip.addr.port().to_string();
    let mut all_args = vec!["-p", &port];
    all_args.extend_from_slice(args);
    all_args.push("127.0.0.1");
    // Bounded: a locked-out cracker may keep trying; what it found by then counts.
    let run = tokio::process::Command::new("timeout")
        .arg("15")
        .arg(tool)
        .args(&all_args)
        .kill_on_drop(true)
        .output()
        .await?;
    s.stop().await?;
    if std::env::var_os("SHIELD_DEBUG").is_some() {
        eprintln!(
            "{tool} {all_args:?}:\n{}{}",
            String::from_utf8_lossy(&run.stdout),
            String::from_utf8_lossy(&run.stderr)
        );
    }
    Ok(format!(
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    ))
}

/// svwar 0.3.3 gives up at the first answer it cannot place (it expects 404 for
/// nobody), so this shows only that a real enumerator comes away empty; the
/// comparison of answers below is what would catch a leak.
#[tokio::test]
async fn enumeration_finds_no_extension() -> Result<()> {
    for method in ["REGISTER", "INVITE"] {
        let out = scanned_by(
            "svwar",
            &["-e", "1000-1010", "-m", method, "--force"],
            "pw-1001-secret",
            |_| {},
        )
        .await?;
        for phone in ["1001", "1002", "1003"] {
            assert!(
                !out.lines().any(|l| l.contains(&format!("| {phone} "))),
                "svwar -m {method} found {phone}:\n{out}"
            );
        }
    }
    Ok(())
}

/// What a scanner compares: the status line and the header names of the answer to a
/// request naming `user` (tags, nonces and branches differ anyway).
fn shape(answer: &str) -> (String, Vec<String>) {
    let mut lines = answer.lines();
    let status = lines.next().unwrap_or_default().to_string();
    let names = lines
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.split(':').next())
        .map(str::to_ascii_lowercase)
        .collect();
    (status, names)
}

#[tokio::test]
async fn a_phones_answers_cannot_be_told_from_an_unknown_users() -> Result<()> {
    let dir = TempDir::new("shield-decoy");
    let s = TestServer::start(&dir.0).await?;
    carrier(&s, json!({}), &[&Vendor::new("vendor-a")]).await?;
    put(
        &s,
        "/api/v1/phones/1001",
        json!({ "mapping_gateway": "customers", "password": "pw-1001-secret" }),
    )
    .await?;
    let ask = |method: &'static str, user: &'static str| {
        let request = request(method, &format!("decoy-{method}-{user}"), None)
            .replace("sip:scan@LOCAL", &format!("sip:{user}@127.0.0.1"))
            .replace("sip:100@127.0.0.1", &format!("sip:{user}@127.0.0.1"));
        let switch = s.server.sip.addr;
        async move { raw_request("127.0.0.3:0", switch, &request, QUIET).await }
    };
    for method in ["REGISTER", "INVITE"] {
        let phone = ask(method, "1001").await?.unwrap_or_default();
        let nobody = ask(method, "1999").await?.unwrap_or_default();
        assert!(
            phone.starts_with("SIP/2.0 40"),
            "{method} for the phone: {phone}"
        );
        assert_eq!(
            shape(&phone),
            shape(&nobody),
            "{method}:\n{phone}\n---\n{nobody}"
        );
    }
    s.stop().await
}

#[tokio::test]
async fn password_cracking_hits_the_lockout_before_the_password() -> Result<()> {
    // The password is the 20th of 200 words; the lockout (6 failures) comes first.
    // svcrack 0.3.3 answers only MD5 challenges.
    let dir = TempDir::new("shield-words");
    let words: Vec<String> = (1..=200).map(|i| format!("password{i:03}")).collect();
    let list = dir.0.join("words.txt");
    std::fs::write(&list, words.join("\n") + "\n")?;
    let list = list.to_string_lossy().into_owned();
    let crack = |max_retry: u32| {
        let list = list.clone();
        async move {
            scanned_by(
                "svcrack",
                &["-u", "1001", "-d", &list],
                "password020",
                move |c| {
                    c.sip.digest_algorithms = vec![switchyard_model::credentials::Algorithm::Md5];
                    c.sip.auth_max_retry = max_retry;
                },
            )
            .await
        }
    };
    // Without a lockout the cracker finds it: the scan is real...
    let open = crack(0).await?;
    assert!(
        open.contains("password020"),
        "svcrack should find it unlocked:\n{open}"
    );
    // ...with the default lockout it never gets there.
    let locked = crack(6).await?;
    assert!(
        !locked.contains("password020"),
        "svcrack found the password:\n{locked}"
    );
    Ok(())
}

#[tokio::test]
async fn an_address_that_keeps_sending_bad_tokens_is_locked_out_then_let_back() -> Result<()> {
    let dir = TempDir::new("shield-api-lockout");
    let s = TestServer::start_configured(&dir.0, |c| {
        c.api_lockout.max_failures = 5;
        c.api_lockout.lock_secs = 2;
    })
    .await?;
    let url = format!("http://{}/api/v1/tokens", s.server.api_addr);
    let from = |ip: [u8; 4]| {
        reqwest::Client::builder()
            .local_address(std::net::IpAddr::from(ip))
            .build()
    };
    let guesser = from([127, 0, 0, 2])?;
    let get = |client: &reqwest::Client, token: &str| client.get(&url).bearer_auth(token).send();
    for guess in 1..5 {
        let status = get(&guesser, &format!("guess-{guess}"))
            .await?
            .status()
            .as_u16();
        assert_eq!(status, 401, "guess {guess}");
    }
    let fifth = get(&guesser, "guess-5").await?;
    assert_eq!(fifth.status().as_u16(), 429);
    assert!(fifth.headers().contains_key("retry-after"));
    // Locked out: even the right token is refused from there...
    assert_eq!(get(&guesser, ADMIN).await?.status().as_u16(), 429);
    // ...while another address is served.
    assert_eq!(
        get(&from([127, 0, 0, 1])?, ADMIN).await?.status().as_u16(),
        200
    );
    // The lockout lapses after its 2 s.
    eventually(Duration::from_secs(6), "the lockout to lapse", || async {
        Ok((get(&guesser, ADMIN).await?.status().as_u16() == 200).then_some(()))
    })
    .await?;
    s.stop().await
}

#[tokio::test]
async fn bans_outlive_a_restart_until_they_lapse() -> Result<()> {
    let dir = TempDir::new("shield-restart");
    let s = TestServer::start(&dir.0).await?;
    carrier(&s, json!({}), &[&Vendor::new("vendor-a")]).await?;
    for (address, secs) in [("127.0.0.4", 3_600), ("127.0.0.5", 1)] {
        let (status, body) = s
            .admin(
                "POST",
                "/api/v1/security/bans",
                Some(json!({ "address": address, "reason": "probing", "secs": secs })),
            )
            .await?;
        assert_eq!(status, 201, "{body}");
    }
    let before = bans(&s).await?;
    let short_until = ban_of(&before, "127.0.0.5").and_then(|b| b["until_ms"].as_u64());
    s.stop().await?;
    // Past the short ban's end while the switch is down.
    let wait = short_until
        .unwrap_or(0)
        .saturating_sub(switchyard::now_ms())
        .saturating_add(50);
    tokio::time::sleep(Duration::from_millis(wait)).await;

    let s = TestServer::start(&dir.0).await?;
    let after = bans(&s).await?;
    assert_eq!(
        ban_of(&after, "127.0.0.4"),
        ban_of(&before, "127.0.0.4"),
        "the long ban came back as it was: {after:?}"
    );
    assert!(
        ban_of(&after, "127.0.0.5").is_none(),
        "the lapsed one did not: {after:?}"
    );
    assert_eq!(options(&s, "127.0.0.4:0", "after-restart").await?, None);
    assert!(answered_200(&options(&s, "127.0.0.5:0", "lapsed").await?));
    let (status, _) = s
        .admin("DELETE", "/api/v1/security/bans/127.0.0.4", None)
        .await?;
    assert_eq!(status, 204);
    s.stop().await?;
    let s = TestServer::start(&dir.0).await?;
    assert!(bans(&s).await?.is_empty(), "a lifted ban stays lifted");
    s.stop().await
}
