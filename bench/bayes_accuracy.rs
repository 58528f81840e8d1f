//! 10-fold cross-validation of correo's Bayes on a corpus, for `bench/bayes-accuracy.sh`.
//!
//! Usage: `bayes_accuracy CORPUS OUT [RULES_DIR...]`. Messages are CORPUS/spam (spam) and CORPUS/ham plus
//! CORPUS/hard-ham (ham), sorted by name; a message's fold is its index within its class modulo 10
//! (stratified, deterministic). Writes `OUT/folds/K.spam` and `OUT/folds/K.ham` (file lists, so the
//! peers train and test on exactly the same folds) and per-message results:
//!   OUT/correo-bayes.tsv        fold, class, Bayes probability, file
//!   OUT/correo-rules.tsv        fold, class, rules-only score (context), file
//!   OUT/correo-rules-bayes.tsv  fold, class, rules + BAYES_xx score, file
//! With RESCORED=DIR, fold K's rules are RULES_DIR... plus DIR/K.cf (see bench/bayes-accuracy.sh).
//! Training uses the same tokenizer and classifier as `correo spam learn`/`check`, with the counts held in
//! memory instead of SQLite (same numbers, no disk in the loop).

use correo::spam::bayes::classifier::{self, Counts};
use correo::spam::bayes::{learn::strip_from_line, BayesConfig};
use correo::spam::view::View;
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

const FOLDS: usize = 10;

struct Msg {
    path: PathBuf,
    spam: bool,
    fold: usize,
    hashes: Vec<i64>,
}

fn list(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|r| {
            r.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: bayes_accuracy CORPUS OUT [RULES...]");
        std::process::exit(64);
    }
    let corpus = PathBuf::from(&args[1]);
    let out = PathBuf::from(&args[2]);
    let rule_paths: Vec<PathBuf> = if args.len() > 3 {
        args[3..].iter().map(PathBuf::from).collect()
    } else {
        correo::spam::config::default_rules()
    };
    std::fs::create_dir_all(out.join("folds")).expect("out dir");
    let mut msgs: Vec<Msg> = Vec::new();
    for (dirs, spam) in [(vec!["spam"], true), (vec!["ham", "hard-ham"], false)] {
        let mut files = Vec::new();
        for d in dirs {
            files.extend(list(&corpus.join(d)));
        }
        for (i, p) in files.into_iter().enumerate() {
            msgs.push(Msg {
                path: p,
                spam,
                fold: i % FOLDS,
                hashes: Vec::new(),
            });
        }
    }
    for k in 0..FOLDS {
        for (class, spam) in [("spam", true), ("ham", false)] {
            let mut f = std::fs::File::create(out.join("folds").join(format!("{k}.{class}")))
                .expect("fold list");
            for m in msgs.iter().filter(|m| m.fold == k && m.spam == spam) {
                let _ = writeln!(f, "{}", m.path.display());
            }
        }
    }
    let t = std::time::Instant::now();
    let raw: Vec<Vec<u8>> = msgs
        .iter()
        .map(|m| {
            std::fs::read(&m.path)
                .map(|d| strip_from_line(&d).to_vec())
                .unwrap_or_default()
        })
        .collect();
    let toks = correo::spam::bayes::learn::tokenize_all(&raw);
    for (m, t) in msgs.iter_mut().zip(toks) {
        m.hashes = t.hashes;
    }
    eprintln!(
        "tokenized {} messages in {:.1}s",
        msgs.len(),
        t.elapsed().as_secs_f64()
    );

    // All counts once; each fold subtracts its own messages.
    let mut all: HashMap<i64, (u64, u64)> = HashMap::new();
    for m in &msgs {
        for &h in &m.hashes {
            let e = all.entry(h).or_default();
            if m.spam {
                e.0 += 1
            } else {
                e.1 += 1
            }
        }
    }
    let mut cfg = BayesConfig::default();
    // Parameter sweeps: BAYES_S, BAYES_X, BAYES_MIN_STRENGTH, BAYES_TOKENS override the defaults.
    let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<f64>().ok());
    cfg.robinson_s = env("BAYES_S").unwrap_or(cfg.robinson_s);
    cfg.robinson_x = env("BAYES_X").unwrap_or(cfg.robinson_x);
    cfg.min_strength = env("BAYES_MIN_STRENGTH").unwrap_or(cfg.min_strength);
    cfg.max_tokens_used = env("BAYES_TOKENS")
        .map(|v| v as usize)
        .unwrap_or(cfg.max_tokens_used);
    // RESCORED=DIR: fold K is scored with DIR/K.cf loaded after the rules (the scores `correo spam
    // rescore` fitted on the other nine folds), so the rule set is compiled per fold.
    let rescored = std::env::var_os("RESCORED").map(PathBuf::from);
    let compile = |extra: Option<PathBuf>| {
        let mut paths = rule_paths.clone();
        paths.extend(extra);
        let loaded = correo::spam::load::load(&paths).expect("rules");
        correo::spam::rules::compile(loaded)
    };
    let shared = if rescored.is_none() {
        Some(compile(None))
    } else {
        None
    };
    let mut f_bayes = std::fs::File::create(out.join("correo-bayes.tsv")).expect("tsv");
    let mut f_rules = std::fs::File::create(out.join("correo-rules.tsv")).expect("tsv");
    let mut f_rb = std::fs::File::create(out.join("correo-rules-bayes.tsv")).expect("tsv");
    let t = std::time::Instant::now();
    for k in 0..FOLDS {
        let fold_rs;
        let rs = match &rescored {
            None => shared.as_ref().expect("compiled once without RESCORED"),
            Some(dir) => {
                let cf = dir.join(format!("{k}.cf"));
                assert!(cf.is_file(), "{} is missing", cf.display());
                fold_rs = compile(Some(cf));
                &fold_rs
            }
        };
        let mut counts = all.clone();
        let (mut ns, mut nh) = (0u64, 0u64);
        for m in &msgs {
            if m.fold == k {
                for &h in &m.hashes {
                    if let Some(e) = counts.get_mut(&h) {
                        if m.spam {
                            e.0 -= 1
                        } else {
                            e.1 -= 1
                        }
                    }
                }
            } else if m.spam {
                ns += 1
            } else {
                nh += 1
            }
        }
        let test: Vec<(usize, &Msg)> = msgs
            .iter()
            .enumerate()
            .filter(|(_, m)| m.fold == k)
            .collect();
        // Score the fold on every core: (index, p, rules score, rules+bayes score).
        let score = |(i, m): &(usize, &Msg)| {
            let c: Vec<Counts> = m
                .hashes
                .iter()
                .map(|h| {
                    counts
                        .get(h)
                        .map(|&(s, hm)| Counts { spam: s, ham: hm })
                        .unwrap_or_default()
                })
                .collect();
            let o = classifier::classify(&cfg, ns, nh, &c);
            let p = o.probability;
            let view = View::new(&raw[*i]);
            let r = rs.check_view(&view, None).score;
            // Every fold has learned more than 200 of each: Bayes is available (score set 2) even
            // when no token of this message is significant (then no BAYES_xx fires).
            let rb = rs.check_view_bayes(&view, true, o.verdict()).score;
            (m.spam, p, r, rb, m.path.display().to_string())
        };
        let chunk = test.len().div_ceil(2);
        let res: Vec<(bool, f64, f64, f64, String)> = std::thread::scope(|s| {
            let hs: Vec<_> = test
                .chunks(chunk)
                .map(|c| s.spawn(move || c.iter().map(score).collect::<Vec<_>>()))
                .collect();
            hs.into_iter()
                .flat_map(|h| h.join().unwrap_or_default())
                .collect()
        });
        for (spam, p, r, rb, path) in res {
            let class = if spam { "spam" } else { "ham" };
            let _ = writeln!(f_bayes, "{k}\t{class}\t{p:.6}\t{path}");
            let _ = writeln!(f_rules, "{k}\t{class}\t{r:.3}\t{path}");
            let _ = writeln!(f_rb, "{k}\t{class}\t{rb:.3}\t{path}");
        }
        eprintln!(
            "fold {k}: trained on {ns} spam + {nh} ham, tested {} ({:.1}s)",
            test.len(),
            t.elapsed().as_secs_f64()
        );
    }
}
