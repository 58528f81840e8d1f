//! The daemon's warm-up: before it takes its first connection, and on SIGHUP before the new rule set
//! goes into service, every scoring thread scores the handful of messages in this folder with the
//! freshly compiled rules.
//!
//! Why: the rule regexes run as lazy DFAs (regex-automata's hybrid engine, and the backreference DFAs
//! in `backref.rs`) whose state caches start empty and are filled as the messages come. On a fresh
//! rule set the first few hundred messages built those states while clients waited: about 5 ms of CPU
//! a message against 2.5 ms once warm. Some of those states are the same for most mail (each regex's
//! start states, header names and layouts, common HTML, MIME structure, base64, quoted-printable), so
//! a few typical messages build them ahead of time, while no client is waiting. Measured, that is only
//! part of the cold cost: scoring 200 corpus messages first-pass took ~5% less CPU after this warm-up
//! (`bench/spam_warmup.rs`), and even 200 other real messages as warm-up saved only ~20%, because most
//! of the states a message needs depend on its own text. Cheap, though: ~10 ms of CPU a message.
//!
//! Where the warmed caches end up matters. A regex's cache pool hands its fast-path cache to the first
//! thread that asks, for good, and every other thread a cache of its own from a stack chosen by that
//! thread's id; the hyperscan scratch is per thread too. A cache warmed on the main thread, or on a
//! blocking-pool thread during a reload, would never serve a scoring thread. So the warm-up runs on the
//! scoring threads themselves (`Scorers::on_every_thread`), one message per job, so that during a
//! reload a live request waits behind at most one warm-up message.
//!
//! The messages are ours: written for this purpose (documentation domains and addresses from RFC 2606
//! and RFC 5737), not taken from any corpus or from SpamAssassin, and cover the usual kinds of mail:
//! plain-text ham with a relay chain, a mailing-list patch, an HTML newsletter (multipart/alternative,
//! quoted-printable), an Outlook reply (base64 text, Word HTML), an invoice with a base64 PDF, an order
//! confirmation, a bounce (multipart/report), an advance-fee fraud, base64 HTML pharmacy spam, a
//! phishing notice with a mismatched link, UTF-8 SEO spam in Cyrillic with encoded-word headers, a
//! Yahoo sender who writes through another relay (with a Gmail Reply-To and addresses in the text),
//! and Outlook Express ratware from a Hotmail address asking for a filled-in form.
//!
//! The last two are there for the code that compiles its regexes on first use (`eval::re!`, the
//! forgery checks): until a message took those paths, the first real one that did paid for compiling
//! them, 0.4 to 1.8 ms each (FORGED_YAHOO_RCVD, FORGED_HOTMAIL_RCVD2, FreeMail's role-address check),
//! and the From domains decide which paths run. A Yahoo message through Yahoo's own servers would
//! leave most of the Yahoo checks unrun, so this one does not.
//!
//! The warm-up only reads: it scores with `bayes::check_without_learning` (no auto-learn; the Bayes
//! lookup is read-only) and writes no per-message log line, so neither the database nor the mail log
//! sees these messages, and since caches change speed, never matches, no later verdict changes.

use super::bayes::Bayes;
use super::daemon::{Scorers, Task};
use super::rules::RuleSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The built-in warm-up messages, by name.
pub const MESSAGES: &[(&str, &[u8])] = &[
    ("ham-plain", include_bytes!("ham-plain.eml")),
    ("ham-list", include_bytes!("ham-list.eml")),
    ("newsletter-html", include_bytes!("newsletter-html.eml")),
    ("ham-outlook", include_bytes!("ham-outlook.eml")),
    ("ham-attachment", include_bytes!("ham-attachment.eml")),
    ("ham-order", include_bytes!("ham-order.eml")),
    ("bounce-dsn", include_bytes!("bounce-dsn.eml")),
    ("spam-advance-fee", include_bytes!("spam-advance-fee.eml")),
    ("spam-pharma", include_bytes!("spam-pharma.eml")),
    ("spam-phish", include_bytes!("spam-phish.eml")),
    ("spam-seo-utf8", include_bytes!("spam-seo-utf8.eml")),
    ("ham-freemail", include_bytes!("ham-freemail.eml")),
    ("spam-ratware-form", include_bytes!("spam-ratware-form.eml")),
];

/// Whether the daemon warms up: on unless `CORREO_SPAM_WARMUP` is `0` or `off` (for measuring what
/// the warm-up saves, or for a daemon that must listen as soon as the rules compile).
pub fn enabled() -> bool {
    !matches!(
        std::env::var("CORREO_SPAM_WARMUP").as_deref(),
        Ok("0" | "off")
    )
}

/// What a warm-up did.
#[derive(Debug, Clone, Copy)]
pub struct Warmed {
    /// Messages scored to the end, over all threads (messages × threads when none failed).
    pub scored: usize,
    /// Wall time from the first job queued to the last one done.
    pub took: Duration,
}

/// Scores every warm-up message once on every scoring thread with `rs` (and `bayes`, read-only), and
/// waits until all are done. Blocks: call it before the runtime starts or in `spawn_blocking`.
pub fn warm(rs: &Arc<RuleSet>, bayes: &Arc<Bayes>, scorers: &Scorers) -> Warmed {
    let t = Instant::now();
    let scored = scorers.on_every_thread(|_| {
        MESSAGES
            .iter()
            .map(|&(_, msg)| {
                let (rs, bayes) = (rs.clone(), bayes.clone());
                Box::new(move || {
                    let _ = super::check::every_rule(|| {
                        super::bayes::check_without_learning(&rs, Some(&bayes), None, msg)
                    });
                }) as Task
            })
            .collect()
    });
    Warmed {
        scored,
        took: t.elapsed(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Home;
    use crate::spam::bayes::{store, AutoLearn};

    /// The messages parse as mail with a body: a Message-Id, a Subject and a blank line.
    #[test]
    fn messages_look_like_mail() {
        for (name, m) in MESSAGES {
            let v = crate::spam::view::View::new(m);
            assert!(
                v.header_for_rule("Message-Id").is_some(),
                "{name}: no Message-Id"
            );
            assert!(v.header_for_rule("Subject").is_some(), "{name}: no Subject");
            assert!(
                m.windows(2).any(|w| w == b"\n\n"),
                "{name}: no header/body split"
            );
        }
    }

    /// The warm-up scores every message on every scoring thread and teaches Bayes nothing, though the
    /// same messages through the daemon's scoring path would be auto-learned (the rule below makes
    /// every message sure spam); afterwards the threads still score.
    #[test]
    fn warm_up_learns_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let home = Home::open(Some(dir.path()), None).expect("home");
        // Any message with a letter `e` scores 20: far past auto-learn's spam threshold.
        let rs = Arc::new(crate::spam::rules::compile(crate::spam::load::load_text(
            "body ALL_E /e/\nscore ALL_E 20\n",
        )));
        let bayes = Arc::new(Bayes::open(&home));
        assert!(
            bayes.cfg.enabled && bayes.cfg.auto_learn,
            "defaults changed"
        );
        bayes.start_learner().expect("learner");
        let scorers = Scorers::new(2).expect("threads");
        let w = warm(&rs, &bayes, &scorers);
        assert_eq!(w.scored, MESSAGES.len() * 2, "{w:?}");
        bayes.stop_learner();
        let mut c = crate::store::open(&home.db_path()).expect("db");
        let learned: u64 = store::dump(&mut c)
            .expect("dump")
            .iter()
            .map(|u| u.nspam + u.nham + u.ntokens)
            .sum();
        assert_eq!(learned, 0, "the warm-up learned");
        // The same message through the learning path is learned: the rule set above is not too weak
        // to trigger auto-learn, so the zero above means something.
        let msg = MESSAGES[0].1;
        let checked = crate::spam::bayes::check(&rs, Some(&bayes), None, msg);
        assert_eq!(checked.autolearn, AutoLearn::Spam);
        // Scoring threads stay in service after the warm-up.
        let rs2 = rs.clone();
        let again = scorers.on_every_thread(move |_| {
            let rs = rs2.clone();
            vec![Box::new(move || {
                assert!(rs.check(msg).1.is_spam);
            }) as Task]
        });
        assert_eq!(again, 2);
    }
}
