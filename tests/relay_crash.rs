//! SIGKILL in the middle of a load: every message that got a 250 is delivered after a restart, and none
//! twice. Phase A kills the server while the smarthost is down (so only the acceptance path is in play):
//! exactly once is asserted. Phase B kills it while it is also delivering: every acknowledged message
//! must arrive; a message whose final dot was on the wire when the kill came, its 250 not yet read, can
//! arrive twice (the window RFC 1047 describes; at most one per connection), and the test prints how
//! many did. The rest of that window, a 250 read but not yet committed, is closed by the delivered
//! journal: `sigkill_between_the_sinks_250_and_the_commit_does_not_resend` lands a kill exactly there.
//! The full 10,000-message version is bench/relay-soak.sh.

#[path = "relay/common.rs"]
mod common;

use common::{free_port, peer, Server, Sink};
use correo::smtp::client::{Client, Transaction};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const CLIENTS: usize = 8;

/// 1,500 in CI; bench/relay-soak.sh sets CORREO_SOAK_MESSAGES=10000.
fn messages() -> usize {
    std::env::var("CORREO_SOAK_MESSAGES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1500)
}

fn message(seq: usize) -> Vec<u8> {
    let mut m = format!("From: load@example.org\r\nTo: sink@far.example.net\r\nSubject: load {seq}\r\nX-Seq: <{seq}>\r\n\r\n").into_bytes();
    for i in 0..16 {
        m.extend_from_slice(
            format!("line {i} of message {seq}: the quick brown fox jumps over the lazy dog\r\n")
                .as_bytes(),
        );
    }
    m
}

/// Sends until the server dies or MESSAGES were tried; kills it after `kill_at` acknowledgements.
fn load(server: &mut Server, kill_at: usize) -> BTreeSet<usize> {
    let acked = Arc::new(Mutex::new(BTreeSet::new()));
    let next = Arc::new(AtomicUsize::new(0));
    let port = server.port;
    let pid = server.child.as_ref().unwrap().id() as i32;
    let killed = Arc::new(AtomicUsize::new(0));
    let mut threads = Vec::new();
    for _ in 0..CLIENTS {
        let (acked, next, killed) = (acked.clone(), next.clone(), killed.clone());
        threads.push(std::thread::spawn(move || {
            let Ok(mut c) = Client::connect(&format!("127.0.0.1:{port}"), "load.test") else {
                return;
            };
            loop {
                let seq = next.fetch_add(1, Ordering::SeqCst);
                if seq >= messages() {
                    break;
                }
                let data = message(seq);
                let tx = Transaction {
                    from: "load@example.org".into(),
                    rcpts: vec![format!("sink{}@far.example.net", seq % 3)],
                    data: &data,
                    smtputf8: false,
                    body8bit: false,
                };
                let out = c.send_all(std::slice::from_ref(&tx));
                if !out[0][0].is_accepted() {
                    break;
                }
                let n = {
                    let mut a = acked.lock().unwrap();
                    a.insert(seq);
                    a.len()
                };
                if n == kill_at && killed.fetch_add(1, Ordering::SeqCst) == 0 {
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
        }));
    }
    for t in threads {
        let _ = t.join();
    }
    server.kill9();
    let a = acked.lock().unwrap().clone();
    a
}

fn delivered(sink: &Sink) -> BTreeMap<usize, usize> {
    let mut counts = BTreeMap::new();
    for m in sink.messages() {
        for part in m.split("X-Seq: <").skip(1) {
            if let Some(n) = part.split('>').next().and_then(|s| s.parse::<usize>().ok()) {
                *counts.entry(n).or_insert(0) += 1;
            }
        }
    }
    counts
}

fn config(sink_port: u16) -> String {
    format!("domains = [\"example.org\"]\n[relay]\nsmarthost = \"127.0.0.1:{sink_port}\"\nretry_secs = 0.2\nretry_max_secs = 0.5\ndown_secs = 0.2\n")
}

fn wait_delivered(sink: &Sink, acked: &BTreeSet<usize>, server: &Server) -> BTreeMap<usize, usize> {
    let start = std::time::Instant::now();
    loop {
        let d = delivered(sink);
        if acked.iter().all(|s| d.contains_key(s)) && server.wait_empty(Duration::from_millis(10)) {
            return d;
        }
        if start.elapsed() > Duration::from_secs(60) {
            let missing: Vec<_> = acked
                .iter()
                .filter(|s| !d.contains_key(s))
                .take(20)
                .collect();
            let log = server.maillog();
            let events: Vec<&str> = log
                .lines()
                .filter(|l| !l.contains("status=sent") && !l.contains("status=queued"))
                .filter(|l| !l.contains("status=removed") && !l.contains("correo/smtpd"))
                .take(40)
                .collect();
            panic!(
                "acknowledged but not delivered: {missing:?} ({} of {}); log events:\n{}",
                acked.len() - acked.iter().filter(|s| d.contains_key(s)).count(),
                acked.len(),
                events.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn sigkill_while_accepting_loses_nothing_and_duplicates_nothing() {
    if !peer("smtp-sink") {
        return;
    }
    let sink_port = free_port();
    let mut server = Server::start(&config(sink_port));
    let acked = load(&mut server, messages() / 2);
    assert!(
        acked.len() >= messages() / 2 && acked.len() < messages(),
        "kill did not land mid-load: {} acked",
        acked.len()
    );
    let sink = Sink::start_on(sink_port, &[]);
    server.spawn();
    let d = wait_delivered(&sink, &acked, &server);
    let twice: Vec<_> = d.iter().filter(|(_, &n)| n > 1).collect();
    assert!(twice.is_empty(), "delivered twice: {twice:?}");
    eprintln!("phase A: {} acknowledged before SIGKILL, all delivered once; {} unacknowledged also delivered", acked.len(), d.len() - acked.len());
}

#[test]
fn sigkill_while_delivering_loses_nothing() {
    if !peer("smtp-sink") {
        return;
    }
    let sink = Sink::start(&[]);
    let mut server = Server::start(&config(sink.port));
    let acked = load(&mut server, messages() / 2);
    let before = delivered(&sink).len();
    server.spawn();
    let d = wait_delivered(&sink, &acked, &server);
    let twice = d.values().filter(|&&n| n > 1).count();
    // Rows the delivered journal kept from being sent again (the commit had not happened yet).
    let log = server.maillog();
    let replayed = log
        .lines()
        .find(|l| l.contains("status=replayed"))
        .and_then(|l| l.split("rows=").nth(1))
        .and_then(|r| r.split(',').next())
        .unwrap_or("0");
    eprintln!("phase B: {} acknowledged, {before} delivered before SIGKILL, all delivered after restart; {twice} delivered twice; {replayed} saved by the journal", acked.len());
    // The courier outlives the killed server: it reads the replies to the dots already on the wire
    // and records them before it exits, so nothing the sink acknowledged is sent again (src/smtp/courier.rs).
    assert_eq!(twice, 0, "{twice} duplicates");
}

/// Sends one message with swaks (1 recipient per `rcpts` entry); true on 250.
fn swaks_send(port: u16, rcpts: &str, seq: usize) -> bool {
    let data = String::from_utf8(message(seq)).unwrap();
    let o = std::process::Command::new("swaks")
        .args(["--server", &format!("127.0.0.1:{port}")])
        .args(["--from", "load@example.org", "--to", rcpts])
        .args(["--data", &data])
        .output()
        .unwrap();
    o.status.success()
}

/// The delivered journal, deterministically: `CORREO_FAULT=journal-kill` makes the courier SIGKILL itself
/// right after it appended the sink's 250 to the journal and before the SQLite commit, i.e. in exactly
/// the window that used to repeat a message. The server starts a new courier, which must replay the
/// journal and send nothing again.
#[test]
fn sigkill_between_the_sinks_250_and_the_commit_does_not_resend() {
    if !peer("smtp-sink") || !peer("swaks") {
        return;
    }
    let sink = Sink::start(&[]);
    let mut server = Server::start_env(&config(sink.port), &[("CORREO_FAULT", "journal-kill")]);
    // Two recipients at the same next hop: one transaction, both rows journaled in one line each.
    assert!(swaks_send(
        server.port,
        "sink0@far.example.net,sink1@far.example.net",
        1
    ));
    let start = std::time::Instant::now();
    while !server.maillog().contains("status=restarting") {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the journal-kill fault did not fire: {}",
            server.maillog()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(delivered(&sink).get(&1), Some(&1), "the sink has it once");
    assert!(server.wait_empty(Duration::from_secs(20)));
    // Give a wrong resend every chance to show up before counting.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        delivered(&sink).get(&1),
        Some(&1),
        "sent again after the courier's restart"
    );
    let log = server.maillog();
    assert!(
        log.contains("status=replayed") && log.contains("rows=2"),
        "{log}"
    );
    let journal = std::fs::read(server.path("correo.db-delivered")).unwrap();
    assert!(journal.is_empty(), "the journal is emptied once replayed");
    // A restarted server (no fault now) takes and delivers mail as usual.
    server.kill9();
    server.env.clear();
    server.spawn();
    assert!(swaks_send(server.port, "sink2@far.example.net", 2));
    let start = std::time::Instant::now();
    while !delivered(&sink).contains_key(&2) {
        assert!(start.elapsed() < Duration::from_secs(20), "second message");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(delivered(&sink).get(&1), Some(&1));
}

/// A journal line for a row that no longer exists (or whose id SQLite reused for another message) must
/// not delete anything: lines name the queue id too. A restart with such a stale journal delivers all.
#[test]
fn a_stale_journal_line_never_drops_another_message() {
    if !peer("smtp-sink") || !peer("swaks") {
        return;
    }
    let sink_port = free_port();
    let mut server = Server::start(&config(sink_port));
    assert!(swaks_send(server.port, "sink0@far.example.net", 7));
    server.kill9();
    // Row 1 of some other, long gone message; garbage; a torn last line.
    std::fs::write(
        server.path("correo.db-delivered"),
        "0123abcdef 1\n\0\0\0\nnot a line at all\n0123abcdef",
    )
    .unwrap();
    let sink = Sink::start_on(sink_port, &[]);
    server.spawn();
    assert!(server.wait_empty(Duration::from_secs(20)));
    assert_eq!(delivered(&sink).get(&7), Some(&1));
}
