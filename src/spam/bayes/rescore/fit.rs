//! The fit behind `correo spam rescore`: a logistic regression (`linfa-logistic`, L2) over 0/1 rule
//! features whose weights keep the sign of the rule they belong to, and a boundary placed so that at
//! most a chosen share of ham lands on the spam side, judged on margins the model did not train on.
//! Pure arithmetic over feature lists: which rules are features and where the labels come from is the
//! caller's business.

use crate::message::error::{Error, Result};
use linfa::traits::Fit as _;
use linfa::DatasetBase as Dataset;
use linfa_logistic::LogisticRegression;
use ndarray::{Array1, Array2};

/// Labelled rows of 0/1 features, and which way each feature may push.
#[derive(Debug, Clone, Default)]
pub struct Problem {
    /// Per row: the features that are 1.
    pub x: Vec<Vec<usize>>,
    pub spam: Vec<bool>,
    /// Per feature: +1 when its weight may only add to the spam side, −1 when it may only subtract.
    pub sign: Vec<f64>,
}

/// A linear model: margin = Σ w[f] over the row's features + b; spam is the positive side.
#[derive(Debug, Clone)]
pub struct Model {
    pub w: Vec<f64>,
    pub b: f64,
}

impl Model {
    pub fn margin(&self, feats: &[usize]) -> f64 {
        feats.iter().map(|&f| self.w[f]).sum::<f64>() + self.b
    }
}

/// What the fit needs besides the data.
#[derive(Debug, Clone, Copy)]
pub struct Params {
    /// linfa's L2 weight: the loss is the summed log-loss plus alpha/2 · |w|².
    pub alpha: f64,
    /// Most training ham (a fraction) the boundary may leave on the spam side.
    pub max_fpr: f64,
    /// The score the boundary is mapped to (the rule set's `required_score`).
    pub required: f64,
    /// Inner folds for the out-of-fold margins the boundary is chosen on.
    pub inner_folds: usize,
}

/// The logistic regression on `rows` of `p`, each weight held to its feature's sign. linfa has no
/// bounds, so this is an active set: fit, drop the features whose weight came out with the wrong
/// sign (their weight is 0 then), refit on the rest, until none is wrong. SpamAssassin's own
/// rescoring keeps the same constraint (score ranges from 0 up for spam rules, down for `nice`
/// ones): a spam rule with a negative score would be a way for spam to buy points back, and such a
/// weight only corrects for how the rules overlap in this one corpus.
pub fn logistic(p: &Problem, rows: &[usize], alpha: f64) -> Result<Model> {
    let nfeat = p.sign.len();
    let ns = rows.iter().filter(|&&i| p.spam[i]).count();
    if ns == 0 || ns == rows.len() {
        return Err(Error::data("rescore needs both spam and ham to fit on"));
    }
    let mut on = vec![false; nfeat];
    for &i in rows {
        for &f in &p.x[i] {
            on[f] = true;
        }
    }
    loop {
        let active: Vec<usize> = (0..nfeat).filter(|&f| on[f]).collect();
        let model = fit_active(p, rows, &active, alpha, ns)?;
        let wrong: Vec<usize> = active
            .iter()
            .copied()
            .filter(|&f| model.w[f] * p.sign[f] < 0.0)
            .collect();
        if wrong.is_empty() {
            return Ok(model);
        }
        for f in wrong {
            on[f] = false;
        }
    }
}

/// One unconstrained fit over the `active` features (the others get weight 0).
fn fit_active(
    p: &Problem,
    rows: &[usize],
    active: &[usize],
    alpha: f64,
    ns: usize,
) -> Result<Model> {
    let nfeat = p.sign.len();
    if active.is_empty() {
        // Only the prior is left: the intercept is the log-odds of spam.
        let nh = rows.len() - ns;
        return Ok(Model {
            w: vec![0.0; nfeat],
            b: (ns as f64 / nh as f64).ln(),
        });
    }
    let mut col = vec![usize::MAX; nfeat];
    for (c, &f) in active.iter().enumerate() {
        col[f] = c;
    }
    let mut x = Array2::<f64>::zeros((rows.len(), active.len()));
    let mut y = Array1::<usize>::zeros(rows.len());
    for (k, &i) in rows.iter().enumerate() {
        for &f in &p.x[i] {
            if col[f] != usize::MAX {
                x[[k, col[f]]] = 1.0;
            }
        }
        y[k] = usize::from(p.spam[i]);
    }
    let model = LogisticRegression::default()
        .alpha(alpha)
        .max_iterations(200)
        .fit(&Dataset::new(x, y))
        .map_err(|e| Error::software(format!("logistic regression: {e}")))?;
    // The positive label is whichever class linfa picked; make weights point towards spam.
    let sign = if model.labels().pos.class == 1 {
        1.0
    } else {
        -1.0
    };
    let mut w = vec![0.0; nfeat];
    for (c, &f) in active.iter().enumerate() {
        w[f] = model.params()[c] * sign;
    }
    Ok(Model {
        w,
        b: model.intercept() * sign,
    })
}

/// How far below `required` the highest ham the boundary keeps out scores: fitted scores are rounded
/// to 3 decimals, and so is the total, and a ham that sat exactly at the boundary would round over it.
pub(super) const GAP: f64 = 0.01;

/// Scores, one per feature, fitted on `rows`: the regression's weights scaled so the chosen boundary
/// sits at `required`.
///
/// The regression's own boundary (margin 0) weighs a false positive like a missed spam; a site does
/// not. The boundary is raised to t, the margin of the highest ham that must stay out (at most
/// `max_fpr` of the ham may be above it), and the weights are scaled so that margin t scores just
/// under `required`: score = w · (required − GAP) / (t − b). The ham margins t is read from are out-of-fold (each from a model fitted on
/// the other inner folds): margins of the very ham a model was fitted on sit further from the
/// boundary than new ham will, which would place t too low. t is never below 0 (the regression's own
/// boundary) and t − b is kept at least 0.5, so a message no rule hits stays ham. The fitted model's
/// own margins on its training ham must respect the limit too (out-of-fold models are a little
/// different from the final one, and at a tie the final one could put a training ham just over).
pub fn scores(p: &Problem, rows: &[usize], par: Params) -> Result<Vec<f64>> {
    let full = logistic(p, rows, par.alpha)?;
    let k = par.inner_folds.max(2);
    let mut ham_margins = Vec::new();
    for j in 0..k {
        let (mut test, mut train) = (Vec::new(), Vec::new());
        for (pos, &i) in rows.iter().enumerate() {
            if pos % k == j {
                test.push(i)
            } else {
                train.push(i)
            }
        }
        let m = logistic(p, &train, par.alpha)?;
        ham_margins.extend(
            test.iter()
                .filter(|&&i| !p.spam[i])
                .map(|&i| m.margin(&p.x[i])),
        );
    }
    let in_sample: Vec<f64> = rows
        .iter()
        .filter(|&&i| !p.spam[i])
        .map(|&i| full.margin(&p.x[i]))
        .collect();
    let t = boundary(ham_margins, par.max_fpr).max(boundary(in_sample, par.max_fpr));
    let scale = (par.required - GAP).max(GAP) / (t - full.b).max(0.5);
    Ok(full
        .w
        .iter()
        .map(|v| ((v * scale) * 1000.0).round() / 1000.0)
        .collect())
}

/// The highest ham margin that must stay below the boundary (never below 0): with `max_fpr` of
/// `ham_margins` allowed over it, the first one past those.
pub(super) fn boundary(mut ham_margins: Vec<f64>, max_fpr: f64) -> f64 {
    ham_margins.sort_by(|a, b| b.total_cmp(a));
    let allowed = (max_fpr * ham_margins.len() as f64).floor() as usize;
    ham_margins.get(allowed).copied().unwrap_or(0.0).max(0.0)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Feature 0 marks spam, 1 marks ham, 2 is noise on both.
    fn clean(n: usize) -> Problem {
        let mut p = Problem {
            sign: vec![1.0, -1.0, 1.0],
            ..Default::default()
        };
        for i in 0..n {
            let spam = i % 2 == 0;
            let mut x = vec![if spam { 0 } else { 1 }];
            if i % 3 == 0 {
                x.push(2);
            }
            p.x.push(x);
            p.spam.push(spam);
        }
        p
    }

    const PAR: Params = Params {
        alpha: 0.01,
        max_fpr: 0.001,
        required: 5.0,
        inner_folds: 5,
    };

    #[test]
    fn fit_separates_a_clean_signal() {
        let p = clean(200);
        let rows: Vec<usize> = (0..200).collect();
        let s = scores(&p, &rows, PAR).unwrap();
        assert!(s[0] >= 5.0, "{s:?}");
        assert!(s[1] < 0.0, "{s:?}");
        for i in rows {
            let total: f64 = p.x[i].iter().map(|&f| s[f]).sum();
            assert_eq!(total >= 5.0, p.spam[i], "row {i}: {total} {s:?}");
        }
    }

    /// A spam-signed rule that only ham hits would get a negative weight unconstrained; held to its
    /// sign it gets none, and the fit still separates on the other features.
    #[test]
    fn weights_keep_their_rules_sign() {
        let mut p = clean(200);
        p.sign.push(1.0);
        for (i, x) in p.x.iter_mut().enumerate() {
            if i % 2 == 1 && i % 4 == 1 {
                x.push(3);
            }
        }
        let rows: Vec<usize> = (0..200).collect();
        let free = logistic(
            &Problem {
                sign: vec![1.0, -1.0, 1.0, -1.0],
                ..p.clone()
            },
            &rows,
            0.01,
        )
        .unwrap();
        assert!(
            free.w[3] < 0.0,
            "unconstrained it is negative: {:?}",
            free.w
        );
        let m = logistic(&p, &rows, 0.01).unwrap();
        assert_eq!(m.w[3], 0.0, "{:?}", m.w);
        assert!(m.w[0] > 0.0 && m.w[1] < 0.0, "{:?}", m.w);
    }

    #[test]
    fn one_class_is_an_error() {
        let p = Problem {
            x: vec![vec![]; 10],
            spam: vec![true; 10],
            sign: vec![1.0],
        };
        let rows: Vec<usize> = (0..10).collect();
        assert!(logistic(&p, &rows, 0.1).is_err());
    }

    /// The boundary is held so that at most `max_fpr` of the (out-of-fold) ham is spam: with a ham
    /// that looks exactly like spam in a quarter of the ham, allowing 0.1% keeps all ham out.
    #[test]
    fn boundary_keeps_ham_out_at_the_cost_of_recall() {
        let mut p = Problem {
            sign: vec![1.0, 1.0],
            ..Default::default()
        };
        for i in 0..400 {
            let spam = i % 2 == 0;
            // Spam: feature 0 always, feature 1 on half. Ham: feature 0 on a quarter.
            let mut x = Vec::new();
            if spam || i % 8 == 1 {
                x.push(0);
            }
            if spam && i % 4 == 0 {
                x.push(1);
            }
            p.x.push(x);
            p.spam.push(spam);
        }
        let rows: Vec<usize> = (0..400).collect();
        let s = scores(&p, &rows, PAR).unwrap();
        let mut r = Rates::default();
        for i in rows {
            let total: f64 = p.x[i].iter().map(|&f| s[f]).sum();
            r.add(p.spam[i], total >= 5.0);
        }
        assert_eq!(r.fp, 0, "{s:?}");
        assert_eq!(r.tp, 100, "only spam with both features: {s:?}");
    }
}
