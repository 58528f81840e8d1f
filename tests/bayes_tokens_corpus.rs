//! The Bayes token set of every corpus message is pinned: `tests/data/bayes-corpus-tokens.txt` holds,
//! per message (as `correo spam learn` lists and reads them), a digest of its sorted token strings,
//! their stored hashes and its signature. Accuracy was measured on exactly these tokens, so a speed-up
//! of the tokenizer or the learn path must leave every line unchanged.
//!
//! The corpus is not in the repository: the test reads `CORREO_CORPUS` (default /work/shared/corpus)
//! and skips with a message when it is missing. `CORREO_WRITE_TOKEN_DIGESTS=1` rewrites the file (only
//! after a deliberate tokenizer change).

use correo::spam::bayes::learn::{read, sources, Source};
use correo::spam::bayes::Tokens;
use correo::spam::view::View;
use std::fmt::Write;
use std::path::{Path, PathBuf};

const FIXTURE: &str = "tests/data/bayes-corpus-tokens.txt";

fn digest(t: &Tokens) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for (s, h) in t.tokens.iter().zip(&t.hashes) {
        ctx.update(s.as_bytes());
        ctx.update(b"\0");
        ctx.update(&h.to_le_bytes());
    }
    ctx.update(b"\n");
    ctx.update(t.sig.as_bytes());
    ctx.finish().as_ref()[..12]
        .iter()
        .fold(String::new(), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[test]
fn corpus_tokens_unchanged() {
    let corpus = PathBuf::from(
        std::env::var_os("CORREO_CORPUS").unwrap_or_else(|| "/work/shared/corpus".into()),
    );
    if !corpus.join("spam").is_dir() {
        eprintln!(
            "skipping: no corpus at {} (set CORREO_CORPUS)",
            corpus.display()
        );
        return;
    }
    let dirs: Vec<PathBuf> = ["spam", "ham", "hard-ham"]
        .iter()
        .map(|d| corpus.join(d))
        .collect();
    let mut lines = String::new();
    for src in sources(&dirs).unwrap() {
        let name = match &src {
            Source::File(p) => p.strip_prefix(&corpus).unwrap_or(p).display().to_string(),
            Source::Mbox { path, start, .. } => format!(
                "{}@{start}",
                path.strip_prefix(&corpus).unwrap_or(path).display()
            ),
        };
        let msg = read(&src).unwrap();
        let view = View::new(&msg);
        let t = Tokens::of(&view);
        // `spam learn` takes the unsorted hashes of `Tokens::for_learning`: the same multiset.
        let l = Tokens::for_learning(&View::from_vec(msg.clone()));
        let (mut a, mut b) = (t.hashes.clone(), l.hashes);
        a.sort_unstable();
        b.sort_unstable();
        assert!(a == b && t.sig == l.sig, "{name}: learning tokens differ");
        let _ = writeln!(lines, "{name} {} {}", t.tokens.len(), digest(&t));
    }
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join(FIXTURE);
    if std::env::var_os("CORREO_WRITE_TOKEN_DIGESTS").is_some() {
        std::fs::create_dir_all(fixture.parent().unwrap()).unwrap();
        std::fs::write(&fixture, &lines).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&fixture).unwrap();
    let differ: Vec<(&str, &str)> = want
        .lines()
        .zip(lines.lines())
        .filter(|(a, b)| a != b)
        .take(10)
        .collect();
    assert!(
        differ.is_empty() && want.lines().count() == lines.lines().count(),
        "token sets changed ({} messages pinned, {} now); first differences (pinned, now): {differ:#?}",
        want.lines().count(),
        lines.lines().count()
    );
}
