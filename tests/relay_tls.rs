//! STARTTLS, implicit TLS and AUTH with swaks: AUTH is offered and accepted only under TLS and only on the
//! submission listeners, and a submission session cannot send without it.

#[path = "relay/common.rs"]
mod common;

use common::{free_port, peer, Raw, Server, Sink};
use std::io::Write;
use std::process::{Command, Stdio};

fn swaks(port: u16, args: &[&str]) -> String {
    let o = Command::new("swaks")
        .args([
            "-s",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "--timeout",
            "20",
        ])
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
}

struct Tls {
    server: Server,
    sub: u16,
    smtps: u16,
    sink: Sink,
}

fn setup() -> Option<Tls> {
    if !peer("swaks") || !peer("smtp-sink") {
        return None;
    }
    // A self-signed test certificate for mx.example.org, valid for a century (test use only).
    let tls_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/relay/tls");
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(common::BIN)
        .args(["serve", "--hash-password", "--hash-iterations", "1000"])
        .arg("--home")
        .arg(dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"s3cret\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let hash = String::from_utf8(out.stdout).unwrap();
    assert!(hash.starts_with("$pbkdf2-sha256$"), "{hash}");
    let sink = Sink::start(&[]);
    let (sub, smtps) = (free_port(), free_port());
    let cfg = format!(
        "domains = [\"example.org\"]\naliases = \"HOME/aliases\"\nhostname = \"mx.example.org\"\ntrusted_networks = []\n\
         submission = [\"127.0.0.1:{sub}\"]\nsmtps = [\"127.0.0.1:{smtps}\"]\ntls_cert = \"HOME/cert.pem\"\ntls_key = \"HOME/key.pem\"\npasswd = \"HOME/passwd\"\n\
         [relay]\nsmarthost = \"127.0.0.1:{}\"\n",
        sink.port
    );
    let cert = std::fs::read_to_string(tls_dir.join("cert.pem")).unwrap();
    let key = std::fs::read_to_string(tls_dir.join("key.pem")).unwrap();
    let passwd = format!("ana:{}", hash.trim());
    let server = Server::start_with(
        &cfg,
        &[
            ("aliases", "postmaster: HOME/pm.mbox\n"),
            ("cert.pem", &cert),
            ("key.pem", &key),
            ("passwd", &passwd),
        ],
        &[],
    );
    // Wait for the other listeners too.
    for p in [sub, smtps] {
        let start = std::time::Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", p)).is_err() {
            assert!(start.elapsed().as_secs() < 10, "listener {p} not up");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
    Some(Tls {
        server,
        sub,
        smtps,
        sink,
    })
}

#[test]
fn starttls_auth_and_submission_rules() {
    let Some(t) = setup() else { return };
    // MX port: STARTTLS offered, still no AUTH, mail for our domain fine, relaying refused.
    let out = swaks(
        t.server.port,
        &[
            "--tls",
            "-f",
            "a@far.example.net",
            "-t",
            "postmaster@example.org",
            "--header",
            "Subject: over tls",
        ],
    );
    assert!(
        out.contains("220 2.0.0 Ready to start TLS") && out.contains("queued as"),
        "{out}"
    );
    assert!(!out.contains("AUTH PLAIN"), "AUTH on the MX port: {out}");
    let out = swaks(
        t.server.port,
        &[
            "--tls",
            "--quit-after",
            "RCPT",
            "-f",
            "a@example.org",
            "-t",
            "x@far.example.net",
        ],
    );
    assert!(out.contains("550 5.7.1"), "{out}");

    // Submission: AUTH PLAIN and LOGIN after STARTTLS, then relaying works.
    for mech in ["PLAIN", "LOGIN"] {
        let out = swaks(
            t.sub,
            &[
                "--tls",
                "--auth",
                mech,
                "--auth-user",
                "ana",
                "--auth-password",
                "s3cret",
                "-f",
                "ana@example.org",
                "-t",
                "friend@far.example.net",
                "--header",
                &format!("Subject: auth {mech}"),
            ],
        );
        assert!(
            out.contains("235 2.7.0") && out.contains("queued as"),
            "{mech}: {out}"
        );
    }
    // Wrong password, no AUTH at all, and AUTH in the clear.
    let out = swaks(
        t.sub,
        &[
            "--tls",
            "--auth",
            "PLAIN",
            "--auth-user",
            "ana",
            "--auth-password",
            "nope",
            "-f",
            "ana@example.org",
            "-t",
            "friend@far.example.net",
        ],
    );
    assert!(out.contains("535 5.7.8"), "{out}");
    let out = swaks(
        t.sub,
        &[
            "--tls",
            "-f",
            "ana@example.org",
            "-t",
            "friend@far.example.net",
        ],
    );
    assert!(out.contains("530 5.7.0"), "{out}");
    let mut raw = Raw::connect(t.sub);
    assert!(raw.reply().starts_with("220"));
    raw.send(b"EHLO c\r\n");
    let ehlo = raw.reply();
    assert!(
        ehlo.contains("STARTTLS") && !ehlo.contains("AUTH"),
        "{ehlo}"
    );
    raw.send(b"AUTH PLAIN AGFuYQBzM2NyZXQ=\r\n");
    assert!(raw.reply().starts_with("538 5.7.11"));

    // Implicit TLS (port 465 style).
    let out = swaks(
        t.smtps,
        &[
            "--tlsc",
            "--auth",
            "PLAIN",
            "--auth-user",
            "ana",
            "--auth-password",
            "s3cret",
            "-f",
            "ana@example.org",
            "-t",
            "friend@far.example.net",
            "--header",
            "Subject: smtps",
        ],
    );
    assert!(
        out.contains("235 2.7.0") && out.contains("queued as"),
        "{out}"
    );

    // correo as a client: a second instance relays through the first one's submission port with
    // STARTTLS and AUTH PLAIN (the smarthost case).
    std::fs::write(t.server.path("smarthost.pw"), "s3cret\n").unwrap();
    let cfg = format!(
        "hostname = \"edge.example.org\"\n[relay]\nsmarthost = \"127.0.0.1:{}\"\nsmarthost_tls = \"opportunistic\"\nsmarthost_user = \"ana\"\nsmarthost_password_file = \"{}\"\n",
        t.sub,
        t.server.path("smarthost.pw").display()
    );
    let edge = Server::start(&cfg);
    let out = swaks(
        edge.port,
        &[
            "-f",
            "ana@example.org",
            "-t",
            "friend@far.example.net",
            "--header",
            "Subject: via edge",
        ],
    );
    assert!(out.contains("queued as"), "{out}");

    let start = std::time::Instant::now();
    // smtp-sink creates a message's file when the transaction starts and writes it as DATA arrives:
    // wait for the content too, not just for the fourth file (a load-dependent flake, stop 12).
    let done = |m: &[String]| m.len() >= 4 && m.iter().any(|m| m.contains("Subject: via edge"));
    while !done(&t.sink.messages()) && start.elapsed().as_secs() < 10 {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let msgs = t.sink.messages();
    assert_eq!(msgs.len(), 4, "{}\n{}", t.server.maillog(), edge.maillog());
    let via_edge = msgs
        .iter()
        .find(|m| m.contains("Subject: via edge"))
        .unwrap();
    assert!(
        via_edge.contains("by mx.example.org (correo) with ESMTPSA")
            && via_edge.contains("by edge.example.org (correo)"),
        "{via_edge}"
    );
    assert!(
        msgs.iter()
            .any(|m| m.contains("Subject: smtps") && m.contains("with ESMTPSA")),
        "{msgs:?}"
    );
    assert!(std::fs::read_to_string(t.server.path("pm.mbox"))
        .unwrap()
        .contains("with ESMTPS"));
}

/// CVE-2011-0411 style: commands pipelined in the clear after STARTTLS must not run inside TLS.
#[test]
fn starttls_discards_plaintext_pipelined_after_it() {
    let Some(t) = setup() else { return };
    use std::io::Read;
    let mut sock = std::net::TcpStream::connect(("127.0.0.1", t.server.port)).unwrap();
    sock.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 4096];
    let read_reply = |sock: &mut dyn Read, buf: &mut [u8]| -> String {
        let mut out = String::new();
        while !out.ends_with("\r\n")
            || out
                .lines()
                .last()
                .is_some_and(|l| l.as_bytes().get(3) == Some(&b'-'))
        {
            let n = sock.read(buf).unwrap();
            assert!(n > 0, "closed after {out:?}");
            out.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        out
    };
    assert!(read_reply(&mut sock, &mut buf).starts_with("220"));
    sock.write_all(b"EHLO c\r\n").unwrap();
    assert!(read_reply(&mut sock, &mut buf).contains("STARTTLS"));
    sock.write_all(b"STARTTLS\r\nNOOP injected\r\n").unwrap();
    assert!(read_reply(&mut sock, &mut buf).starts_with("220 2.0.0"));
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(std::sync::Arc::new(AnyCert(provider)))
        .with_no_client_auth();
    let conn = rustls::ClientConnection::new(
        std::sync::Arc::new(cfg),
        "mx.example.org".try_into().unwrap(),
    )
    .unwrap();
    let mut tls = rustls::StreamOwned::new(conn, sock);
    tls.write_all(b"EHLO c\r\n").unwrap();
    let first = read_reply(&mut tls, &mut buf);
    assert!(
        first.starts_with("250-mx.example.org Hello"),
        "the injected NOOP was answered: {first:?}"
    );
}

#[derive(Debug)]
struct AnyCert(std::sync::Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &rustls::pki_types::CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &rustls::pki_types::CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
