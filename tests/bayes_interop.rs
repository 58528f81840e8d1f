//! The real `spamc -L spam|ham|forget` against `correo spam daemon`: TELL learns, and the counts that
//! `correo spam learn --dump` shows move; per-user databases follow spamc's `-u`. Skips with a message
//! when spamc is missing, unless CORREO_REQUIRE_PEERS is set.

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const HAM: &str = include_str!("spam/ham.eml");
const SPAM: &str = "From: promo@deals.example\nTo: you@site.example\nSubject: lottery winner\nMessage-Id: <p1@deals.example>\n\nYou won the lottery, claim your casino prize now.\n";

fn peer_or_skip(prog: &str) -> bool {
    let ok = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {prog}"))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        return true;
    }
    if std::env::var_os("CORREO_REQUIRE_PEERS").is_some() {
        panic!("{prog} is required (CORREO_REQUIRE_PEERS is set) but not installed");
    }
    eprintln!("skipping: {prog} not installed (apt-get install spamc)");
    false
}

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

fn start(toml: &str) -> Daemon {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("correo.toml"), toml).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_correo"))
        .arg("--home")
        .arg(dir.path())
        .args([
            "spam",
            "daemon",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--rules",
        ])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("rules"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "daemon did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Daemon { child, port, dir }
}

fn spamc(d: &Daemon, args: &[&str], input: &str) -> Output {
    use std::io::Write;
    let port = d.port.to_string();
    let mut c = Command::new("spamc")
        .args(["-d", "127.0.0.1", "-p", &port])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _ = c.stdin.take().unwrap().write_all(input.as_bytes());
    c.wait_with_output().unwrap()
}

fn dump(d: &Daemon) -> String {
    let o = Command::new(env!("CARGO_BIN_EXE_correo"))
        .arg("--home")
        .arg(d.dir.path())
        .args(["spam", "learn", "--dump"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn out(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn spamc_learn_changes_the_counts() {
    if !peer_or_skip("spamc") {
        return;
    }
    let d = start("[spam.bayes]\nauto_learn = false\n");
    let o = spamc(&d, &["-L", "spam"], SPAM);
    assert!(
        out(&o).contains("Message successfully un/learned"),
        "{}",
        out(&o)
    );
    assert!(dump(&d).contains("nspam=1 nham=0"), "{}", dump(&d));
    // The same message again: counted once, and spamc says so.
    let o = spamc(&d, &["-L", "spam"], SPAM);
    assert!(
        out(&o).contains("Message was already un/learned"),
        "{}",
        out(&o)
    );
    assert!(dump(&d).contains("nspam=1 nham=0"));
    let o = spamc(&d, &["-L", "ham"], HAM);
    assert!(
        out(&o).contains("Message successfully un/learned"),
        "{}",
        out(&o)
    );
    assert!(dump(&d).contains("nspam=1 nham=1"), "{}", dump(&d));
    let o = spamc(&d, &["-L", "forget"], SPAM);
    assert!(
        out(&o).contains("Message successfully un/learned"),
        "{}",
        out(&o)
    );
    assert!(dump(&d).contains("nspam=0 nham=1"), "{}", dump(&d));
}

#[test]
fn spamc_user_gets_its_own_database_when_configured() {
    if !peer_or_skip("spamc") {
        return;
    }
    let d = start("[spam.bayes]\nauto_learn = false\nper_user = true\n");
    let o = spamc(&d, &["-u", "alice", "-L", "spam"], SPAM);
    assert!(out(&o).contains("successfully"), "{}", out(&o));
    let o = spamc(&d, &["-L", "ham"], HAM);
    assert!(out(&o).contains("successfully"), "{}", out(&o));
    let dm = dump(&d);
    assert!(dm.contains("user=alice nspam=1 nham=0"), "{dm}");
    // Without -u, spamc sends the name of the unix user running it: that user's own database.
    assert!(
        dm.lines()
            .any(|l| !l.starts_with("user=alice") && l.contains("nspam=0 nham=1")),
        "{dm}"
    );
}

#[test]
fn tell_can_be_refused_like_spamd_without_allow_tell() {
    if !peer_or_skip("spamc") {
        return;
    }
    let d = start("[spam.bayes]\nallow_tell = false\n");
    let o = spamc(&d, &["-L", "spam"], SPAM);
    assert!(!o.status.success(), "{}", out(&o));
    assert!(dump(&d).contains("nspam=0"), "{}", dump(&d));
}
