//! aliases(5), :include: and virtusertable parsers on arbitrary text: no panic, sane line numbers.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    correo::smtp::fuzzing::tables(data);
});
