//! Any bytes as a mail message → view (MIME, charsets, HTML, URIs, relays) → scored and marked up.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

static RULES: OnceLock<correo::spam::rules::RuleSet> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let rs = RULES.get_or_init(|| {
        correo::spam::rules::compile(correo::spam::load::load_text(
            concat!(
                "body A /free/i\nheader B Subject =~ /x/\nuri C /\\.ru\\b/\nrawbody D /<b>/\nmeta E A && !B\n",
                "add_header all Status _YESNO_ _TESTS_\nreport _SUMMARY_\nfreemail_domains gmail.com yahoo.*\n",
                // The evals that read MIME parts, body addresses and recipient lists.
                "header F eval:check_freemail_replyto('reply')\nheader G eval:similar_recipients('0.65','undef')\n",
                "body H eval:multipart_alternative_difference('99','100')\nbody I eval:check_stock_info('2')\n",
                "body J eval:check_blank_line_ratio('80','90','4')\nrawbody K eval:check_for_mime('mime_qp_long_line')\n",
                "body L eval:check_base64_length('79')\nbody M eval:check_mime_multipart_ratio('0.00','0.01')\n",
            ),
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
