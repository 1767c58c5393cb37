//! Stamps one file the way the watermark function does and writes the public copy:
//! `cargo run -p joip --example stamp_file -- IN OUT` (a tool for looking at one answer).
use joip::watermark::{stamp, Limits};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, input, output] = &args[..] else {
        eprintln!("usage: stamp_file IN OUT");
        std::process::exit(2);
    };
    let bytes = std::fs::read(input).expect("read IN");
    match stamp(&bytes, &Limits::default()) {
        Ok(s) => {
            std::fs::write(output, &s.bytes).expect("write OUT");
            println!("{} {} -> {} bytes", s.mime, bytes.len(), s.bytes.len());
        }
        Err(e) => {
            println!("refused: {e:?}");
            std::process::exit(1);
        }
    }
}
