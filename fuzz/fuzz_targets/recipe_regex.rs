//! Fuzzes the procmail egrep translator: translation must never panic, must compile (or report an
//! error, never crash), and matching the input against itself must not panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let _ = correo::recipe::regex::translate(s);
    if let Ok(p) = correo::recipe::regex::compile(s, false) {
        let _ = p.captures(data);
    }
    let _ = correo::recipe::regex::quote(s);
});
