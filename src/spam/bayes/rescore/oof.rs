//! Bayes probabilities for the messages `rescore` fits on, each from a database that never learned
//! that message. Asked of a database that learned it, Bayes is nearly always sure and nearly always
//! right, and the fit would learn to trust BAYES_99 and BAYES_00 far more than new mail deserves.
//! Counts are held in memory, built once (as `learn` would store them) and each message's own
//! tokens taken out while it is classified, so this costs seconds, not a pass through SQLite.

use crate::spam::bayes::classifier::{self, Counts};
use crate::spam::bayes::BayesConfig;
use std::collections::HashMap;

type Table = HashMap<i64, (u64, u64)>;

fn add(t: &mut Table, hashes: &[i64], spam: bool) {
    for &h in hashes {
        let e = t.entry(h).or_default();
        if spam {
            e.0 += 1
        } else {
            e.1 += 1
        }
    }
}

fn remove(t: &mut Table, hashes: &[i64], spam: bool) {
    for &h in hashes {
        if let Some(e) = t.get_mut(&h) {
            if spam {
                e.0 = e.0.saturating_sub(1)
            } else {
                e.1 = e.1.saturating_sub(1)
            }
        }
    }
}

/// The probability the BAYES_xx rules would see, or None when the database has learned too little
/// (no verdict until `min_spam` and `min_ham`) or no token of the message is significant.
fn classify(cfg: &BayesConfig, t: &Table, ns: u64, nh: u64, hashes: &[i64]) -> Option<f64> {
    if ns < cfg.min_spam || nh < cfg.min_ham {
        return None;
    }
    let c: Vec<Counts> = hashes
        .iter()
        .map(|h| {
            t.get(h)
                .map(|&(spam, ham)| Counts { spam, ham })
                .unwrap_or_default()
        })
        .collect();
    classifier::classify(cfg, ns, nh, &c).verdict()
}

/// The token counts of a database that learned exactly `members`, with its spam and ham totals.
fn learned(hashes: &[Vec<i64>], spam: &[bool], members: &[usize]) -> (Table, u64, u64) {
    let mut t = Table::new();
    for &i in members {
        add(&mut t, &hashes[i], spam[i]);
    }
    let ns = members.iter().filter(|&&i| spam[i]).count() as u64;
    (t, ns, members.len() as u64 - ns)
}

/// Probabilities for `test`, from a database that learned exactly `train`.
pub fn learned_from(
    cfg: &BayesConfig,
    hashes: &[Vec<i64>],
    spam: &[bool],
    train: &[usize],
    test: &[usize],
) -> Vec<Option<f64>> {
    let (t, ns, nh) = learned(hashes, spam, train);
    test.iter()
        .map(|&i| classify(cfg, &t, ns, nh, &hashes[i]))
        .collect()
}

/// Probabilities for `members`, each from a database that learned all the other members and not
/// it (leave one out): the closest to the site's own database, which learned all of them, that a
/// message can get without its own tokens. Inner k-folds would leave out a tenth or a fifth at a time,
/// and a database that much smaller is less sure than the one the scores will meet. Returned in the
/// order of `members`.
pub fn leave_one_out(
    cfg: &BayesConfig,
    hashes: &[Vec<i64>],
    spam: &[bool],
    members: &[usize],
) -> Vec<Option<f64>> {
    let (mut t, ns, nh) = learned(hashes, spam, members);
    members
        .iter()
        .map(|&i| {
            remove(&mut t, &hashes[i], spam[i]);
            let (ns, nh) = if spam[i] { (ns - 1, nh) } else { (ns, nh - 1) };
            let p = classify(cfg, &t, ns, nh, &hashes[i]);
            add(&mut t, &hashes[i], spam[i]);
            p
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> BayesConfig {
        BayesConfig {
            min_spam: 5,
            min_ham: 5,
            ..Default::default()
        }
    }

    /// Every message carries one token of its own besides its class's common tokens. A database
    /// that learned the message is sure of it; out of fold, the unique token is unknown and only
    /// the shared tokens speak.
    #[test]
    fn leave_one_out_never_sees_the_message_itself() {
        let n = 40;
        let spam: Vec<bool> = (0..n).map(|i| i % 2 == 0).collect();
        let hashes: Vec<Vec<i64>> = (0..n)
            .map(|i| {
                let shared = if spam[i] { 1 } else { 2 };
                // Message 0 is spam but carries the ham token as well as three of its own.
                if i == 0 {
                    vec![2, 5000, 5001, 5002]
                } else {
                    vec![shared, 1000 + i as i64]
                }
            })
            .collect();
        let members: Vec<usize> = (0..n).collect();
        let oof = leave_one_out(&cfg(), &hashes, &spam, &members);
        let seen = learned_from(&cfg(), &hashes, &spam, &members, &members);
        assert!(
            oof[0].unwrap() < 0.5,
            "out of fold it looks like ham: {oof:?}"
        );
        assert!(
            seen[0].unwrap() > 0.5,
            "its own token gives it away: {seen:?}"
        );
        assert!(oof[2].unwrap() > 0.5 && oof[3].unwrap() < 0.5, "{oof:?}");
    }

    #[test]
    fn too_little_learned_gives_no_verdict() {
        let spam = vec![true, false, true, false];
        let hashes = vec![vec![1], vec![2], vec![1], vec![2]];
        let members = [0, 1, 2, 3];
        assert!(leave_one_out(&cfg(), &hashes, &spam, &members)
            .iter()
            .all(Option::is_none));
    }
}
