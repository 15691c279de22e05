//! `include/phx.h` is generated from `src/ffi` by cbindgen (pinned in Cargo.toml) with
//! `cbindgen.toml`, and committed. This test regenerates it and fails on any difference;
//! with `PHX_UPDATE_HEADER=1` it rewrites the file instead (`scripts/gen-header.sh`).

use std::path::Path;

fn version_macros() -> String {
    format!(
        "#define PHX_VERSION_MAJOR {}\n#define PHX_VERSION_MINOR {}\n#define PHX_VERSION_PATCH {}\n#define PHX_VERSION_STRING \"{}\"",
        env!("CARGO_PKG_VERSION_MAJOR"),
        env!("CARGO_PKG_VERSION_MINOR"),
        env!("CARGO_PKG_VERSION_PATCH"),
        env!("CARGO_PKG_VERSION"),
    )
}

fn generate() -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut config = cbindgen::Config::from_file(root.join("cbindgen.toml"))
        .expect("cbindgen.toml does not load");
    config.after_includes = Some(version_macros());
    let bindings = cbindgen::Builder::new()
        .with_config(config)
        .with_src(root.join("src/ffi/mod.rs"))
        .generate()
        .expect("cbindgen failed on src/ffi");
    let mut out = Vec::new();
    bindings.write(&mut out);
    String::from_utf8(out).expect("the header is UTF-8")
}

#[test]
fn header_is_up_to_date() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("include/phx.h");
    let generated = generate();
    if std::env::var_os("PHX_UPDATE_HEADER").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed != generated {
        let line = committed
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| committed.lines().count().min(generated.lines().count()));
        panic!(
            "include/phx.h is out of date (first difference at line {}); run scripts/gen-header.sh",
            line + 1
        );
    }
}
