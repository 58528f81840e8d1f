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
pub mod lessons;
pub mod rescore;
pub mod store;
pub mod tell;
pub mod tokenizer;

pub use config::BayesConfig;

use crate::config::Home;
use crate::message::error::Result;
use crate::message::log;
use crate::spam::check::Verdict;
use crate::spam::eval::arg_f;
use crate::spam::rules::RuleSet;
use crate::spam::view::View;
use rusqlite::{Connection, OptionalExtension};
use std::cell::Cell;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};
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
    let (lo, hi) = (
        arg_f(args, 0, f64::NEG_INFINITY),
        arg_f(args, 1, f64::INFINITY),
    );
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
    let (lo, hi) = (arg_f(args, 0, 0.0), arg_f(args, 1, 1.0));
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

/// The site's Bayes: where the database is and how it behaves. Two connections, each shared by the
/// daemon's threads behind a mutex: one reads (a lookup is a few hundred indexed reads), one writes
/// (learning, TELL), so in WAL mode a commit never holds up a lookup.
pub struct Bayes {
    pub cfg: BayesConfig,
    db: PathBuf,
    conn: Mutex<Option<Connection>>,
    writer: Mutex<Option<Connection>>,
    /// Auto-learn's lessons waiting for the learner thread (the daemon starts one; see `lessons`).
    lessons: lessons::Queue,
    /// Per database user, the totals last read when they were too few for a verdict, and when. Then
    /// `classify_with` answers from here for up to `TOTALS_TTL` instead of reading the database for
    /// every message: that read cost a fresh daemon ~40 us a message (SQLite's code and pages come back
    /// into the CPU's caches each time), ~4% of scoring one. This process's own commits clear it;
    /// another process's lessons show within `TOTALS_TTL`.
    totals: Mutex<HashMap<String, (store::Totals, Instant)>>,
}

/// How long `classify_with` trusts totals it read while they are too few for a verdict.
const TOTALS_TTL: Duration = Duration::from_secs(1);

impl Bayes {
    pub fn open(home: &Home) -> Bayes {
        Bayes {
            cfg: home.config.spam.bayes.clone(),
            db: home.db_path(),
            conn: Mutex::new(None),
            writer: Mutex::new(None),
            lessons: lessons::Queue::default(),
            totals: Mutex::new(HashMap::new()),
        }
    }

    /// Which database a spamc `User` reads and teaches.
    pub fn user_name<'a>(&self, user: Option<&'a str>) -> &'a str {
        match user {
            Some(u) if self.cfg.per_user && !u.is_empty() => u,
            _ => store::GLOBAL,
        }
    }

    fn with<T>(
        &self,
        conn: &Mutex<Option<Connection>>,
        f: impl FnOnce(&mut Connection) -> Result<T>,
    ) -> Result<T> {
        let mut g = match conn.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if g.is_none() {
            let mut c = crate::store::open(&self.db)?;
            // Auto-learn writes once per batch of scored messages: with WAL, NORMAL skips the fsync
            // per commit and can only lose the last lessons on power loss, never corrupt the
            // database. Token counts are statistics; mail durability does not depend on them.
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

    /// The read connection.
    fn with_conn<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T> {
        self.with(&self.conn, f)
    }

    /// The write connection. Whatever it did, the totals read before may be out of date now.
    fn with_writer<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T> {
        let r = self.with(&self.writer, f);
        self.totals_lock().clear();
        r
    }

    fn totals_lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (store::Totals, Instant)>> {
        // A plain map: nothing runs under this lock that could leave it half changed.
        self.totals.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `name`'s totals as read less than `TOTALS_TTL` ago.
    fn recent_totals(&self, name: &str) -> Option<store::Totals> {
        let g = self.totals_lock();
        g.get(name)
            .filter(|(_, at)| at.elapsed() < TOTALS_TTL)
            .map(|&(t, _)| t)
    }

    fn keep_totals(&self, name: &str, t: store::Totals) {
        let mut g = self.totals_lock();
        // Per-user databases: forget the users not seen lately rather than grow without end.
        if g.len() >= 1024 {
            g.retain(|_, (_, at)| at.elapsed() < TOTALS_TTL);
        }
        g.insert(name.to_string(), (t, Instant::now()));
    }

    /// The classifier's verdict, or None while too little is learned (or Bayes is off).
    pub fn classify(&self, user: Option<&str>, t: &Tokens) -> Result<Option<classifier::Outcome>> {
        self.classify_with(user, || t)
    }

    /// `classify`, asking for the tokens only once there is enough learned to classify them.
    fn classify_with<'t>(
        &self,
        user: Option<&str>,
        tokens: impl FnOnce() -> &'t Tokens,
    ) -> Result<Option<classifier::Outcome>> {
        if !self.cfg.enabled {
            return Ok(None);
        }
        let name = self.user_name(user);
        let too_few = |t: &store::Totals| t.nspam < self.cfg.min_spam || t.nham < self.cfg.min_ham;
        if self.recent_totals(name).is_some_and(|t| too_few(&t)) {
            return Ok(None);
        }
        self.with_conn(|c| {
            // Remembered only while too few: that is all `recent_totals` answers for, and a database
            // that can classify reads its totals in this transaction anyway.
            let Some(tot) = store::user(c, name, false)? else {
                self.keep_totals(name, store::Totals::default());
                return Ok(None);
            };
            if too_few(&tot) {
                self.keep_totals(name, tot);
                return Ok(None);
            }
            // One read transaction for all the tokens: a statement on its own takes and drops the
            // WAL read lock (fcntl calls on the shared-memory file) each time, once per token.
            let tx = c.transaction()?;
            let counts = store::counts(&tx, tot.uid, &tokens().hashes)?;
            drop(tx);
            Ok(Some(classifier::classify(
                &self.cfg, tot.nspam, tot.nham, &counts,
            )))
        })
    }

    /// Learns (or with `None` forgets) one message for a user, after committing the lessons queued
    /// before it (so a TELL about a message auto-learn queued sees it learned).
    pub fn learn(&self, user: Option<&str>, t: &Tokens, class: Option<Class>) -> Result<Did> {
        let name = self.user_name(user);
        self.with_writer(|c| {
            self.commit_lessons(c);
            learn_one(c, name, &t.hashes, &t.sig, class, self.cfg.max_tokens)
        })
    }

    /// Starts the learner thread: from now on auto-learn queues its lessons for it (see `lessons`).
    pub fn start_learner(self: &std::sync::Arc<Self>) -> std::io::Result<()> {
        let me = self.clone();
        self.lessons.start(move || {
            while me.lessons.wait_batch() {
                me.flush_lessons();
            }
        })
    }

    /// Stops the learner thread after it committed every queued lesson; auto-learn then learns on the
    /// caller's thread again.
    pub fn stop_learner(&self) {
        self.lessons.stop();
        self.flush_lessons();
    }

    /// Commits the queued lessons now.
    pub fn flush_lessons(&self) {
        if self.lessons.lock().queue.is_empty() {
            return;
        }
        let r = self.with_writer(|c| {
            self.commit_lessons(c);
            Ok(())
        });
        if let Err(e) = r {
            // No connection: the lessons stay queued for the next try.
            log::event("bayes", "-", &[("autolearn", "failed"), ("error", &e.msg)]);
        }
    }

    /// Commits every queued lesson on the write connection: one transaction per user. A lesson whose
    /// commit fails is logged and dropped (its message can be learned again later).
    fn commit_lessons(&self, c: &mut Connection) {
        let mut batch = self.lessons.take();
        if batch.is_empty() {
            return;
        }
        // Unchecked lessons (`learn_deferred`) take their signature and their place in `sigs` here; one
        // whose message is queued or being committed already is done with at once, learned before.
        for l in batch
            .iter_mut()
            .filter(|l| l.then.is_some() && l.sig.is_empty())
        {
            if let Some(sig) = l.view().map(signature) {
                l.sig = sig;
            }
        }
        let (mut batch, twice): (Vec<_>, Vec<_>) = {
            let mut g = self.lessons.lock();
            batch
                .into_iter()
                .partition(|l| l.then.is_none() || g.sigs.insert((l.user.clone(), l.sig.clone())))
        };
        for mut l in twice {
            if let Some(then) = l.then.take() {
                then(AutoLearn::Unavailable);
            }
        }
        for l in batch.iter_mut() {
            l.hashes();
        }
        // What became of each unchecked lesson, for its `then`.
        let mut fate: Vec<Option<AutoLearn>> = vec![None; batch.len()];
        let mut users: Vec<&str> = batch.iter().map(|l| l.user.as_str()).collect();
        users.sort_unstable();
        users.dedup();
        for user in users {
            let r = (|| -> Result<()> {
                let mut l = store::Learner::new(c, user)?;
                let serial = l.totals.serial;
                for (i, lesson) in batch.iter().enumerate().filter(|(_, l)| l.user == user) {
                    if lesson.then.is_some() {
                        // Unchecked: one learned before, as either class, stays as it is (auto-learn
                        // never overturns a human's `spamc -L`).
                        let did = match l.seen_class(&lesson.sig)? {
                            Some(_) => Did::Already,
                            None => l.learn(&lesson.hashes, &lesson.sig, Some(lesson.class))?,
                        };
                        fate[i] = Some(autolearn_status(lesson.class, Ok(did)));
                        continue;
                    }
                    // Never `Already` (the queue keeps one lesson per message, and only messages not
                    // learned when they were queued), unless a `learn` run in another process got
                    // there first; either way counted once.
                    l.learn(&lesson.hashes, &lesson.sig, Some(lesson.class))?;
                }
                l.flush()?;
                // Expiry is a table scan: once per 1,000 messages learned, not per batch.
                if l.totals.serial / 1000 != serial / 1000 {
                    l.expire(self.cfg.max_tokens)?;
                }
                Ok(())
            })();
            if let Err(e) = r {
                let n = batch.iter().filter(|l| l.user == user).count().to_string();
                log::event(
                    "bayes",
                    "-",
                    &[("autolearn", "failed"), ("lessons", &n), ("error", &e.msg)],
                );
                // Nothing of this user's batch was committed.
                for (i, _) in batch.iter().enumerate().filter(|(_, l)| l.user == user) {
                    if fate[i] != Some(AutoLearn::Unavailable) {
                        fate[i] = Some(AutoLearn::Failed);
                    }
                }
            }
        }
        self.lessons.done(&batch);
        for (l, f) in batch.iter_mut().zip(fate) {
            if let Some(then) = l.then.take() {
                then(f.unwrap_or(AutoLearn::Failed));
            }
        }
    }

    /// Auto-learn's lesson: learns a message never learned before, and leaves one already learned (as
    /// either class) alone, so the scorer cannot overturn a human's `spamc -L` (`Did::Already` then).
    /// With a learner thread running, the lesson is queued and `Did::Learned` means "will be learned":
    /// nothing else can learn it in between, since the already-learned check sees the queue too.
    /// `hashes` is asked for only when there is something to learn.
    pub fn learn_new(
        &self,
        user: Option<&str>,
        sig: &str,
        hashes: impl FnOnce() -> Vec<i64>,
        class: Class,
    ) -> Result<Did> {
        match self.reserve(user, sig, class)? {
            Some(r) => self.learn_reserved(r, hashes(), None),
            None => Ok(Did::Already),
        }
    }

    /// The first half of `learn_new`: None when the message was learned (or is queued) already, else
    /// its signature reserved, so that from now on it counts as learned to every other check. The
    /// reservation must be handed to `learn_reserved`.
    pub fn reserve(&self, user: Option<&str>, sig: &str, class: Class) -> Result<Option<Reserved>> {
        let name = self.user_name(user);
        let key = (name.to_string(), sig.to_string());
        let mut q = self.lessons.lock();
        if q.sigs.contains(&key) || self.seen_class(name, sig)?.is_some() {
            return Ok(None);
        }
        q.sigs.insert(key.clone());
        Ok(Some(Reserved { key, class }))
    }

    /// The second half of `learn_new`: queues the reserved lesson for the learner thread, or without
    /// one commits it now. Its tokens are `hashes`, or with `message` given, taken from it (on the
    /// learner thread when one runs).
    pub fn learn_reserved(
        &self,
        r: Reserved,
        hashes: Vec<i64>,
        message: Option<lessons::Queued>,
    ) -> Result<Did> {
        let lesson = lessons::Lesson {
            user: r.key.0,
            sig: r.key.1,
            hashes,
            message,
            class: r.class,
            then: None,
        };
        match self.lessons.push(lesson) {
            Ok(()) => Ok(Did::Learned),
            Err(mut lesson) => {
                lesson.hashes();
                let r = self.with_writer(|c| {
                    self.commit_lessons(c);
                    learn_one(
                        c,
                        &lesson.user,
                        &lesson.hashes,
                        &lesson.sig,
                        Some(lesson.class),
                        self.cfg.max_tokens,
                    )
                });
                self.lessons.done(std::slice::from_ref(&lesson));
                r
            }
        }
    }

    /// The deferred half of `check_answer_first`'s auto-learn: queues `view` (the message scored) to be
    /// tokenized and learned on the learner thread. A failure is logged: the answer has gone already.
    pub fn learn_after_answer(&self, r: Reserved, message: lessons::Queued) {
        if let Err(e) = self.learn_reserved(r, Vec::new(), Some(message)) {
            log::event("bayes", "-", &[("autolearn", "failed"), ("error", &e.msg)]);
        }
    }

    /// Auto-learn's lesson for a reply that does not show `autolearn=` (`check_deferring`): queued
    /// unchecked, so the learner thread takes its signature, leaves it alone when it was learned (or
    /// queued) before, and tells `then` what it did. Without a learner thread, all of that happens
    /// here and now.
    pub fn learn_deferred(
        &self,
        user: Option<&str>,
        class: Class,
        message: lessons::Queued,
        then: lessons::Then,
    ) {
        let lesson = lessons::Lesson {
            user: self.user_name(user).to_string(),
            sig: String::new(),
            hashes: Vec::new(),
            message: Some(message),
            class,
            then: Some(then),
        };
        let Err(mut lesson) = self.lessons.push(lesson) else {
            return;
        };
        let (Some(message), Some(then)) = (lesson.message.take(), lesson.then.take()) else {
            return;
        };
        let view = message.into_view();
        let did = self
            .reserve(user, &signature(&view), class)
            .and_then(|r| match r {
                None => Ok(Did::Already),
                Some(r) => self.learn_reserved(r, tokenizer::token_hashes(&view), None),
            });
        then(autolearn_status(class, did));
    }

    /// The class a message was learned as, if it was (read connection; the queue is the caller's).
    fn seen_class(&self, name: &str, sig: &str) -> Result<Option<Class>> {
        self.with_conn(|c| {
            // One statement, so one read transaction: the daemon asks this for every message
            // auto-learn picks, and each transaction takes and drops WAL's read lock.
            let code: Option<String> = c
                .prepare_cached(
                    "SELECT s.class FROM bayes_users u JOIN bayes_seen s ON s.uid = u.id \
                     WHERE u.name = ?1 AND s.sig = ?2",
                )?
                .query_row(rusqlite::params![name, sig], |r| r.get(0))
                .optional()?;
            Ok(match code.as_deref() {
                Some("s") => Some(Class::Spam),
                Some("h") => Some(Class::Ham),
                _ => None,
            })
        })
    }

    /// Learns raw message bytes (spamc TELL, moderation).
    pub fn learn_bytes(&self, user: Option<&str>, msg: &[u8], class: Option<Class>) -> Result<Did> {
        let view = View::new(msg);
        self.learn(user, &Tokens::of(&view), class)
    }
}

/// Learns (or forgets) one message in its own transaction, expiring every 1,000 messages.
fn learn_one(
    c: &mut Connection,
    name: &str,
    hashes: &[i64],
    sig: &str,
    class: Option<Class>,
    max_tokens: u64,
) -> Result<Did> {
    let mut l = store::Learner::new(c, name)?;
    let did = l.learn(hashes, sig, class)?;
    l.flush()?;
    // Expiry is a table scan: do it every 1,000 messages, not on each one.
    if l.totals.serial % 1000 == 0 {
        l.expire(max_tokens)?;
    }
    Ok(did)
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
    pub autolearn: AutoLearn,
    /// `check_answer_first` only: the auto-learn lesson still to hand to `Bayes::learn_after_answer`.
    pub lesson: Option<Reserved>,
    /// `check_deferring` only: the class auto-learn picked, for `Bayes::learn_deferred` (which finds
    /// out whether it is learned; `autolearn` says only what was picked).
    pub deferred: Option<Class>,
}

/// A message's signature reserved for auto-learn (`Bayes::reserve`): it counts as learned from then
/// on, so it must reach `Bayes::learn_reserved` (or `learn_after_answer`).
pub struct Reserved {
    key: (String, String),
    class: Class,
}

/// Scores a message with the rules and Bayes, then auto-learns when the rules alone were sure. The
/// message is tokenized only when Bayes needs the tokens: to classify (once enough is learned) or to
/// learn (a class chosen, and the message not learned before).
///
/// procmail hands spamc the mbox `From ` line, and `learn` drops it, so the tokens must not see it
/// either. They do not, from this one view: the header split skips that line, the MIME parser reads it
/// as no header (or, with a colon in its date, as a header no part looks at), and the signature covers
/// the Message-Id and the bytes after the header only (see the test below).
pub fn check(rs: &RuleSet, bayes: Option<&Bayes>, user: Option<&str>, msg: &[u8]) -> Checked {
    check_learning(rs, bayes, user, msg, Learn::Now)
}

/// `check` for a server, which answers first: a message auto-learn picks that scoring did not tokenize
/// comes back in `Checked::lesson`, reserved (so `autolearn=` is already what it will be) but not
/// tokenized, for `Bayes::learn_after_answer` once the reply is on its way.
pub fn check_answer_first(
    rs: &RuleSet,
    bayes: Option<&Bayes>,
    user: Option<&str>,
    msg: &[u8],
) -> Checked {
    check_learning(rs, bayes, user, msg, Learn::AfterAnswer)
}

/// Largest message `check_answer_first` leaves to the learner thread to tokenize. A queued lesson
/// holds its whole message until its batch (up to `lessons::BATCH`) is committed; bigger ones are
/// tokenized at once, as `check` does, so the queue stays within some tens of megabytes.
const DEFER_MAX: usize = 128 * 1024;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Learn {
    Never,
    Now,
    AfterAnswer,
    Deferred,
}

/// `check_answer_first` for a reply that does not show `autolearn=` (spamc's CHECK, SYMBOLS and
/// REPORT): a message auto-learn picks comes back in `Checked::deferred`, not even looked up, for
/// `Bayes::learn_deferred` once the reply is on its way. The already-learned check is a database read
/// that cost ~30 us of a fresh daemon's ~1 ms a message (bench/RESULTS.md, stop 32); the learner
/// thread makes it instead. A message bigger than `DEFER_MAX` goes as in `check_answer_first`.
pub fn check_deferring(
    rs: &RuleSet,
    bayes: Option<&Bayes>,
    user: Option<&str>,
    msg: &[u8],
) -> Checked {
    check_learning(rs, bayes, user, msg, Learn::Deferred)
}

/// `check` that never learns: the same rules, Bayes lookup and verdict, with the auto-learn step left
/// out (`autolearn` says `Disabled`). The daemon's warm-up scores its built-in messages with it, so
/// warming the regex caches teaches Bayes nothing.
pub fn check_without_learning(
    rs: &RuleSet,
    bayes: Option<&Bayes>,
    user: Option<&str>,
    msg: &[u8],
) -> Checked {
    check_learning(rs, bayes, user, msg, Learn::Never)
}

fn check_learning(
    rs: &RuleSet,
    bayes: Option<&Bayes>,
    user: Option<&str>,
    msg: &[u8],
    learn: Learn,
) -> Checked {
    let view = View::new(msg);
    let bayes = bayes.filter(|b| b.cfg.enabled);
    let tokens: std::cell::OnceCell<Tokens> = std::cell::OnceCell::new();
    let out = match bayes {
        Some(b) => b
            .classify_with(user, || tokens.get_or_init(|| Tokens::of(&view)))
            .unwrap_or_else(|e| {
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
    let (mut lesson, mut deferred) = (None, None);
    let hashes = tokens.get().map(|t| t.hashes.as_slice());
    let verdict = rs.check_view_hashed(&view, out.is_some(), p, hashes);
    let autolearn = match bayes {
        Some(b) if learn != Learn::Never && b.cfg.auto_learn => {
            match auto_learn_class(&b.cfg, rs, &verdict, p) {
                // Nothing looked up or learned before the answer: see `check_deferring`.
                Some(class) if learn == Learn::Deferred && view.full.len() <= DEFER_MAX => {
                    deferred = Some(class);
                    autolearn_status(class, Ok(Did::Learned))
                }
                Some(class) => {
                    let sig = match tokens.get() {
                        Some(t) => t.sig.clone(),
                        None => signature(&view),
                    };
                    let did = b.reserve(user, &sig, class).and_then(|r| match r {
                        None => Ok(Did::Already),
                        Some(r) => match tokens.get() {
                            Some(t) => b.learn_reserved(r, t.hashes.clone(), None),
                            None if learn == Learn::AfterAnswer && view.full.len() <= DEFER_MAX => {
                                lesson = Some(r);
                                Ok(Did::Learned)
                            }
                            None => b.learn_reserved(r, tokenizer::token_hashes(&view), None),
                        },
                    });
                    autolearn_status(class, did)
                }
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
        autolearn,
        lesson,
        deferred,
    }
}

/// The `autolearn=` status of a lesson of `class`, from what learning it did.
fn autolearn_status(class: Class, did: Result<Did>) -> AutoLearn {
    match did {
        Ok(Did::Learned) if class == Class::Spam => AutoLearn::Spam,
        Ok(Did::Learned) => AutoLearn::Ham,
        Ok(_) => AutoLearn::Unavailable,
        Err(e) => {
            log::event("bayes", "-", &[("autolearn", "failed"), ("error", &e.msg)]);
            AutoLearn::Failed
        }
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

    /// Whether a message was learned, and as what, is read per user and per signature (one joined
    /// statement on the read connection): a user with no row yet, another user, or another message
    /// has seen nothing.
    #[test]
    fn seen_class_reads_the_users_own_lessons() {
        let dir = tempfile::tempdir().expect("tempdir");
        let home = Home::open(Some(dir.path()), None).expect("home");
        let mut bayes = Bayes::open(&home);
        bayes.cfg.per_user = true;
        let view = View::new(b"Message-Id: <a@b>\nSubject: s\n\nhello there\n");
        let t = Tokens::of(&view);
        let seen = |b: &Bayes, user: &str, sig: &str| b.seen_class(user, sig).expect("read");
        assert_eq!(seen(&bayes, "alice", &t.sig), None);
        for class in [Some(Class::Spam), Some(Class::Ham), None] {
            bayes.learn(Some("alice"), &t, class).expect("learn");
            assert_eq!(seen(&bayes, "alice", &t.sig), class);
            assert_eq!(seen(&bayes, "bob", &t.sig), None);
            assert_eq!(seen(&bayes, "alice", "other"), None);
        }
    }

    /// A home in a temporary directory, a rule that makes `xyzzy` spam (auto-learn's threshold), and
    /// Bayes with its learner thread running.
    fn with_learner() -> (
        tempfile::TempDir,
        Home,
        crate::spam::rules::RuleSet,
        std::sync::Arc<Bayes>,
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        let home = Home::open(Some(dir.path()), None).expect("home");
        let rs = crate::spam::rules::compile(crate::spam::load::load_text(
            "body BIG /xyzzy/\nscore BIG 20\n",
        ));
        let bayes = std::sync::Arc::new(Bayes::open(&home));
        bayes.start_learner().expect("learner");
        (dir, home, rs, bayes)
    }

    /// `check_deferring` picks the class and looks nothing up; the learner then decides: learned the
    /// first time, "unavailable" for the same message again (queued twice in one batch, or learned
    /// before), and a message a human taught as the other class stays as taught. Without a learner
    /// thread the same happens on the spot.
    #[test]
    fn deferred_lessons_are_checked_by_the_learner() {
        let (dir, home, rs, bayes) = with_learner();
        let _keep = dir;
        let spam = b"Message-Id: <a@b>\nSubject: s\n\nxyzzy\n";
        let taught = b"Message-Id: <c@d>\nSubject: s\n\nxyzzy taught\n";
        assert_eq!(
            bayes
                .learn_bytes(None, taught, Some(Class::Ham))
                .expect("tell"),
            Did::Learned
        );
        let (tx, rx) = std::sync::mpsc::channel();
        let defer = |m: &[u8]| {
            let c = check_deferring(&rs, Some(&bayes), None, m);
            assert_eq!(
                (c.deferred, c.autolearn),
                (Some(Class::Spam), AutoLearn::Spam)
            );
            assert!(c.lesson.is_none());
            let tx = tx.clone();
            bayes.learn_deferred(
                None,
                Class::Spam,
                lessons::Queued::View(Box::new(c.view)),
                Box::new(move |a| tx.send(a).unwrap()),
            );
        };
        // Two of the same in one batch, then the one taught as ham.
        defer(spam);
        defer(spam);
        defer(taught);
        let wait = || rx.recv_timeout(Duration::from_secs(10)).expect("fate");
        let mut got = vec![wait(), wait(), wait()];
        got.sort_by_key(|a| a.as_str());
        assert_eq!(
            got,
            [
                AutoLearn::Spam,
                AutoLearn::Unavailable,
                AutoLearn::Unavailable
            ]
        );
        // Once committed, the database answers.
        defer(spam);
        assert_eq!(wait(), AutoLearn::Unavailable);
        bayes.stop_learner();
        let mut c = crate::store::open(&home.db_path()).expect("db");
        let d = store::dump(&mut c).expect("dump");
        assert_eq!((d[0].nspam, d[0].nham), (1, 1), "{d:?}");
        // No learner: decided and learned before `learn_deferred` returns.
        let other = b"Message-Id: <e@f>\nSubject: s\n\nxyzzy other\n";
        defer(other);
        assert_eq!(rx.try_recv(), Ok(AutoLearn::Spam));
        defer(other);
        assert_eq!(rx.try_recv(), Ok(AutoLearn::Unavailable));
        let d = store::dump(&mut c).expect("dump");
        assert_eq!((d[0].nspam, d[0].nham), (2, 1), "{d:?}");
    }

    /// Totals too few for a verdict are remembered, but this process's own lessons count at once,
    /// and another process's (here: another handle on the same database) within `TOTALS_TTL`.
    #[test]
    fn remembered_totals_follow_what_is_learned() {
        let learn_two = |b: &Bayes| {
            b.learn_bytes(None, b"Message-Id: <1@x>\n\nbuy xyzzy\n", Some(Class::Spam))
                .expect("learn");
            b.learn_bytes(None, b"Message-Id: <2@x>\n\nhello\n", Some(Class::Ham))
                .expect("learn");
        };
        let t = Tokens::of(&View::new(b"Subject: s\n\nxyzzy\n"));
        for own in [true, false] {
            let dir = tempfile::tempdir().expect("tempdir");
            let mut home = Home::open(Some(dir.path()), None).expect("home");
            home.config.spam.bayes.min_spam = 1;
            home.config.spam.bayes.min_ham = 1;
            let (here, elsewhere) = (Bayes::open(&home), Bayes::open(&home));
            assert!(here.classify(None, &t).expect("classify").is_none());
            if own {
                learn_two(&here);
            } else {
                learn_two(&elsewhere);
                std::thread::sleep(TOTALS_TTL + Duration::from_millis(50));
            }
            assert!(
                here.classify(None, &t).expect("classify").is_some(),
                "own: {own}"
            );
        }
    }

    /// With the learner thread running, a lesson is queued, not committed, yet the status is the same
    /// and the queue counts as learned: the same message again is "unavailable", a TELL of it as the
    /// same class changes nothing, and stopping the learner leaves the counts in the database.
    #[test]
    fn queued_lessons_count_as_learned() {
        let (dir, home, rs, bayes) = with_learner();
        let _keep = dir;
        let spam = b"Message-Id: <a@b>\nSubject: s\n\nxyzzy\n";
        let ham = b"Message-Id: <c@d>\nSubject: s\n\nhello\n";
        let status = |m: &[u8]| check(&rs, Some(&bayes), None, m).verdict.autolearn;
        assert_eq!(status(spam), Some(AutoLearn::Spam));
        assert_eq!(status(spam), Some(AutoLearn::Unavailable));
        assert_eq!(status(ham), Some(AutoLearn::Ham));
        assert_eq!(status(ham), Some(AutoLearn::Unavailable));
        // TELL commits the queue first: the spam is already learned, the ham moves.
        assert_eq!(
            bayes
                .learn_bytes(None, spam, Some(Class::Spam))
                .expect("tell"),
            Did::Already
        );
        assert_eq!(
            bayes
                .learn_bytes(None, ham, Some(Class::Spam))
                .expect("tell"),
            Did::Relearned
        );
        let third = b"Message-Id: <e@f>\nSubject: s\n\nxyzzy again\n";
        assert_eq!(status(third), Some(AutoLearn::Spam));
        bayes.stop_learner();
        let mut c = crate::store::open(&home.db_path()).expect("db");
        let d = store::dump(&mut c).expect("dump");
        assert_eq!((d[0].nspam, d[0].nham), (3, 0), "{d:?}");
        // Without the learner, auto-learn commits on the spot again.
        let fourth = b"Message-Id: <g@h>\nSubject: s\n\nxyzzy 4\n";
        assert_eq!(status(fourth), Some(AutoLearn::Spam));
        assert_eq!(status(fourth), Some(AutoLearn::Unavailable));
        let d = store::dump(&mut c).expect("dump");
        assert_eq!(d[0].nspam, 4, "{d:?}");
    }

    /// `check_answer_first` says what auto-learn will do and leaves the tokenizing for after the
    /// answer; what ends up learned is what `check` learns, and the message counts as learned from the
    /// moment it was scored.
    #[test]
    fn answer_first_learns_the_same_after_the_answer() {
        let msg = b"Message-Id: <a@b>\nFrom: x@example.com\nSubject: offer\n\nxyzzy buy now\n";
        let big = format!(
            "Message-Id: <big@b>\nSubject: s\n\nxyzzy\n{}",
            "word ".repeat(DEFER_MAX / 5 + 1)
        );
        let learned = |first: bool| {
            let (dir, home, rs, bayes) = with_learner();
            for m in [&msg[..], big.as_bytes()] {
                if first {
                    let c = check_answer_first(&rs, Some(&bayes), None, m);
                    assert_eq!(c.autolearn, AutoLearn::Spam);
                    // Only the small message is left for later; the big one was tokenized at once.
                    assert_eq!(c.lesson.is_some(), m.len() <= DEFER_MAX);
                    let again = check_answer_first(&rs, Some(&bayes), None, m);
                    assert_eq!(again.autolearn, AutoLearn::Unavailable);
                    assert!(again.lesson.is_none());
                    if let Some(r) = c.lesson {
                        bayes.learn_after_answer(r, lessons::Queued::View(Box::new(c.view)));
                    }
                } else {
                    assert_eq!(check(&rs, Some(&bayes), None, m).autolearn, AutoLearn::Spam);
                }
            }
            bayes.stop_learner();
            let mut c = crate::store::open(&home.db_path()).expect("db");
            let d = store::dump(&mut c).expect("dump");
            drop(dir);
            (d[0].nspam, d[0].nham, d[0].ntokens)
        };
        let now = learned(false);
        assert_eq!(now.0, 2);
        assert!(now.2 > 5, "{now:?}");
        assert_eq!(learned(true), now);
    }

    /// Many threads auto-learning the same messages at once: each message is learned once, and
    /// exactly one check of it says so.
    #[test]
    fn concurrent_auto_learn_learns_each_message_once() {
        let (dir, home, rs, bayes) = with_learner();
        let _keep = dir;
        let msgs: Vec<Vec<u8>> = (0..40)
            .map(|i| format!("Message-Id: <m{i}@x>\nSubject: s\n\nxyzzy {i}\n").into_bytes())
            .collect();
        let learned = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for m in &msgs {
                        if check(&rs, Some(&bayes), None, m).autolearn == AutoLearn::Spam {
                            learned.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        bayes.stop_learner();
        assert_eq!(learned.into_inner(), msgs.len());
        let mut c = crate::store::open(&home.db_path()).expect("db");
        let d = store::dump(&mut c).expect("dump");
        assert_eq!(d[0].nspam, msgs.len() as u64, "{d:?}");
    }

    /// The tokens (and signature) of a message with procmail's mbox `From ` line, scored as it came,
    /// are those of the message without the line, which is what `learn` sees.
    #[test]
    fn from_line_leaves_the_tokens_alone() {
        let body = "Received: from mx.example.org (mx.example.org [192.0.2.7]) by h; Mon, 30 Sep 2002 12:00:00 +0000\n\
            Message-Id: <x@y>\nFrom: A <a@example.org>\nSubject: cheap pills\n\
            MIME-Version: 1.0\nContent-Type: multipart/alternative; boundary=b\n\n\
            --b\nContent-Type: text/plain\n\nbuy now http://example.com/x\n\
            --b\nContent-Type: text/html\n\n<p>buy <a href=http://example.net/>now</a></p>\n--b--\n";
        for from in [
            "From a@example.org Mon Sep 30 12:00:00 2002\n",
            "From a@example.org  Mon Sep 30 12:00:00 2002\r\n",
            "From MAILER-DAEMON\n",
            "From :\n",
        ] {
            for msg in [body.to_string(), body.replace('\n', "\r\n")] {
                let with = format!("{from}{msg}");
                let a = Tokens::of(&View::new(with.as_bytes()));
                let b = Tokens::of(&View::new(learn::strip_from_line(with.as_bytes())));
                assert_eq!(a.tokens, b.tokens, "{from:?}");
                assert_eq!(a.sig, b.sig, "{from:?}");
                let mut h = tokenizer::token_hashes(&View::new(with.as_bytes()));
                let mut bh = b.hashes.clone();
                h.sort_unstable();
                bh.sort_unstable();
                assert_eq!(h, bh);
            }
        }
    }
}
