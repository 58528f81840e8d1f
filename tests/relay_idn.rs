//! SMTPUTF8 names and IDN domains through the real server, driven by Python's smtplib: UTF-8 local
//! parts in the aliases file and the virtusertable, and a domain configured in one spelling (U-label or
//! A-label) taking mail addressed in either (RFC 5890 §2.3.2.1: they are the same name).

#[path = "relay/common.rs"]
mod common;

use common::{peer, Server};
use std::process::Command;
use std::time::{Duration, Instant};

const CONFIG: &str = "domains = [\"münchen.example\", \"xn--bcher-kva.example\"]\naliases = \"HOME/aliases\"\nvirtusers = \"HOME/virtusertable\"\nhostname = \"mx.example.org\"\n[relay]\nsmarthost = \"127.0.0.1:9\"\n";

const ALIASES: &str = "# UTF-8 names, one spelled in capitals\n\
José: HOME/jose.mbox\n\
info: HOME/info.mbox\n\
équipe: josé, info\n\
sender: HOME/sender.mbox\n";

const VIRTUSERS: &str = "dörte@xn--mnchen-3ya.example  HOME/doerte.mbox\n\
Straße@bücher.example  HOME/strasse.mbox\n";

/// Sends one message per (recipient, subject) with smtplib, SMTPUTF8 only when the address needs it,
/// and prints "CODE RCPT" for each refusal.
fn send(port: u16, cases: &[(&str, &str)]) -> String {
    let mut script = format!(
        "import smtplib\ns = smtplib.SMTP('127.0.0.1', {port})\ns.ehlo('py.test')\nassert s.has_extn('smtputf8')\n"
    );
    for (to, subject) in cases {
        script.push_str(&format!(
            "try:\n    opts = [] if {to:?}.isascii() else ['SMTPUTF8']\n    s.sendmail('sender@münchen.example' if opts else 'sender@xn--mnchen-3ya.example', [{to:?}], 'Subject: {subject}\\r\\n\\r\\nbody\\r\\n'.encode(), mail_options=opts)\nexcept smtplib.SMTPRecipientsRefused as e:\n    for r, (code, text) in e.recipients.items():\n        print(code, r)\n"
        ));
    }
    script.push_str("s.quit()\n");
    let o = Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(&script)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn wait_for(mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(15) {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

#[test]
fn utf8_aliases_and_idn_domains_route_in_either_spelling() {
    if !peer("/usr/bin/python3") {
        return;
    }
    let s = Server::start_with(
        CONFIG,
        &[("aliases", ALIASES), ("virtusertable", VIRTUSERS)],
        &[],
    );
    let (code, out, err) = s.cli(&["newaliases"]);
    assert_eq!(code, 0, "{out}{err}");
    let cases = [
        // UTF-8 alias name, U-label and A-label domain, and in capitals.
        ("josé@münchen.example", "t1"),
        ("josé@xn--mnchen-3ya.example", "t2"),
        ("JOSÉ@münchen.example", "t3"),
        // ASCII name at a domain configured as a U-label, asked for in both spellings.
        ("info@xn--mnchen-3ya.example", "t4"),
        ("info@münchen.example", "t5"),
        // A domain configured as an A-label, asked for as a U-label, and the reverse.
        ("info@bücher.example", "t6"),
        ("info@XN--BCHER-KVA.example", "t7"),
        // virtusertable entries written in the other spelling of their domain.
        ("dörte@münchen.example", "t8"),
        ("straße@xn--bcher-kva.example", "t9"),
        // A UTF-8 alias expanding to another UTF-8 alias and an ASCII one.
        ("équipe@bücher.example", "t10"),
        // Unknown UTF-8 and ASCII names are still refused.
        ("niemand@münchen.example", "x1"),
        ("jörg@münchen.example", "x2"),
    ];
    let refused = send(s.port, &cases);
    let mut lines: Vec<&str> = refused.lines().collect();
    lines.sort();
    assert_eq!(
        lines,
        vec!["550 jörg@münchen.example", "550 niemand@münchen.example"],
        "{}",
        s.maillog()
    );
    let want = [
        ("jose.mbox", &["t1", "t2", "t3", "t10"][..]),
        ("info.mbox", &["t4", "t5", "t6", "t7", "t10"]),
        ("doerte.mbox", &["t8"]),
        ("strasse.mbox", &["t9"]),
    ];
    for (file, subjects) in want {
        let read = || std::fs::read_to_string(s.path(file)).unwrap_or_default();
        assert!(
            wait_for(|| subjects
                .iter()
                .all(|t| read().contains(&format!("Subject: {t}\n")))),
            "{file}: {}\n{}",
            read(),
            s.maillog()
        );
        assert_eq!(
            read().matches("\nSubject: ").count(),
            subjects.len(),
            "{file}"
        );
    }
    assert!(s.wait_empty(Duration::from_secs(5)));
}

/// A bad domain in `[smtp] domains` stops `serve --check` with its name, like a bad alias line.
#[test]
fn a_bad_idn_domain_in_the_config_is_named() {
    let s = Server::start_with(
        CONFIG,
        &[("aliases", ALIASES), ("virtusertable", VIRTUSERS)],
        &[],
    );
    std::fs::write(
        s.path("correo.toml"),
        std::fs::read_to_string(s.path("correo.toml"))
            .unwrap()
            .replace("\"münchen.example\"", "\"mün chen.example\""),
    )
    .unwrap();
    let (code, out, err) = s.cli(&["serve", "--check"]);
    assert_eq!(code, 78, "{out}{err}");
    assert!(err.contains("mün chen.example"), "{err}");
}

/// An ASCII message to an alias that expands to a UTF-8 address: the client never said SMTPUTF8, but
/// that recipient needs it, so the next hop (tests/support/utf8_sink.py, which offers it) gets it.
#[test]
fn an_alias_to_a_utf8_address_asks_the_next_hop_for_smtputf8() {
    use std::io::BufRead;
    if !peer("/usr/bin/python3") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let log = tmp.path().join("utf8-sink.log");
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/utf8_sink.py");
    let mut child = Command::new("/usr/bin/python3")
        .arg(script)
        .arg(port.to_string())
        .arg(&log)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready");
    let s = Server::start_with(
        &format!("domains = [\"example.org\"]\naliases = \"HOME/aliases\"\n[relay]\nsmarthost = \"127.0.0.1:{port}\"\n"),
        &[("aliases", "staff: dörte@bücher.example, plain@far.example.net\n")],
        &[],
    );
    assert_eq!(send(s.port, &[("staff@example.org", "ascii")]), "");
    let seen = || String::from_utf8_lossy(&std::fs::read(&log).unwrap_or_default()).into_owned();
    assert!(
        wait_for(|| seen().contains("DATA ")),
        "{}\n{}",
        seen(),
        s.maillog()
    );
    let _ = child.kill();
    let _ = child.wait();
    let text = seen();
    let mail = text
        .lines()
        .find(|l| l.starts_with("MAIL FROM:"))
        .unwrap_or_default();
    assert!(mail.contains(" SMTPUTF8"), "{text}");
    assert!(
        text.contains("RCPT TO:<dörte@xn--bcher-kva.example>"),
        "{text}"
    );
    assert!(text.contains("RCPT TO:<plain@far.example.net>"), "{text}");
}
