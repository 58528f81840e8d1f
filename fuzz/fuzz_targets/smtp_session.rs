//! A whole SMTP session (MX or submission with TLS marked active, so AUTH is reachable) fed arbitrary
//! client bytes: it must never panic, and every reply line must start with a code.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let out = correo::smtp::fuzzing::session(data);
    for line in out.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        assert!(line.len() >= 4 && line[..3].iter().all(u8::is_ascii_digit));
    }
});
