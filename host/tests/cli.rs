//! The built `switchyard` binary end to end: `serve` on a free loopback port, then the
//! `module push | list | bind | simulate | rollback` client commands against it.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{serve, Served};

use serde_json::Value;

const TOKEN: &str = "cli-test-admin-token-0123456789";

fn run(served: &Served, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(args)
        .env("SWITCHYARD_URL", &served.api)
        .env("SWITCHYARD_TOKEN", TOKEN)
        .output()
        .expect("running the switchyard client")
}

fn json_ok(served: &Served, args: &[&str]) -> Value {
    let out = run(served, args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{args:?} printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn guest_path(name: &str) -> String {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let path = target.join(format!("wasm32-wasip2/release/{name}.wasm"));
    assert!(
        path.exists(),
        "{}: run scripts/build-guests first",
        path.display()
    );
    path.to_string_lossy().into_owned()
}

#[test]
fn module_commands_drive_a_running_server() {
    let data = std::env::temp_dir().join(format!("switchyard-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let served = serve(&data, TOKEN, &["--no-demo"]);

    let v1 = json_ok(
        &served,
        &[
            "module",
            "push",
            "--name",
            "router",
            &guest_path("prefix_router"),
        ],
    )["version"]
        .as_str()
        .expect("push prints the version")
        .to_string();
    let v2 = json_ok(
        &served,
        &[
            "module",
            "push",
            "--name",
            "router",
            "--description",
            "v2 failover",
            &guest_path("failover"),
        ],
    )["version"]
        .as_str()
        .expect("push prints the version")
        .to_string();
    assert_ne!(v1, v2);

    let list = json_ok(&served, &["module", "list"]);
    let versions = list["modules"][0]["versions"].as_array().expect("versions");
    assert_eq!(versions.len(), 2, "{list}");

    let bound = json_ok(
        &served,
        &[
            "module",
            "bind",
            "global",
            "--module",
            "router",
            "--version",
            &v1,
            "--fallback-reject",
            "503",
        ],
    );
    assert_eq!(bound["version"], v1.as_str(), "{bound}");
    let rebound = json_ok(
        &served,
        &[
            "module",
            "bind",
            "global",
            "--module",
            "router",
            "--version",
            &v2,
        ],
    );
    assert_eq!(rebound["version"], v2.as_str(), "{rebound}");
    let rolled_back = json_ok(&served, &["module", "rollback", "global"]);
    assert_eq!(
        rolled_back["binding"]["version"],
        v1.as_str(),
        "{rolled_back}"
    );

    // The prefix router rejects a number with no route (no routes table is loaded).
    let call = data.with_extension("call.json");
    std::fs::write(&call, r#"{"callee": "442071234567"}"#).expect("writing the call file");
    let sim = json_ok(
        &served,
        &[
            "module",
            "simulate",
            "--module",
            "router",
            "--version",
            &v1,
            // The CLI's plumbing is under test, not the decision's speed: a first
            // decision on a loaded CI machine was seen to take 7.9 ms of CPU.
            "--deadline-ms",
            "1000",
            call.to_str().unwrap(),
        ],
    );
    let _ = std::fs::remove_file(&call);
    assert!(sim["answer"]["decision"].is_object(), "{sim}");

    // A client error is reported on stderr with the server's reason, and exits non-zero.
    let bad = run(
        &served,
        &[
            "module",
            "bind",
            "global",
            "--module",
            "router",
            "--version",
            "0000",
        ],
    );
    assert!(!bad.status.success());
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(stderr.contains("0000"), "{stderr}");
    drop(served);
    let _ = std::fs::remove_dir_all(&data);
    let _ = std::fs::remove_file(&call);
}
