//! `correo spam rescore`: fits the rule scores to a site's own labelled mail. Each message becomes a row
//! of rule hits (0/1); a logistic regression (`linfa-logistic`, L2-regularised) learns one weight per
//! rule; the boundary is raised until at most `--max-fpr` of the training ham is on the spam side, the
//! weights are scaled so that boundary lands on `required_score`, and written as `score` lines a `.cf`
//! file carries. One part of the
//! mail (every fifth message) is held out and never seen by the fit: precision, recall and false-positive
//! rate are reported on it for the old scores and the new ones, so a site sees what it is buying.
//!
//! The BAYES_xx rules are left out of the fit and keep their scores: their hits depend on what the
//! database learned, often from this very mail, and fitting them would reward that leak.

use crate::message::error::{Error, Result};
use crate::spam::rules::{RuleSet, ScoreSet};
use crate::spam::view::View;
use linfa::traits::Fit as _;
use linfa::DatasetBase as Dataset;
use linfa_logistic::LogisticRegression;
use ndarray::{Array1, Array2};
use std::collections::BTreeMap;
use std::io::Write;

/// One labelled message as the fit sees it.
#[derive(Debug, Clone)]
pub struct Row {
    pub spam: bool,
    /// (feature index, value) for the fitted rules that hit.
    pub hits: Vec<(usize, f64)>,
    /// Score of the rules the fit leaves alone (BAYES_xx).
    pub fixed: f64,
    /// The message's score under the current rules.
    pub old_score: f64,
}

/// Confusion counts and the rates that matter for spam filtering.
#[derive(Debug, Clone, Copy, Default)]
pub struct Rates {
    pub tp: usize,
    pub fp: usize,
    pub tn: usize,
    pub fn_: usize,
}

impl Rates {
    pub fn add(&mut self, spam: bool, said_spam: bool) {
        match (spam, said_spam) {
            (true, true) => self.tp += 1,
            (true, false) => self.fn_ += 1,
            (false, true) => self.fp += 1,
            (false, false) => self.tn += 1,
        }
    }
    pub fn precision(&self) -> f64 {
        ratio(self.tp, self.tp + self.fp)
    }
    pub fn recall(&self) -> f64 {
        ratio(self.tp, self.tp + self.fn_)
    }
    pub fn fpr(&self) -> f64 {
        ratio(self.fp, self.fp + self.tn)
    }
    pub fn f1(&self) -> f64 {
        let (p, r) = (self.precision(), self.recall());
        if p + r == 0.0 {
            0.0
        } else {
            2.0 * p * r / (p + r)
        }
    }
    pub fn line(&self) -> String {
        format!(
            "precision {:.4}  recall {:.4}  FPR {:.4} ({} of {} ham)  F1 {:.4}",
            self.precision(),
            self.recall(),
            self.fpr(),
            self.fp,
            self.fp + self.tn,
            self.f1()
        )
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// The rules the fit may move: scored or zero-scored real rules (not `__` sub-rules, not BAYES_xx).
pub fn fitted_rules(rs: &RuleSet) -> Vec<usize> {
    rs.order
        .iter()
        .chain(rs.metas.iter())
        .copied()
        .filter(|&i| {
            let r = &rs.rules[i];
            !r.is_sub() && !r.name.starts_with("BAYES_") && !r.tflags.net && !r.tflags.userconf
        })
        .collect()
}

/// Scores each message once (rules only; no Bayes verdict, see the module comment) on every core.
pub fn rows(rs: &RuleSet, features: &[usize], msgs: &[(Vec<u8>, bool)]) -> Vec<Row> {
    let index: BTreeMap<usize, usize> = features.iter().enumerate().map(|(f, &r)| (r, f)).collect();
    let one = |(m, spam): &(Vec<u8>, bool)| {
        let view = View::new(m);
        let v = rs.check_view(&view, None);
        let mut hits = Vec::new();
        let mut fixed = 0.0;
        for &i in v.hits.iter().chain(v.subhits.iter()) {
            match index.get(&i) {
                Some(&f) => hits.push((f, 1.0)),
                None if rs.rules[i].name.starts_with("BAYES_") => fixed += v.score_of(&rs.rules[i]),
                None => {}
            }
        }
        Row {
            spam: *spam,
            hits,
            fixed,
            old_score: v.score,
        }
    };
    let n = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(8);
    if n <= 1 || msgs.len() < 32 {
        return msgs.iter().map(one).collect();
    }
    let chunk = msgs.len().div_ceil(n);
    std::thread::scope(|s| {
        let hs: Vec<_> = msgs
            .chunks(chunk)
            .map(|c| s.spawn(move || c.iter().map(one).collect::<Vec<_>>()))
            .collect();
        hs.into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    })
}

/// The fitted scores, one per feature, plus what the fit saw.
#[derive(Debug, Clone)]
pub struct Fit {
    pub scores: Vec<f64>,
    pub train: usize,
    pub held_out: usize,
    pub before: Rates,
    pub after: Rates,
}

/// Fits on the rows not held out (index % 5 != 4) and evaluates on the rest.
pub fn fit(rows: &[Row], nfeat: usize, required: f64, alpha: f64, max_fpr: f64) -> Result<Fit> {
    type Part<'a> = Vec<(usize, &'a Row)>;
    let (train, test): (Part, Part) = rows.iter().enumerate().partition(|(i, _)| i % 5 != 4);
    let ns = train.iter().filter(|(_, r)| r.spam).count();
    if ns == 0 || ns == train.len() {
        return Err(Error::data(
            "rescore needs both spam and ham in the training part",
        ));
    }
    let mut x = Array2::<f64>::zeros((train.len(), nfeat.max(1)));
    let mut y = Array1::<usize>::zeros(train.len());
    for (k, (_, r)) in train.iter().enumerate() {
        for &(f, v) in &r.hits {
            x[[k, f]] = v;
        }
        y[k] = r.spam as usize;
    }
    let ds = Dataset::new(x, y);
    let model = LogisticRegression::default()
        .alpha(alpha)
        .max_iterations(200)
        .fit(&ds)
        .map_err(|e| Error::software(format!("logistic regression: {e}")))?;
    // The positive label is whichever class linfa picked; make weights point towards spam.
    let sign = if model.labels().pos.class == 1 {
        1.0
    } else {
        -1.0
    };
    let w: Vec<f64> = model.params().iter().map(|v| v * sign).collect();
    let b = model.intercept() * sign;
    // The regression's own boundary (w·x + b = 0) weighs a false positive like a missed spam; a site
    // does not. Raise the boundary to t, the lowest margin at which at most `max_fpr` of the training
    // ham falls on the spam side, then scale so that w·x + b = t becomes Σ score = required:
    // score = w · required / (t − b). (t − b is kept at least 0.5, so an empty message stays ham.)
    let mut ham_margins: Vec<f64> = train
        .iter()
        .filter(|(_, r)| !r.spam)
        .map(|(_, r)| r.hits.iter().map(|&(f, v)| w[f] * v).sum::<f64>() + b)
        .collect();
    ham_margins.sort_by(|a, b| b.total_cmp(a));
    let allowed = (max_fpr * ham_margins.len() as f64).floor() as usize;
    let t = ham_margins
        .get(allowed)
        .map(|m| m + 1e-6)
        .unwrap_or(0.0)
        .max(0.0);
    let margin = (t - b).max(0.5);
    let k = required / margin;
    let scores: Vec<f64> = w
        .iter()
        .map(|v| ((v * k) * 1000.0).round() / 1000.0)
        .collect();
    let mut before = Rates::default();
    let mut after = Rates::default();
    for (_, r) in &test {
        before.add(r.spam, r.old_score >= required);
        let s: f64 = r.hits.iter().map(|&(f, v)| scores[f] * v).sum::<f64>() + r.fixed;
        after.add(r.spam, s >= required);
    }
    Ok(Fit {
        scores,
        train: train.len(),
        held_out: test.len(),
        before,
        after,
    })
}

/// Writes the `.cf`: a header saying where it came from, then one `score` line per rule whose fitted
/// score differs from zero (rules that never hit keep the score they had).
pub fn write_cf(
    path: &std::path::Path,
    rs: &RuleSet,
    features: &[usize],
    fit: &Fit,
    rows: &[Row],
) -> Result<()> {
    let mut seen = vec![false; features.len()];
    for r in rows {
        for &(f, _) in &r.hits {
            seen[f] = true;
        }
    }
    let mut s = String::new();
    s.push_str("# Rule scores fitted to this site's mail by `correo spam rescore` (logistic regression).\n");
    s.push_str(&format!(
        "# trained on {} messages, evaluated on {} held out\n# before: {}\n# after:  {}\n",
        fit.train,
        fit.held_out,
        fit.before.line(),
        fit.after.line()
    ));
    for (f, &i) in features.iter().enumerate() {
        if !seen[f] {
            continue;
        }
        s.push_str(&format!(
            "score {:<30} {:.3}   # was {:.3}\n",
            rs.rules[i].name,
            fit.scores[f],
            rs.rules[i].score(ScoreSet::LOCAL)
        ));
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("cf.tmp");
    {
        let mut fh =
            std::fs::File::create(&tmp).map_err(|e| Error::from(e).context(tmp.display()))?;
        fh.write_all(s.as_bytes())?;
        fh.sync_all()?;
    }
    std::fs::rename(&tmp, path).map_err(|e| Error::from(e).context(path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_separates_a_clean_signal() {
        // Feature 0 marks spam, feature 1 marks ham, feature 2 is noise.
        let mut rows = Vec::new();
        for i in 0..200 {
            let spam = i % 2 == 0;
            let mut hits = vec![(if spam { 0 } else { 1 }, 1.0)];
            if i % 3 == 0 {
                hits.push((2, 1.0));
            }
            rows.push(Row {
                spam,
                hits,
                fixed: 0.0,
                old_score: if spam { 6.0 } else { 0.0 },
            });
        }
        let f = fit(&rows, 3, 5.0, 0.01, 0.001).unwrap();
        assert!(f.scores[0] >= 5.0, "{:?}", f.scores);
        assert!(f.scores[1] < 0.0, "{:?}", f.scores);
        assert_eq!(f.after.fp, 0);
        assert_eq!(f.after.fn_, 0);
    }

    #[test]
    fn one_class_is_an_error() {
        let rows = vec![
            Row {
                spam: true,
                hits: vec![],
                fixed: 0.0,
                old_score: 0.0
            };
            10
        ];
        assert!(fit(&rows, 1, 5.0, 0.1, 0.001).is_err());
    }
}
