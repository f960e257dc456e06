//! Golden files of the messages we build: the vendor INVITE, our 200 to the caller
//! and our BYE to the vendor, as SIPp received them on loopback, with what changes
//! from run to run (tags, branches, Call-IDs, ports, SDP session ids) replaced by
//! placeholders. A change to what we send shows as a diff here.
//!
//! `SWITCHYARD_BLESS=1 cargo test -p switchyard-tests --test all golden` writes the
//! files anew from what was received; review the diff before committing it.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use regex::Regex;
use serde_json::json;
use switchyard_tests::sip::{carrier, received_messages, wait_for_records, Sipp, Vendor};
use switchyard_tests::{TempDir, TestServer};

fn golden_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("golden")
        .join(name)
}

/// `message` with the values that differ between runs as placeholders, and CRLFs
/// as plain newlines.
fn normalized(message: &str) -> String {
    let rules = [
        (r"branch=[^;>\s,]+", "branch=<branch>"),
        (r"tag=[^;>\s,]+", "tag=<tag>"),
        (r"(?m)^(Call-ID|i):.*$", "$1: <call-id>"),
        (r"127\.0\.0\.1:\d+", "127.0.0.1:<port>"),
        (r"(?m)^m=audio \d+", "m=audio <port>"),
        (r"(?m)^o=(\S+) \d+ \d+", "o=$1 <session> <version>"),
        (r"(?m)^Content-Length: *\d+", "Content-Length: <length>"),
        (r"(?m)^(l): *\d+", "$1: <length>"),
    ];
    let mut text = message.replace("\r\n", "\n");
    for (pattern, replacement) in rules {
        text = Regex::new(pattern)
            .expect("a valid pattern")
            .replace_all(&text, replacement)
            .into_owned();
    }
    text.trim().to_string() + "\n"
}

/// Compare `message` with the golden file `name`, or write it when blessing.
fn matches_golden(name: &str, message: &str) -> Result<()> {
    let path = golden_path(name);
    let got = normalized(message);
    if std::env::var_os("SWITCHYARD_BLESS").is_some() {
        std::fs::write(&path, &got)?;
        return Ok(());
    }
    let want = std::fs::read_to_string(&path)
        .with_context(|| format!("{} (bless with SWITCHYARD_BLESS=1)", path.display()))?;
    anyhow::ensure!(
        got == want,
        "{name} differs from its golden file (SWITCHYARD_BLESS=1 accepts it):\n--- want\n{want}--- got\n{got}"
    );
    Ok(())
}

/// The first received message in `dir` whose start line begins with `start`.
fn first_starting(dir: &Path, start: &str) -> Result<String> {
    received_messages(dir)?
        .into_iter()
        .find(|m| m.starts_with(start))
        .with_context(|| format!("no {start:?} received in {}", dir.display()))
}

#[tokio::test]
async fn the_messages_we_build_match_their_golden_files() -> Result<()> {
    let dir = TempDir::new("golden");
    let s = TestServer::start(&dir.0).await?;
    let vendor = Vendor::new("vendor-a");
    carrier(&s, json!({}), &[&vendor]).await?;
    let (vendor_dir, caller_dir) = (dir.0.join("vendor"), dir.0.join("caller"));
    let port = vendor.port.to_string();
    let uas = Sipp::spawn_in(
        &vendor_dir,
        &[
            "-i",
            "127.0.0.1",
            "-p",
            &port,
            "-m",
            "1",
            "-sn",
            "uas",
            "-trace_msg",
        ],
    )?;
    let target = s.server.sip.addr.to_string();
    let uac = Sipp::spawn_in(
        &caller_dir,
        &[
            &target,
            "-i",
            "127.0.0.1",
            "-m",
            "1",
            "-sn",
            "uac",
            "-s",
            "442071234567",
            "-trace_msg",
        ],
    )?;
    uac.succeeds().await?;
    uas.succeeds().await?;
    wait_for_records(&s, 1).await?;
    matches_golden(
        "vendor-invite.sip",
        &first_starting(&vendor_dir, "INVITE ")?,
    )?;
    matches_golden(
        "caller-200.sip",
        &first_starting(&caller_dir, "SIP/2.0 200")?,
    )?;
    matches_golden("vendor-bye.sip", &first_starting(&vendor_dir, "BYE ")?)?;
    s.stop().await
}
