//! Bayes input: any bytes as a message (or an mbox) through mbox splitting, the message view, the
//! tokenizer, the signature and the classifier. Nothing may panic.
#![no_main]
use correo::spam::bayes::{classifier, learn, BayesConfig, Tokens};
use correo::spam::view::View;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let starts = learn::mbox_starts(data);
    for (i, &s) in starts.iter().enumerate() {
        let end = starts.get(i + 1).copied().unwrap_or(data.len());
        let _ = learn::strip_from_line(&data[s..end]);
    }
    let msg = learn::strip_from_line(data);
    let t = Tokens::of(&View::new(msg));
    assert_eq!(t.tokens.len(), t.hashes.len());
    // Counts derived from the hashes: every shape of evidence, deterministic per input.
    let counts: Vec<classifier::Counts> = t
        .hashes
        .iter()
        .map(|h| classifier::Counts {
            spam: (*h as u64) % 7,
            ham: ((*h as u64) >> 8) % 5,
        })
        .collect();
    let p = classifier::classify(&BayesConfig::default(), 200, 300, &counts).probability;
    assert!((0.0..=1.0).contains(&p));
});
