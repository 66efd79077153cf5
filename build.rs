//! The vendor catalog is kept as TOML (`src/catalog/vendors.toml`, easy to review) and built into
//! the binary as JSON, so the function parses it with serde_json, which it links anyway, instead
//! of carrying a TOML parser.

use std::path::Path;

fn main() {
    let source = "src/catalog/vendors.toml";
    println!("cargo::rerun-if-changed={source}");
    let text = std::fs::read_to_string(source).unwrap_or_else(|e| panic!("{source}: {e}"));
    let table: toml::Table = text
        .parse()
        .unwrap_or_else(|e| panic!("{source} is not valid TOML: {e}"));
    let json = serde_json::to_string(&table).unwrap_or_else(|e| panic!("{source}: {e}"));
    let out = std::env::var("OUT_DIR").unwrap_or_else(|e| panic!("OUT_DIR: {e}"));
    std::fs::write(Path::new(&out).join("vendors.json"), json)
        .unwrap_or_else(|e| panic!("writing vendors.json: {e}"));
}
