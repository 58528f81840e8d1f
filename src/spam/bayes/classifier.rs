//! Robinson's method as SpamAssassin's Bayes uses it: per token f(w) = (s·x + n·p(w)) / (s + n), where
//! p(w) is the token's spam share normalised by the number of spam and ham learned; the strongest tokens
//! (|f − 0.5| at least `min_strength`, at most `max_tokens_used`) are combined with Fisher's chi-squared
//! method into one probability. Pure arithmetic over counts: storage lives in `store.rs`.

use super::config::BayesConfig;

/// One token's counts as stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub spam: u64,
    pub ham: u64,
}

/// A token that took part in the verdict, for `explain`.
#[derive(Debug, Clone)]
pub struct Used {
    /// Index into the token list that was classified.
    pub index: usize,
    pub f: f64,
    pub counts: Counts,
}

#[derive(Debug, Clone)]
pub struct Outcome {
    pub probability: f64,
    pub used: Vec<Used>,
}

impl Outcome {
    /// The probability the BAYES_xx rules see: none when no token was significant (SpamAssassin then
    /// "cannot use bayes on this message" and no BAYES_xx fires, rather than BAYES_50).
    pub fn verdict(&self) -> Option<f64> {
        (!self.used.is_empty()).then_some(self.probability)
    }
}

/// Robinson's f(w) for a token seen `c.spam` times in `ns` spam and `c.ham` times in `nh` ham.
pub fn fw(cfg: &BayesConfig, c: Counts, ns: u64, nh: u64) -> f64 {
    let (s, x) = (cfg.robinson_s, cfg.robinson_x);
    let n = (c.spam + c.ham) as f64;
    if n == 0.0 || ns == 0 || nh == 0 {
        return x;
    }
    let sr = c.spam as f64 / ns as f64;
    let hr = c.ham as f64 / nh as f64;
    let p = if sr + hr == 0.0 { x } else { sr / (sr + hr) };
    (s * x + n * p) / (s + n)
}

/// Combines the tokens' counts into a spam probability. `counts[i]` belongs to the i-th token.
/// Returns 0.5 with no tokens used, as SpamAssassin does when nothing is significant.
pub fn classify(cfg: &BayesConfig, ns: u64, nh: u64, counts: &[Counts]) -> Outcome {
    let mut used: Vec<Used> = counts
        .iter()
        .enumerate()
        .filter(|(_, c)| c.spam + c.ham > 0)
        .map(|(index, &c)| Used {
            index,
            f: fw(cfg, c, ns, nh),
            counts: c,
        })
        .filter(|u| (u.f - 0.5).abs() >= cfg.min_strength)
        .collect();
    used.sort_by(|a, b| {
        (b.f - 0.5)
            .abs()
            .total_cmp(&(a.f - 0.5).abs())
            .then(a.index.cmp(&b.index))
    });
    used.truncate(cfg.max_tokens_used);
    if used.is_empty() {
        return Outcome {
            probability: 0.5,
            used,
        };
    }
    let fs: Vec<f64> = used.iter().map(|u| u.f).collect();
    Outcome {
        probability: chi_squared_combine(&fs, ns, nh),
        used,
    }
}

/// Fisher's method, Robinson's form: S is the evidence for spam, H for ham; result (1 + S − H) / 2.
/// As in SpamAssassin's Bayes::CombineChi, the two products start from the learned shares (ns/total
/// for the product of 1 − f, nh/total for the product of f), not from 1: with more ham than spam
/// learned, that leans the verdict towards spam, and SpamAssassin's BAYES_xx scores were fitted with it.
pub fn chi_squared_combine(fs: &[f64], ns: u64, nh: u64) -> f64 {
    let n = fs.len();
    let total = (ns + nh) as f64;
    if n == 0 || total == 0.0 {
        return 0.5;
    }
    // Sums of logs, not products: 150 factors near 0 underflow an f64 otherwise.
    let clamp = |p: f64| p.clamp(1e-300, 1.0);
    let ln_ham: f64 =
        clamp(ns as f64 / total).ln() + fs.iter().map(|&f| clamp(1.0 - f).ln()).sum::<f64>();
    let ln_spam: f64 =
        clamp(nh as f64 / total).ln() + fs.iter().map(|&f| clamp(f).ln()).sum::<f64>();
    let s = 1.0 - chi2q(-2.0 * ln_ham, 2 * n);
    let h = 1.0 - chi2q(-2.0 * ln_spam, 2 * n);
    ((1.0 + s - h) / 2.0).clamp(0.0, 1.0)
}

/// P(chi² ≥ x2) with an even number of degrees of freedom `v`, the closed form series.
pub fn chi2q(x2: f64, v: usize) -> f64 {
    let m = x2 / 2.0;
    let mut term = (-m).exp();
    let mut sum = term;
    for i in 1..v / 2 {
        term *= m / i as f64;
        sum += term;
    }
    sum.min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unseen_token_is_x() {
        let c = BayesConfig::default();
        assert_eq!(fw(&c, Counts::default(), 10, 10), c.robinson_x);
    }

    #[test]
    fn spammy_tokens_give_high_probability() {
        let c = BayesConfig::default();
        let counts = vec![Counts { spam: 50, ham: 0 }; 20];
        let o = classify(&c, 200, 200, &counts);
        assert!(o.probability > 0.99, "{}", o.probability);
        let counts = vec![Counts { spam: 0, ham: 50 }; 20];
        assert!(classify(&c, 200, 200, &counts).probability < 0.01);
    }

    #[test]
    fn neutral_tokens_are_ignored() {
        let c = BayesConfig::default();
        let o = classify(&c, 200, 200, &[Counts { spam: 10, ham: 10 }]);
        assert!(o.used.is_empty());
        assert_eq!(o.probability, 0.5);
    }

    #[test]
    fn mixed_evidence_is_uncertain() {
        let c = BayesConfig::default();
        let mut counts = vec![Counts { spam: 50, ham: 0 }; 10];
        counts.extend(vec![Counts { spam: 0, ham: 50 }; 10]);
        let p = classify(&c, 200, 200, &counts).probability;
        assert!((p - 0.5).abs() < 0.1, "{p}");
    }

    /// CombineChi starts the products from ns/total and nh/total: with five times more ham learned,
    /// the same evidence reads more spammy than with equal counts.
    #[test]
    fn learned_shares_weigh_in_as_in_spamassassin() {
        let fs = [0.9, 0.2, 0.7];
        let even = chi_squared_combine(&fs, 100, 100);
        let more_ham = chi_squared_combine(&fs, 100, 500);
        assert!(more_ham > even, "{more_ham} vs {even}");
    }

    #[test]
    fn chi2q_bounds() {
        assert!((chi2q(0.0, 10) - 1.0).abs() < 1e-12);
        assert!(chi2q(1000.0, 10) < 1e-100);
    }
}
