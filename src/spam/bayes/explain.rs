//! `correo spam explain < msg`: why a message scored what it did. The rules that hit, strongest first,
//! with their scores and descriptions; then Bayes: the probability, and the tokens that weighed most
//! towards spam and towards ham with their counts. Read-only: explaining never learns.

use super::{Bayes, Tokens};
use crate::spam::rules::RuleSet;
use crate::spam::view::View;
use std::fmt::Write;

/// The explanation as text; `top` tokens are shown on each side.
pub fn explain(
    rs: &RuleSet,
    bayes: Option<&Bayes>,
    user: Option<&str>,
    msg: &[u8],
    top: usize,
) -> String {
    let view = View::new(super::learn::strip_from_line(msg));
    let t = Tokens::of(&view);
    let out = bayes.and_then(|b| b.classify(user, &t).ok().flatten());
    let p = out.as_ref().and_then(super::classifier::Outcome::verdict);
    let v = rs.check_view_bayes(&view, out.is_some(), p);
    let mut s = String::new();
    let _ = writeln!(
        s,
        "score {:.1} required {:.1}: {}",
        v.score,
        v.required,
        if v.is_spam { "spam" } else { "ham" }
    );
    let mut hits: Vec<usize> = v.hits.clone();
    hits.sort_by(|&a, &b| {
        v.score_of(&rs.rules[b])
            .abs()
            .total_cmp(&v.score_of(&rs.rules[a]).abs())
    });
    let _ = writeln!(s, "\nrules that hit:");
    if hits.is_empty() {
        let _ = writeln!(s, "  (none)");
    }
    for i in hits {
        let r = &rs.rules[i];
        let _ = writeln!(s, "  {:>6.2}  {:<28} {}", v.score_of(r), r.name, r.describe);
    }
    let _ = writeln!(s, "\nbayes:");
    match (bayes, &out) {
        (None, _) => {
            let _ = writeln!(s, "  off");
        }
        (Some(b), None) => {
            let _ = writeln!(
                s,
                "  no verdict: needs {} spam and {} ham learned (see `correo spam learn --dump`)",
                b.cfg.min_spam, b.cfg.min_ham
            );
        }
        (Some(_), Some(o)) => {
            let _ = writeln!(
                s,
                "  probability {:.4} from {} significant tokens of {}",
                o.probability,
                o.used.len(),
                t.tokens.len()
            );
            let mut spammy: Vec<_> = o.used.iter().filter(|u| u.f > 0.5).collect();
            let mut hammy: Vec<_> = o.used.iter().filter(|u| u.f < 0.5).collect();
            spammy.sort_by(|a, b| b.f.total_cmp(&a.f));
            hammy.sort_by(|a, b| a.f.total_cmp(&b.f));
            for (title, list) in [("towards spam", spammy), ("towards ham", hammy)] {
                let _ = writeln!(s, "  {title}:");
                for u in list.iter().take(top) {
                    let tok = t.tokens.get(u.index).map(String::as_str).unwrap_or("?");
                    let _ = writeln!(
                        s,
                        "    {:.4}  spam {:>5} ham {:>5}  {}",
                        u.f,
                        u.counts.spam,
                        u.counts.ham,
                        printable(tok)
                    );
                }
            }
        }
    }
    s
}

/// Tokens may hold control or 8-bit bytes; show them escaped.
fn printable(t: &str) -> String {
    t.chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}
