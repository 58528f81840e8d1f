//! A cheap in-CI stand-in for the cargo-fuzz targets (fuzz/fuzz_targets/recipe_*.rs): thousands
//! of random rcfiles and regexes built from procmail's special characters must parse,
//! translate, compile and match without a panic.

use correo::recipe::{cond, forward, rcfile, regex};

/// xorshift: deterministic, so a failure reproduces.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn text(&mut self, alphabet: &[&str], n: usize) -> String {
        (0..n)
            .map(|_| alphabet[(self.next() % alphabet.len() as u64) as usize])
            .collect()
    }
}

const RC: &[&str] = &[
    ":0", ":", "0", "*", "!", "$", "?", "<", ">", "{", "}", "|", "\\", "\n", " ", "\t", "#", "=",
    "\"", "'", "`", "A", "B", "H", "c", "f", "w", "^", "^^", "\\/", "X", "??", "ñ", "\u{ff}", "${",
    ":-", "1^1", "-2^.5", ".lock", "/", "!", ",",
];
const RE: &[&str] = &[
    "a",
    "Z",
    ".",
    "*",
    "+",
    "?",
    "(",
    ")",
    "[",
    "]",
    "^",
    "$",
    "|",
    "\\",
    "\\<",
    "\\>",
    "\\/",
    "^^",
    "{",
    "}",
    "-",
    "\n",
    "^TO_",
    "^TO",
    "^FROM_DAEMON",
    "ñ",
    "[^",
    "\\x",
    "(?",
    "&&",
    "~~",
];

#[test]
fn random_rcfiles_parse() {
    let mut r = Rng(0x9e3779b97f4a7c15);
    for _ in 0..20_000 {
        let n = (r.next() % 80) as usize;
        let s = r.text(RC, n);
        let rc = rcfile::parse(s.as_bytes());
        for item in &rc.items {
            if let rcfile::Item::Recipe(rec) = item {
                for c in &rec.conds {
                    let _ = cond::parse(&c.text);
                }
            }
        }
        let _ = forward::parse(s.as_bytes());
    }
}

#[test]
fn random_regexes_translate_and_match() {
    let mut r = Rng(0x2545f4914f6cdd1d);
    let hay = b"From x  Mon\nSubject: hello\n\tworld\nTo: a@b.c\n\nbody \xff\n";
    // Compiling is slow in debug builds: a few thousand patterns keep this under a few seconds.
    for _ in 0..2_000 {
        let n = (r.next() % 24) as usize;
        let s = r.text(RE, n);
        let (t, _) = regex::translate(&s);
        match regex::compile(&s, r.next().is_multiple_of(2)) {
            Ok(p) => {
                let _ = p.captures(hay);
            }
            // Only the size limit may refuse a pattern; every syntax is translated to something valid.
            Err(e) => assert!(
                e.contains("size limit") || e.contains("exceeds"),
                "{s:?} -> {t:?}: {e}"
            ),
        }
    }
}
