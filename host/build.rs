//! Embeds the stock router (examples/stock-router) and the stock fraud rules
//! (examples/fraud-guard), when they have been built, as the modules of the demo
//! carrier `switchyard serve` creates on an empty data directory. Without them
//! (`scripts/build-guests` not run) the demo carrier has no module bound.

use std::path::PathBuf;

fn main() {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            // Read at run time: a build script compiled for another checkout of the
            // same package (a worktree sharing the target dir) may be reused here.
            PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"))
                .join("../target")
        });
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    // The stock router serves the demo carrier's calls; the stock fraud rules screen them.
    for (built, embedded) in [
        ("stock_router.wasm", "demo-module.wasm"),
        ("fraud_guard.wasm", "fraud-module.wasm"),
    ] {
        let module = target.join("wasm32-wasip2/release").join(built);
        println!("cargo:rerun-if-changed={}", module.display());
        let bytes = std::fs::read(&module).unwrap_or_default();
        std::fs::write(out.join(embedded), bytes)
            .unwrap_or_else(|e| panic!("writing OUT_DIR/{embedded}: {e}"));
    }
    println!("cargo:rerun-if-env-changed=CARGO_TARGET_DIR");
}
