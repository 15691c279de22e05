//! `phx_version()` and the `PHX_VERSION_*` macros of the committed header match Cargo.toml.

use std::ffi::CStr;

#[test]
fn phx_version_matches_cargo() {
    let v = unsafe { CStr::from_ptr(phx::ffi::phx_version()) };
    assert_eq!(v.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
}

#[test]
fn header_macros_match_cargo() {
    let header = include_str!("../include/phx.h");
    let macro_value = |name: &str| -> String {
        let prefix = format!("#define {name} ");
        header
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("{name} missing from include/phx.h"))
            .trim()
            .to_owned()
    };
    assert_eq!(
        macro_value("PHX_VERSION_MAJOR"),
        env!("CARGO_PKG_VERSION_MAJOR")
    );
    assert_eq!(
        macro_value("PHX_VERSION_MINOR"),
        env!("CARGO_PKG_VERSION_MINOR")
    );
    assert_eq!(
        macro_value("PHX_VERSION_PATCH"),
        env!("CARGO_PKG_VERSION_PATCH")
    );
    assert_eq!(
        macro_value("PHX_VERSION_STRING"),
        format!("\"{}\"", env!("CARGO_PKG_VERSION"))
    );
}
