//! The vendor catalog is kept as TOML (`src/catalog/vendors.toml`, easy to review) and built into
//! the binary as JSON, so the function parses it with serde_json, which it links anyway, instead
//! of carrying a TOML parser.
//!
//! The Lambda binary is linked as a position-dependent executable (`-no-pie`) on Linux when built
//! for the host: that drops the 0.6 MB of dynamic relocations a PIE carries (140 KB of the zip).
//! The trade: the binary's own code loads at a fixed address (the heap, stack and shared libraries
//! are still randomised), for a memory-safe program that runs one event at a time. Cross builds
//! (cargo-lambda with zig) keep their linker's default.

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

    let var = |name: &str| std::env::var(name).unwrap_or_default();
    if var("CARGO_CFG_TARGET_OS") == "linux" && var("TARGET") == var("HOST") {
        println!("cargo::rustc-link-arg-bin=vendor-grants-lambda=-no-pie");
    }
}
