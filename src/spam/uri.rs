//! Links found in plain text the way SpamAssassin finds them (PerMsgStatus `_tbirdurire` and
//! `_process_text_uri_list`, a hybrid of Thunderbird's and Outlook's linkifiers): `http`/`ftp` URLs,
//! bare `www.` and `ftp.` hosts, `mailto:` links and bare e-mail addresses (listed as `mailto:`, which
//! is why `uri` rules such as __UNSUB_LINK see "unsubscribe@host"). Host names without any of those
//! prefixes are not listed: SpamAssassin needs its TLD table for them, which the view does not load.

use std::sync::OnceLock;

/// Characters that end a link (`$tbirdenddelim`).
const END: &str = r#"><"`}\]{\[|\s\x1b\xa0"#;

/// The link pattern, and its first alternative alone, anchored: leftmost-first, a match is a known
/// link exactly when that alternative matches where it starts. (Asking the pattern for its capture
/// groups instead made the regex crate run its slower capturing engine on every link.)
fn link_re() -> &'static (regex::Regex, regex::Regex) {
    static RE: OnceLock<(regex::Regex, regex::Regex)> = OnceLock::new();
    RE.get_or_init(|| {
        // Alternatives in SpamAssassin's order: known scheme or www./ftp. prefix, then mail. Its length
        // limits (2,048 and 251) are checked after matching: counted repeats of these classes would
        // make the automaton too big.
        let known = format!(r"(?:(?:https?|ftp)://|(?:www\d{{0,2}}|ftp)\.)[^{END}]+");
        let mail_end = format!(r",('{END}\x{{80}}-\x{{ff}}");
        let mail = format!(r"(?:mailto:[^{mail_end}]+|[^{mail_end}@]+@[^{mail_end}]+)");
        (
            regex::Regex::new(&format!("(?i)(?:{known})|(?:{mail})")).expect("static regex"),
            regex::Regex::new(&format!("(?i)^(?:{known})")).expect("static regex"),
        )
    })
}

/// Whether a link may start at byte `i`: at a word boundary or after one of `><"'`,{[(|`, blanks,
/// ESC or NBSP (`$tbirdstartdelim`).
fn may_start(text: &str, i: usize) -> bool {
    let prev = text[..i].chars().next_back();
    let cur = text[i..].chars().next();
    let w = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
    if w(prev) != w(cur) {
        return true;
    }
    prev.is_some_and(|c| "><\"'`,{[(|\x1b\u{a0}".contains(c) || c.is_whitespace())
}

/// The links in `text`, cooked as SpamAssassin lists them (scheme added, `mailto:` for addresses).
pub fn in_text(text: &str) -> Vec<String> {
    let (re, known) = link_re();
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut at = 0;
    while at <= text.len() {
        let Some(m) = re.find_at(text, at) else {
            break;
        };
        if !may_start(text, m.start()) {
            // Try again one character further on.
            at = m.start() + text[m.start()..].chars().next().map_or(1, char::len_utf8);
            continue;
        }
        at = m.end().max(m.start() + 1);
        while !text.is_char_boundary(at) && at < text.len() {
            at += 1;
        }
        let is_mail = !known.is_match(&text[m.start()..]);
        if m.as_str().len() > 2048 + 7 {
            continue;
        }
        let raw = trim_link(m.as_str());
        if raw.is_empty() || !seen.insert(raw.to_string()) {
            continue;
        }
        if let Some(u) = cook(raw, is_mail) {
            out.push(u);
        }
    }
    out
}

/// `)` ends a link that has no `(` before it; trailing punctuation Thunderbird ignores is dropped.
fn trim_link(raw: &str) -> &str {
    let raw = match (raw.find(')'), raw.find('(')) {
        (Some(close), open) if open.is_none_or(|o| o > close) => &raw[..close],
        _ => raw,
    };
    raw.trim_end_matches(|c: char| "-~!@#^&*()_+=:;'?,.".contains(c))
}

fn cook(raw: &str, is_mail: bool) -> Option<String> {
    let lower = raw.to_ascii_lowercase();
    if is_mail && !raw.contains('@') {
        return None;
    }
    if lower.starts_with("cid:") || lower.starts_with("mid:") {
        return None;
    }
    // An empty link: a scheme and at most two slashes.
    if let Some((scheme, rest)) = raw.split_once(':') {
        if !scheme.is_empty()
            && scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
            && rest.len() <= 2
            && rest.bytes().all(|b| b == b'/')
        {
            return None;
        }
    }
    let has_scheme = ["http:", "https:", "ftp:", "mailto:"]
        .iter()
        .any(|s| lower.starts_with(s));
    let uri = if has_scheme {
        raw.to_string()
    } else if lower.starts_with("ftp.") {
        format!("ftp://{raw}")
    } else if lower.starts_with("www")
        || raw
            .find('/')
            .is_some_and(|s| raw[s + 1..].find('@').is_some_and(|a| a > 0))
    {
        // A "/" before the @ means it cannot be an address: a host with a path.
        format!("http://{raw}")
    } else if let Some(at) = raw.find('@') {
        // An address: needs a dot after the @ (no "Vi@gra"), no `&nbsp;` debris.
        if !raw[at + 1..].chars().skip(1).any(|c| c == '.') || raw.contains("&nbsp;") {
            return None;
        }
        let addr = strip_mail_prefix(raw);
        format!("mailto:{addr}")
    } else {
        return None;
    };
    if uri
        .get(..7)
        .is_some_and(|p| p.eq_ignore_ascii_case("mailto:"))
    {
        let at = uri.find('@')?;
        let host: &str = uri[at + 1..].split(['?', '&', '>']).next().unwrap_or("");
        if !valid_domain(host.trim_end_matches("%20")) {
            return None;
        }
    }
    Some(uri)
}

/// `s/^(?:skype|e?-?mail)?:+//i`.
fn strip_mail_prefix(raw: &str) -> &str {
    let lower = raw.to_ascii_lowercase();
    for p in ["skype", "e-mail", "email", "-mail", "mail", ""] {
        if lower.starts_with(p) && raw[p.len()..].starts_with(':') {
            return raw[p.len()..].trim_start_matches(':');
        }
    }
    raw
}

/// A host name whose last label could be a top-level domain (letters, or an `xn--` label).
fn valid_domain(host: &str) -> bool {
    let host = host.trim_end_matches('.');
    let Some((_, tld)) = host.rsplit_once('.') else {
        return false;
    };
    let t = tld.to_ascii_lowercase();
    (t.len() >= 2 && t.bytes().all(|b| b.is_ascii_alphabetic()))
        || (t.starts_with("xn--") && t.len() > 4)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_and_addresses() {
        assert_eq!(
            in_text("see www.x.com. and https://a.b/c?d=1, or mail unsubscribe@lists.example.org."),
            vec![
                "http://www.x.com",
                "https://a.b/c?d=1",
                "mailto:unsubscribe@lists.example.org"
            ]
        );
        assert_eq!(
            in_text("Vi@gra and (http://x.org/a) xwww.y.com"),
            vec!["http://x.org/a"]
        );
        assert_eq!(
            in_text("email:me@host.example"),
            vec!["mailto:me@host.example"]
        );
    }

    #[test]
    fn odd_text_does_not_panic() {
        for t in [
            "ftp:ééé",
            "ftp.é",
            "é@é.é",
            "mailto:",
            "www.",
            "@@@",
            "a@b.c\u{a0}x",
            "(((www.x.y",
        ] {
            let _ = in_text(t);
        }
    }
}
