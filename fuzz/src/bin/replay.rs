//! Runs the engine target's inputs without libFuzzer, e.g. to read a crash:
//! `PHX_FUZZ_TRACE=1 cargo run --manifest-path fuzz/Cargo.toml --bin replay -- <files>`.

fn main() {
    for path in std::env::args().skip(1) {
        let data = std::fs::read(&path).expect("input readable");
        eprintln!("== {path}");
        phx_fuzz::engine::run(phx_fuzz::engine::Step::decode(&data));
    }
}
