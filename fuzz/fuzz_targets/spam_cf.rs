//! SpamAssassin .cf text → directives → compiled rules → one message scored: never panics.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = correo::spam::cf::parse(&text);
    let rs = correo::spam::rules::compile(correo::spam::load::load_text(&text));
    let _ = rs.check(b"Subject: hi\nFrom: a@b\n\nbody http://x.org/\n");
});
