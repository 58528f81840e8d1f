//! The real `spamc` (Debian's, from SpamAssassin 4.0) against `correo spam daemon`, over TCP and a unix
//! socket: ping, check, symbols, report, exit codes, PROCESS, compression, a dead daemon, and raw
//! protocol errors. Skips with a message when spamc is missing, unless CORREO_REQUIRE_PEERS is set.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const GTUBE: &str = include_str!("spam/gtube.eml");
const HAM: &str = include_str!("spam/ham.eml");

fn have(prog: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {prog}"))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Returns false (and says why) when the peer is missing and the run does not require it.
fn peer_or_skip(prog: &str) -> bool {
    if have(prog) {
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
    sock: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn start_daemon() -> Daemon {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let sock = dir.path().join("spamd.sock");
    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    let child = Command::new(env!("CARGO_BIN_EXE_correo"))
        .arg("--home")
        .arg(dir.path())
        .args([
            "spam",
            "daemon",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--listen",
        ])
        .arg(&sock)
        .arg("--rules")
        .arg(&rules)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start daemon");
    let d = Daemon {
        child,
        port,
        sock,
        _dir: dir,
    };
    let t = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() || !d.sock.exists() {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "daemon did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    d
}

fn spamc(args: &[&str], input: &str) -> Output {
    let mut c = Command::new("spamc")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run spamc");
    c.stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write");
    c.wait_with_output().expect("spamc output")
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Sends raw bytes and returns the whole reply.
fn raw(port: u16, req: &[u8]) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.write_all(req).expect("send");
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn spamc_against_correo_daemon() {
    if !peer_or_skip("spamc") {
        return;
    }
    let d = start_daemon();
    let port = d.port.to_string();
    let sock = d.sock.to_string_lossy().into_owned();
    let tcp = ["-d", "127.0.0.1", "-p", port.as_str()];
    let unix = ["-U", sock.as_str()];

    for conn in [&tcp[..], &unix[..]] {
        // -K: ping.
        let o = spamc(&[conn, &["-K"]].concat(), "");
        assert!(text(&o).starts_with("SPAMD/1.5 0"), "ping: {:?}", o);
        assert!(o.status.success());

        // -c: "score/threshold", exit 1 for spam, 0 for ham.
        let o = spamc(&[conn, &["-c"]].concat(), GTUBE);
        assert_eq!(text(&o).trim(), "1000.0/5.0");
        assert_eq!(o.status.code(), Some(1));
        let o = spamc(&[conn, &["-c"]].concat(), HAM);
        assert!(text(&o).trim().ends_with("/5.0"), "{}", text(&o));
        assert_eq!(o.status.code(), Some(0));

        // -y: the test names.
        let o = spamc(&[conn, &["-y"]].concat(), GTUBE);
        assert!(
            text(&o).split(',').any(|t| t.trim() == "GTUBE"),
            "{}",
            text(&o)
        );

        // -R: score line then the report.
        let o = spamc(&[conn, &["-R"]].concat(), GTUBE);
        let r = text(&o);
        assert!(r.starts_with("1000.0/5.0\n"), "{r}");
        assert!(
            r.contains("Content analysis details:   (1000.0 points, 5.0 required)"),
            "{r}"
        );
        assert!(
            r.contains("1000 GTUBE                  BODY: Generic Test for Unsolicited Bulk Email"),
            "{r}"
        );

        // Default PROCESS: the rewritten message (report_safe 1 wraps spam).
        let o = spamc(conn, GTUBE);
        let m = text(&o);
        assert!(m.contains("X-Spam-Flag: YES\n"), "{m}");
        assert!(
            m.contains("X-Spam-Status: Yes, score=1000.0 required=5.0 tests="),
            "{m}"
        );
        assert!(
            m.contains("Content-Type: message/rfc822; x-spam-type=original"),
            "{m}"
        );
        assert!(m.contains("XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"));
        assert_eq!(o.status.code(), Some(0), "without -E spamc exits 0");
        let o = spamc(conn, HAM);
        let m = text(&o);
        assert!(
            m.starts_with("X-Spam-Checker-Version: SpamAssassin 4.0.1 ("),
            "{m}"
        );
        assert!(m.contains("X-Spam-Status: No, score="), "{m}");
        assert!(
            m.ends_with(HAM.split_once("\n\n").map(|x| x.1).unwrap_or("")),
            "body unchanged"
        );

        // -E: exit 1 when spam, message still printed.
        let o = spamc(&[conn, &["-E"]].concat(), GTUBE);
        assert_eq!(o.status.code(), Some(1));
        assert!(text(&o).contains("X-Spam-Flag: YES"));
        let o = spamc(&[conn, &["-E"]].concat(), HAM);
        assert_eq!(o.status.code(), Some(0));
    }
}

#[test]
fn spamc_with_daemon_down_passes_mail_through() {
    if !peer_or_skip("spamc") {
        return;
    }
    let port = free_port().to_string();
    let o = spamc(&["-d", "127.0.0.1", "-p", &port], GTUBE);
    assert_eq!(text(&o), GTUBE, "unchanged");
    assert_eq!(o.status.code(), Some(0));
}

#[test]
fn raw_protocol_edges() {
    // No spamc needed: our own daemon, raw bytes.
    let d = start_daemon();
    assert_eq!(
        raw(d.port, b"BOGUS SPAMC/1.5\r\n\r\n"),
        "SPAMD/1.0 76 Bad header line: BOGUS SPAMC/1.5\r\n"
    );
    assert_eq!(
        raw(d.port, b"PING SPAMC/1.5\r\n\r\n"),
        "SPAMD/1.5 0 PONG\r\n"
    );
    let body = GTUBE.as_bytes();
    let req = [
        format!(
            "SYMBOLS SPAMC/1.5\r\nContent-length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
        body,
    ]
    .concat();
    let r = raw(d.port, &req);
    assert!(
        r.starts_with("SPAMD/1.1 0 EX_OK\r\nContent-length: "),
        "{r}"
    );
    assert!(r.contains("\r\nSpam: True ; 1000.0 / 5.0\r\n\r\n"), "{r}");
    assert!(!r.ends_with("\r\n"), "no CRLF after SYMBOLS: {r:?}");
    let req = [
        b"CHECK SPAMC/1.5\r\nContent-length: 9999\r\n\r\n".as_slice(),
        body,
    ]
    .concat();
    assert!(raw(d.port, &req).starts_with("SPAMD/1.0 76 Bad header line: (Content-Length mismatch"));
    assert!(
        raw(d.port, b"CHECK SPAMC/1.5\r\nContent-length: x\r\n\r\n").starts_with("SPAMD/1.0 76 ")
    );
    assert!(raw(d.port, b"CHECK SPAMC/1.5\r\nnocolon\r\n\r\n").starts_with("SPAMD/1.0 76 "));
    // TELL learns (issue 6; `[spam.bayes] allow_tell = false` restores spamd's refusal, code 69).
    let tell = raw(
        d.port,
        b"TELL SPAMC/1.5\r\nMessage-class: spam\r\nSet: local\r\nContent-length: 0\r\n\r\n",
    );
    assert!(
        tell.starts_with("SPAMD/1.1 0 EX_OK\r\nDidSet: local\r\n"),
        "{tell}"
    );
    let ham = HAM.as_bytes();
    let req = [
        format!(
            "CHECK SPAMC/1.5\r\nUser: bob\r\nContent-length: {}\r\n\r\n",
            ham.len()
        )
        .as_bytes(),
        ham,
    ]
    .concat();
    assert!(raw(d.port, &req).starts_with("SPAMD/1.1 0 EX_OK\r\nSpam: False ; "));
    // Compress: zlib (Debian's spamc is built without -z, so it is spoken raw here).
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(body).expect("deflate");
    let zb = z.finish().expect("deflate");
    let req = [
        format!(
            "CHECK SPAMC/1.5\r\nCompress: zlib\r\nContent-length: {}\r\n\r\n",
            zb.len()
        )
        .as_bytes(),
        &zb,
    ]
    .concat();
    assert_eq!(
        raw(d.port, &req),
        "SPAMD/1.1 0 EX_OK\r\nSpam: True ; 1000.0 / 5.0\r\n\r\n"
    );
    // SIGHUP recompiles the rules; the daemon keeps answering.
    // SAFETY: kill(2) on our own child's pid with a valid signal number.
    let rc = unsafe { libc::kill(d.child.id() as libc::pid_t, libc::SIGHUP) };
    assert_eq!(rc, 0);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let req = [
        format!("CHECK SPAMC/1.5\r\nContent-length: {}\r\n\r\n", body.len()).as_bytes(),
        body,
    ]
    .concat();
    assert_eq!(
        raw(d.port, &req),
        "SPAMD/1.1 0 EX_OK\r\nSpam: True ; 1000.0 / 5.0\r\n\r\n"
    );
    // Garbage and a client that hangs up early never take the daemon down.
    let _ = raw(d.port, &[0xff; 300]);
    let _ = raw(d.port, b"PROCESS SPAMC/1.5\r\nContent-length: 100\r\n");
    assert_eq!(
        raw(d.port, b"PING SPAMC/1.5\r\n\r\n"),
        "SPAMD/1.5 0 PONG\r\n"
    );
}

/// Clients that stall halfway through their request, more of them than there are scoring threads,
/// do not keep the next client from its answer, and get theirs when they finish (the daemon hands
/// them to its async side rather than wait on them); over TCP and the unix socket.
#[test]
fn stalled_clients_do_not_hold_up_others() {
    use std::os::unix::net::UnixStream;
    let d = start_daemon();
    let body = GTUBE.as_bytes();
    let head = format!("CHECK SPAMC/1.5\r\nContent-length: {}\r\n\r\n", body.len());
    let full = [head.as_bytes(), body].concat();
    let half = head.len() + body.len() / 2;
    let want = "SPAMD/1.1 0 EX_OK\r\nSpam: True ; 1000.0 / 5.0\r\n\r\n";
    let mut tcp: Vec<TcpStream> = Vec::new();
    let mut unix: Vec<UnixStream> = Vec::new();
    for _ in 0..4 {
        let mut s = TcpStream::connect(("127.0.0.1", d.port)).expect("connect");
        s.write_all(&full[..half]).expect("send");
        tcp.push(s);
        let mut u = UnixStream::connect(&d.sock).expect("connect unix");
        u.write_all(&full[..half]).expect("send");
        unix.push(u);
    }
    let t = Instant::now();
    assert_eq!(raw(d.port, &full), want);
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "answered after {:?}",
        t.elapsed()
    );
    for mut s in tcp {
        s.write_all(&full[half..]).expect("rest");
        let _ = s.shutdown(std::net::Shutdown::Write);
        let mut out = String::new();
        s.read_to_string(&mut out).expect("reply");
        assert_eq!(out, want);
    }
    for mut u in unix {
        u.write_all(&full[half..]).expect("rest");
        let _ = u.shutdown(std::net::Shutdown::Write);
        let mut out = String::new();
        u.read_to_string(&mut out).expect("reply");
        assert_eq!(out, want);
    }
}
