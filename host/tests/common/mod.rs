//! The built `switchyard serve` as a child process, for the tests that need a real
//! process (its CLI, a kill -9).

// Each test binary compiles this module and uses only part of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// A running `switchyard serve`; dropping it kills it with SIGKILL.
pub(crate) struct Served {
    child: Child,
    /// REST base URL, without `/api/v1`.
    pub(crate) api: String,
    /// SIP address (`127.0.0.1:port`).
    pub(crate) sip: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start `serve` on `data` with free loopback ports and `token` as the admin token
/// (plus `extra` flags); returns once it printed where it listens.
pub(crate) fn serve(data: &Path, token: &str, extra: &[&str]) -> Served {
    let mut child = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args([
            "serve",
            "--api-listen",
            "127.0.0.1:0",
            "--sip-listen",
            "127.0.0.1:0",
        ])
        .args(extra)
        .arg("--data")
        .arg(data)
        .env("SWITCHYARD_ADMIN_TOKEN", token)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("starting switchyard serve");
    let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
    let (mut api, mut sip) = (None, None);
    while api.is_none() || sip.is_none() {
        let line = lines
            .next()
            .expect("serve exited before printing its addresses")
            .expect("reading serve's stdout");
        if let Some(rest) = line.strip_prefix("switchyard REST API on ") {
            api = Some(rest.trim().trim_end_matches("/api/v1").to_string());
        }
        if let Some(rest) = line.strip_prefix("switchyard SIP on ") {
            sip = rest.split_whitespace().next().map(str::to_string);
        }
    }
    // Keep draining stdout so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Served {
        child,
        api: api.unwrap_or_default(),
        sip: sip.unwrap_or_default(),
    }
}
