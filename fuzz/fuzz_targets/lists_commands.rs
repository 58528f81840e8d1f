//! The -request command reader and the bounce/DSN readers on arbitrary text.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (subject, body) = text.split_once('\n').unwrap_or((&text, ""));
    let lines = correo::lists::commands::read(subject, body);
    assert!(lines.len() <= correo::lists::commands::MAX_LINES + 1);
    let _ = correo::lists::bounces::dsn_recipients(data);
    let _ = correo::lists::pending::find_token(&text);
    let _ = correo::lists::shunt::decode(data);
});
