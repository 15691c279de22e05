//! Writes the seed corpora: `seed_corpora <transcripts.md> <corpus dir>`.

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, doc, dir] = args.as_slice() else {
        eprintln!("usage: seed_corpora <transcripts.md> <corpus dir>");
        std::process::exit(2);
    };
    let doc = std::fs::read_to_string(doc).expect("transcripts readable");
    let n = phx_fuzz::seeds::write(&doc, std::path::Path::new(dir)).expect("corpus written");
    println!("{n} seed files in {dir}");
}
