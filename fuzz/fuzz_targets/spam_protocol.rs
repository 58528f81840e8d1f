//! spamc request bytes → head length → parsed request (and zlib bodies): never panics.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(n) = correo::spam::protocol::head_len(data) {
        if let Ok(req) = correo::spam::protocol::parse_head(&data[..n]) {
            if req.compress_zlib {
                let _ = correo::spam::protocol::inflate(&data[n..], 1 << 20);
            }
        }
    }
});
