//! Header block parsing and editing must never panic and must give back every byte it was given
//! (a post's headers are kept as written).
#![no_main]
use correo::lists::headers::{join, split, Headers};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (h, b) = split(data);
    let mut hs = Headers::parse(h);
    let _ = hs.get("Subject");
    let _ = hs.get_all("Received");
    hs.set("Subject", "[x] y");
    hs.remove("List-Id");
    hs.append("Precedence", "list");
    let out = join(&hs, b);
    assert!(out.ends_with(b));
});
