//! `correo spam rescore`: fits the rule scores to a site's own labelled mail, and writes them as a
//! `.cf` the engine loads after the rules.
//!
//! Each message is run through the engine once (rules without Bayes) and tokenized once. Two fits
//! follow, one per kind of score set SpamAssassin has: without Bayes (sets 0 and 1) the features are
//! the rules that hit (`fit.rs`); with Bayes (sets 2 and 3) one model over the rules that hit and the
//! message's Bayes tokens (`tokens.rs`), whose token weights are written to the `.cf` with the
//! CORREO_TOKENS buckets that carry the tokens' part into the score. The token model stands in for the
//! BAYES_xx buckets, which are written as 0 in sets 2/3. Network tests are not fitted (correo runs
//! none): sets 1 and 3 get the scores of 0 and 2, and `net` rules keep theirs.
//!
//! One part of the mail (every fifth message) is held out and never seen by the fit, nor by the
//! Bayes database its probabilities come from: precision, recall and false-positive rate are reported
//! on it for the old scores and the new ones, so a site sees what it is buying. The scores written
//! are then fitted again, the same way, on all the mail.

pub mod fit;
pub mod oof;
pub mod tokens;

pub use fit::Rates;

use crate::message::error::{Error, Result};
use crate::spam::bayes::{eval_check_bayes, learn, with_probability, BayesConfig, Tokens};
use crate::spam::rules::{Rule, RuleSet, ScoreSet, Test};
use crate::spam::view::View;
use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Inner folds for the out-of-fold margins the boundary is chosen on.
const MARGIN_FOLDS: usize = 5;

/// What the engine and the tokenizer made of one labelled message.
#[derive(Debug, Clone)]
pub struct Seen {
    pub spam: bool,
    /// Rules that hit with Bayes off (sub-rules left out).
    pub hits: Vec<usize>,
    pub hashes: Vec<i64>,
}

/// Runs the rules (without Bayes) and the tokenizer over every message on every core, with progress
/// on stderr unless `quiet`.
pub fn examine(rs: &RuleSet, msgs: &[(Vec<u8>, bool)], quiet: bool) -> Vec<Seen> {
    let done = AtomicUsize::new(0);
    let one = |(m, spam): &(Vec<u8>, bool)| {
        let view = View::new(m);
        let v = rs.check_view_every_rule(&view);
        let hits = v
            .hits
            .iter()
            .chain(v.subhits.iter())
            .copied()
            .filter(|&i| !rs.rules[i].is_sub())
            .collect();
        let hashes = Tokens::of(&view).hashes;
        done.fetch_add(1, Ordering::Relaxed);
        Seen {
            spam: *spam,
            hits,
            hashes,
        }
    };
    let n = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(8);
    let chunk = msgs.len().div_ceil(n).max(1);
    let mut progress = learn::Progress::new(msgs.len(), quiet || msgs.len() < 50);
    let one = &one;
    std::thread::scope(|s| {
        let hs: Vec<_> = msgs
            .chunks(chunk)
            .map(|c| s.spawn(move || c.iter().map(one).collect::<Vec<_>>()))
            .collect();
        while hs.iter().any(|h| !h.is_finished()) {
            progress.tick(done.load(Ordering::Relaxed));
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        progress.tick(msgs.len());
        hs.into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    })
}

/// `eval:check_bayes(lo, hi)` rules: the Bayes buckets.
fn bayes_args(r: &Rule) -> Option<&[String]> {
    match &r.test {
        Test::Eval(c) if c.func == "check_bayes" => Some(&c.args),
        _ => None,
    }
}

/// Which way a rule may push: down for `nice` rules and rules the rule files score below zero
/// somewhere (BAYES_00 ... BAYES_40 among them), up for the rest.
fn sign(r: &Rule) -> f64 {
    if r.tflags.nice || r.scores.iter().any(|&s| s < 0.0) {
        -1.0
    } else {
        1.0
    }
}

/// The features of one fit: a rule index per feature.
struct Design {
    set: ScoreSet,
    rules: Vec<usize>,
    index: HashMap<usize, usize>,
    /// (feature, check_bayes arguments) of the Bayes buckets, empty without Bayes.
    buckets: Vec<(usize, Vec<String>)>,
}

impl Design {
    /// The rules a fit may move: real rules (not `__` sub-rules) that run without the network and
    /// without a per-user setting; with `bayes`, the BAYES_xx buckets too.
    fn new(rs: &RuleSet, bayes: bool) -> Design {
        let mut rules = Vec::new();
        let mut buckets = Vec::new();
        for &i in rs.order.iter().chain(rs.metas.iter()) {
            let r = &rs.rules[i];
            if r.is_sub() || r.tflags.net || r.tflags.userconf {
                continue;
            }
            if let Some(args) = bayes_args(r) {
                if bayes {
                    buckets.push((rules.len(), args.to_vec()));
                    rules.push(i);
                }
            } else if !r.tflags.learn && !r.name.starts_with("BAYES_") {
                rules.push(i);
            }
        }
        let index = rules.iter().enumerate().map(|(f, &r)| (r, f)).collect();
        Design {
            set: ScoreSet::new(bayes, false),
            rules,
            index,
            buckets,
        }
    }

    /// The fit's rows for `seen` with Bayes probabilities `p`, the score the rules left alone add to
    /// each, and each message's score under the current rules (as the engine would add it up).
    fn rows(
        &self,
        rs: &RuleSet,
        seen: &[Seen],
        p: &[Option<f64>],
    ) -> (fit::Problem, Vec<f64>, Vec<f64>) {
        let mut prob = fit::Problem {
            sign: self.rules.iter().map(|&i| sign(&rs.rules[i])).collect(),
            ..Default::default()
        };
        let (mut fixed, mut old) = (Vec::new(), Vec::new());
        for (m, &p) in seen.iter().zip(p) {
            let mut x = Vec::new();
            let (mut fx, mut o) = (0.0, 0.0);
            for &h in &m.hits {
                let s = rs.rules[h].score(self.set);
                o += s;
                match self.index.get(&h) {
                    Some(&f) => x.push(f),
                    None => fx += s,
                }
            }
            for (f, args) in &self.buckets {
                if with_probability(p, || eval_check_bayes(args)) != 0.0 {
                    x.push(*f);
                    o += rs.rules[self.rules[*f]].score(self.set);
                }
            }
            prob.x.push(x);
            prob.spam.push(m.spam);
            fixed.push(fx);
            old.push(round3(o));
        }
        (prob, fixed, old)
    }
}

/// SpamAssassin rounds the total to 3 decimals before comparing; so does the engine.
fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// Old and new scores on the held-out part, for one kind of score set.
#[derive(Debug, Clone, Copy, Default)]
pub struct Compared {
    pub before: Rates,
    pub after: Rates,
}

/// What `run` fitted and what it found.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub train: usize,
    pub held_out: usize,
    /// Score sets 0/1 (no Bayes) and 2/3 (Bayes) on the held-out part.
    pub no_bayes: Compared,
    pub bayes: Compared,
    /// Held-out messages that got a Bayes verdict (the rest had no significant token, or the
    /// database too little to say anything).
    pub bayes_verdicts: usize,
    /// Per rule that hit anywhere: (rule index, set 0/1 score, set 2/3 score), fitted on all the mail.
    pub scores: Vec<(usize, f64, f64)>,
    /// The token model's weights (score points per token hash), used in sets 2/3.
    pub token_weights: HashMap<i64, f64>,
}

pub struct Options {
    pub alpha: f64,
    pub max_fpr: f64,
    pub quiet: bool,
}

/// Fits, evaluates on the held-out fifth, and fits again on everything (see the module comment).
pub fn run(rs: &RuleSet, cfg: &BayesConfig, seen: &[Seen], o: &Options) -> Result<Outcome> {
    let par = fit::Params {
        alpha: o.alpha,
        max_fpr: o.max_fpr,
        required: rs.settings.required_score,
        inner_folds: MARGIN_FOLDS,
    };
    let spam: Vec<bool> = seen.iter().map(|m| m.spam).collect();
    let hashes: Vec<Vec<i64>> = seen.iter().map(|m| m.hashes.clone()).collect();
    let all: Vec<usize> = (0..seen.len()).collect();
    let (test, train): (Vec<usize>, Vec<usize>) = all.iter().partition(|&&i| i % 5 == 4);
    if train.iter().all(|&i| spam[i]) || train.iter().all(|&i| !spam[i]) {
        return Err(Error::data(
            "rescore needs both spam and ham in the training part",
        ));
    }
    let designs = [Design::new(rs, false), Design::new(rs, true)];
    let say = |s: &str| {
        if !o.quiet {
            eprintln!("rescore: {s}");
        }
    };

    // Held-out evaluation. The old scores' BAYES_xx need the held-out messages' probabilities, from
    // a database of the whole training part; no fit reads one.
    say("Bayes probabilities for the held-out check ...");
    let mut p = vec![None; seen.len()];
    for (&i, v) in test
        .iter()
        .zip(oof::learned_from(cfg, &hashes, &spam, &train, &test))
    {
        p[i] = v;
    }
    let bayes_verdicts = test.iter().filter(|&&i| p[i].is_some()).count();
    let mut compared = [Compared::default(); 2];
    for (d, c) in designs.iter().zip(compared.iter_mut()) {
        say(&format!(
            "fitting score set {} on {} messages ({} rules{}) ...",
            d.set.index(),
            train.len(),
            d.rules.len(),
            if d.set.bayes() { " and the tokens" } else { "" }
        ));
        let (prob, fixed, old) = d.rows(rs, seen, &p);
        let new: Vec<f64> = if d.set.bayes() {
            // Sets 2/3: the rules (without the BAYES_xx buckets) and the tokens, one model.
            let (rules_only, _, _) = designs[0].rows(rs, seen, &p);
            let j = tokens::fit(&rules_only, &hashes, &train, par)?;
            test.iter()
                .map(|&i| round3(j.score(&rules_only.x[i], &hashes[i]) + fixed[i]))
                .collect()
        } else {
            let s = fit::scores(&prob, &train, par)?;
            test.iter()
                .map(|&i| round3(prob.x[i].iter().map(|&f| s[f]).sum::<f64>() + fixed[i]))
                .collect()
        };
        for (&i, new) in test.iter().zip(new) {
            c.before.add(spam[i], old[i] >= par.required);
            c.after.add(spam[i], new >= par.required);
        }
    }

    // The scores written: the same fit on all the mail. Neither fit reads a Bayes probability (set
    // 2/3's buckets are written as 0), so none is computed.
    let p = vec![None; seen.len()];
    let mut fitted: Vec<HashMap<usize, f64>> = Vec::new();
    let mut hit = vec![false; rs.rules.len()];
    let mut token_weights = HashMap::new();
    for d in &designs {
        say(&format!(
            "fitting score set {} on all {} messages ...",
            d.set.index(),
            all.len()
        ));
        let (prob, _, _) = d.rows(rs, seen, &p);
        for x in &prob.x {
            for &f in x {
                hit[d.rules[f]] = true;
            }
        }
        if d.set.bayes() {
            let (rules_only, _, _) = designs[0].rows(rs, seen, &p);
            let j = tokens::fit(&rules_only, &hashes, &all, par)?;
            let mut m: HashMap<usize, f64> =
                designs[0].rules.iter().copied().zip(j.design).collect();
            // The token model stands in for the BAYES_xx buckets in sets 2/3.
            for (f, _) in &d.buckets {
                m.insert(d.rules[*f], 0.0);
                hit[d.rules[*f]] = true;
            }
            fitted.push(m);
            token_weights = j.tokens;
        } else {
            let s = fit::scores(&prob, &all, par)?;
            fitted.push(d.rules.iter().copied().zip(s).collect());
        }
    }
    let scores = designs[1]
        .rules
        .iter()
        .filter(|&&i| hit[i])
        .map(|&i| {
            (
                i,
                fitted[0].get(&i).copied().unwrap_or(0.0),
                fitted[1].get(&i).copied().unwrap_or(0.0),
            )
        })
        .collect();
    Ok(Outcome {
        train: train.len(),
        held_out: test.len(),
        no_bayes: compared[0],
        bayes: compared[1],
        bayes_verdicts,
        scores,
        token_weights,
    })
}

/// The `.cf` text: where it came from, then `score RULE s0 s1 s2 s3` for each rule that hit in the
/// mail (rules that never hit keep the score they had).
pub fn cf_text(rs: &RuleSet, out: &Outcome, total: usize) -> String {
    let mut s = String::new();
    s.push_str(
        "# Rule scores fitted to this site's mail by `correo spam rescore` (logistic regression).\n",
    );
    s.push_str(&format!(
        "# Sets 0/1 fitted without Bayes, sets 2/3 with the BAYES_xx buckets, on all {total} messages.\n\
         # Checked first on {} messages held out from a fit on the other {}:\n",
        out.held_out, out.train
    ));
    for (name, c) in [("0/1", out.no_bayes), ("2/3", out.bayes)] {
        s.push_str(&format!(
            "# set {name} before: {}\n# set {name} after:  {}\n",
            c.before.line(),
            c.after.line()
        ));
    }
    for &(i, s0, s2) in &out.scores {
        let r = &rs.rules[i];
        let was = r.scores.map(|v| format!("{v}")).join(" ");
        s.push_str(&format!(
            "score {:<30} {s0:.3} {s0:.3} {s2:.3} {s2:.3}   # was {was}\n",
            r.name
        ));
    }
    if !out.token_weights.is_empty() {
        s.push_str(
            "# The token model (sets 2/3, fitted with the rules above in place of the BAYES_xx buckets):\n\
             # a message's token part is the weights of its distinct Bayes tokens over the square root\n\
             # of their number, scored through the bucket it falls in.\n",
        );
        for (name, lo, hi, mid) in tokens::buckets() {
            s.push_str(&format!(
                "body {name} eval:check_token_model('{lo}', '{hi}')\ntflags {name} learn\n\
                 describe {name} Site token model: {mid} points\nscore {name} 0 0 {mid} {mid}\n"
            ));
        }
        let mut w: Vec<(&i64, &f64)> = out.token_weights.iter().collect();
        w.sort_unstable_by_key(|&(h, _)| *h);
        for (h, v) in w {
            s.push_str(&format!("token_model_weight {h} {v:.6}\n"));
        }
    }
    s
}

/// Writes the `.cf` in place of any earlier one: temp file, fsync, rename, fsync the directory.
pub fn write_cf(path: &std::path::Path, text: &str) -> Result<()> {
    let dir = match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(d) => d.to_path_buf(),
        None => std::path::PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir)?;
    let tmp = path.with_extension("cf.tmp");
    {
        let mut fh =
            std::fs::File::create(&tmp).map_err(|e| Error::from(e).context(tmp.display()))?;
        fh.write_all(text.as_bytes())?;
        fh.sync_all()?;
    }
    std::fs::rename(&tmp, path).map_err(|e| Error::from(e).context(path.display()))?;
    crate::message::spool::sync_dir(&dir)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spam::load::load_text;
    use crate::spam::rules::compile;

    const RULES: &str = "header SUBJ_WIN Subject =~ /winner/\nscore SUBJ_WIN 1.0\n\
        body CASH /cash/\nscore CASH 1.0\n\
        body MEET /meeting/\nscore MEET -0.5\ntflags MEET nice\n\
        body BAYES_00 eval:check_bayes('0.00', '0.01')\ntflags BAYES_00 learn\nscore BAYES_00 0 0 -1 -1\n\
        body BAYES_99 eval:check_bayes('0.99', '1.00')\ntflags BAYES_99 learn\nscore BAYES_99 0 0 3 3\n";

    fn corpus() -> Vec<(Vec<u8>, bool)> {
        (0..120)
            .map(|i| {
                let spam = i % 2 == 0;
                let m = if spam {
                    // A third of the spam has no subject sign, a fifth says "meeting" too.
                    let subj = if i % 3 == 0 { "hello" } else { "winner" };
                    let meet = if i % 5 == 0 { "meeting" } else { "" };
                    format!("Subject: {subj} {i}\n\ncash prize offer {meet} tok{i}\n")
                } else {
                    let cash = if i % 7 == 1 { "cash" } else { "" };
                    format!("Subject: notes {i}\n\nmeeting agenda {cash} minutes tok{i}\n")
                };
                (m.into_bytes(), spam)
            })
            .collect()
    }

    /// The `.cf` `run` writes is what the engine then scores with: in set 0 each message's score is
    /// the sum of the written set-0 scores of its hits, and in set 2 the set-2 scores (the BAYES_xx
    /// buckets at 0: the token model stands in for them) plus the score of the CORREO_TOKENS bucket
    /// the message's token part falls in.
    #[test]
    fn the_engine_scores_with_what_was_fitted() {
        let rs = compile(load_text(RULES));
        let msgs = corpus();
        let seen = examine(&rs, &msgs, true);
        let cfg = BayesConfig {
            min_spam: 10,
            min_ham: 10,
            ..Default::default()
        };
        let opts = Options {
            alpha: 0.1,
            max_fpr: 0.001,
            quiet: true,
        };
        let out = run(&rs, &cfg, &seen, &opts).expect("fit");
        let cf = cf_text(&rs, &out, seen.len());
        // Rules that never hit in the mail keep the scores they had; the rest get the fitted ones.
        let mut fitted: HashMap<&str, (f64, f64)> = rs
            .rules
            .iter()
            .map(|r| (r.name.as_str(), (r.scores[0], r.scores[2])))
            .collect();
        fitted.extend(
            out.scores
                .iter()
                .map(|&(i, s0, s2)| (rs.rules[i].name.as_str(), (s0, s2))),
        );
        assert_eq!(fitted["BAYES_99"], (0.0, 0.0), "{cf}");
        assert!(!out.token_weights.is_empty(), "{cf}");
        assert!(
            fitted["MEET"].0 <= 0.0 && fitted["MEET"].1 <= 0.0,
            "nice stays nice: {cf}"
        );
        let both = compile(load_text(&format!("{RULES}{cf}")));
        for (m, _) in msgs.iter().take(20) {
            let view = View::new(m);
            for (p, set2) in [(None, false), (Some(0.995), true), (Some(0.001), true)] {
                let v = both.check_view_bayes(&view, set2, p);
                let tokens = crate::spam::bayes::tokenizer::token_hashes(&view);
                let part = tokens::bucket_score(crate::spam::bayes::token_margin(
                    &out.token_weights,
                    &tokens,
                ));
                let want: f64 = if set2 { part } else { 0.0 }
                    + v.hits
                        .iter()
                        .filter(|&&i| !both.rules[i].name.starts_with("CORREO_TOKENS_"))
                        .map(|&i| {
                            let (s0, s2) = fitted[both.rules[i].name.as_str()];
                            if set2 {
                                s2
                            } else {
                                s0
                            }
                        })
                        .sum::<f64>();
                assert!((v.score - round3(want)).abs() < 1e-9, "{v:?}\n{cf}");
                if set2 {
                    let bucket = if p == Some(0.995) {
                        "BAYES_99"
                    } else {
                        "BAYES_00"
                    };
                    let hit = v.hits.iter().any(|&i| both.rules[i].name == bucket);
                    assert_eq!(hit, fitted[bucket].1 != 0.0, "{bucket}: {v:?}");
                }
            }
        }
    }
}
