//! Outbound by MX lookup against a test DNS server (hickory's wire format, answered from a table):
//! MX preference order, implicit MX (no MX, only an address), null MX (RFC 7505) and a domain that does
//! not exist, each ending where RFC 5321 §5.1 says it should.

#[path = "relay/common.rs"]
mod common;

use common::{peer, Server, Sink};
use hickory_resolver::proto::op::{Message, ResponseCode};
use hickory_resolver::proto::rr::rdata::{A, MX};
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};
use std::net::{Ipv4Addr, UdpSocket};
use std::process::Command;
use std::time::Duration;

/// Answers: MX and A records for a few test domains; NXDOMAIN for anything else.
fn answer(q: &Name, t: RecordType) -> Result<Vec<RData>, ResponseCode> {
    let name = q.to_ascii().to_ascii_lowercase();
    let mx = |p: u16, h: &str| RData::MX(MX::new(p, Name::from_ascii(h).unwrap()));
    let a = |ip: [u8; 4]| RData::A(A(Ipv4Addr::from(ip)));
    match (name.as_str(), t) {
        ("mx-test.example.", RecordType::MX) => Ok(vec![
            mx(20, "backup.mx-test.example."),
            mx(10, "mx1.mx-test.example."),
        ]),
        ("mx1.mx-test.example.", RecordType::A) => Ok(vec![a([127, 0, 0, 1])]),
        ("backup.mx-test.example.", RecordType::A) => Ok(vec![a([127, 0, 0, 3])]),
        ("implicit.example.", RecordType::A) => Ok(vec![a([127, 0, 0, 1])]),
        ("implicit.example.", _) => Ok(vec![]),
        ("nullmx.example.", RecordType::MX) => Ok(vec![RData::MX(MX::new(0, Name::root()))]),
        (
            "mx-test.example."
            | "mx1.mx-test.example."
            | "backup.mx-test.example."
            | "nullmx.example.",
            _,
        ) => Ok(vec![]),
        _ => Err(ResponseCode::NXDomain),
    }
}

fn dns_server() -> u16 {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = sock.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while let Ok((n, from)) = sock.recv_from(&mut buf) {
            let Ok(q) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            let mut r = Message::response(q.metadata.id, q.metadata.op_code);
            r.metadata.authoritative = true;
            r.metadata.recursion_desired = q.metadata.recursion_desired;
            r.metadata.recursion_available = true;
            for query in &q.queries {
                r.add_query(query.clone());
                match answer(query.name(), query.query_type()) {
                    Ok(rdatas) => {
                        for d in rdatas {
                            r.add_answer(Record::from_rdata(query.name().clone(), 60, d));
                        }
                    }
                    Err(code) => r.metadata.response_code = code,
                }
            }
            if let Ok(bytes) = r.to_vec() {
                let _ = sock.send_to(&bytes, from);
            }
        }
    });
    port
}

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

fn wait_for(mut f: impl FnMut() -> bool) -> bool {
    let start = std::time::Instant::now();
    while start.elapsed() < Duration::from_secs(15) {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

#[test]
fn mx_lookup_implicit_mx_null_mx_and_nxdomain() {
    if !peer("swaks") || !peer("smtp-sink") {
        return;
    }
    let sink = Sink::start(&[]);
    let dns = dns_server();
    let cfg = format!(
        "domains = [\"example.org\"]\naliases = \"HOME/aliases\"\nhostname = \"mx.example.org\"\n[relay]\ndns = \"127.0.0.1:{dns}\"\nport = {}\nretry_secs = 0.3\n",
        sink.port
    );
    let s = Server::start_with(&cfg, &[("aliases", "sender: HOME/sender.mbox\n")], &[]);
    for to in [
        "a@mx-test.example",
        "b@implicit.example",
        "c@nullmx.example",
        "d@nowhere.example",
    ] {
        let out = swaks(
            s.port,
            &[
                "-f",
                "sender@example.org",
                "-t",
                to,
                "--header",
                &format!("Subject: to {to}"),
            ],
        );
        assert!(out.contains("queued as"), "{to}: {out}");
    }
    assert!(wait_for(|| sink.messages().len() >= 2), "{}", s.maillog());
    let msgs = sink.messages();
    assert!(
        msgs.iter()
            .any(|m| m.contains("Subject: to a@mx-test.example")),
        "{msgs:?}"
    );
    assert!(
        msgs.iter()
            .any(|m| m.contains("Subject: to b@implicit.example")),
        "{msgs:?}"
    );
    let log = s.maillog();
    assert!(
        log.contains(&format!(
            "relay=mx1.mx-test.example[127.0.0.1:{}]",
            sink.port
        )),
        "lowest preference first:\n{log}"
    );
    let mbox = s.path("sender.mbox");
    assert!(
        wait_for(|| {
            let t = std::fs::read_to_string(&mbox).unwrap_or_default();
            t.contains("Status: 5.1.10") && t.contains("Status: 5.1.2")
        }),
        "null MX and NXDOMAIN should bounce:\n{log}\n{}",
        std::fs::read_to_string(&mbox).unwrap_or_default()
    );
    assert!(s.wait_empty(Duration::from_secs(5)));
}
