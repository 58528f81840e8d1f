//! The message as SpamAssassin's rules see it: raw and decoded header values, body "lines" (decoded text
//! parts with HTML rendered, whitespace collapsed, paragraphs as lines, Subject first), rawbody chunks,
//! the full message, and URIs from text and HTML. Built once per message; rules only read it.

use super::html;
use mail_parser::{MessageParser, MimeHeaders, PartType};
use std::collections::HashMap;

/// SpamAssassin's MAX_BODY_LINE_LENGTH: long lines and paragraphs are cut near this many bytes.
const MAX_LINE: usize = 2048;
/// SpamAssassin's body_part_scan_size / rawbody_part_scan_size defaults.
const BODY_SCAN: usize = 50_000;
const RAWBODY_SCAN: usize = 500_000;

/// One header field as it appeared: name, and the raw value (after the colon and leading blanks, folds kept).
#[derive(Debug, Clone)]
pub struct Field {
    pub name: String,
    pub raw: Vec<u8>,
}

/// A leaf MIME part, for the MIME and HTML evals.
#[derive(Debug, Clone, Default)]
pub struct PartInfo {
    pub ctype: String,
    pub charset: String,
    pub encoding: String,
    pub text_len: usize,
    pub is_attachment: bool,
}

/// What SpamAssassin's MIMEEval reads from the raw (still encoded) MIME parts in its
/// `_check_attachments` pass, plus the first text/plain part for BodyEval's `check_stock_info`;
/// gathered during the one walk over the parts so no eval re-parses the message.
#[derive(Debug, Default, Clone)]
pub struct MimeFacts {
    /// A multipart/alternative came before, in part order: from then on text parts count their bytes.
    alternative: bool,
    /// Raw bytes of the last text/plain and text/html leaves that are not attachments (0 when they
    /// came before any multipart/alternative, as SpamAssassin counts them).
    last_plain: Option<usize>,
    last_html: Option<usize>,
    /// Longest raw line, newline included, of a base64 leaf other than application/ics.
    pub base64_longest_line: usize,
    /// A text/plain leaf with no charset or us-ascii holds a NUL, a lone CR or an 8-bit byte.
    pub ascii_text_illegal: bool,
    /// A multipart/alternative has a leaf child that is neither text/* nor application/rtf.
    pub alternative_non_text: bool,
    /// Decoded text of the first text/plain part, cut like the body text.
    pub first_plain: Option<String>,
    /// Counts over every part's MIME header, containers included (MIMEEval's `_check_mime_header`).
    pub base64_parts: usize,
    pub qp_parts: usize,
    pub attachments: usize,
    pub parts_seen: usize,
    /// A text part in base64 with no charset or an ASCII one, neither attachment nor inline.
    pub base64_encoded_text: bool,
    /// An `iso-X-Y` charset that is not ISO-8859-n or ISO-2022-JP/KR.
    pub bad_iso_charset: bool,
    /// A quoted-printable line over 78 characters (RFC 5322's limit, not RFC 2045's 76).
    pub qp_long_line: bool,
    /// In text/plain parts sent as they are (no transfer encoding, 7bit or 8bit), where an HTML
    /// entity for a code point has no business: how many `&#xHHHH;` there are, and the bytes of the
    /// rest of those lines (MIMEEval's `mime_text_unicode_ratio` is the first over the second).
    pub unicode_entities: usize,
    pub unicode_other_bytes: usize,
    /// Word counts of the HTML and the other text parts below each multipart/alternative.
    alt_words: Vec<AltWords>,
    /// BodyEval's `madiff`: the largest percentage, over the alternatives, of the HTML part's
    /// distinct words that the text parts do not have as often; with the word counts of the last
    /// alternative that had HTML words (`madiff_text`, `madiff_html`).
    pub madiff: f64,
    pub madiff_text: usize,
    pub madiff_html: usize,
}

#[derive(Debug, Default, Clone)]
struct AltWords {
    html: HashMap<String, usize>,
    text: HashMap<String, usize>,
}

/// BodyEval's words: whitespace-separated, only those with a word character.
fn count_words(into: &mut HashMap<String, usize>, text: &str) {
    for w in text.split_whitespace() {
        if w.chars().any(|c| c.is_alphanumeric() || c == '_') {
            *into.entry(w.to_string()).or_default() += 1;
        }
    }
}

impl MimeFacts {
    /// `_multipart_alternative_difference`, once every part has been seen.
    fn finish_alternatives(&mut self, calendar_invite: bool) {
        let groups = std::mem::take(&mut self.alt_words);
        if calendar_invite {
            return;
        }
        for g in groups {
            let orig = g.html.len();
            if orig == 0 {
                continue;
            }
            self.madiff_html = orig;
            self.madiff_text = g.text.len();
            let left = g
                .html
                .iter()
                .filter(|(w, &n)| g.text.get(*w).is_none_or(|&t| n as i64 - t as i64 >= 1))
                .count();
            self.madiff = self.madiff.max(left as f64 / orig as f64 * 100.0);
        }
    }

    /// A multipart/alternative: a new word-count group for every part below it, and whether a direct
    /// child is a leaf that is neither text nor RTF.
    fn alternative(
        &mut self,
        msg: &mail_parser::Message<'_>,
        children: &[u32],
        groups_of: &mut [Vec<usize>],
    ) {
        let g = self.alt_words.len();
        self.alt_words.push(AltWords::default());
        let mut stack = children.to_vec();
        while let Some(c) = stack.pop() {
            let Some(slot) = groups_of.get_mut(c as usize) else {
                continue;
            };
            if slot.contains(&g) {
                continue;
            }
            slot.push(g);
            if let Some(PartType::Multipart(cc)) = msg.parts.get(c as usize).map(|p| &p.body) {
                stack.extend(cc.iter().copied());
            }
        }
        self.alternative = true;
        self.alternative_non_text |= parts_of(msg, children).any(|c| {
            let t = part_ctype(c);
            !matches!(c.body, PartType::Multipart(_) | PartType::Message(_))
                && !t.starts_with("text/")
                && t != "application/rtf"
        });
    }

    /// SpamAssassin's `mime_multipart_ratio`: plain bytes over HTML bytes of the last alternative
    /// pair; 1.0 when there is no such pair.
    pub fn multipart_ratio(&self) -> f64 {
        match (self.alternative, self.last_plain, self.last_html) {
            (true, Some(t), Some(h)) if h > 0 => t as f64 / h as f64,
            _ => 1.0,
        }
    }

    fn header(&mut self, ctype: &str, charset: &str, encoding: &str, disposition: &str) {
        static RES: std::sync::OnceLock<(regex::Regex, regex::Regex, regex::Regex)> =
            std::sync::OnceLock::new();
        let (ascii, iso, iso_ok) = RES.get_or_init(|| {
            (
                regex::Regex::new(r"us-ascii|ansi_x3\.4-1968|iso-ir-6|ansi_x3\.4-1986|iso_646\.irv:1991|ascii|iso646-us|us|ibm367|cp367|csascii").expect("static"),
                regex::Regex::new(r"(?i)iso-\S+-\S+\b").expect("static"),
                regex::Regex::new(r"iso-(?:8859-\d{1,2}|2022-(?:jp|kr))\b").expect("static"),
            )
        });
        self.parts_seen += 1;
        if encoding.contains("base64") {
            self.base64_parts += 1;
        } else if encoding.contains("quoted-printable") {
            self.qp_parts += 1;
        }
        if disposition.contains("attachment") {
            self.attachments += 1;
        }
        if ctype.starts_with("text")
            && encoding.contains("base64")
            && (charset.is_empty() || ascii.is_match(charset))
            && !disposition.starts_with("attachment")
            && !disposition.starts_with("inline")
        {
            self.base64_encoded_text = true;
        }
        if iso.is_match(charset) && !iso_ok.is_match(charset) {
            self.bad_iso_charset = true;
        }
    }

    fn leaf(
        &mut self,
        ctype: &str,
        charset: &str,
        encoding: &str,
        attachment: bool,
        raw: &[u8],
        crlf: bool,
    ) {
        let (mut bytes, mut longest, mut illegal) = (0usize, 0usize, false);
        let ascii = ctype == "text/plain" && (charset.is_empty() || charset == "us-ascii");
        let unencoded_plain = ctype == "text/plain" && matches!(encoding, "" | "7bit" | "8bit");
        for line in raw.split_inclusive(|&b| b == b'\n') {
            let mut content = line.strip_suffix(b"\n").unwrap_or(line);
            if crlf {
                content = content.strip_suffix(b"\r").unwrap_or(content);
            }
            // Every line as SpamAssassin holds it: CRLF squashed to LF, newline included.
            let len = content.len() + 1;
            bytes += len;
            longest = longest.max(len);
            illegal =
                illegal || (ascii && content.iter().any(|&b| b == 0 || b == b'\r' || b >= 0x80));
            if encoding == "quoted-printable" && len > 79 && !content.starts_with(b"SPAM: ") {
                self.qp_long_line = true;
            }
            if unencoded_plain {
                // `s/&#x[0-9A-F]{4};//g`: upper-case hex only, 8 bytes each.
                let n = unicode_entities(content);
                self.unicode_entities += n;
                self.unicode_other_bytes += len - 8 * n;
            }
        }
        self.ascii_text_illegal |= illegal;
        if encoding == "base64" && ctype != "application/ics" {
            self.base64_longest_line = self.base64_longest_line.max(longest);
        }
        if !attachment {
            let counted = if self.alternative { bytes } else { 0 };
            match ctype {
                "text/plain" => self.last_plain = Some(counted),
                "text/html" => self.last_html = Some(counted),
                _ => {}
            }
        }
    }
}

/// Non-overlapping `&#xHHHH;` (four upper-case hex digits) in `line`.
pub(crate) fn unicode_entities(line: &[u8]) -> usize {
    let hex = |b: &u8| b.is_ascii_digit() || (b'A'..=b'F').contains(b);
    let (mut n, mut i) = (0, 0);
    while let Some(p) = memchr::memmem::find(&line[i..], b"&#x") {
        let at = i + p;
        match line.get(at + 3..at + 8) {
            Some(t) if t[..4].iter().all(hex) && t[4] == b';' => {
                n += 1;
                i = at + 8;
            }
            _ => i = at + 1,
        }
    }
    n
}

/// The parts `ids` names (a multipart's children).
fn parts_of<'a, 'x>(
    msg: &'a mail_parser::Message<'x>,
    ids: &'a [u32],
) -> impl Iterator<Item = &'a mail_parser::MessagePart<'x>> + 'a {
    ids.iter().filter_map(|&i| msg.parts.get(i as usize))
}

/// An Exchange meeting request: a top-level alternative of exactly text/html and text/calendar.
fn calendar_invite(msg: &mail_parser::Message<'_>) -> bool {
    let Some(top) = msg.parts.first() else {
        return false;
    };
    let PartType::Multipart(ids) = &top.body else {
        return false;
    };
    let kids: Vec<_> = parts_of(msg, ids).collect();
    part_ctype(top) == "multipart/alternative"
        && kids.len() == 2
        && kids
            .iter()
            .all(|k| !matches!(k.body, PartType::Multipart(_)))
        && part_ctype(kids[0]) == "text/html"
        && part_ctype(kids[1]) == "text/calendar"
}

fn part_ctype(part: &mail_parser::MessagePart<'_>) -> String {
    part.content_type()
        .map(|c| {
            format!(
                "{}/{}",
                c.c_type.to_ascii_lowercase(),
                c.c_subtype.as_deref().unwrap_or("").to_ascii_lowercase()
            )
        })
        .unwrap_or_else(|| "text/plain".into())
}

#[derive(Debug, Default)]
pub struct View {
    pub full: Vec<u8>,
    pub fields: Vec<Field>,
    /// Offset of the body in `full` (after the blank line), or `full.len()` when there is none.
    pub body_start: usize,
    pub body: Vec<Vec<u8>>,
    pub rawbody: Vec<Vec<u8>>,
    pub uris: Vec<String>,
    pub parts: Vec<PartInfo>,
    /// Each text/html part rendered, with the facts the HTML evals read (SpamAssassin's `html_all`).
    pub html: Vec<html::Rendered>,
    /// Header fields of the MIME parts below the top level, unfolded, for `mimeheader` rules.
    pub mime_headers: Vec<(String, String)>,
    pub relays: super::relays::Relays,
    pub line_ending_crlf: bool,
    pub mime: MimeFacts,
    /// Each field of `fields` decoded (`decode_header_value`), built on first use: hundreds of header
    /// rules read the same few fields (`ALL` all of them), and decoding them per rule was a tenth of
    /// the time a message took.
    decoded: std::sync::OnceLock<Vec<Vec<u8>>>,
    /// Date minus Received, in seconds (eval's `date_diff`), kept for the dozen date rules that read it.
    pub(crate) date_diff: std::sync::OnceLock<i64>,
    /// The body's upper-case share in percent, None when too short to say (eval's `check_for_uppercase`),
    /// kept for the `__UPPERCASE_*` rules that read it.
    pub(crate) uppercase: std::sync::OnceLock<Option<f64>>,
    /// `header_for_rule`'s answers by spec. Evals ask for the same few (`From:addr` a dozen times,
    /// `EnvelopeFrom` through several), and each answer walks every field and allocates; a View never
    /// changes once built, so an answer never goes stale.
    by_spec: std::sync::Mutex<HashMap<String, Option<Vec<u8>>>>,
}

impl View {
    pub fn new(msg: &[u8]) -> View {
        View::from_vec(msg.to_vec())
    }

    /// `new` for a message the caller owns: its bytes become `full` without a copy.
    pub fn from_vec(full: Vec<u8>) -> View {
        let mut v = View {
            full,
            ..Default::default()
        };
        let msg = &v.full[..];
        v.line_ending_crlf = memchr::memmem::find(msg, b"\r\n")
            .is_some_and(|i| msg[..i].iter().all(|&b| b != b'\n'));
        let (fields, body_start) = split_header(msg);
        v.fields = fields;
        v.body_start = body_start;
        let rcvd: Vec<String> = v
            .raw_values("Received")
            .map(|r| String::from_utf8_lossy(&unfold_raw(r)).into_owned())
            .collect();
        v.relays = super::relays::parse_all(rcvd.iter().map(String::as_str));
        v.build_body();
        v
    }

    /// All raw values of a header, in order (name compared case-insensitively).
    pub fn raw_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.fields
            .iter()
            .filter(move |f| f.name.eq_ignore_ascii_case(name))
            .map(|f| f.raw.as_slice())
    }

    pub fn has_header(&self, name: &str) -> bool {
        self.fields
            .iter()
            .any(|f| f.name.eq_ignore_ascii_case(name))
    }

    /// Every field decoded, in the order of `fields` (the name only matters case-insensitively to
    /// `decode_header_value`, so the field's own name gives what any spelling of it would).
    pub fn decoded_fields(&self) -> &[Vec<u8>] {
        self.decoded.get_or_init(|| {
            self.fields
                .iter()
                .map(|f| decode_header_value(&f.raw, &f.name))
                .collect()
        })
    }

    /// Decoded values of a header (name compared case-insensitively), in order.
    fn decoded_of<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.fields
            .iter()
            .zip(self.decoded_fields())
            .filter(move |(f, _)| f.name.eq_ignore_ascii_case(name))
            .map(|(_, d)| d.as_slice())
    }

    /// Decoded, unfolded values, each ending in "\n", as SpamAssassin's `get_header` returns them.
    pub fn decoded_values(&self, name: &str) -> Vec<Vec<u8>> {
        self.decoded_of(name).map(<[u8]>::to_vec).collect()
    }

    /// The value a header rule tests: `Name`, `Name:raw`, `Name:addr`, `Name:name`, `ALL`, `ToCc`,
    /// `MESSAGEID`, `EnvelopeFrom`. None when the header is absent (the rule then sees `if-unset`).
    pub fn header_for_rule(&self, spec: &str) -> Option<Vec<u8>> {
        if let Ok(m) = self.by_spec.lock() {
            if let Some(v) = m.get(spec) {
                return v.clone();
            }
        }
        let v = self.header_for_rule_uncached(spec);
        if let Ok(mut m) = self.by_spec.lock() {
            m.insert(spec.to_string(), v.clone());
        }
        v
    }

    /// `header_for_rule` without the memo, for a caller that keeps its own answers (`check::Pass`).
    pub(crate) fn header_for_rule_uncached(&self, spec: &str) -> Option<Vec<u8>> {
        let mut parts = spec.split(':');
        let name = parts.next().unwrap_or("");
        let mut raw = false;
        let mut addr = false;
        let mut dname = false;
        let mut first = false;
        let mut last = false;
        for m in parts {
            match m {
                "raw" => raw = true,
                "addr" => addr = true,
                "name" => dname = true,
                "first" => first = true,
                "last" => last = true,
                _ => {}
            }
        }
        let relay_str = match name.to_ascii_lowercase().as_str() {
            "x-spam-relays-untrusted" | "x-spam-relays-external" => {
                Some(self.relays.untrusted_str())
            }
            "x-spam-relays-trusted" | "x-spam-relays-internal" => Some(self.relays.trusted_str()),
            _ => None,
        };
        if let Some(s) = relay_str {
            return Some(s.into_bytes());
        }
        if name == "EnvelopeFrom" {
            let e = self.envelope_from()?;
            return Some(if addr || raw || dname {
                e.into_bytes()
            } else {
                format!("{e}\n").into_bytes()
            });
        }
        // PerMsgStatus: ALL-TRUSTED/-INTERNAL are the fields up to and including the Received added by
        // the last trusted relay; ALL-UNTRUSTED/-EXTERNAL the fields from that Received on.
        let range = match name {
            "ALL-TRUSTED" | "ALL-INTERNAL" => {
                Some((None, Some(self.relays.last_trusted_index + 1)))
            }
            "ALL-UNTRUSTED" | "ALL-EXTERNAL" => {
                Some((Some(self.relays.last_trusted_index + 1), None))
            }
            _ => None,
        };
        if let Some((start, end)) = range {
            let mut out = Vec::new();
            let mut cur: i64 = -1;
            for (f, d) in self.fields.iter().zip(self.decoded_fields()) {
                if f.name.eq_ignore_ascii_case("Received") {
                    cur += 1;
                }
                let line = if raw {
                    [f.name.as_bytes(), b": ", &f.raw, b"\n"].concat()
                } else {
                    [f.name.as_bytes(), b": ", d].concat()
                };
                if start.is_none_or(|s| s <= cur) && end.is_none_or(|e| cur < e) {
                    out.extend_from_slice(&line);
                } else if end == Some(cur) {
                    out.extend_from_slice(&line);
                    break;
                }
            }
            return (!out.is_empty()).then_some(out);
        }
        let mut vals: Vec<Vec<u8>> = if name == "ALL" {
            if raw {
                self.fields
                    .iter()
                    .map(|f| [f.name.as_bytes(), b": ", &f.raw, b"\n"].concat())
                    .collect()
            } else {
                self.fields
                    .iter()
                    .zip(self.decoded_fields())
                    .map(|(f, d)| [f.name.as_bytes(), b": ", d].concat())
                    .collect()
            }
        } else {
            let single = [name];
            let names: &[&str] = match name {
                "ToCc" => &["To", "Cc"],
                "MESSAGEID" => &[
                    "X-Message-Id",
                    "Resent-Message-Id",
                    "X-Original-Message-ID",
                    "Message-Id",
                ],
                _ => &single,
            };
            let mut out = Vec::new();
            for n in names {
                if raw || addr || dname {
                    for r in self.raw_values(n) {
                        out.push([unfold_raw(r).as_slice(), b"\n"].concat());
                    }
                } else {
                    out.extend(self.decoded_of(n).map(<[u8]>::to_vec));
                }
            }
            out
        };
        if vals.is_empty() {
            return None;
        }
        if first {
            vals.truncate(1);
        } else if last {
            let l = vals.pop();
            vals = l.into_iter().collect();
        }
        if addr || dname {
            let mut out: Vec<Vec<u8>> = Vec::new();
            for v in &vals {
                let s = String::from_utf8_lossy(v);
                for (phrase, address) in parse_addresses(s.trim()) {
                    if addr {
                        out.push(address.into_bytes());
                    } else if let Some(p) = phrase {
                        let d = decode_header_value(p.as_bytes(), "name");
                        let d = String::from_utf8_lossy(&d);
                        let d = d.split_whitespace().collect::<Vec<_>>().join(" ");
                        let d = d
                            .strip_prefix('\'')
                            .and_then(|x| x.strip_suffix('\''))
                            .unwrap_or(&d)
                            .to_string();
                        out.push(d.into_bytes());
                    }
                }
            }
            // SpamAssassin joins multiple addresses with "\n" in scalar context.
            return Some(out.join(&b'\n'));
        }
        Some(vals.concat())
    }

    /// The envelope sender as SpamAssassin guesses it without `envelope_sender_header`
    /// (PerMsgStatus::get_envelope_from): the envelope-from of the last untrusted relay (or the first
    /// trusted one); else, unless fetchmail rewrote things (X-Sender plus a fetchmail Received),
    /// X-Envelope-From, Envelope-Sender or Return-Path, each only when no Received field comes before it
    /// (one added after delivery cannot be trusted).
    pub fn envelope_from(&self) -> Option<String> {
        let hop = self
            .relays
            .untrusted
            .first()
            .or_else(|| self.relays.trusted.last());
        if let Some(h) = hop {
            if h.envfrom.find('@').is_some_and(|p| p > 0) {
                return Some(h.envfrom.clone());
            }
        }
        let first_addr = |name: &str| -> Option<String> {
            let v = self.header_for_rule(&format!("{name}:first:addr"))?;
            Some(String::from_utf8_lossy(&v).trim().to_string())
        };
        if first_addr("X-Sender").is_some_and(|s| s.contains('@'))
            && self
                .raw_values("Received")
                .any(|r| memchr::memmem::find(r, b"(fetchmail").is_some())
        {
            return None;
        }
        // Whether a field named `name` comes after some Received field.
        let after_received = |name: &str| {
            let mut seen_rcvd = false;
            for f in &self.fields {
                if f.name.eq_ignore_ascii_case("Received") {
                    seen_rcvd = true;
                } else if seen_rcvd && f.name.eq_ignore_ascii_case(name) {
                    return true;
                }
            }
            false
        };
        for name in ["X-Envelope-From", "Envelope-Sender", "Return-Path"] {
            if let Some(e) = first_addr(name) {
                if !after_received(name) {
                    return Some(e);
                }
                if name == "X-Envelope-From" {
                    return None;
                }
            }
        }
        None
    }

    fn build_body(&mut self) {
        static PARSER: std::sync::LazyLock<MessageParser> = std::sync::LazyLock::new(parser);
        let subject = self
            .decoded_values("Subject")
            .pop()
            .unwrap_or_else(|| b"\n".to_vec());
        let mut text = String::new();
        let mut raw_chunks: Vec<Vec<u8>> = Vec::new();
        let mut uris: Vec<String> = Vec::new();
        // The parser borrows the bytes while `walk` fills in `self`: hold them aside meanwhile.
        let full = std::mem::take(&mut self.full);
        if let Some(msg) = PARSER.parse(&full[..]) {
            self.walk(&msg, &mut text, &mut raw_chunks, &mut uris, 0);
            // Exchange meeting requests (an alternative of text/html and text/calendar only) are left
            // out of the alternative comparison, as BodyEval does.
            self.mime.finish_alternatives(calendar_invite(&msg));
        }
        self.full = full;
        // SpamAssassin: blank-line runs become paragraph breaks, all other whitespace one space.
        let collapsed = collapse_paragraphs(&text);
        let mut all = subject;
        all.extend_from_slice(collapsed.as_bytes());
        self.body = split_short_lines(&all);
        self.rawbody = raw_chunks;
        // URIs also come from the plain text of every part.
        uris.extend(super::uri::in_text(&text));
        let mut seen = std::collections::HashSet::new();
        uris.retain(|u| seen.insert(u.clone()));
        self.uris = uris;
    }

    fn walk(
        &mut self,
        msg: &mail_parser::Message<'_>,
        text: &mut String,
        raw: &mut Vec<Vec<u8>>,
        uris: &mut Vec<String>,
        depth: usize,
    ) {
        if depth > 8 {
            return;
        }
        // For each part, the multipart/alternative groups (indices into `mime.alt_words`) it is in.
        let mut groups_of: Vec<Vec<usize>> = vec![Vec::new(); msg.parts.len()];
        for (pi, part) in msg.parts.iter().enumerate() {
            if pi > 0 {
                for h in &part.headers {
                    let raw = msg
                        .raw_message
                        .get(h.offset_start as usize..h.offset_end as usize)
                        .unwrap_or(b"");
                    let v = String::from_utf8_lossy(&unfold_raw(raw)).trim().to_string();
                    self.mime_headers.push((h.name.as_str().to_string(), v));
                }
            }
            let ct = part.content_type();
            let ctype = part_ctype(part);
            let is_text = ctype.starts_with("text/");
            let charset = ct
                .and_then(|c| c.attribute("charset"))
                .unwrap_or("")
                .to_ascii_lowercase();
            let encoding = part
                .content_transfer_encoding()
                .map(|e| e.to_ascii_lowercase())
                .unwrap_or_default();
            let disposition = part
                .content_disposition()
                .map(|d| d.c_type.to_ascii_lowercase())
                .unwrap_or_default();
            let is_attachment = disposition == "attachment";
            self.mime.header(&ctype, &charset, &encoding, &disposition);
            if !matches!(part.body, PartType::Multipart(_) | PartType::Message(_)) {
                let raw_body = msg
                    .raw_message
                    .get(part.offset_body as usize..part.offset_end as usize)
                    .unwrap_or(b"");
                let crlf = self.line_ending_crlf;
                self.mime
                    .leaf(&ctype, &charset, &encoding, is_attachment, raw_body, crlf);
            }
            match &part.body {
                PartType::Multipart(children) => {
                    if ctype == "multipart/alternative" {
                        self.mime.alternative(msg, children, &mut groups_of);
                    }
                    continue;
                }
                PartType::Text(t) => {
                    if is_text {
                        for &g in &groups_of[pi] {
                            count_words(&mut self.mime.alt_words[g].text, t);
                        }
                    }
                    if ctype == "text/plain" && self.mime.first_plain.is_none() {
                        self.mime.first_plain = Some(truncate_at(t, BODY_SCAN).to_string());
                    }
                    if ctype == "text/calendar" {
                        continue;
                    }
                    self.parts.push(PartInfo {
                        ctype,
                        charset,
                        encoding,
                        text_len: t.len(),
                        is_attachment,
                    });
                    if !text.is_empty() {
                        text.push('\n');
                    }
                    text.push_str(truncate_at(t, BODY_SCAN));
                    raw.extend(split_paragraph_chunks(
                        truncate_at(t, RAWBODY_SCAN).as_bytes(),
                    ));
                }
                PartType::Html(h) => {
                    self.parts.push(PartInfo {
                        ctype,
                        charset,
                        encoding,
                        text_len: h.len(),
                        is_attachment,
                    });
                    let r = html::render(h);
                    if is_text {
                        for &g in &groups_of[pi] {
                            let words = &mut self.mime.alt_words[g].html;
                            count_words(words, &r.text);
                            // No words but an image: a mark no real word can be.
                            if words.is_empty() && r.inside.contains_key("img") {
                                words.insert("\n".into(), 1);
                            }
                        }
                    }
                    if !text.is_empty() {
                        text.push('\n');
                    }
                    text.push_str(truncate_at(&r.text, BODY_SCAN));
                    uris.extend(r.uris.iter().cloned());
                    raw.extend(split_paragraph_chunks(
                        truncate_at(h, RAWBODY_SCAN).as_bytes(),
                    ));
                    self.html.push(r);
                }
                PartType::Binary(b) | PartType::InlineBinary(b) => {
                    self.parts.push(PartInfo {
                        ctype,
                        charset,
                        encoding,
                        text_len: b.len(),
                        is_attachment,
                    });
                }
                PartType::Message(m) => {
                    self.parts.push(PartInfo {
                        ctype,
                        charset,
                        encoding,
                        text_len: 0,
                        is_attachment,
                    });
                    self.walk(m, text, raw, uris, depth + 1);
                }
            }
        }
    }
}

/// The parser `MessageParser::default()` is, except that Received fields are kept raw: parsing their
/// structure was a tenth of the time of a View, and nothing here reads it (the relays come from the
/// raw fields). The other fields are parsed as by default, because a header parser decides where
/// its field ends, and so where the body starts.
fn parser() -> MessageParser {
    use mail_parser::HeaderName as H;
    let mut p = MessageParser::new().header_raw(H::Received);
    for h in [
        H::Subject,
        H::Comments,
        H::ContentDescription,
        H::ContentLocation,
        H::ContentTransferEncoding,
    ] {
        p = p.header_text(h);
    }
    for h in [
        H::From,
        H::To,
        H::Cc,
        H::Bcc,
        H::ReplyTo,
        H::Sender,
        H::ResentTo,
        H::ResentFrom,
        H::ResentBcc,
        H::ResentCc,
        H::ResentSender,
        H::ListArchive,
        H::ListHelp,
        H::ListId,
        H::ListOwner,
        H::ListPost,
        H::ListSubscribe,
        H::ListUnsubscribe,
    ] {
        p = p.header_address(h);
    }
    for h in [H::Date, H::ResentDate] {
        p = p.header_date(h);
    }
    for h in [
        H::MessageId,
        H::References,
        H::InReplyTo,
        H::ReturnPath,
        H::ContentId,
        H::ResentMessageId,
    ] {
        p = p.header_id(h);
    }
    for h in [H::Keywords, H::ContentLanguage] {
        p = p.header_comma_separated(h);
    }
    for h in [H::ContentType, H::ContentDisposition] {
        p = p.header_content_type(h);
    }
    p
}

fn truncate_at(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    // Cut at a newline just past the limit, as SpamAssassin does, on a char boundary.
    let mut end = match s[max..].find('\n') {
        Some(i) if i <= 1024 => max + i + 1,
        _ => max,
    };
    while end < s.len() && !s.is_char_boundary(end) {
        end += 1;
    }
    &s[..end]
}

/// `s/\n+\s*\n+/\0/; s/\s+/ /; tr/\0/\n/`.
fn collapse_paragraphs(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_whitespace() {
            let mut newlines = usize::from(c == '\n');
            while let Some(&n) = chars.peek() {
                if !n.is_whitespace() {
                    break;
                }
                if n == '\n' {
                    newlines += 1;
                }
                chars.next();
            }
            out.push(if newlines >= 2 { '\n' } else { ' ' });
        } else {
            out.push(c);
        }
    }
    out
}

/// SpamAssassin's split_into_array_of_short_lines: split after each "\n", then cut lines over 2048 bytes
/// at the last space before the limit.
fn split_short_lines(text: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for line in text.split_inclusive(|&b| b == b'\n') {
        let mut line = line;
        while line.len() > MAX_LINE {
            let cut = line[..MAX_LINE]
                .iter()
                .rposition(|&b| b == b' ')
                .map(|p| p + 1)
                .unwrap_or(MAX_LINE);
            out.push(line[..cut].to_vec());
            line = &line[cut..];
        }
        out.push(line.to_vec());
    }
    out
}

/// SpamAssassin's split_into_array_of_short_paragraphs for rawbody: chunks of 2048..4096 bytes, cut at a
/// newline, a `>` or a space when one is near.
pub(crate) fn split_paragraph_chunks(t: &[u8]) -> Vec<Vec<u8>> {
    if t.len() <= MAX_LINE {
        return vec![t.to_vec()];
    }
    let mut out = Vec::new();
    let mut ofs = 0;
    while t.len() - ofs > 2 * MAX_LINE {
        let find = |c: u8| memchr::memchr(c, &t[ofs + MAX_LINE..]).map(|p| p + ofs + MAX_LINE);
        let ok = |j: Option<usize>| j.filter(|&j| j - ofs < 2 * MAX_LINE);
        let j = ok(find(b'\n'))
            .or_else(|| ok(find(b'>')))
            .or_else(|| ok(find(b' ')))
            .unwrap_or(ofs + MAX_LINE);
        out.push(t[ofs..=j.min(t.len() - 1)].to_vec());
        ofs = j + 1;
    }
    if ofs < t.len() {
        out.push(t[ofs..].to_vec());
    }
    out
}

/// Splits the header block into fields. A line without a colon before the blank line ends the header
/// (SpamAssassin treats it as the start of the body); a leading "From " mbox line is skipped.
pub fn split_header(msg: &[u8]) -> (Vec<Field>, usize) {
    let mut fields: Vec<Field> = Vec::new();
    let mut pos = 0;
    if msg.starts_with(b"From ") {
        pos = memchr::memchr(b'\n', msg)
            .map(|p| p + 1)
            .unwrap_or(msg.len());
    }
    while pos < msg.len() {
        let end = memchr::memchr(b'\n', &msg[pos..])
            .map(|p| pos + p + 1)
            .unwrap_or(msg.len());
        let line = &msg[pos..end];
        let content = line.strip_suffix(b"\n").unwrap_or(line);
        let content = content.strip_suffix(b"\r").unwrap_or(content);
        if content.is_empty() {
            return (fields, end);
        }
        if content[0] == b' ' || content[0] == b'\t' {
            if let Some(f) = fields.last_mut() {
                f.raw.push(b'\n');
                f.raw.extend_from_slice(content);
            }
        } else if let Some(colon) = memchr::memchr(b':', content) {
            let name = String::from_utf8_lossy(&content[..colon])
                .trim_end()
                .to_string();
            if name.is_empty() || name.contains(char::is_whitespace) {
                return (fields, pos);
            }
            let mut v = &content[colon + 1..];
            while let [b' ' | b'\t', rest @ ..] = v {
                v = rest;
            }
            fields.push(Field {
                name,
                raw: v.to_vec(),
            });
        } else {
            return (fields, pos);
        }
        pos = end;
    }
    (fields, msg.len())
}

/// `\r?\n\s+` → one space (SpamAssassin's raw header unfolding).
pub fn unfold_raw(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'\n' {
            let mut j = i + 1;
            while j < raw.len() && raw[j].is_ascii_whitespace() {
                j += 1;
            }
            if out.last() == Some(&b'\r') {
                out.pop();
            }
            out.push(b' ');
            i = j;
        } else {
            out.push(raw[i]);
            i += 1;
        }
    }
    out
}

/// SpamAssassin's `_decode_header`: folds become a space, RFC 2047 encoded words decoded to UTF-8 (not in
/// Received, Message-ID, Date, References and List-* fields), and a trailing "\n".
pub fn decode_header_value(raw: &[u8], name: &str) -> Vec<u8> {
    let mut v: Vec<u8> = Vec::with_capacity(raw.len() + 1);
    for (i, &b) in raw.iter().enumerate() {
        match b {
            b'\r' if raw.get(i + 1) == Some(&b'\n') => {}
            b'\n' => {}
            b'\t' if i > 0 && raw[i - 1] == b'\n' => v.push(b' '),
            _ => v.push(b),
        }
    }
    let lname = name.to_ascii_lowercase();
    let skip = matches!(
        lname.as_str(),
        "received"
            | "message-id"
            | "resent-message-id"
            | "date"
            | "resent-date"
            | "mime-version"
            | "references"
            | "in-reply-to"
    ) || lname.starts_with("list-");
    if !v.is_ascii() {
        // Raw 8-bit: keep valid UTF-8, else read it as Windows-1252 as SpamAssassin's guesswork mostly does.
        if std::str::from_utf8(&v).is_err() {
            let (s, _, _) = encoding_rs::WINDOWS_1252.decode(&v);
            v = s.into_owned().into_bytes();
        }
    }
    if !skip && memchr::memmem::find(&v, b"=?").is_some() {
        v = rfc2047_decode(&String::from_utf8_lossy(&v)).into_bytes();
    }
    v.push(b'\n');
    v
}

/// Decodes RFC 2047 encoded words; whitespace between adjacent encoded words is dropped (RFC 2047 §6.2).
pub fn rfc2047_decode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    let mut last_was_word = false;
    while let Some(start) = rest.find("=?") {
        let (before, after) = rest.split_at(start);
        let decoded = parse_encoded_word(after);
        match decoded {
            Some((text, used)) => {
                if !(last_was_word && before.trim().is_empty()) {
                    out.push_str(before);
                }
                out.push_str(&text);
                rest = &after[used..];
                last_was_word = true;
            }
            None => {
                out.push_str(before);
                out.push_str("=?");
                rest = &after[2..];
                last_was_word = false;
            }
        }
    }
    out.push_str(rest);
    out
}

fn parse_encoded_word(s: &str) -> Option<(String, usize)> {
    let body = s.strip_prefix("=?")?;
    let q1 = body.find('?')?;
    let charset = &body[..q1];
    let charset = charset.split('*').next().unwrap_or(charset);
    let enc = body.get(q1 + 1..q1 + 2)?;
    if body.get(q1 + 2..q1 + 3)? != "?" {
        return None;
    }
    let data_start = q1 + 3;
    let end = body[data_start..].find("?=")? + data_start;
    let data = &body[data_start..end];
    let bytes = match enc {
        "B" | "b" => {
            use base64::Engine;
            let cleaned: String = data.chars().filter(|c| !c.is_whitespace()).collect();
            base64::engine::general_purpose::STANDARD
                .decode(cleaned.trim_end_matches('='))
                .or_else(|_| {
                    base64::engine::general_purpose::STANDARD_NO_PAD
                        .decode(cleaned.trim_end_matches('='))
                })
                .ok()?
        }
        "Q" | "q" => {
            let mut out = Vec::new();
            let b = data.as_bytes();
            let mut i = 0;
            while i < b.len() {
                match b[i] {
                    b'_' => out.push(b' '),
                    b'=' => {
                        let h = b
                            .get(i + 1..i + 3)
                            .and_then(|h| std::str::from_utf8(h).ok());
                        match h.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                            Some(v) => {
                                out.push(v);
                                i += 2;
                            }
                            None => out.push(b'='),
                        }
                    }
                    c => out.push(c),
                }
                i += 1;
            }
            out
        }
        _ => return None,
    };
    let enc =
        encoding_rs::Encoding::for_label(charset.as_bytes()).unwrap_or(encoding_rs::WINDOWS_1252);
    let (text, _, _) = enc.decode(&bytes);
    Some((text.into_owned(), 2 + end + 2))
}

/// Splits an address header into (display name, address) pairs. Lenient: groups, comments and bare
/// addresses are all accepted, as SpamAssassin's parse_header_addresses is.
pub fn parse_addresses(s: &str) -> Vec<(Option<String>, String)> {
    let mut out = Vec::new();
    // Split on commas outside quotes and angle brackets.
    let mut items = Vec::new();
    let mut cur = String::new();
    let (mut inq, mut ina, mut paren) = (false, false, 0i32);
    for c in s.chars() {
        match c {
            '"' if paren == 0 => inq = !inq,
            '<' if !inq && paren == 0 => ina = true,
            '>' if !inq && paren == 0 => ina = false,
            '(' if !inq => paren += 1,
            ')' if !inq && paren > 0 => paren -= 1,
            ',' | ';' if !inq && !ina && paren == 0 => {
                items.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    items.push(cur);
    for item in items {
        let mut item = item.trim().to_string();
        // Group syntax "name: a, b;" — drop the group label.
        if let Some(colon) = item.find(':') {
            if !item[..colon].contains('<')
                && !item[..colon].contains('@')
                && !item[..colon].contains('"')
            {
                item = item[colon + 1..].trim().to_string();
            }
        }
        if item.is_empty() {
            continue;
        }
        if let (Some(lt), Some(gt)) = (item.find('<'), item.rfind('>')) {
            if lt < gt {
                let addr = item[lt + 1..gt].trim().to_string();
                let phrase = item[..lt].trim().trim_matches('"').trim().to_string();
                out.push((
                    if phrase.is_empty() {
                        None
                    } else {
                        Some(phrase)
                    },
                    addr,
                ));
                continue;
            }
        }
        // "addr (Comment)" form.
        let (addr, comment) = match item.find('(') {
            Some(p) => (
                item[..p].trim().to_string(),
                Some(item[p + 1..].trim_end_matches(')').trim().to_string()),
            ),
            None => (item.clone(), None),
        };
        out.push((comment.filter(|c| !c.is_empty()), addr));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values() {
        let m = b"Subject: =?utf-8?q?caf=C3=A9?=\n =?utf-8?b?IG9r?=\nFrom: \"Bob X\" <bob@x.org>\nTo: a@b, c@d\n\nHello\n\nWorld  there\n";
        let v = View::new(m);
        assert_eq!(
            v.header_for_rule("Subject").unwrap(),
            "caf\u{e9} ok\n".as_bytes()
        );
        assert_eq!(v.header_for_rule("From:addr").unwrap(), b"bob@x.org");
        assert_eq!(v.header_for_rule("From:name").unwrap(), b"Bob X");
        assert_eq!(v.header_for_rule("ToCc:addr").unwrap(), b"a@b\nc@d");
        assert!(v.header_for_rule("Cc").is_none());
        assert_eq!(v.body[0], "caf\u{e9} ok\n".as_bytes());
        assert_eq!(v.body[1], b"Hello\n");
        assert_eq!(v.body[2], b"World there ");
    }

    #[test]
    fn no_body_no_panic() {
        let v = View::new(b"Subject: x");
        assert_eq!(v.fields.len(), 1);
        let v = View::new(b"");
        assert!(v.fields.is_empty());
    }
}
