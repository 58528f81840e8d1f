//! Auto-learn off the scoring path. In the daemon, a scored message that auto-learn picks becomes a
//! lesson in a queue; one learner thread commits the queue in one transaction every `BATCH` lessons or
//! `WAIT` after the first, instead of the scoring thread committing hundreds of token upserts per
//! message behind the database lock. Where the reply shows the `autolearn=` status (PROCESS and HEADERS
//! write it into X-Spam-Status), the scorer decides it before answering, checking the lessons still
//! queued as well as the database, so a message queued but not yet committed is "already learned" to
//! everyone, and nothing is learned twice. Where it does not (CHECK, SYMBOLS, REPORT), the lesson goes
//! unchecked (`Lesson::then`): the learner takes its signature, checks the queue and the database
//! itself, and then says what became of it, so a scored message costs the scoring thread no database
//! read. TELL, SIGHUP and shutdown commit what is queued first (`Bayes::flush_lessons`).
//!
//! Lock order: `Queue::m` before the read connection (the already-learned check); the write connection
//! before `Queue::m` (committing). The two connections are never held together.

use super::store::Class;
use std::collections::HashSet;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Lessons per transaction at most. Committing a batch shares its common tokens' upserts and B-tree
/// page writes: learning 400 corpus messages into a database of 1,000 took 1.9 ms of CPU per message
/// one transaction each, 0.4 ms in batches of 16, 0.15 ms of 64, 0.10 ms of 128, 0.075 ms of 400. Past
/// 128 the gain is small and the commit holds the write lock (and a TELL waiting on it) longer.
pub const BATCH: usize = 128;
/// How long the first lesson of a batch waits for company before it is committed anyway: at most this
/// long, `learn --dump` and Bayes' own counts lag behind the scorer. A lone spamc client at ~150
/// messages/s, about half of them auto-learned, fills ~40 lessons in that time.
pub const WAIT: Duration = Duration::from_millis(500);

/// Lessons queued at most. A learner that falls behind (a machine busy scoring, a slow disk) must not
/// let the queue, and the messages it holds, grow without bound: past this many, whoever makes a
/// lesson commits it itself, which slows that client instead.
pub const MAX_QUEUED: usize = 8 * BATCH;

/// One message to learn: who for (the database user), what, as which class.
pub struct Lesson {
    pub user: String,
    pub sig: String,
    /// The token hashes; empty while `message` still holds the message to take them from.
    pub hashes: Vec<i64>,
    /// The message itself, when scoring did not tokenize it (Bayes not yet in use): the daemon queues
    /// it as it is, and it is tokenized on the learner thread after the client has its answer, instead
    /// of the client waiting ~0.1 ms for it.
    pub message: Option<Queued>,
    pub class: Class,
    /// Set on a lesson nobody checked yet (`Bayes::learn_deferred`): `sig` may still be empty, the
    /// learner reserves it and checks the database, and this hears what came of it (learned, learned
    /// before, failed).
    pub then: Option<Then>,
}

/// What to do once an unchecked lesson's fate is known (the daemon writes its maillog line).
pub type Then = Box<dyn FnOnce(super::AutoLearn) + Send>;

impl Lesson {
    /// The queued message as a view, parsing queued bytes (once) on first use; None when the lesson
    /// holds only hashes.
    pub fn view(&mut self) -> Option<&super::View> {
        if matches!(self.message, Some(Queued::Bytes(_))) {
            self.message = self.message.take().map(|q| Queued::View(q.into_view()));
        }
        match &self.message {
            Some(Queued::View(v)) => Some(v),
            _ => None,
        }
    }

    /// The token hashes, tokenizing the queued message on first use.
    pub fn hashes(&mut self) -> &[i64] {
        if let Some(q) = self.message.take() {
            self.hashes = super::tokenizer::token_hashes(&q.into_view());
        }
        &self.hashes
    }
}

/// A message waiting in a lesson: its view, or only its bytes, which the learner thread parses. The
/// daemon's scoring threads queue bytes, copied off their huge-page heap (`crate::hugeheap`), and free
/// the view themselves: a view freed on the learner thread returned its huge-heap blocks to the
/// scoring thread only late, and that heap kept growing into fresh huge pages, several ms each on this
/// VM (bench/RESULTS.md, stop 34).
pub enum Queued {
    View(Box<super::View>),
    Bytes(Vec<u8>),
}

impl Queued {
    pub fn into_view(self) -> Box<super::View> {
        match self {
            Queued::View(v) => v,
            Queued::Bytes(b) => Box::new(super::View::from_vec(b)),
        }
    }
}

#[derive(Default)]
pub struct Pending {
    /// Lessons not yet taken by a commit, oldest first.
    pub queue: Vec<Lesson>,
    /// (user, signature) of every lesson queued, being committed, or being prepared: the
    /// already-learned check looks here before the database.
    pub sigs: HashSet<(String, String)>,
    /// A learner thread takes the queue; without one, lessons are committed by whoever makes them.
    pub running: bool,
    pub stop: bool,
}

#[derive(Default)]
pub struct Queue {
    m: Mutex<Pending>,
    cv: Condvar,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Queue {
    pub fn lock(&self) -> MutexGuard<'_, Pending> {
        // Nothing runs under this lock that could leave `Pending` half changed.
        self.m.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a lesson whose signature the caller reserved in `sigs`, or an unchecked one (`then`).
    /// Gives it back when no learner runs (any more) or `MAX_QUEUED` wait already: the caller commits
    /// it itself.
    pub fn push(&self, l: Lesson) -> std::result::Result<(), Lesson> {
        let mut g = self.lock();
        if !g.running || g.queue.len() >= MAX_QUEUED {
            return Err(l);
        }
        g.queue.push(l);
        if g.queue.len() == 1 || g.queue.len() >= BATCH {
            self.cv.notify_one();
        }
        Ok(())
    }

    /// Takes the queued lessons for a commit; their signatures stay in `sigs` until `done`.
    pub fn take(&self) -> Vec<Lesson> {
        std::mem::take(&mut self.lock().queue)
    }

    /// A commit of these lessons ended (the database now answers for them, or they failed).
    pub fn done(&self, batch: &[Lesson]) {
        if batch.is_empty() {
            return;
        }
        let mut g = self.lock();
        for l in batch {
            g.sigs.remove(&(l.user.clone(), l.sig.clone()));
        }
    }

    /// Waits until a batch is due: `BATCH` lessons, `WAIT` after the first, or a stop. False when
    /// stopping with nothing queued.
    pub fn wait_batch(&self) -> bool {
        let mut g = self.lock();
        while g.queue.is_empty() {
            if g.stop {
                return false;
            }
            g = self.cv.wait(g).unwrap_or_else(|p| p.into_inner());
        }
        let deadline = Instant::now() + WAIT;
        while g.queue.len() < BATCH && !g.stop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            g = self
                .cv
                .wait_timeout(g, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        true
    }

    /// Runs `learner` (a loop over `wait_batch`) on its own thread, taking lessons from now on.
    pub fn start(&self, learner: impl FnOnce() + Send + 'static) -> std::io::Result<()> {
        let mut t = self.thread.lock().unwrap_or_else(|p| p.into_inner());
        if t.is_some() {
            return Ok(());
        }
        {
            let mut g = self.lock();
            g.running = true;
            g.stop = false;
        }
        match std::thread::Builder::new()
            .name("spam-learn".into())
            .spawn(learner)
        {
            Ok(h) => {
                *t = Some(h);
                Ok(())
            }
            Err(e) => {
                self.lock().running = false;
                Err(e)
            }
        }
    }

    /// Stops taking lessons and waits for the learner thread to commit what is queued and exit.
    pub fn stop(&self) {
        let h = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        {
            let mut g = self.lock();
            g.running = false;
            g.stop = true;
        }
        self.cv.notify_all();
        if let Some(h) = h {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A full queue gives a lesson back (its maker commits it), and takes lessons again once drained.
    #[test]
    fn a_full_queue_gives_lessons_back() {
        let q = Queue::default();
        q.lock().running = true;
        let lesson = || Lesson {
            user: String::new(),
            sig: String::new(),
            hashes: vec![1],
            message: None,
            class: Class::Ham,
            then: None,
        };
        for _ in 0..MAX_QUEUED {
            assert!(q.push(lesson()).is_ok());
        }
        assert!(q.push(lesson()).is_err());
        assert_eq!(q.take().len(), MAX_QUEUED);
        assert!(q.push(lesson()).is_ok());
    }

    /// A lesson queued as bytes (the daemon's way) learns the same tokens as one queued as the view.
    #[test]
    fn bytes_and_view_teach_the_same_tokens() {
        let msg = b"Received: from a\nMessage-Id: <q@x>\nSubject: cheap pills\n\nBuy now, limited offer.\n";
        let lesson = |message| Lesson {
            user: String::new(),
            sig: String::new(),
            hashes: Vec::new(),
            message: Some(message),
            class: Class::Spam,
            then: None,
        };
        let mut a = lesson(Queued::Bytes(msg.to_vec()));
        let mut b = lesson(Queued::View(Box::new(super::super::View::new(msg))));
        // The same set (the tokenizer's order follows a hash set's).
        let sorted = |l: &mut Lesson| {
            let mut h = l.hashes().to_vec();
            h.sort_unstable();
            h
        };
        let (ha, hb) = (sorted(&mut a), sorted(&mut b));
        assert!(!ha.is_empty());
        assert_eq!(ha, hb);
        assert!(a.message.is_none() && b.message.is_none());
    }
}
