//! Fuzzes the procmailrc parser, the condition-line reader and the .forward parser: no input may panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let rc = correo::recipe::rcfile::parse(data);
    for item in &rc.items {
        if let correo::recipe::rcfile::Item::Recipe(r) = item {
            for c in &r.conds {
                let _ = correo::recipe::cond::parse(&c.text);
            }
        }
    }
    let _ = correo::recipe::forward::parse(data);
});
