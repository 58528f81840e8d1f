//! `correo spam daemon` warms its rules up before it listens and again on SIGHUP (`spam::warmup`):
//! the warm-up messages teach Bayes nothing and write no mail-log line of their own, while the same
//! message sent by a client is scored and auto-learned as usual, and the daemon answers throughout.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Daemon {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A daemon whose only rule makes every warm-up message sure spam (score 20, past auto-learn's
/// threshold of 12), with auto-learn on (the default).
fn start() -> Daemon {
    let dir = tempfile::tempdir().expect("tempdir");
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).expect("rules dir");
    std::fs::write(
        rules.join("50_all.cf"),
        "body ALL_E /e/\nscore ALL_E 20\nrequired_score 5\n",
    )
    .expect("rule");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port");
    let child = Command::new(env!("CARGO_BIN_EXE_correo"))
        .arg("--home")
        .arg(dir.path())
        .args(["spam", "daemon", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--rules")
        .arg(&rules)
        .env_remove("CORREO_SPAM_WARMUP")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start daemon");
    let d = Daemon { child, port, dir };
    let t = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "daemon did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    d
}

fn raw(port: u16, req: &[u8]) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.write_all(req).expect("send");
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn check(port: u16, msg: &[u8]) -> String {
    let req = [
        format!("CHECK SPAMC/1.5\r\nContent-length: {}\r\n\r\n", msg.len()).as_bytes(),
        msg,
    ]
    .concat();
    raw(port, &req)
}

/// `nspam=.. nham=.. ntokens=..` of the global Bayes user, from `correo spam learn --dump`.
fn counts(d: &Daemon) -> String {
    let o = Command::new(env!("CARGO_BIN_EXE_correo"))
        .arg("--home")
        .arg(d.dir.path())
        .args(["spam", "learn", "--dump"])
        .output()
        .expect("dump");
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    out.lines()
        .find(|l| l.starts_with("user=$GLOBAL"))
        .map(|l| l.trim_start_matches("user=$GLOBAL").trim().to_string())
        .unwrap_or_default()
}

fn maillog(d: &Daemon) -> String {
    std::fs::read_to_string(d.dir.path().join("log").join("maillog")).unwrap_or_default()
}

/// Waits for `f` to hold, for up to 20 s.
fn eventually(what: &str, f: impl Fn() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < Duration::from_secs(20), "timed out: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn spam_daemon_warm_up_learns_nothing_and_the_daemon_answers() {
    let d = start();
    // Listening means the warm-up is done: it ran, on every scoring thread, and learned nothing.
    let log = maillog(&d);
    let warm = log
        .lines()
        .find(|l| l.contains("spamd") && l.contains("warmup: messages="))
        .unwrap_or_else(|| panic!("no warm-up line in the log:\n{log}"));
    assert!(!warm.contains("messages=0,"), "{warm}");
    let learned_nothing = |c: &str| c.is_empty() || c == "nspam=0 nham=0 ntokens=0";
    let c = counts(&d);
    assert!(learned_nothing(&c), "the warm-up learned: {c}");
    // No mail-log line for any warm-up message.
    for (name, m) in correo::spam::warmup::MESSAGES {
        let v = correo::spam::view::View::new(m);
        let id = v.header_for_rule("Message-Id").expect("Message-Id");
        let id = String::from_utf8_lossy(&id).trim().to_string();
        assert!(!log.contains(&id), "{name} was logged as mail");
    }
    assert_eq!(
        raw(d.port, b"PING SPAMC/1.5\r\n\r\n"),
        "SPAMD/1.5 0 PONG\r\n"
    );

    // The same message from a client is scored (spam: the rule fires) and auto-learned. The learner
    // thread commits lessons in the order they came, so once this one shows, any the warm-up had
    // queued would show too: the count must be this message alone.
    let msg = correo::spam::warmup::MESSAGES[0].1;
    let r = check(d.port, msg);
    assert!(
        r.starts_with("SPAMD/1.1 0 EX_OK\r\nSpam: True ; 20.0 / 5.0"),
        "{r}"
    );
    eventually("the client's message learned", || {
        !learned_nothing(&counts(&d))
    });
    // Its maillog line, written after the reply went out (`daemon::After`): one line, with the verdict
    // and the time to the reply.
    let id = correo::spam::view::View::new(msg)
        .header_for_rule("Message-Id")
        .expect("Message-Id");
    let id = String::from_utf8_lossy(&id).trim().to_string();
    eventually("the client's message logged", || maillog(&d).contains(&id));
    let log = maillog(&d);
    let lines: Vec<&str> = log.lines().filter(|l| l.contains(&id)).collect();
    assert_eq!(lines.len(), 1, "{log}");
    assert!(
        lines[0].contains("result=Y")
            && lines[0].contains("secs=")
            && lines[0].contains("autolearn=spam"),
        "{}",
        lines[0]
    );
    let c = counts(&d);
    assert!(
        c.starts_with("nspam=1 nham=0"),
        "more than the client's message learned: {c}"
    );

    // SIGHUP: compile, warm up, swap. The reload's warm-up learns nothing either.
    // SAFETY: kill(2) on our own child's pid with a valid signal number.
    let rc = unsafe { libc::kill(d.child.id() as libc::pid_t, libc::SIGHUP) };
    assert_eq!(rc, 0);
    eventually("the reload logged", || {
        maillog(&d)
            .lines()
            .any(|l| l.contains("reload:") && l.contains("warmup_ms="))
    });
    let after = counts(&d);
    assert!(after.starts_with("nspam=1 nham=0"), "{after}");
    let r = check(d.port, correo::spam::warmup::MESSAGES[1].1);
    assert!(
        r.starts_with("SPAMD/1.1 0 EX_OK\r\nSpam: True ; 20.0 / 5.0"),
        "{r}"
    );
}
