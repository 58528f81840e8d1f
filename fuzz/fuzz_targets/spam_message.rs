//! Any bytes as a mail message → view (MIME, charsets, HTML, URIs, relays) → scored and marked up.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

static RULES: OnceLock<correo::spam::rules::RuleSet> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let rs = RULES.get_or_init(|| {
        correo::spam::rules::compile(correo::spam::load::load_text(
            "body A /free/i\nheader B Subject =~ /x/\nuri C /\\.ru\\b/\nrawbody D /<b>/\nmeta E A && !B\nadd_header all Status _YESNO_ _TESTS_\nreport _SUMMARY_\n",
        ))
    });
    let (view, v) = rs.check(data);
    let m = correo::spam::markup::Marker {
        rules: rs,
        view: &view,
        v: &v,
        host: "fuzz".into(),
    };
    let _ = m.rewrite();
    let _ = m.report();
});
