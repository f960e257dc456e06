//! Embeds the stock router (examples/stock-router), when it has been built, as the module
//! of the demo carrier `switchyard serve` creates on an empty data directory.
//! Without it (`scripts/build-guests` not run) the demo carrier has no module bound.

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
    let module = target.join("wasm32-wasip2/release/stock_router.wasm");
    println!("cargo:rerun-if-changed={}", module.display());
    println!("cargo:rerun-if-env-changed=CARGO_TARGET_DIR");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let bytes = std::fs::read(&module).unwrap_or_default();
    std::fs::write(out.join("demo-module.wasm"), bytes).expect("writing OUT_DIR/demo-module.wasm");
}
