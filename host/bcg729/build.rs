// Link the system libbcg729 (Debian package libbcg729-dev; scripts/setup installs it).
fn main() {
    println!("cargo:rustc-link-lib=bcg729");
}
