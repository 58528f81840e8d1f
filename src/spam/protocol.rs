//! The SPAMC/SPAMD wire protocol (spamc 4.0's dialect): a request parser that only turns bytes into a
//! `Request`, and reply writers that produce spamd's exact bytes. Reading is lenient (any `SPAMC/x.y`,
//! `\n` or `\r\n`, header names in any case); writing is byte for byte what spamd 4.0.1 sends.
//!
//! Request:  `VERB SPAMC/1.5\r\n` headers `\r\n` then the message (Content-length bytes, else to EOF).
//! Reply:    `SPAMD/1.1 0 EX_OK\r\n` headers `\r\n` body; errors are `SPAMD/1.0 <code> <text>\r\n`.

use crate::message::sysexits::Exit;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Check,
    Symbols,
    Report,
    ReportIfspam,
    Process,
    Headers,
    Ping,
    Skip,
    Tell,
}

impl Verb {
    fn parse(s: &str) -> Option<Verb> {
        Some(match s {
            "CHECK" => Verb::Check,
            "SYMBOLS" => Verb::Symbols,
            "REPORT" => Verb::Report,
            "REPORT_IFSPAM" => Verb::ReportIfspam,
            "PROCESS" => Verb::Process,
            "HEADERS" => Verb::Headers,
            "PING" => Verb::Ping,
            "SKIP" => Verb::Skip,
            "TELL" => Verb::Tell,
            _ => return None,
        })
    }
    /// Verbs that carry a message body.
    pub fn has_body(self) -> bool {
        !matches!(self, Verb::Ping | Verb::Skip)
    }
}

/// spamc -L/-C: which class TELL is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageClass {
    Spam,
    Ham,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub verb: Verb,
    /// Protocol version as a number (1.5 for `SPAMC/1.5`), which decides the reply shape.
    pub version: f64,
    pub content_length: Option<usize>,
    pub user: Option<String>,
    pub compress_zlib: bool,
    pub message_class: Option<MessageClass>,
    pub set: Vec<String>,
    pub remove: Vec<String>,
}

/// A protocol failure, answered as spamd answers it.
#[derive(Debug, Clone, PartialEq)]
pub struct ProtoError {
    pub exit: Exit,
    pub text: String,
}

impl ProtoError {
    /// spamd's protocol_error: `SPAMD/1.0 76 Bad header line: <what>`.
    pub fn bad(what: impl Into<String>) -> Self {
        ProtoError {
            exit: Exit::Protocol,
            text: format!("Bad header line: {}", what.into()),
        }
    }
    /// spamd's service_unavailable_error: `SPAMD/1.0 69 Service Unavailable: <what>`.
    pub fn unavailable(what: impl Into<String>) -> Self {
        ProtoError {
            exit: Exit::Unavailable,
            text: format!("Service Unavailable: {}", what.into()),
        }
    }
    pub fn other(exit: Exit, text: impl Into<String>) -> Self {
        ProtoError {
            exit,
            text: text.into(),
        }
    }
    pub fn to_bytes(&self) -> Vec<u8> {
        format!("SPAMD/1.0 {} {}\r\n", self.exit.code(), self.text).into_bytes()
    }
}

/// spamd reads at most 255 header lines.
const MAX_HEADERS: usize = 255;

/// Finds the end of the request head: the first line for PING/SKIP before 1.5, else the blank line.
/// Returns the byte length of the head, or None when more bytes are needed.
pub fn head_len(buf: &[u8]) -> Option<usize> {
    let first = memchr::memchr(b'\n', buf)? + 1;
    let line = String::from_utf8_lossy(&buf[..first]);
    // Old PING/SKIP (< 1.5) have no headers at all.
    let mut w = line.split_whitespace();
    let verb = w.next().unwrap_or("");
    let ver = w
        .next()
        .and_then(|v| v.strip_prefix("SPAMC/"))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0);
    if (verb == "PING" || verb == "SKIP") && ver < 1.5 {
        return Some(first);
    }
    if Verb::parse(verb).is_none() || ver <= 1.0 && ver > 0.0 {
        // Unknown verbs are answered at once; 1.0 requests have no headers.
        return Some(first);
    }
    let mut pos = first;
    loop {
        let nl = memchr::memchr(b'\n', &buf[pos..])?;
        let line = &buf[pos..pos + nl];
        pos += nl + 1;
        if line.is_empty() || line == b"\r" {
            return Some(pos);
        }
    }
}

/// Parses a complete head (as delimited by `head_len`).
pub fn parse_head(head: &[u8]) -> Result<Request, ProtoError> {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let first = lines.next().unwrap_or("");
    let (verb_s, rest) = first.split_once(' ').unwrap_or((first, ""));
    let verb = Verb::parse(verb_s);
    let version = rest
        .trim()
        .strip_prefix("SPAMC/")
        .and_then(|v| v.trim().parse::<f64>().ok());
    let (Some(verb), Some(version)) = (verb, version) else {
        return Err(ProtoError::bad(first.to_string()));
    };
    let mut req = Request {
        verb,
        version,
        content_length: None,
        user: None,
        compress_zlib: false,
        message_class: None,
        set: Vec::new(),
        remove: Vec::new(),
    };
    let mut count = 0;
    for line in lines {
        if line.is_empty() {
            break;
        }
        count += 1;
        if count > MAX_HEADERS {
            return Err(ProtoError::bad("(too many headers)"));
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(ProtoError::bad("(header not in 'Name: value' format)"));
        };
        let value = value.trim_start();
        // spamd matches header names exactly; we read them in any case.
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => {
                let v = value.trim();
                if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(ProtoError::bad(
                        "(Content-Length contains non-numeric bytes)",
                    ));
                }
                req.content_length = Some(
                    v.parse()
                        .map_err(|_| ProtoError::bad("(Content-Length too large)"))?,
                );
            }
            "user" => {
                if value.bytes().any(|b| b < 0x20) {
                    return Err(ProtoError::bad("(User header contains control chars)"));
                }
                req.user = Some(value.to_string());
            }
            "compress" => {
                if value.trim() != "zlib" {
                    return Err(ProtoError::bad(format!(
                        "(compression type not supported: {value})"
                    )));
                }
                req.compress_zlib = true;
            }
            "message-class" => {
                req.message_class = Some(match value.trim() {
                    "spam" => MessageClass::Spam,
                    "ham" => MessageClass::Ham,
                    _ => {
                        return Err(ProtoError::bad(
                            "(Message-class header contains invalid class)",
                        ))
                    }
                })
            }
            "set" | "remove" => {
                let mut v = Vec::new();
                for w in value.split(',').map(str::trim).filter(|w| !w.is_empty()) {
                    if w != "local" && w != "remote" {
                        return Err(ProtoError::bad(format!(
                            "({name} header contains invalid value: {w})"
                        )));
                    }
                    v.push(w.to_string());
                }
                if name.trim().eq_ignore_ascii_case("set") {
                    req.set = v;
                } else {
                    req.remove = v;
                }
            }
            _ => {}
        }
    }
    if req.compress_zlib && req.content_length.is_none() {
        return Err(ProtoError::unavailable(
            "Compress requires Content-length header",
        ));
    }
    Ok(req)
}

/// Inflates a `Compress: zlib` body, refusing to grow past `max` bytes.
pub fn inflate(body: &[u8], max: usize) -> Result<Vec<u8>, ProtoError> {
    use std::io::Read;
    let mut out = Vec::new();
    let mut d = flate2::read::ZlibDecoder::new(body).take(max as u64 + 1);
    d.read_to_end(&mut out)
        .map_err(|e| ProtoError::unavailable(format!("zlib: {e}")))?;
    if out.len() > max {
        return Err(ProtoError::other(
            Exit::DataErr,
            format!("Message too big: more than {max} bytes"),
        ));
    }
    Ok(out)
}

/// What the scorer said, in the form replies need.
pub struct Outcome<'a> {
    pub is_spam: bool,
    /// Already formatted as spamd does (`get_tag_value_for_score`).
    pub score: String,
    pub threshold: String,
    /// Test names hit, comma-separated (`get_names_of_tests_hit`).
    pub symbols: &'a str,
    pub report: &'a str,
    pub rewritten: &'a [u8],
}

pub fn pong() -> &'static [u8] {
    b"SPAMD/1.5 0 PONG\r\n"
}

/// The reply to CHECK, SYMBOLS, REPORT, REPORT_IFSPAM, PROCESS or HEADERS, as spamd writes it.
pub fn reply(req: &Request, o: &Outcome<'_>) -> Vec<u8> {
    let status = match (req.verb, o.is_spam) {
        (Verb::ReportIfspam, true) => "Yes",
        (Verb::ReportIfspam, false) => "No",
        (_, true) => "True",
        (_, false) => "False",
    };
    let spamhdr = format!("Spam: {status} ; {} / {}", o.score, o.threshold);
    let v = req.version;
    let mut out = Vec::new();
    match req.verb {
        Verb::Process | Verb::Headers => {
            let body: &[u8] = if req.verb == Verb::Headers {
                headers_only(o.rewritten)
            } else {
                o.rewritten
            };
            if v >= 1.3 {
                out.extend_from_slice(
                    format!(
                        "SPAMD/1.1 0 EX_OK\r\nContent-length: {}\r\n{spamhdr}\r\n\r\n",
                        body.len()
                    )
                    .as_bytes(),
                );
            } else if v >= 1.2 {
                out.extend_from_slice(
                    format!(
                        "SPAMD/1.1 0 EX_OK\r\nContent-length: {}\r\n\r\n",
                        body.len()
                    )
                    .as_bytes(),
                );
            } else {
                out.extend_from_slice(b"SPAMD/1.0 0 EX_OK\r\n");
            }
            out.extend_from_slice(body);
        }
        Verb::Check => {
            out.extend_from_slice(format!("SPAMD/1.1 0 EX_OK\r\n{spamhdr}\r\n\r\n").as_bytes())
        }
        _ => {
            let mut body = match req.verb {
                Verb::Report => o.report.to_string(),
                Verb::ReportIfspam if o.is_spam => o.report.to_string(),
                Verb::Symbols => o.symbols.to_string(),
                _ => String::new(),
            };
            if req.verb == Verb::Symbols && v < 1.3 {
                body.push_str("\r\n");
            }
            out.extend_from_slice(b"SPAMD/1.1 0 EX_OK\r\n");
            if v >= 1.3 {
                out.extend_from_slice(
                    format!("Content-length: {}\r\n{spamhdr}\r\n\r\n", body.len()).as_bytes(),
                );
            } else {
                out.extend_from_slice(format!("{spamhdr}\r\n\r\n").as_bytes());
            }
            out.extend_from_slice(body.as_bytes());
        }
    }
    out
}

/// TELL's reply: `DidSet:`/`DidRemove:` lines, then spamd's blank lines.
pub fn tell_reply(did_set: &[&str], did_remove: &[&str]) -> Vec<u8> {
    let mut h = String::new();
    if !did_set.is_empty() {
        h.push_str(&format!("DidSet: {}\r\n", did_set.join(",")));
    }
    if !did_remove.is_empty() {
        h.push_str(&format!("DidRemove: {}\r\n", did_remove.join(",")));
    }
    format!("SPAMD/1.1 0 EX_OK\r\n{h}\r\n\r\n").into_bytes()
}

/// spamd's HEADERS: everything up to and including the first blank line.
fn headers_only(m: &[u8]) -> &[u8] {
    let a = memchr::memmem::find(m, b"\r\n\r\n").map(|p| p + 4);
    let b = memchr::memmem::find(m, b"\n\n").map(|p| p + 2);
    let c = memchr::memmem::find(m, b"\n\r\n").map(|p| p + 3);
    match [a, b, c].into_iter().flatten().min() {
        Some(end) => &m[..end],
        None => m,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_spamc_request() {
        let h = b"SYMBOLS SPAMC/1.5\r\nContent-length: 27\r\nUser: bob\r\n\r\nrest";
        let n = head_len(h).unwrap();
        assert_eq!(&h[n..], b"rest");
        let r = parse_head(&h[..n]).unwrap();
        assert_eq!(r.verb, Verb::Symbols);
        assert_eq!(r.content_length, Some(27));
        assert_eq!(r.user.as_deref(), Some("bob"));
    }

    #[test]
    fn bad_verb_is_76() {
        let h = b"BOGUS SPAMC/1.5\r\n";
        let n = head_len(h).unwrap();
        let e = parse_head(&h[..n]).unwrap_err();
        assert_eq!(
            e.to_bytes(),
            b"SPAMD/1.0 76 Bad header line: BOGUS SPAMC/1.5\r\n"
        );
    }

    #[test]
    fn replies_byte_for_byte() {
        let req = parse_head(b"SYMBOLS SPAMC/1.5\r\n\r\n").unwrap();
        let o = Outcome {
            is_spam: true,
            score: "1000.0".into(),
            threshold: "5.0".into(),
            symbols: "GTUBE,NO_RECEIVED,NO_RELAYS",
            report: "",
            rewritten: b"",
        };
        assert_eq!(
            reply(&req, &o),
            b"SPAMD/1.1 0 EX_OK\r\nContent-length: 27\r\nSpam: True ; 1000.0 / 5.0\r\n\r\nGTUBE,NO_RECEIVED,NO_RELAYS"
        );
        let req = parse_head(b"CHECK SPAMC/1.5\r\n\r\n").unwrap();
        assert_eq!(
            reply(&req, &o),
            b"SPAMD/1.1 0 EX_OK\r\nSpam: True ; 1000.0 / 5.0\r\n\r\n"
        );
        assert_eq!(
            tell_reply(&["local"], &[]),
            b"SPAMD/1.1 0 EX_OK\r\nDidSet: local\r\n\r\n\r\n"
        );
    }

    #[test]
    fn ping_old_and_new() {
        assert_eq!(head_len(b"PING SPAMC/1.2\r\n"), Some(16));
        assert_eq!(head_len(b"PING SPAMC/1.5\r\n"), None);
        assert_eq!(head_len(b"PING SPAMC/1.5\r\n\r\n"), Some(18));
    }
}
