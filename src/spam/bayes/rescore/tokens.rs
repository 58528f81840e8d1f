//! The token model of `correo spam rescore`: one logistic regression over the rules (and BAYES_xx
//! buckets) a message hits and the Bayes tokens it carries, fitted on the site's labelled mail.
//!
//! The BAYES_xx buckets see Bayes through a handful of coarse probabilities, and Bayes itself weighs
//! every token by its counts alone (Robinson's f(w)), so a message full of list boilerplate or one
//! that mixes ham and spam words ends near 0.5 whatever its other tokens say. A discriminative model
//! learns how much each token matters given all the others: on the shared corpus the tokens' logistic
//! regression alone ranks spam above ham better than Bayes does (see bench/RESULTS.md).
//!
//! What it writes stays in the `.cf`: the rule weights are the rules' set 2/3 scores, the token
//! weights are `token_model_weight` lines, and the tokens' part of a message's score (the weights of
//! its distinct tokens over the square root of their number) reaches the score through
//! `CORREO_TOKENS_nnn` rules, `eval:check_token_model(lo, hi)` buckets a tenth of a point wide whose
//! scores are the middle of their range.
//!
//! The fit: L2-regularised log-loss, per-sample gradient steps with AdaGrad step sizes, a fixed number
//! of passes in a fixed order (the same mail gives the same weights). Rule weights keep their rule's
//! sign as in `fit.rs` (a step that would cross zero stops at zero). Tokens seen in a single message
//! get no weight: they say nothing about the next one. The boundary is placed as `fit::scores`
//! places it: at the ham margin that keeps `max_fpr` of the (out-of-fold) training ham out.

use super::fit::{self, Problem};
use crate::message::error::{Error, Result};
use std::collections::HashMap;

/// Passes over the mail.
const EPOCHS: usize = 10;
/// AdaGrad's base step.
const ETA: f64 = 0.5;
/// L2 weight: the loss is the mean log-loss plus LAMBDA/(2n) · |w|² (each step shrinks by LAMBDA/n).
/// 0.1 was picked on the accuracy bench's ten folds (0.03 and 0.3 did about as well, 1.0 worse).
const LAMBDA: f64 = 0.1;
/// Width of a CORREO_TOKENS bucket, in score points, and how far out the buckets go each way.
pub const BUCKET: f64 = 0.1;
pub const BUCKET_RANGE: f64 = 12.0;
/// Token weights smaller than this (in score points) are not written.
const MIN_WEIGHT: f64 = 1e-4;

/// What the fit produced, scaled to score points.
#[derive(Debug, Clone, Default)]
pub struct Fitted {
    /// Per design feature (as in the `Problem`): its score.
    pub design: Vec<f64>,
    /// Per token hash: its weight.
    pub tokens: HashMap<i64, f64>,
}

impl Fitted {
    /// A message's score under the fitted model, as the engine will add it up (the token part
    /// through its bucket).
    pub fn score(&self, feats: &[usize], hashes: &[i64]) -> f64 {
        let d: f64 = feats.iter().map(|&f| self.design[f]).sum();
        d + bucket_score(crate::spam::bayes::token_margin(&self.tokens, hashes))
    }
}

/// The CORREO_TOKENS buckets: (name, lower bound, upper bound, score). The outermost are open.
pub fn buckets() -> Vec<(String, f64, f64, f64)> {
    let n = (2.0 * BUCKET_RANGE / BUCKET).round() as usize;
    (0..n)
        .map(|k| {
            let lo = -BUCKET_RANGE + k as f64 * BUCKET;
            let mid = round3(lo + BUCKET / 2.0);
            let lo = if k == 0 { -1e9 } else { round3(lo) };
            let hi = if k + 1 == n {
                1e9
            } else {
                round3(-BUCKET_RANGE + (k + 1) as f64 * BUCKET)
            };
            (format!("CORREO_TOKENS_{k:03}"), lo, hi, mid)
        })
        .collect()
}

/// The score of the bucket the token part `m` falls in.
pub fn bucket_score(m: f64) -> f64 {
    buckets()
        .into_iter()
        .find(|&(_, lo, hi, _)| m >= lo && m < hi)
        .map(|b| b.3)
        .unwrap_or(0.0)
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// The model in the regression's own units.
struct Raw {
    design: Vec<f64>,
    tokens: HashMap<i64, f64>,
    b: f64,
}

impl Raw {
    fn margin(&self, feats: &[usize], hashes: &[i64]) -> f64 {
        self.b
            + feats.iter().map(|&f| self.design[f]).sum::<f64>()
            + crate::spam::bayes::token_margin(&self.tokens, hashes)
    }
}

fn train(p: &Problem, hashes: &[Vec<i64>], rows: &[usize]) -> Raw {
    let nd = p.sign.len();
    let mut seen: HashMap<i64, u32> = HashMap::new();
    for &i in rows {
        for &h in &hashes[i] {
            *seen.entry(h).or_default() += 1;
        }
    }
    // Token columns in a fixed order (by hash), so the fit does not depend on hash-map order.
    let mut kept: Vec<i64> = seen
        .into_iter()
        .filter(|&(_, c)| c >= 2)
        .map(|(h, _)| h)
        .collect();
    kept.sort_unstable();
    let col: HashMap<i64, usize> = kept.iter().enumerate().map(|(c, &h)| (h, nd + c)).collect();
    let nf = nd + kept.len();
    let data: Vec<(Vec<usize>, Vec<usize>, f64, f64)> = rows
        .iter()
        .map(|&i| {
            let t: Vec<usize> = hashes[i]
                .iter()
                .filter_map(|h| col.get(h).copied())
                .collect();
            let norm = 1.0 / (hashes[i].len().max(1) as f64).sqrt();
            (p.x[i].clone(), t, norm, if p.spam[i] { 1.0 } else { 0.0 })
        })
        .collect();
    let mut w = vec![0.0f64; nf];
    let mut g2 = vec![1e-8f64; nf];
    let (mut b, mut gb2) = (0.0f64, 1e-8f64);
    let shrink = LAMBDA / data.len().max(1) as f64;
    let mut order: Vec<usize> = (0..data.len()).collect();
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    for _ in 0..EPOCHS {
        for k in (1..order.len()).rev() {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            order.swap(k, (seed >> 33) as usize % (k + 1));
        }
        for &r in &order {
            let (d, t, norm, y) = &data[r];
            let z = b
                + d.iter().map(|&j| w[j]).sum::<f64>()
                + t.iter().map(|&j| w[j]).sum::<f64>() * norm;
            let g = 1.0 / (1.0 + (-z).exp()) - y;
            let step = |w: &mut [f64], g2: &mut [f64], j: usize, x: f64| {
                let gj = g * x + shrink * w[j];
                g2[j] += gj * gj;
                w[j] -= ETA * gj / g2[j].sqrt();
            };
            for &j in d {
                step(&mut w, &mut g2, j, 1.0);
                // A rule's weight keeps its rule's sign: stop at zero.
                if w[j] * p.sign[j] < 0.0 {
                    w[j] = 0.0;
                }
            }
            for &j in t {
                step(&mut w, &mut g2, j, *norm);
            }
            gb2 += g * g;
            b -= ETA * g / gb2.sqrt();
        }
    }
    Raw {
        design: w[..nd].to_vec(),
        tokens: kept
            .iter()
            .enumerate()
            .map(|(c, &h)| (h, w[nd + c]))
            .filter(|&(_, v)| v != 0.0)
            .collect(),
        b,
    }
}

/// The joint fit on `rows`, scaled so the boundary (see the module comment) scores just under
/// `par.required`.
pub fn fit(p: &Problem, hashes: &[Vec<i64>], rows: &[usize], par: fit::Params) -> Result<Fitted> {
    let ns = rows.iter().filter(|&&i| p.spam[i]).count();
    if ns == 0 || ns == rows.len() {
        return Err(Error::data("rescore needs both spam and ham to fit on"));
    }
    let full = train(p, hashes, rows);
    let k = par.inner_folds.max(2);
    let mut ham_margins = Vec::new();
    for j in 0..k {
        let (mut test, mut train_rows) = (Vec::new(), Vec::new());
        for (pos, &i) in rows.iter().enumerate() {
            if pos % k == j {
                test.push(i)
            } else {
                train_rows.push(i)
            }
        }
        let m = train(p, hashes, &train_rows);
        ham_margins.extend(
            test.iter()
                .filter(|&&i| !p.spam[i])
                .map(|&i| m.margin(&p.x[i], &hashes[i])),
        );
    }
    let in_sample: Vec<f64> = rows
        .iter()
        .filter(|&&i| !p.spam[i])
        .map(|&i| full.margin(&p.x[i], &hashes[i]))
        .collect();
    let t = fit::boundary(ham_margins, par.max_fpr).max(fit::boundary(in_sample, par.max_fpr));
    let scale = (par.required - fit::GAP).max(fit::GAP) / (t - full.b).max(0.5);
    Ok(Fitted {
        design: full.design.iter().map(|v| round3(v * scale)).collect(),
        tokens: full
            .tokens
            .iter()
            .map(|(&h, &v)| (h, v * scale))
            .filter(|&(_, v)| v.abs() >= MIN_WEIGHT)
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Spam carries token 1, ham token 2; a rule (feature 0) fires on half the spam. Every message
    /// has a token of its own too, which gets no weight.
    #[test]
    fn tokens_and_rules_separate_and_the_boundary_maps_to_required() {
        let n = 400;
        let mut p = Problem {
            sign: vec![1.0],
            ..Default::default()
        };
        let mut hashes = Vec::new();
        for i in 0..n {
            let spam = i % 2 == 0;
            p.x.push(if spam && i % 4 == 0 { vec![0] } else { vec![] });
            p.spam.push(spam);
            hashes.push(vec![if spam { 1 } else { 2 }, 1000 + i as i64]);
        }
        let rows: Vec<usize> = (0..n).collect();
        let par = fit::Params {
            alpha: 0.1,
            max_fpr: 0.001,
            required: 5.0,
            inner_folds: 5,
        };
        let f = fit(&p, &hashes, &rows, par).unwrap();
        assert!(f.design[0] >= 0.0, "{:?}", f.design);
        assert!(f.tokens[&1] > 0.0 && f.tokens[&2] < 0.0, "{:?}", f.tokens);
        assert!(!f.tokens.contains_key(&1005), "a hapax gets no weight");
        for i in rows {
            let s = f.score(&p.x[i], &hashes[i]);
            assert_eq!(s >= 5.0, p.spam[i], "row {i}: {s}");
        }
    }

    #[test]
    fn buckets_cover_everything_once() {
        let b = buckets();
        assert_eq!(b.len(), 240);
        for m in [-1e6, -12.0, -3.33, -0.05, 0.0, 0.049, 4.2, 11.95, 1e6] {
            assert_eq!(
                b.iter()
                    .filter(|&&(_, lo, hi, _)| m >= lo && m < hi)
                    .count(),
                1,
                "{m}"
            );
        }
        assert!((bucket_score(4.23) - 4.25).abs() < 1e-9);
        assert!((bucket_score(-0.01) + 0.05).abs() < 1e-9);
    }
}
