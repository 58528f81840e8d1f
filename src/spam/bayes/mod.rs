//! Bayes for the spam scorer: the tokenizer, the token store, Robinson/Fisher classification, learning
//! (CLI, spamc TELL, moderation, auto-learn), rule-weight fitting (`rescore`) and `explain`.
//!
//! The rule engine asks for the Bayes probability through `check_bayes`, which reads the value this
//! module puts in place for the duration of one `check` (a thread-local), so the engine needs no
//! database handle. No verdict (BAYES_xx never fires) until `min_spam` spam and `min_ham` ham are learned.

pub mod classifier;
pub mod cli;
pub mod config;
pub mod explain;
pub mod learn;
pub mod rescore;
pub mod store;
pub mod tell;
pub mod tokenizer;

pub use config::BayesConfig;

use crate::config::Home;
use crate::message::error::Result;
use crate::message::log;
use crate::spam::check::Verdict;
use crate::spam::rules::RuleSet;
use crate::spam::view::View;
use rusqlite::Connection;
use std::cell::Cell;
use std::path::PathBuf;
use std::sync::Mutex;
use store::{Class, Did};

thread_local! {
    static PROBABILITY: Cell<Option<f64>> = const { Cell::new(None) };
    static TOKEN_MARGIN: Cell<Option<f64>> = const { Cell::new(None) };
}

/// Runs `f` with the token model's contribution `m` (score points) visible to `check_token_model`.
pub fn with_token_margin<T>(m: Option<f64>, f: impl FnOnce() -> T) -> T {
    let old = TOKEN_MARGIN.with(|c| c.replace(m));
    let r = f();
    TOKEN_MARGIN.with(|c| c.set(old));
    r
}

/// The token model's contribution to a message's score: the weights of the message's distinct
/// Bayes tokens (the hashes Bayes learns), summed and divided by the square root of their number,
/// as `rescore::tokens` fitted them.
pub fn token_margin(model: &std::collections::HashMap<i64, f64>, hashes: &[i64]) -> f64 {
    if hashes.is_empty() {
        return 0.0;
    }
    let sum: f64 = hashes.iter().filter_map(|h| model.get(h)).sum();
    sum / (hashes.len() as f64).sqrt()
}

/// `eval:check_token_model('min', 'max')` (correo's own): 1 when the token model's contribution is in
/// [min, max). `rescore` writes these as buckets whose scores are the contributions they stand for.
pub fn eval_check_token_model(args: &[String]) -> f64 {
    let Some(m) = TOKEN_MARGIN.with(Cell::get) else {
        return 0.0;
    };
    let arg = |i: usize, d: f64| {
        args.get(i)
            .and_then(|a| a.trim().parse::<f64>().ok())
            .unwrap_or(d)
    };
    let (lo, hi) = (arg(0, f64::NEG_INFINITY), arg(1, f64::INFINITY));
    if m >= lo && m < hi {
        1.0
    } else {
        0.0
    }
}

/// Runs `f` (one rule check) with the Bayes probability `p` visible to `check_bayes`.
pub fn with_probability<T>(p: Option<f64>, f: impl FnOnce() -> T) -> T {
    let old = PROBABILITY.with(|c| c.replace(p));
    let r = f();
    PROBABILITY.with(|c| c.set(old));
    r
}

/// `eval:check_bayes('min', 'max')`: 1 when the probability is in [min, max) (max 1.00 includes 1).
pub fn eval_check_bayes(args: &[String]) -> f64 {
    let Some(p) = PROBABILITY.with(Cell::get) else {
        return 0.0;
    };
    let arg = |i: usize, d: f64| {
        args.get(i)
            .and_then(|a| a.trim().parse::<f64>().ok())
            .unwrap_or(d)
    };
    let (lo, hi) = (arg(0, 0.0), arg(1, 1.0));
    if p >= lo && (p < hi || (hi >= 1.0 && p <= hi)) {
        1.0
    } else {
        0.0
    }
}

/// The message signature that makes learning idempotent: the Message-Id (when present) and a SHA-256
/// of the body, so the same post re-delivered with new Received lines is still the same message.
pub fn signature(view: &View) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    if let Some(id) = view.raw_values("Message-Id").next() {
        ctx.update(String::from_utf8_lossy(id).trim().as_bytes());
    }
    ctx.update(b"\0");
    ctx.update(&view.full[view.body_start.min(view.full.len())..]);
    let d = ctx.finish();
    d.as_ref()[..20]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A message ready for Bayes: its token strings, their hashes and its signature.
pub struct Tokens {
    pub tokens: Vec<String>,
    pub hashes: Vec<i64>,
    pub sig: String,
}

impl Tokens {
    /// What learning needs: the hashes (unsorted, see `tokenizer::token_hashes`) and the signature;
    /// `tokens` is left empty.
    pub fn for_learning(view: &View) -> Tokens {
        Tokens {
            tokens: Vec::new(),
            hashes: tokenizer::token_hashes(view),
            sig: signature(view),
        }
    }

    pub fn of(view: &View) -> Tokens {
        let tokens = tokenizer::tokens(view);
        let hashes = tokens.iter().map(|t| tokenizer::hash(t)).collect();
        Tokens {
            tokens,
            hashes,
            sig: signature(view),
        }
    }
}

/// The site's Bayes: where the database is and how it behaves. One connection, shared by the daemon's
/// workers behind a mutex (a lookup is a few hundred indexed reads).
pub struct Bayes {
    pub cfg: BayesConfig,
    db: PathBuf,
    conn: Mutex<Option<Connection>>,
}

impl Bayes {
    pub fn open(home: &Home) -> Bayes {
        Bayes {
            cfg: home.config.spam.bayes.clone(),
            db: home.db_path(),
            conn: Mutex::new(None),
        }
    }

    /// Which database a spamc `User` reads and teaches.
    pub fn user_name<'a>(&self, user: Option<&'a str>) -> &'a str {
        match user {
            Some(u) if self.cfg.per_user && !u.is_empty() => u,
            _ => store::GLOBAL,
        }
    }

    fn with_conn<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T> {
        let mut g = match self.conn.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if g.is_none() {
            let mut c = crate::store::open(&self.db)?;
            // Auto-learn writes once per scored message: with WAL, NORMAL skips the fsync per commit
            // and can only lose the last lessons on power loss, never corrupt the database. Token
            // counts are statistics; mail durability does not depend on them.
            c.pragma_update(None, "synchronous", "NORMAL")?;
            store::migrate(&mut c)?;
            *g = Some(c);
        }
        match g.as_mut() {
            Some(c) => f(c),
            None => Err(crate::message::error::Error::software(
                "bayes: no database connection",
            )),
        }
    }

    /// The classifier's verdict, or None while too little is learned (or Bayes is off).
    pub fn classify(&self, user: Option<&str>, t: &Tokens) -> Result<Option<classifier::Outcome>> {
        if !self.cfg.enabled {
            return Ok(None);
        }
        let name = self.user_name(user);
        self.with_conn(|c| {
            let Some(tot) = store::user(c, name, false)? else {
                return Ok(None);
            };
            if tot.nspam < self.cfg.min_spam || tot.nham < self.cfg.min_ham {
                return Ok(None);
            }
            let counts = store::counts(c, tot.uid, &t.hashes)?;
            Ok(Some(classifier::classify(
                &self.cfg, tot.nspam, tot.nham, &counts,
            )))
        })
    }

    /// Learns (or with `None` forgets) one message for a user.
    pub fn learn(&self, user: Option<&str>, t: &Tokens, class: Option<Class>) -> Result<Did> {
        let name = self.user_name(user);
        let max = self.cfg.max_tokens;
        self.with_conn(|c| {
            let mut l = store::Learner::new(c, name)?;
            let did = l.learn(&t.hashes, &t.sig, class)?;
            l.flush()?;
            // Expiry is a table scan: do it every 1,000 messages, not on each one.
            if l.totals.serial % 1000 == 0 {
                l.expire(max)?;
            }
            Ok(did)
        })
    }

    /// Auto-learn's lesson: learns a message never learned before, and leaves one already learned (as
    /// either class) alone, so the scorer cannot overturn a human's `spamc -L` (`Did::Already` then).
    pub fn learn_new(&self, user: Option<&str>, t: &Tokens, class: Class) -> Result<Did> {
        let name = self.user_name(user);
        let max = self.cfg.max_tokens;
        self.with_conn(|c| {
            let mut l = store::Learner::new(c, name)?;
            if l.seen_class(&t.sig)?.is_some() {
                return Ok(Did::Already);
            }
            let did = l.learn(&t.hashes, &t.sig, Some(class))?;
            l.flush()?;
            if l.totals.serial % 1000 == 0 {
                l.expire(max)?;
            }
            Ok(did)
        })
    }

    /// Learns raw message bytes (spamc TELL, moderation).
    pub fn learn_bytes(&self, user: Option<&str>, msg: &[u8], class: Option<Class>) -> Result<Did> {
        let view = View::new(msg);
        self.learn(user, &Tokens::of(&view), class)
    }
}

/// What auto-learn did with one message (`autolearn=` in X-Spam-Status and the log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AutoLearn {
    /// Learned as spam / as ham.
    Spam,
    Ham,
    /// Neither threshold reached (or Bayes was already sure): nothing to learn.
    No,
    /// Auto-learn or Bayes is switched off.
    Disabled,
    /// The database could not be written.
    Failed,
    /// A class was chosen but nothing was learned: the message was learned before (SpamAssassin's
    /// auto-learn never re-learns, bug 3704), so `did_learn` is false.
    Unavailable,
}

impl AutoLearn {
    pub fn as_str(self) -> &'static str {
        match self {
            AutoLearn::Spam => "spam",
            AutoLearn::Ham => "ham",
            AutoLearn::No => "no",
            AutoLearn::Disabled => "disabled",
            AutoLearn::Failed => "failed",
            AutoLearn::Unavailable => "unavailable",
        }
    }

    /// The `_AUTOLEARN_` tag as SpamAssassin writes it: the status, then ` autolearn_force=no` whenever
    /// the auto-learn step ran (not when it is disabled). No rule here forces learning.
    pub fn tag(self) -> String {
        match self {
            AutoLearn::Disabled => "disabled".into(),
            a => format!("{} autolearn_force=no", a.as_str()),
        }
    }
}

/// A scored message with what Bayes said and did.
pub struct Checked {
    pub view: View,
    pub verdict: Verdict,
    pub bayes: Option<classifier::Outcome>,
    pub tokens: Tokens,
    pub autolearn: AutoLearn,
}

/// Scores a message with the rules and Bayes, then auto-learns when the rules alone were sure.
pub fn check(rs: &RuleSet, bayes: Option<&Bayes>, user: Option<&str>, msg: &[u8]) -> Checked {
    let view = View::new(msg);
    // procmail hands spamc the mbox `From ` line; `learn` drops it, so the tokens must not see it either.
    let tokens = if msg.starts_with(b"From ") {
        Tokens::of(&View::new(learn::strip_from_line(msg)))
    } else {
        Tokens::of(&view)
    };
    let out = match bayes {
        Some(b) => b.classify(user, &tokens).unwrap_or_else(|e| {
            log::event(
                "bayes",
                "-",
                &[("status", "unavailable"), ("error", &e.msg)],
            );
            None
        }),
        None => None,
    };
    let p = out.as_ref().and_then(classifier::Outcome::verdict);
    let verdict = rs.check_view_bayes(&view, out.is_some(), p);
    let autolearn = match bayes {
        Some(b) if b.cfg.enabled && b.cfg.auto_learn => {
            match auto_learn_class(&b.cfg, rs, &verdict, p) {
                Some(class) => match b.learn_new(user, &tokens, class) {
                    Ok(Did::Learned) => {
                        if class == Class::Spam {
                            AutoLearn::Spam
                        } else {
                            AutoLearn::Ham
                        }
                    }
                    Ok(_) => AutoLearn::Unavailable,
                    Err(e) => {
                        log::event("bayes", "-", &[("autolearn", "failed"), ("error", &e.msg)]);
                        AutoLearn::Failed
                    }
                },
                None => AutoLearn::No,
            }
        }
        _ => AutoLearn::Disabled,
    };
    let mut verdict = verdict;
    verdict.autolearn = Some(autolearn);
    Checked {
        view,
        verdict,
        bayes: out,
        tokens,
        autolearn,
    }
}

/// SpamAssassin's auto-learn decision, with one more guard. The score that decides leaves out every rule
/// tagged `learn` or `noautolearn` (the BAYES_xx rules among them), so Bayes never votes on its own
/// lessons; and when Bayes was already sure (p ≤ 0.01 or ≥ 0.99) nothing is learned either way: agreeing
/// adds nothing, and disagreeing is a case for a human (`spamc -L`), not for the machine.
pub fn auto_learn_class(
    cfg: &BayesConfig,
    rs: &RuleSet,
    v: &Verdict,
    p: Option<f64>,
) -> Option<Class> {
    if let Some(p) = p {
        if !(0.01..0.99).contains(&p) {
            return None;
        }
    }
    let mut score = 0.0;
    for &i in &v.hits {
        let r = &rs.rules[i];
        if r.tflags.learn || r.tflags.noautolearn || r.name.starts_with("BAYES_") {
            continue;
        }
        score += v.score_of(r);
    }
    if score >= cfg.auto_learn_threshold_spam {
        Some(Class::Spam)
    } else if score < cfg.auto_learn_threshold_nonspam {
        Some(Class::Ham)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_bayes_ranges() {
        let a = |lo: &str, hi: &str| vec![lo.to_string(), hi.to_string()];
        assert_eq!(
            eval_check_bayes(&a("0.00", "0.01")),
            0.0,
            "no probability: no hit"
        );
        with_probability(Some(0.995), || {
            assert_eq!(eval_check_bayes(&a("0.99", "1.00")), 1.0);
            assert_eq!(eval_check_bayes(&a("0.95", "0.99")), 0.0);
        });
        with_probability(Some(1.0), || {
            assert_eq!(eval_check_bayes(&a("0.99", "1.00")), 1.0)
        });
        with_probability(Some(0.0), || {
            assert_eq!(eval_check_bayes(&a("0.00", "0.01")), 1.0)
        });
        assert_eq!(
            PROBABILITY.with(Cell::get),
            None,
            "restored after the check"
        );
    }

    #[test]
    fn signature_ignores_received_lines() {
        let a = View::new(b"Received: from a\nMessage-Id: <x@y>\nSubject: s\n\nbody\n");
        let b = View::new(
            b"Received: from b\nReceived: from c\nMessage-Id: <x@y>\nSubject: s\n\nbody\n",
        );
        let c = View::new(b"Message-Id: <x@y>\nSubject: s\n\nother body\n");
        assert_eq!(signature(&a), signature(&b));
        assert_ne!(signature(&a), signature(&c));
    }

    /// `autolearn=` says what happened, in SpamAssassin's words: learned, nothing to learn, already
    /// learned ("unavailable": auto-learn never re-learns), or switched off.
    #[test]
    fn autolearn_status_reflects_what_happened() {
        let dir = tempfile::tempdir().expect("tempdir");
        let home = Home::open(Some(dir.path()), None).expect("home");
        let rs = crate::spam::rules::compile(crate::spam::load::load_text(
            "body BIG /xyzzy/\nscore BIG 20\n",
        ));
        let mut bayes = Bayes::open(&home);
        let spam = b"Message-Id: <a@b>\nSubject: s\n\nxyzzy\n";
        let status = |b: &Bayes, m: &[u8]| check(&rs, Some(b), None, m).verdict.autolearn;
        assert_eq!(status(&bayes, spam), Some(AutoLearn::Spam));
        assert_eq!(status(&bayes, spam), Some(AutoLearn::Unavailable));
        assert_eq!(
            status(&bayes, b"Message-Id: <c@d>\nSubject: s\n\nhello\n"),
            Some(AutoLearn::Ham)
        );
        assert_eq!(
            AutoLearn::Unavailable.tag(),
            "unavailable autolearn_force=no"
        );
        bayes.cfg.auto_learn = false;
        assert_eq!(status(&bayes, spam), Some(AutoLearn::Disabled));
        assert_eq!(AutoLearn::Disabled.tag(), "disabled");
    }
}
