//! Writing the verdict into mail the way SpamAssassin 4.0 does: the `_TAG_` template language, the
//! X-Spam-* headers (folded at 79 columns like SpamAssassin's `wrap`), the report text, `rewrite_header`,
//! and `report_safe` 0 (headers only), 1 (original attached as message/rfc822) and 2 (as text/plain).

use super::check::Verdict;
use super::rules::RuleSet;
use super::view::View;

/// The SpamAssassin release whose output we reproduce; `_VERSION_` and `version=` print it so tools that
/// parse X-Spam-Status keep working.
pub const VERSION: &str = "4.0.1";
/// `_SUBVERSION_`: says who actually scored the mail.
pub const SUBVERSION: &str = concat!("correo ", env!("CARGO_PKG_VERSION"));

pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

/// Everything needed to expand tags for one message.
pub struct Marker<'a> {
    pub rules: &'a RuleSet,
    pub view: &'a View,
    pub v: &'a Verdict,
    pub host: String,
}

/// `sprintf("%2.1f")`.
pub fn f1(x: f64) -> String {
    format!("{x:.1}")
}

impl Marker<'_> {
    /// `_SCORE_`: the score, except that ham at or above the threshold (possible when `required_score` is
    /// reached only before rounding) shows threshold minus 0.1, as SpamAssassin's get_tag_value_for_score.
    pub fn score_str(&self) -> String {
        score_for_display(self.v.score, self.v.required, self.v.is_spam)
    }

    fn tests(&self, sep: &str) -> String {
        let mut names: Vec<&str> = self
            .v
            .hits
            .iter()
            .map(|&i| self.rules.rules[i].name.as_str())
            .collect();
        names.sort_unstable();
        if names.is_empty() {
            "none".into()
        } else {
            names.join(sep)
        }
    }

    /// Expands one tag (without underscores); None leaves `_TAG_` in place, as SpamAssassin does.
    pub fn tag(&self, tag: &str) -> Option<String> {
        let (name, arg) = match tag.find('(') {
            Some(p) => (
                &tag[..p],
                Some(tag[p + 1..].strip_suffix(')').unwrap_or(&tag[p + 1..])),
            ),
            None => (tag, None),
        };
        Some(match name {
            "YESNO" | "YESNOCAPS" => {
                let (s, h) = match arg {
                    Some(a) => {
                        let mut p = a.splitn(2, ',');
                        (
                            p.next().unwrap_or("Yes").to_string(),
                            p.next().unwrap_or("No").to_string(),
                        )
                    }
                    None => ("Yes".into(), "No".into()),
                };
                let r = if self.v.is_spam { s } else { h };
                if name == "YESNOCAPS" {
                    r.to_uppercase()
                } else {
                    r
                }
            }
            "SCORE" | "HITS" => {
                let s = self.score_str();
                match arg {
                    Some(pad)
                        if !pad.is_empty()
                            && (pad.bytes().all(|b| b == b'0')
                                || pad.bytes().all(|b| b == b' ')) =>
                    {
                        let count = (pad.len() + 3).saturating_sub(s.len());
                        format!("{}{s}", &pad[..count.min(pad.len())])
                    }
                    _ => s,
                }
            }
            "REQD" => f1(self.v.required),
            "VERSION" => VERSION.into(),
            "SUBVERSION" => SUBVERSION.into(),
            "HOSTNAME" => self.host.clone(),
            "REMOTEHOSTNAME" => "localhost".into(),
            "REMOTEHOSTADDR" => "127.0.0.1".into(),
            "CONTACTADDRESS" => self.rules.settings.report_contact.clone(),
            "BAYES" => "0.5".into(),
            "DATE" => rfc822_now(),
            "STARS" => {
                let c = arg.filter(|a| !a.is_empty()).unwrap_or("*");
                let n = (self.v.score.max(0.0) as usize).min(50);
                c.repeat(n)
            }
            // Scored without the learner (tests, `check` with Bayes off in code): nothing was learned.
            "AUTOLEARN" => self
                .v
                .autolearn
                .map_or_else(|| "no autolearn_force=no".into(), |a| a.tag()),
            "AUTOLEARNSCORE" => "0".into(),
            "TESTS" => self.tests(arg.unwrap_or(",")),
            "SUBTESTS" => {
                let mut n: Vec<&str> = self
                    .v
                    .subhits
                    .iter()
                    .map(|&i| self.rules.rules[i].name.as_str())
                    .collect();
                n.sort_unstable();
                if n.is_empty() {
                    "none".into()
                } else {
                    n.join(arg.unwrap_or(","))
                }
            }
            "TESTSSCORES" => {
                let mut n: Vec<(&str, f64)> = self
                    .v
                    .hits
                    .iter()
                    .map(|&i| {
                        let r = &self.rules.rules[i];
                        (r.name.as_str(), self.v.score_of(r))
                    })
                    .collect();
                n.sort_by(|a, b| a.0.cmp(b.0));
                if n.is_empty() {
                    "none".into()
                } else {
                    n.iter()
                        .map(|(a, s)| format!("{a}={}", perl_num(*s)))
                        .collect::<Vec<_>>()
                        .join(arg.unwrap_or(","))
                }
            }
            "PREVIEW" => self.preview(),
            "REPORT" => format!("\n{}", self.report_lines()),
            "SUMMARY" => self.summary(),
            "LANGUAGES" | "RELAYSTRUSTED" | "RELAYSUNTRUSTED" | "RELAYSINTERNAL"
            | "RELAYSEXTERNAL" => String::new(),
            "HEADER" => {
                let h = arg.unwrap_or("");
                let v = self.view.header_for_rule(h).unwrap_or_default();
                String::from_utf8_lossy(&v)
                    .trim_end_matches('\n')
                    .to_string()
            }
            _ => return None,
        })
    }

    /// Replaces `_TAG_` and `_TAG(arg)_` occurrences.
    pub fn replace_tags(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let b = text.as_bytes();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'_' {
                if let Some((tag, len)) = scan_tag(&text[i + 1..]) {
                    if !tag.starts_with("ADDEDHEADER") {
                        if let Some(v) = self.tag(tag) {
                            out.push_str(&v);
                            i += 1 + len + 1;
                            continue;
                        }
                    }
                }
            }
            let ch = text[i..].chars().next().unwrap_or('_');
            out.push(ch);
            i += ch.len_utf8();
        }
        out
    }

    /// SpamAssassin's `_REPORT_` body: one `* score RULE AREA description` entry per hit.
    pub fn report_lines(&self) -> String {
        let mut out = String::new();
        for &i in &self.v.hits {
            let r = &self.rules.rules[i];
            let score = score_col(self.v.score_of(r));
            let area = r.area();
            let desc = wrap_desc(
                &r.describe,
                4 + r.name.len() + score.len() + area.len(),
                "*      ",
            );
            out.push_str(&format!("* {score} {} {area}{desc}\n", r.name));
        }
        out
    }

    /// `_SUMMARY_`: the table in the report_safe body.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        for &i in &self.v.hits {
            let r = &self.rules.rules[i];
            let score = score_col(self.v.score_of(r));
            let area = r.area();
            let desc = wrap_desc(
                &r.describe,
                3 + r.name.len() + score.len() + area.len(),
                &" ".repeat(28),
            );
            out.push_str(&format!("{score} {:<22} {area}{desc}\n", r.name));
        }
        out
    }

    /// SpamAssassin's get_content_preview: the first lines of the body after the Subject, about 200 bytes.
    pub fn preview(&self) -> String {
        let mut s = String::new();
        let mut lines = self.view.body.iter().skip(1);
        let mut n = 3;
        while s.len() < 200 && n > 0 {
            match lines.next() {
                Some(l) => s.push_str(&String::from_utf8_lossy(l)),
                None => break,
            }
            n -= 1;
        }
        let mut t = String::new();
        for line in s.split_inclusive('\n') {
            let (body, nl) = match line.strip_suffix('\n') {
                Some(b) => (b, "\n"),
                None => (line, ""),
            };
            if body.len() > 200 {
                let mut cut = 200;
                while !body.is_char_boundary(cut) {
                    cut -= 1;
                }
                t.push_str(&body[..cut]);
                t.push_str(" [...]");
            } else {
                t.push_str(body);
            }
            t.push_str(nl);
        }
        let mut s = t.trim_end_matches('\n').to_string();
        s.push('\n');
        let s = s.replace("This is a multi-part message in MIME format.", "");
        let s = strip_runs(&s);
        let s: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
        let s = format!("{s} ");
        let w = wrap(&s, "  ", "Content preview:  ", 75, true, false);
        w.strip_prefix("Content preview:")
            .map(|x| x.trim_start().to_string())
            .unwrap_or(w)
    }

    /// The full report text (the `report` template expanded), as spamd's REPORT verb returns it.
    pub fn report(&self) -> String {
        let mut t = self.rules.settings.report.join("\n");
        t.push('\n');
        self.replace_tags(&t)
    }

    /// The X-Spam-* header block for this verdict, each line ending in "\n".
    pub fn added_headers(&self) -> String {
        let set = if self.v.is_spam {
            &self.rules.settings.headers_spam
        } else {
            &self.rules.settings.headers_ham
        };
        let mut out = String::new();
        for (name, tmpl) in set {
            let value = self.process_header(name, tmpl);
            out.push_str(&format!("X-Spam-{name}: {}\n", mime_encode_header(&value)));
        }
        out
    }

    /// `_process_header`: expand, then fold at 79 columns on whitespace or after commas.
    fn process_header(&self, name: &str, tmpl: &str) -> String {
        let data = self.replace_tags(tmpl);
        let data = data.trim_end_matches(['\r', '\n']);
        if data.contains('\n') {
            // Multi-line values (the report): each line continues with a tab.
            let mut out = String::new();
            for (i, l) in data.split('\n').enumerate() {
                if i > 0 {
                    out.push_str("\n\t");
                }
                out.push_str(l.trim());
            }
            return out;
        }
        let h = format!("X-Spam-{name}!!{data}");
        let w = wrap(&h, "\t", "", 79, false, true);
        let w: Vec<&str> = w.split('\n').filter(|l| !l.trim().is_empty()).collect();
        let w = w.join("\n");
        w.split_once("!!").map(|x| x.1.to_string()).unwrap_or(w)
    }

    /// The message as `spamassassin -t` / spamd PROCESS returns it.
    pub fn rewrite(&self) -> Vec<u8> {
        if self.v.is_spam && self.rules.settings.report_safe > 0 {
            self.rewrite_report_safe()
        } else {
            self.rewrite_headers_only()
        }
    }

    fn tag_for(&self, header: &str) -> Option<String> {
        self.rules
            .settings
            .rewrite_header
            .iter()
            .find(|(h, _)| h == header)
            .map(|(_, t)| self.replace_tags(t).replace('\n', " "))
    }

    fn rewrite_headers_only(&self) -> Vec<u8> {
        let full = &self.view.full;
        let hdr_end = self.view.body_start.min(full.len());
        let header = &full[..hdr_end];
        // Pristine header lines without old X-Spam-* fields (X-Spam-Prev-* stay).
        let mut lines: Vec<Vec<u8>> = Vec::new();
        let mut skipping = false;
        for l in header.split_inclusive(|&b| b == b'\n') {
            let is_cont = l.first().is_some_and(|&c| c == b' ' || c == b'\t');
            if is_cont && skipping {
                continue;
            }
            skipping = false;
            if !is_cont && starts_ci(l, b"X-Spam-") && !starts_ci(l, b"X-Spam-Prev-") {
                skipping = true;
                continue;
            }
            lines.push(l.to_vec());
        }
        let mut separator = Vec::new();
        if lines
            .last()
            .is_some_and(|l| l.iter().all(|b| b.is_ascii_whitespace()))
        {
            separator = lines.pop().unwrap_or_default();
        }
        let has_subject = self.view.has_header("Subject");
        let subj_tag = self.tag_for("Subject");
        if subj_tag.is_some() && !has_subject && self.v.is_spam {
            lines.push(b"Subject: \n".to_vec());
        }
        if self.v.is_spam {
            // Join folded lines into whole fields so a rewrite sees the whole value.
            let mut fields: Vec<Vec<u8>> = Vec::new();
            for l in lines {
                if l.first().is_some_and(|&c| c == b' ' || c == b'\t') {
                    if let Some(f) = fields.last_mut() {
                        f.extend_from_slice(&l);
                        continue;
                    }
                }
                fields.push(l);
            }
            let mut prev = Vec::new();
            for f in fields.iter_mut() {
                for h in ["Subject", "From", "To"] {
                    if !starts_ci(f, format!("{h}:").as_bytes()) {
                        continue;
                    }
                    let Some(tag) = self.tag_for(h) else { continue };
                    if h == "Subject" && !has_subject {
                        prev.push(b"X-Spam-Prev-Subject: (nonexistent)\n".to_vec());
                    } else {
                        prev.push([b"X-Spam-Prev-".as_slice(), f.as_slice()].concat());
                    }
                    let tag = if h == "Subject" {
                        tag
                    } else {
                        format!("({tag})")
                    };
                    let colon = f.iter().position(|&b| b == b':').unwrap_or(0);
                    let mut rest = &f[colon + 1..];
                    while let [b' ' | b'\t', r @ ..] = rest {
                        rest = r;
                    }
                    let tagsp = format!("{tag} ");
                    if rest.starts_with(tagsp.as_bytes()) {
                        rest = &rest[tagsp.len()..];
                    }
                    *f = [&f[..=colon], b" ", tagsp.as_bytes(), rest].concat();
                }
            }
            fields.extend(prev);
            lines = fields;
        }
        let mut out = Vec::with_capacity(full.len() + 512);
        let mut rest_start = 0;
        if lines.first().is_some_and(|l| starts_ci(l, b"Return-Path:")) {
            out.extend_from_slice(&lines[0]);
            rest_start = 1;
            while lines
                .get(rest_start)
                .is_some_and(|l| l.first().is_some_and(|&c| c == b' ' || c == b'\t'))
            {
                out.extend_from_slice(&lines[rest_start]);
                rest_start += 1;
            }
        }
        out.extend_from_slice(self.fix_eol(self.added_headers()).as_bytes());
        for l in &lines[rest_start..] {
            out.extend_from_slice(l);
        }
        out.extend_from_slice(&separator);
        out.extend_from_slice(&full[hdr_end..]);
        out
    }

    fn fix_eol(&self, s: String) -> String {
        if self.view.line_ending_crlf {
            s.replace("\r\n", "\n").replace('\n', "\r\n")
        } else {
            s
        }
    }

    fn rewrite_report_safe(&self) -> Vec<u8> {
        let pristine = |name: &str| -> Option<String> {
            self.view
                .raw_values(name)
                .last()
                .map(|r| format!("{}\n", String::from_utf8_lossy(r)))
        };
        let mut report = self.report();
        let mut from = pristine("From");
        let mut to = pristine("To");
        let cc = pristine("Cc");
        let mut subject = pristine("Subject");
        let msgid = pristine("Message-Id");
        let date = pristine("Date");
        if let Some(tag) = self.tag_for("Subject") {
            let s = subject.unwrap_or_else(|| "\n".into());
            let s = s
                .strip_prefix(&format!("{tag} "))
                .map(str::to_string)
                .unwrap_or(s);
            subject = Some(format!("{tag} {s}"));
        }
        for (h, slot) in [("To", &mut to), ("From", &mut from)] {
            if let Some(tag) = self.tag_for(h) {
                let s = slot.take().unwrap_or_else(|| "\n".into());
                let s = s
                    .trim_end_matches('\n')
                    .trim_end_matches(&format!("\t({tag})"))
                    .to_string();
                *slot = Some(format!("{s}\t({tag})\n"));
            }
        }
        let mut m = String::new();
        m.push_str(&format!(
            "Received: from localhost by {}\n\twith SpamAssassin (version {VERSION});\n\t{}\n",
            self.host,
            rfc822_now()
        ));
        for (n, v) in [
            ("From", &from),
            ("To", &to),
            ("Cc", &cc),
            ("Subject", &subject),
            ("Date", &date),
            ("Message-Id", &msgid),
        ] {
            if let Some(v) = v {
                m.push_str(&format!("{n}: {v}"));
            }
        }
        m.push_str(&self.added_headers());
        let mut boundary = format!("----------=_{:08X}.{:08X}", now_secs() as u32, rand32());
        let full = &self.view.full;
        while memchr::memmem::find(full, boundary.as_bytes()).is_some() {
            boundary.push_str(&format!("/{:08X}", rand32()));
        }
        let ct = self
            .view
            .header_for_rule("Content-Type")
            .map(|b| String::from_utf8_lossy(&b).to_ascii_lowercase());
        let disposition = match ct {
            Some(c) if !c.trim().is_empty() && !c.contains("text/plain") => {
                let mut u = self.rules.settings.unsafe_report.join("\n");
                u.push('\n');
                report.push_str(&self.replace_tags(&u));
                "attachment"
            }
            _ => "inline",
        };
        let ty = if self.rules.settings.report_safe > 1 {
            "text/plain"
        } else {
            "message/rfc822"
        };
        m.push_str(&format!(
            "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"{boundary}\"\n\n\
             This is a multi-part message in MIME format.\n\n--{boundary}\n\
             Content-Type: text/plain; charset=UTF-8\nContent-Disposition: inline\n\
             Content-Transfer-Encoding: 8bit\n\n{report}\n--{boundary}\n\
             Content-Type: {ty}; x-spam-type=original\n\
             Content-Description: original message before SpamAssassin\n\
             Content-Disposition: {disposition}\nContent-Transfer-Encoding: 8bit\n\n"
        ));
        let trailer = format!("\n--{boundary}--\n\n");
        let mut out = self.fix_eol(m).into_bytes();
        out.extend_from_slice(full);
        out.extend_from_slice(self.fix_eol(trailer).as_bytes());
        out
    }
}

pub fn score_for_display(score: f64, required: f64, is_spam: bool) -> String {
    let s = f1(score);
    let r = f1(required);
    let (sv, rv) = (
        s.parse::<f64>().unwrap_or(score),
        r.parse::<f64>().unwrap_or(required),
    );
    if is_spam || sv < rv {
        s
    } else {
        perl_num(rv - 0.1)
    }
}

/// Perl's default number stringification for the values we print (up to 15 significant digits).
pub fn perl_num(x: f64) -> String {
    let r = (x * 1e10).round() / 1e10;
    let s = format!("{r}");
    if s == "-0" {
        "0".into()
    } else {
        s
    }
}

fn score_col(s: f64) -> String {
    if s >= 10.0 || s <= -10.0 {
        format!("{s:4.0}")
    } else {
        format!("{s:4.1}")
    }
}

fn starts_ci(l: &[u8], p: &[u8]) -> bool {
    l.len() >= p.len() && l[..p.len()].eq_ignore_ascii_case(p)
}

/// `s/[-_*.]{10,}//g`.
fn strip_runs(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut run = String::new();
    for c in s.chars() {
        if matches!(c, '-' | '_' | '*' | '.') {
            run.push(c);
        } else {
            if run.len() < 10 {
                out.push_str(&run);
            }
            run.clear();
            out.push(c);
        }
    }
    if run.len() < 10 {
        out.push_str(&run);
    }
    out
}

fn scan_tag(s: &str) -> Option<(&str, usize)> {
    // _([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*(?:\(.*?\))?)_
    let b = s.as_bytes();
    if !b.first()?.is_ascii_uppercase() {
        return None;
    }
    let mut i = 1;
    loop {
        while i < b.len() && (b[i].is_ascii_uppercase() || b[i].is_ascii_digit()) {
            i += 1;
        }
        if i + 1 < b.len()
            && b[i] == b'_'
            && (b[i + 1].is_ascii_uppercase() || b[i + 1].is_ascii_digit())
        {
            i += 1;
            continue;
        }
        break;
    }
    if i < b.len() && b[i] == b'(' {
        // Non-greedy: the first ")_" ends the argument.
        let close = s[i..].find(")_")? + i;
        return Some((&s[..=close], close + 1));
    }
    if i < b.len() && b[i] == b'_' {
        return Some((&s[..i], i));
    }
    None
}

/// SpamAssassin's Util::wrap: split on whitespace (or after `,` when `comma` is set), keep separators,
/// join pieces while they fit in `length` columns (a tab counts 8), prefix continuation lines.
pub fn wrap(
    s: &str,
    prefix: &str,
    first: &str,
    length: usize,
    overflow: bool,
    comma: bool,
) -> String {
    let mut arr = perl_split(s, comma);
    if !first.is_empty() {
        arr.insert(0, first.to_string());
    }
    let tlen = |x: &str| x.chars().count() + x.matches('\t').count() * 7;
    let mut pos = 0;
    let mut pos_mod = false;
    while arr.len() > pos + 1 {
        let mut len = tlen(&arr[pos]);
        if pos_mod && !overflow {
            len += tlen(&arr[pos + 1]);
        }
        if len <= length {
            let next = arr.remove(pos + 1);
            arr[pos].push_str(&next);
            pos_mod = true;
        } else {
            let t = arr[pos].trim_end().to_string();
            arr[pos] = t;
            pos += 1;
            pos_mod = false;
            arr.insert(pos, prefix.to_string());
        }
    }
    arr.join("\n")
}

/// Perl's `split(/(\s)/)` (pieces and the separators) or, with `comma`, `split(/((?<=[\s,]))/)` (pieces
/// cut after each blank or comma, with empty separators). Trailing empty fields are dropped, as in Perl.
fn perl_split(s: &str, comma: bool) -> Vec<String> {
    let mut arr: Vec<String> = Vec::new();
    let mut cur = String::new();
    for c in s.chars() {
        if comma {
            cur.push(c);
            if c.is_whitespace() || c == ',' {
                arr.push(std::mem::take(&mut cur));
                arr.push(String::new());
            }
        } else if c.is_whitespace() {
            arr.push(std::mem::take(&mut cur));
            arr.push(c.to_string());
        } else {
            cur.push(c);
        }
    }
    arr.push(cur);
    while arr.last().is_some_and(String::is_empty) {
        arr.pop();
    }
    arr
}

fn wrap_desc(desc: &str, first_len: usize, prefix: &str) -> String {
    let first = " ".repeat(first_len);
    let w = wrap(desc, prefix, &first, 75, false, false);
    w.trim_start().to_string()
}

/// RFC 2047-encode header lines that are not plain ASCII (SpamAssassin's mime_encode_header).
fn mime_encode_header(text: &str) -> String {
    if text
        .bytes()
        .all(|b| b == b'\t' || b == b'\n' || (0x20..0x7f).contains(&b))
    {
        return text.to_string();
    }
    use base64::Engine;
    text.split('\n')
        .map(|l| {
            if l.bytes().all(|b| b == b'\t' || (0x20..0x7f).contains(&b)) {
                l.to_string()
            } else {
                format!(
                    "=?UTF-8?B?{}?=",
                    base64::engine::general_purpose::STANDARD.encode(l)
                )
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn rand32() -> u32 {
    let mut b = [0u8; 4];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
    u32::from_le_bytes(b)
}

fn rfc822_now() -> String {
    chrono::Local::now()
        .format("%a, %d %b %Y %H:%M:%S %z")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_header_folds_like_spamassassin() {
        let h = "X-Spam-Status!!Yes, score=1000.0 required=5.0 tests=GTUBE,NO_RECEIVED,NO_RELAYS autolearn=no autolearn_force=no version=4.0.1";
        let w = wrap(h, "\t", "", 79, false, true);
        assert_eq!(
            w,
            "X-Spam-Status!!Yes, score=1000.0 required=5.0 tests=GTUBE,NO_RECEIVED,\n\tNO_RELAYS autolearn=no autolearn_force=no version=4.0.1"
        );
    }

    #[test]
    fn ham_score_never_reaches_threshold() {
        assert_eq!(score_for_display(4.96, 5.0, false), "4.9");
        assert_eq!(score_for_display(4.2, 5.0, false), "4.2");
        assert_eq!(score_for_display(7.0, 5.0, true), "7.0");
    }

    #[test]
    fn report_safe_0_rewrites_subject_and_drops_old_headers() {
        let rs = crate::spam::rules::compile(crate::spam::load::load_text(
            "body A /xyzzy/\nscore A 6\ndescribe A Magic word\nrewrite_header Subject [SPAM]\n\
             add_header all Status _YESNO_, score=_SCORE_ tests=_TESTS_\nreport_safe 0\n",
        ));
        let msg =
            b"Return-Path: <a@b>\nSubject: hi\nX-Spam-Status: old\n\tcont\nTo: c@d\n\nxyzzy\n";
        let (view, v) = rs.check(msg);
        assert!(v.is_spam);
        let m = Marker {
            rules: &rs,
            view: &view,
            v: &v,
            host: "h".into(),
        };
        let out = String::from_utf8(m.rewrite()).unwrap();
        assert!(
            out.starts_with(
                "Return-Path: <a@b>\nX-Spam-Status: Yes, score=6.0 tests=A\nX-Spam-Report: "
            ),
            "{out}"
        );
        assert!(out.contains("\n\t*  6.0 A BODY: Magic word\n"), "{out}");
        assert!(out.contains("Subject: [SPAM] hi\n"), "{out}");
        assert!(out.contains("X-Spam-Prev-Subject: hi\n"), "{out}");
        assert!(!out.contains("old"), "{out}");
        assert!(out.ends_with("\n\nxyzzy\n"), "{out}");
    }

    #[test]
    fn tags_scan() {
        assert_eq!(scan_tag("STARS(*)_ x"), Some(("STARS(*)", 8)));
        assert_eq!(scan_tag("YESNO_"), Some(("YESNO", 5)));
        assert_eq!(scan_tag("lower_"), None);
    }
}
