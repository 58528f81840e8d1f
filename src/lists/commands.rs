//! The Mailman mail-command language for `NAME-request`, parsed apart from acting on it: the Subject
//! first, then the first text/plain part, at most 25 lines, stopping at `end`, at a `-- ` signature, or
//! at the first line that is not a command (so a quoted message never runs as commands).

use crate::message::address::Address;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Subscribe {
        digest: Option<bool>,
        address: Option<Address>,
    },
    Unsubscribe {
        address: Option<Address>,
    },
    Help,
    Info,
    Who,
    Confirm(String),
    SetDelivery(bool),
    End,
}

/// Mailman reads this many body lines at most (MAXLINES).
pub const MAX_LINES: usize = 25;

/// Parses one line; `Ok(None)` for an empty line, `Err` for anything that is not a command.
pub fn parse_line(line: &str) -> Result<Option<Command>, String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let Some(first) = words.first() else {
        return Ok(None);
    };
    let verb = first.to_ascii_lowercase();
    let args = &words[1..];
    let address_arg = |args: &[&str]| -> Result<Option<Address>, String> {
        let mut addr = None;
        for a in args {
            if let Some(v) = a
                .strip_prefix("address=")
                .or_else(|| a.strip_prefix("ADDRESS="))
            {
                addr = Some(Address::parse(v)?);
            }
        }
        Ok(addr)
    };
    match verb.as_str() {
        "subscribe" | "join" | "sub" => {
            let mut digest = None;
            for a in args {
                match a.to_ascii_lowercase().as_str() {
                    "digest" => digest = Some(true),
                    "nodigest" => digest = Some(false),
                    x if x.starts_with("address=") => {}
                    // Mailman 2.1 also takes a password argument; it has no meaning here.
                    _ => {}
                }
            }
            Ok(Some(Command::Subscribe {
                digest,
                address: address_arg(args)?,
            }))
        }
        "unsubscribe" | "leave" | "unsub" | "remove" => Ok(Some(Command::Unsubscribe {
            address: address_arg(args)?,
        })),
        "help" => Ok(Some(Command::Help)),
        "info" => Ok(Some(Command::Info)),
        "who" => Ok(Some(Command::Who)),
        "confirm" => match args.first() {
            Some(t) if crate::lists::token::looks_like_token(t) => {
                Ok(Some(Command::Confirm(t.to_ascii_lowercase())))
            }
            _ => Err("confirm needs the token from the confirmation message".into()),
        },
        "set" => match (
            args.first().map(|s| s.to_ascii_lowercase()),
            args.get(1).map(|s| s.to_ascii_lowercase()),
        ) {
            (Some(k), Some(v)) if k == "delivery" && (v == "on" || v == "off") => {
                Ok(Some(Command::SetDelivery(v == "on")))
            }
            _ => Err("set understands: set delivery on|off".into()),
        },
        "end" | "stop" | "--" => Ok(Some(Command::End)),
        _ => Err(format!("unknown command: {}", truncate(line, 60))),
    }
}

fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

/// Strips reply/forward markers so "Re: confirm TOKEN" reads as "confirm TOKEN".
pub fn clean_subject(s: &str) -> &str {
    let mut s = s.trim();
    loop {
        let lower = s.to_ascii_lowercase();
        let cut = ["re:", "aw:", "fwd:", "fw:", "sv:"]
            .iter()
            .find(|p| lower.starts_with(*p))
            .map(|p| p.len());
        match cut {
            Some(n) => s = s[n..].trim_start(),
            None => return s,
        }
    }
}

/// One line read and what it meant; the reply quotes these.
#[derive(Debug)]
pub struct Line {
    pub text: String,
    pub parsed: Result<Command, String>,
}

/// Reads the commands of a message: Subject (ignored if it is not a command), then body lines.
pub fn read(subject: &str, body: &str) -> Vec<Line> {
    let mut out = Vec::new();
    let subj = clean_subject(subject);
    if let Ok(Some(c)) = parse_line(subj) {
        if c != Command::End {
            out.push(Line {
                text: subj.to_string(),
                parsed: Ok(c),
            });
        }
    }
    for raw in body.lines().take(MAX_LINES) {
        if raw == "-- " || raw == "--" {
            break;
        }
        match parse_line(raw) {
            Ok(None) => continue,
            Ok(Some(Command::End)) => break,
            Ok(Some(c)) => out.push(Line {
                text: raw.trim().to_string(),
                parsed: Ok(c),
            }),
            Err(e) => {
                out.push(Line {
                    text: raw.trim().to_string(),
                    parsed: Err(e),
                });
                break;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_subject_then_body_and_stops_where_mailman_stops() {
        let lines = read(
            "Re: subscribe digest",
            "set delivery off\nwho\n\nhelp\nHi there, please\nunsubscribe\n",
        );
        let cmds: Vec<_> = lines.iter().map(|l| l.parsed.clone()).collect();
        assert_eq!(
            cmds[0],
            Ok(Command::Subscribe {
                digest: Some(true),
                address: None
            })
        );
        assert_eq!(cmds[1], Ok(Command::SetDelivery(false)));
        assert_eq!(cmds[2], Ok(Command::Who));
        assert_eq!(cmds[3], Ok(Command::Help));
        assert!(cmds[4].is_err());
        assert_eq!(cmds.len(), 5, "stops at the first unknown line");
    }

    #[test]
    fn signature_and_end_stop_reading() {
        assert_eq!(read("", "info\n-- \nunsubscribe\n").len(), 1);
        assert_eq!(read("", "info\nend\nunsubscribe\n").len(), 1);
    }

    #[test]
    fn at_most_25_lines() {
        let body = "\n".repeat(30) + "help\n";
        assert!(read("", &body).is_empty());
    }

    #[test]
    fn address_argument_is_validated() {
        assert!(parse_line("subscribe address=`id`@x.org").is_err());
        let Ok(Some(Command::Subscribe {
            address: Some(a), ..
        })) = parse_line("subscribe nodigest address=a@b.org")
        else {
            panic!()
        };
        assert_eq!(a.to_string(), "a@b.org");
    }
}
