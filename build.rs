//! Gives the shared library its SONAME on Linux (`libphx.so.0`), so programs link against the
//! ABI major version rather than the file name.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if os == "linux" {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libphx.so.0");
    }
}
