//! Link-time settings for the `correo` binary only (the library, tests and dependencies are untouched).
//!
//! The binary is linked as a fixed-address (non-PIE) executable. An MTA starts `correo deliver` once per
//! mail, and a position-independent executable with 13 MB of code and data makes the loader apply
//! ~29,000 relative relocations and copy the pages they touch before `main` runs: measured with
//! `perf stat`, that was about a fifth of a whole delivery's CPU time (bench/RESULTS.md, "Recipe
//! engine"). The price is that the executable's own image is not address-randomised (shared libraries,
//! heap and stack still are). A packager who prefers PIE can drop this file.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let target = std::env::var("TARGET").unwrap_or_default();
    // Only where we measured it: GNU/Linux with gcc or clang as the linker driver.
    if target.contains("linux-gnu") {
        println!("cargo:rustc-link-arg-bin=correo=-no-pie");
    }
}
