//! Where the benchmarks leave their tables for `tools/bench/report.py`, which merges them into
//! `target/bench/report.json`.

/// Writes `table` to `$JOIP_BENCH_OUT/<name>.json` when tools/bench.sh set that directory.
pub fn write(name: &str, table: serde_json::Value) {
    let Some(dir) = std::env::var_os("JOIP_BENCH_OUT") else {
        return;
    };
    let path = std::path::Path::new(&dir).join(format!("{name}.json"));
    let text = serde_json::to_string_pretty(&table).expect("a JSON table");
    if let Err(e) = std::fs::write(&path, text) {
        eprintln!("could not write {}: {e}", path.display());
    }
}
