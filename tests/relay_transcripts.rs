//! Protocol edge cases, one short transcript file each in tests/relay/*.smtp, run against a real
//! `correo serve`. Format: `C: line` sends the line with CRLF; `C~: text` sends text with \r \n escapes
//! and nothing added; `S: prefix` reads one reply whose last line must start with prefix; `S~: text` /
//! `S!~: text` read one reply that must / must not contain text.

#[path = "relay/common.rs"]
mod common;

use common::{Raw, Server};

const CONFIG: &str = r#"
domains = ["example.org"]
aliases = "HOME/aliases"
trusted_networks = []
max_received = 3
max_size = 100000
hostname = "mx.example.org"
[relay]
smarthost = "127.0.0.1:9"
"#;

const ALIASES: &str =
    "postmaster: HOME/postmaster.mbox\nroot: HOME/root.mbox\ngone: error:5.1.6 moved away\n";

fn unescape(s: &str) -> String {
    s.replace("\\r", "\r").replace("\\n", "\n")
}

fn run_transcript(port: u16, name: &str, text: &str) -> Result<(), String> {
    let mut c = Raw::connect(port);
    let mut pending: Option<String> = None;
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let (tag, rest) = line.split_once(':').ok_or(format!("{name}:{n}: no tag"))?;
        let rest = rest.strip_prefix(' ').unwrap_or(rest);
        match tag {
            "C" => c.send(format!("{rest}\r\n").as_bytes()),
            "C~" => c.send(unescape(rest).as_bytes()),
            "S" | "S~" | "S!~" => {
                let reply = pending.take().unwrap_or_else(|| c.reply());
                let last = reply.trim_end().lines().last().unwrap_or("").to_string();
                let ok = match tag {
                    "S" => last.starts_with(rest),
                    "S~" => {
                        pending = Some(reply.clone());
                        reply.contains(rest)
                    }
                    _ => {
                        pending = Some(reply.clone());
                        !reply.contains(rest)
                    }
                };
                if tag != "S" && ok {
                    // Several S~ lines may look at the same reply; an S line afterwards reads a new one.
                } else if tag != "S" {
                    return Err(format!(
                        "{name}:{n}: expected reply {tag} '{rest}', got {reply:?}"
                    ));
                }
                if tag == "S" && !ok {
                    return Err(format!("{name}:{n}: expected '{rest}', got {reply:?}"));
                }
                if tag == "S" {
                    pending = None;
                }
            }
            _ => return Err(format!("{name}:{n}: unknown tag {tag}")),
        }
        // A C line after S~ lines ends their shared reply.
        if tag.starts_with('C') {
            pending = None;
        }
    }
    Ok(())
}

#[test]
fn transcripts() {
    let server = Server::start_with(CONFIG, &[("aliases", ALIASES)], &[]);
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/relay");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "smtp"))
        .collect();
    files.sort();
    assert!(files.len() >= 10, "transcripts missing");
    let mut failures = Vec::new();
    for f in &files {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(f).unwrap();
        match run_transcript(server.port, &name, &text) {
            Ok(()) => eprintln!("ok   {name}"),
            Err(e) => {
                eprintln!("FAIL {e}");
                failures.push(e);
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// RFC 5321 §4.5.3.1.8: 100 recipients must be accepted; the 101st gets 452 4.5.3 (try again later in
/// another transaction), and the message still goes to the first 100.
#[test]
fn recipient_limit_is_100() {
    let server = Server::start_with(CONFIG, &[("aliases", ALIASES)], &[]);
    let mut t =
        String::from("S: 220\nC: EHLO client.test\nS: 250\nC: MAIL FROM:<a@example.net>\nS: 250\n");
    for _ in 0..100 {
        t.push_str("C: RCPT TO:<postmaster@example.org>\nS: 250 2.1.5\n");
    }
    t.push_str("C: RCPT TO:<postmaster@example.org>\nS: 452 4.5.3\nC: DATA\nS: 354\nC: Subject: many\nC:\nC: x\nC: .\nS: 250 2.0.0\n");
    run_transcript(server.port, "generated", &t).unwrap();
}
