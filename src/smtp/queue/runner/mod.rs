//! The queue runner: picks due rows, groups them by destination (one domain or the smarthost, or local
//! delivery), and keeps up to `[relay] connections` workers per destination. A worker holds one SMTP
//! connection and sends message after message over it, pipelined (connection reuse), so a list fan-out
//! to many recipients at one domain flows without a handshake per message.
//!
//! Retries back off exponentially with ±20% jitter; a destination that refused connections is remembered
//! for `down_secs` (the failure cache) so its backlog is deferred without hammering it. A row that has
//! been failing for longer than `expire_hours`, or fails permanently, is bounced (RFC 3464) to its sender
//! unless the sender is null, and only after the bounce is safely queued is the row deleted.

mod deliver;
mod failure;
mod remote;

use super::dsn;
use super::store::{self, DueRow};
use super::{now_ms, Kind, NewMessage, Queue, RowResult};
use crate::message::log;
use crate::smtp::client::{Client, Outcome, Transaction};
use crate::smtp::config::{RelayConfig, SmtpConfig};
use crate::smtp::local::{self, Delivered};
use crate::smtp::mx::{self, RouteError};
use crate::smtp::route::Routes;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The settings the runner needs, copied out of the config at start-up.
#[derive(Debug, Clone)]
pub struct Settings {
    pub hostname: String,
    pub helo: String,
    pub smarthost: Option<String>,
    pub routes: HashMap<String, String>,
    pub port: u16,
    pub expire_ms: i64,
    pub retry_ms: f64,
    pub retry_max_ms: f64,
    pub down_ms: i64,
    pub connections: usize,
    pub max_workers: usize,
    pub per_connection: usize,
    pub pipe_user: String,
    /// The data directory, passed to pipes as CORREO_HOME so `correo mail post` finds it.
    pub home: std::path::PathBuf,
    pub local_delivery: String,
    pub mailbox_dir: std::path::PathBuf,
    pub deliver_command: String,
    /// STARTTLS and AUTH for the smarthost, STARTTLS for MX hosts.
    pub smarthost_opts: crate::smtp::client::Options,
    pub mx_tls: crate::smtp::client::TlsPolicy,
}

impl Settings {
    /// Copies the settings out of the config; fails on a bad TLS policy or an unreadable password file.
    pub fn new(
        hostname: &str,
        home: &std::path::Path,
        smtp: &SmtpConfig,
        relay: &RelayConfig,
    ) -> Result<Settings, String> {
        let pipe_user = match &smtp.pipe_user {
            Some(u) => u.clone(),
            None => {
                use std::os::unix::fs::MetadataExt;
                let uid = std::fs::metadata(home)
                    .map(|m| m.uid())
                    .map_err(|e| format!("{}: {e}", home.display()))?;
                local::user_name(uid).ok_or_else(|| {
                    format!(
                        "{}: owner uid {uid} has no user name; set [smtp] pipe_user",
                        home.display()
                    )
                })?
            }
        };
        let auth = match (&relay.smarthost_user, &relay.smarthost_password_file) {
            (Some(u), Some(p)) => {
                let pw = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
                Some((u.clone(), pw.trim_end_matches(['\r', '\n']).to_string()))
            }
            (None, None) => None,
            _ => {
                return Err("[relay] smarthost_user and smarthost_password_file go together".into())
            }
        };
        let smarthost_tls = crate::smtp::config::tls_policy("smarthost_tls", &relay.smarthost_tls)?;
        if auth.is_some() && smarthost_tls == crate::smtp::client::TlsPolicy::Never {
            return Err("[relay] smarthost AUTH needs smarthost_tls (a password is never sent in the clear)".into());
        }
        let smarthost_opts = crate::smtp::client::Options {
            tls: smarthost_tls,
            server_name: None,
            auth,
        };
        let mx_tls = crate::smtp::config::tls_policy("mx_tls", &relay.mx_tls)?;
        Ok(Settings {
            smarthost_opts,
            mx_tls,
            hostname: hostname.to_string(),
            helo: relay.helo.clone().unwrap_or_else(|| hostname.to_string()),
            smarthost: relay.smarthost.clone(),
            routes: relay
                .routes
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
                .collect(),
            port: relay.port,
            expire_ms: (relay.expire_hours * 3_600_000.0) as i64,
            retry_ms: relay.retry_secs * 1000.0,
            retry_max_ms: relay.retry_max_secs * 1000.0,
            down_ms: (relay.down_secs * 1000.0) as i64,
            connections: relay.connections.max(1),
            max_workers: relay.max_workers.max(1),
            per_connection: relay.per_connection.max(1),
            pipe_user,
            home: home.to_path_buf(),
            local_delivery: smtp.local_delivery.clone(),
            mailbox_dir: smtp.mailbox_dir.clone(),
            deliver_command: smtp.deliver_command.clone(),
        })
    }
}

/// Rows of one message to one destination with one envelope sender: one SMTP transaction.
#[derive(Debug, Clone)]
struct Job {
    msg: String,
    sender: String,
    created: i64,
    /// The message's queue flags (SMTPUTF8, 8BITMIME).
    flags: i64,
    rows: Vec<DueRow>,
}

#[derive(Default)]
struct Dest {
    jobs: VecDeque<Job>,
    workers: usize,
}

pub struct Runner {
    queue: Queue,
    router: Arc<Routes>,
    s: Settings,
    resolver: Option<hickory_resolver::TokioResolver>,
    rt: tokio::runtime::Handle,
    inflight: Mutex<InFlight>,
    dests: Mutex<HashMap<String, Dest>>,
    /// Delivery threads running, across all destinations.
    workers: AtomicUsize,
    /// Set on SIGTERM: no new deliveries start; running ones finish and commit.
    stopping: std::sync::atomic::AtomicBool,
    /// The failure cache: destination → (until ms, why).
    down: Mutex<HashMap<String, (i64, String)>>,
}

/// The rows handed to workers. A worker's rows come back only at the scheduler's next scan (`reclaim`,
/// just before it reads the queue), never the moment the worker is done: a scan that was already reading
/// when the worker committed has a snapshot from before that commit, and would hand the rows out again.
/// That is a duplicate, or worse: SQLite gives a deleted row's id to the next new row, so the stale job
/// (its body gone, see `Ok(None)` in remote.rs) marked another message's recipients done, unsent.
#[derive(Debug, Default)]
struct InFlight {
    held: HashSet<i64>,
    /// Rows whose results are committed, held until the next `reclaim`.
    finished: Vec<i64>,
}

impl InFlight {
    /// Keeps the rows no worker holds, and holds them.
    fn claim(&mut self, rows: Vec<DueRow>) -> Vec<DueRow> {
        rows.into_iter()
            .filter(|r| self.held.insert(r.row))
            .collect()
    }

    /// The results of these rows are committed (or failed to commit; the rows are then as they were).
    fn finish(&mut self, rows: impl IntoIterator<Item = i64>) {
        self.finished.extend(rows);
    }

    /// Lets finished rows be claimed again. Call before the scan reads, never between read and claim.
    fn reclaim(&mut self) {
        for row in self.finished.drain(..) {
            self.held.remove(&row);
        }
    }
}

/// RFC 5321 §4.5.3.1.8: 100 recipients per transaction is what every server must take.
const RCPTS_PER_TX: usize = 100;
/// Transactions written before reading replies (bounded so a failure costs little to retry).
const PIPELINE_BATCH: usize = 32;
const LOCAL: &str = "\u{0}local";

impl Runner {
    pub fn new(
        queue: Queue,
        router: Arc<Routes>,
        s: Settings,
        resolver: Option<hickory_resolver::TokioResolver>,
    ) -> Arc<Runner> {
        Arc::new(Runner {
            queue,
            router,
            s,
            resolver,
            rt: tokio::runtime::Handle::current(),
            inflight: Mutex::new(InFlight::default()),
            dests: Mutex::new(HashMap::new()),
            down: Mutex::new(HashMap::new()),
            workers: AtomicUsize::new(0),
            stopping: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Stops starting deliveries; those under way (a pipe, an SMTP batch) finish and commit their result,
    /// so a restart does not run a list's pipe a second time. Queued-but-unstarted work stays queued.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
    }

    /// Delivery threads still running.
    pub fn active(&self) -> usize {
        self.workers.load(Ordering::SeqCst)
    }

    /// The scheduler loop: runs until the process ends.
    pub async fn run(self: Arc<Self>) {
        let conn = match crate::store::open(&self.queue.db_path) {
            Ok(c) => Arc::new(Mutex::new(c)),
            Err(e) => {
                eprintln!("correo: queue runner cannot open the database: {e}");
                return;
            }
        };
        loop {
            if self.stopping.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            self.inflight
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .reclaim();
            let c = conn.clone();
            let rows = tokio::task::spawn_blocking(move || {
                let c = c.lock().unwrap_or_else(|p| p.into_inner());
                store::due(&c, now_ms(), 20_000)
            })
            .await;
            let mut busy = false;
            self.top_up();
            match rows {
                Ok(Ok(rows)) => busy = self.dispatch(rows) > 0,
                Ok(Err(e)) => {
                    log::event("queue", "runner", &[("status", "error"), ("error", &e.msg)])
                }
                Err(_) => {}
            }
            let wait = if busy {
                Duration::from_millis(200)
            } else {
                Duration::from_secs(1)
            };
            tokio::select! {
                _ = self.queue.notify.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    fn dest_key(&self, row: &DueRow) -> String {
        if row.kind != Kind::Smtp {
            return LOCAL.to_string();
        }
        if self.s.smarthost.is_some() {
            return "[smarthost]".to_string();
        }
        row.target
            .rsplit_once('@')
            .map(|(_, d)| d.to_ascii_lowercase())
            .unwrap_or_default()
    }

    /// Hands due rows that are not already being worked on to their destinations; returns how many.
    fn dispatch(self: &Arc<Self>, rows: Vec<DueRow>) -> usize {
        let fresh = self
            .inflight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .claim(rows);
        let n = fresh.len();
        if n == 0 {
            return 0;
        }
        // Group: destination → (msg, sender) → rows, keeping queue order.
        let mut by_dest: HashMap<String, Vec<Job>> = HashMap::new();
        let mut index: HashMap<(String, String, String), usize> = HashMap::new();
        for r in fresh {
            let key = self.dest_key(&r);
            let jobs = by_dest.entry(key.clone()).or_default();
            let k = (key, r.msg.clone(), r.sender.clone());
            match index.get(&k) {
                Some(&i) if jobs[i].rows.len() < RCPTS_PER_TX && r.kind == Kind::Smtp => {
                    jobs[i].rows.push(r)
                }
                _ => {
                    index.insert(k, jobs.len());
                    jobs.push(Job {
                        msg: r.msg.clone(),
                        sender: r.sender.clone(),
                        created: r.created,
                        flags: r.flags,
                        rows: vec![r],
                    });
                }
            }
        }
        let now = now_ms();
        for (key, jobs) in by_dest {
            let down = self
                .down
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&key)
                .cloned();
            if let Some((until, why)) = down.filter(|(until, _)| *until > now) {
                let mut results = Vec::new();
                for j in &jobs {
                    self.temp_fail_job(j, &why, Some(until), &mut results);
                }
                self.finish(&jobs, results);
                continue;
            }
            let mut dests = self.dests.lock().unwrap_or_else(|p| p.into_inner());
            dests.entry(key.clone()).or_default().jobs.extend(jobs);
        }
        self.top_up();
        n
    }

    /// Starts workers where jobs wait: up to `connections` per destination (one per 4 jobs) and
    /// `max_workers` in all. Workers are plain threads, not tokio's blocking pool, so slow remote hosts
    /// can never starve the sessions' queue writes of threads.
    fn top_up(self: &Arc<Self>) {
        let mut start = Vec::new();
        {
            let mut dests = self.dests.lock().unwrap_or_else(|p| p.into_inner());
            let mut total = self.workers.load(Ordering::SeqCst);
            for (key, d) in dests.iter_mut() {
                if d.jobs.is_empty() {
                    continue;
                }
                let want = self.s.connections.min(d.jobs.len().div_ceil(4).max(1));
                let extra = want
                    .saturating_sub(d.workers)
                    .min(self.s.max_workers.saturating_sub(total));
                d.workers += extra;
                total += extra;
                for _ in 0..extra {
                    start.push(key.clone());
                }
            }
            self.workers.store(total, Ordering::SeqCst);
        }
        for key in start {
            let me = self.clone();
            let k = key.clone();
            let spawned = std::thread::Builder::new()
                .name("queue-worker".into())
                .spawn(move || me.work(&k));
            if spawned.is_err() {
                // Out of threads: give the slot back (or a stop would wait for a worker that never
                // ran); the next top-up tries again.
                {
                    let mut dests = self.dests.lock().unwrap_or_else(|p| p.into_inner());
                    if let Some(d) = dests.get_mut(&key) {
                        d.workers = d.workers.saturating_sub(1);
                    }
                    self.workers.fetch_sub(1, Ordering::SeqCst);
                }
                log::event(
                    "queue",
                    "runner",
                    &[
                        ("status", "error"),
                        ("error", "cannot start a delivery thread"),
                    ],
                );
            }
        }
    }

    /// Reads a queued message through this thread's own read connection (WAL readers never block the
    /// writer). Ok(None) when the message is gone; Err (retry later) when the database cannot be read.
    fn body(&self, id: &str) -> Result<Option<Vec<u8>>, String> {
        thread_local! {
            static CONN: std::cell::RefCell<Option<(std::path::PathBuf, rusqlite::Connection)>> = const { std::cell::RefCell::new(None) };
        }
        CONN.with(|c| {
            let mut c = c.borrow_mut();
            if c.as_ref().is_none_or(|(p, _)| p != &self.queue.db_path) {
                let conn = crate::store::open(&self.queue.db_path)
                    .map_err(|e| format!("4.3.0 queue: {}", e.msg))?;
                *c = Some((self.queue.db_path.clone(), conn));
            }
            let Some((_, conn)) = c.as_ref() else {
                return Err("4.3.0 queue: no connection".into());
            };
            store::body(conn, id).map_err(|e| format!("4.3.0 queue: {}", e.msg))
        })
    }

    /// Takes up to `n` jobs; when there are none, retires the worker (under the same lock, so a job
    /// added concurrently always finds a worker).
    fn take(&self, key: &str, n: usize) -> Vec<Job> {
        let mut dests = self.dests.lock().unwrap_or_else(|p| p.into_inner());
        let Some(d) = dests.get_mut(key) else {
            return vec![];
        };
        let k = if self.stopping.load(Ordering::SeqCst) {
            0
        } else {
            n.min(d.jobs.len())
        };
        let out: Vec<Job> = d.jobs.drain(..k).collect();
        if out.is_empty() {
            d.workers = d.workers.saturating_sub(1);
            self.workers.fetch_sub(1, Ordering::SeqCst);
        }
        out
    }

    fn work(self: Arc<Self>, key: &str) {
        if key == LOCAL {
            loop {
                let jobs = self.take(key, 1);
                if jobs.is_empty() {
                    return;
                }
                for j in jobs {
                    self.deliver_local(&j);
                }
            }
        }
        loop {
            // Connect only when there is work, and go back for more after each connection.
            let first = self.take(key, PIPELINE_BATCH);
            if first.is_empty() {
                return;
            }
            self.smtp_session(key, first);
        }
    }

    /// Like `take` but never retires the worker (the caller still holds a connection and loops back).
    fn take_more(&self, key: &str) -> Vec<Job> {
        let mut dests = self.dests.lock().unwrap_or_else(|p| p.into_inner());
        let Some(d) = dests.get_mut(key) else {
            return vec![];
        };
        let k = if self.stopping.load(Ordering::SeqCst) {
            0
        } else {
            PIPELINE_BATCH.min(d.jobs.len())
        };
        d.jobs.drain(..k).collect()
    }

    fn drain(&self, key: &str) -> Vec<Job> {
        let mut dests = self.dests.lock().unwrap_or_else(|p| p.into_inner());
        dests
            .get_mut(key)
            .map(|d| d.jobs.drain(..).collect())
            .unwrap_or_default()
    }

    /// Waits for commits started with `record_start`, then releases the rows.
    fn settle(
        &self,
        jobs: &[Job],
        commits: Vec<std::sync::mpsc::Receiver<crate::message::error::Result<Vec<String>>>>,
    ) {
        let mut failed = false;
        for c in commits {
            match c.recv() {
                Ok(Ok(finished)) => {
                    for id in &finished {
                        log::event("queue", id, &[("status", "removed")]);
                    }
                }
                Ok(Err(e)) => {
                    failed = true;
                    log::event("queue", "runner", &[("status", "error"), ("error", &e.msg)]);
                }
                Err(_) => failed = true,
            }
        }
        if failed {
            // The rows stay in the database as they were; they will be retried.
            std::thread::sleep(Duration::from_millis(500));
        }
        self.release(jobs);
    }

    fn release(&self, jobs: &[Job]) {
        self.inflight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .finish(jobs.iter().flat_map(|j| j.rows.iter().map(|r| r.row)));
    }

    /// Commits results, then releases the rows (only after the commit, or the scheduler could hand a
    /// just-delivered row out again).
    fn finish(&self, jobs: &[Job], results: Vec<RowResult>) {
        let r = self.queue.record(results);
        if let Err(e) = &r {
            log::event("queue", "runner", &[("status", "error"), ("error", &e.msg)]);
            // The rows stay in the database as they were; they will be retried.
            std::thread::sleep(Duration::from_millis(500));
        }
        if let Ok(finished) = &r {
            for id in finished {
                log::event("queue", id, &[("status", "removed")]);
            }
        }
        self.release(jobs);
    }
}

/// RFC 5321 §4.4: the delivering MTA adds Return-Path with the envelope sender.
fn with_return_path(data: &[u8], sender: &str) -> Vec<u8> {
    let mut v = format!("Return-Path: <{sender}>\r\n").into_bytes();
    v.extend_from_slice(data);
    v
}

/// One Postfix-style maillog line per delivery attempt.
fn log_delivery(id: &str, r: &DueRow, relay: &str, delay: &str, status: &str, text: &str) {
    let dsn = text
        .split_whitespace()
        .find(|w| w.len() == 5 && w.as_bytes()[1] == b'.' && w.as_bytes()[3] == b'.')
        .unwrap_or(if status == "sent" {
            "2.0.0"
        } else if status == "deferred" {
            "4.0.0"
        } else {
            "5.0.0"
        });
    let to = format!("<{}>", r.target);
    let orig = format!("<{}>", r.orig);
    let mut fields: Vec<(&str, &str)> = vec![("to", &to)];
    if r.kind != Kind::Smtp || r.orig != r.target {
        fields.push(("orig_to", &orig));
    }
    let st = format!("{status} ({text})");
    fields.extend([
        ("relay", relay),
        ("delay", delay),
        ("dsn", dsn),
        ("status", st.as_str()),
    ]);
    log::event(
        if r.kind == Kind::Smtp {
            "smtp"
        } else {
            "local"
        },
        id,
        &fields,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: i64) -> DueRow {
        DueRow {
            row: id,
            msg: format!("m{id}"),
            orig: "b@far.example.net".into(),
            kind: Kind::Smtp,
            target: "b@far.example.net".into(),
            sender: "a@example.org".into(),
            attempts: 0,
            next_at: 0,
            created: 0,
            last_error: None,
            flags: 0,
        }
    }

    fn ids(rows: Vec<DueRow>) -> Vec<i64> {
        rows.iter().map(|r| r.row).collect()
    }

    /// The message lost in `smtp_source_load_with_many_recipients`: a scan read the queue, then a worker
    /// committed the same rows and let them go; that scan must not hand them out a second time.
    #[test]
    fn rows_finished_while_a_scan_reads_are_not_handed_out_by_it() {
        let mut f = InFlight::default();
        assert_eq!(ids(f.claim(vec![row(1), row(2)])), [1, 2]);
        f.reclaim();
        let snapshot = vec![row(1), row(2), row(3)];
        f.finish([1, 2]);
        assert_eq!(ids(f.claim(snapshot)), [3]);
        // The next scan reads after the commit: a row there with id 1 is a new one (SQLite reuses ids).
        f.reclaim();
        assert_eq!(ids(f.claim(vec![row(1)])), [1]);
        assert!(f.claim(vec![row(1), row(3)]).is_empty());
    }
}
