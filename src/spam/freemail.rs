//! FreeMail's `check_freemail_replyto`: From, Reply-To and the addresses written in the body, compared
//! as SpamAssassin's FreeMail plugin compares them. `Settings::is_freemail` owns the domain list.

use super::load::Settings;
use super::view::View;
use regex::Regex;
use std::sync::OnceLock;

/// FreeMail.pm's defaults: `freemail_max_body_emails` 5, `freemail_max_body_freemails` 3, with
/// `freemail_skip_when_over_max` on: a body with that many addresses is not judged at all.
const MAX_BODY_EMAILS: usize = 5;
const MAX_BODY_FREEMAILS: usize = 3;

fn statics() -> &'static (Regex, Regex) {
    static R: OnceLock<(Regex, Regex)> = OnceLock::new();
    R.get_or_init(|| {
        (
            // Envelope senders of bulk and list mail (`freemail_skip_bulk_envfrom`, on by default):
            // their Reply-To says nothing about the sender.
            Regex::new(
                r"(?i)(?:^(?:post|host|domain)master|^double-bounce|^(?:sentto|owner|return|(?:gr)?bounced?)-.+|-(?:request|bounces?|admin|owner)|\b(?:do[._-t]?)?no[._-t]?repl(?:y|ies)|.+=.+)@",
            )
            .expect("static"),
            // Links with an address inside are not addresses written in the text.
            Regex::new(r"(?i)<?https?://\S{0,255}(?:@|%40)\S{0,255}").expect("static"),
        )
    })
}

fn user_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+/=?^_`{|}~-".contains(&c)
}

fn label_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'-'
}

/// The addresses in `t` as FreeMail's email regex finds them, as (start, end) byte ranges: a user part
/// of at most 64 characters without leading, trailing or doubled dots that does not continue an
/// earlier word, and a domain of two to five labels ending in letters (SpamAssassin checks the last
/// against its TLD table, which correo does not load).
fn find_emails(t: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(at) = memchr::memchr(b'@', &t[from..]).map(|i| i + from) {
        from = at + 1;
        // The earliest start the regex would take: the first user character, after a non-user
        // character, from which the run to '@' has no doubled dot, within 64 characters.
        let mut run = at;
        while run > 0 && (user_char(t[run - 1]) || t[run - 1] == b'.') && at - (run - 1) <= 64 {
            run -= 1;
        }
        if at == 0 || !user_char(t[at - 1]) {
            continue;
        }
        let start = (run..at).find(|&s| {
            user_char(t[s])
                && (s == 0 || !user_char(t[s - 1]))
                && !t[s..at].windows(2).any(|w| w == b"..")
        });
        let Some(start) = start else { continue };
        // Domain labels: alphanumerics and hyphens, not starting or ending with a hyphen.
        let mut labels: Vec<(usize, usize)> = Vec::new();
        let mut p = at + 1;
        while labels.len() < 5 {
            let s = p;
            while p < t.len() && label_char(t[p]) && p - s < 61 {
                p += 1;
            }
            if p == s || t[s] == b'-' || t[p - 1] == b'-' {
                break;
            }
            labels.push((s, p));
            if p + 1 < t.len() && t[p] == b'.' && label_char(t[p + 1]) {
                p += 1;
            } else {
                break;
            }
        }
        while let Some(&(s, e)) = labels.last() {
            if labels.len() >= 2 && e - s >= 2 && t[s..e].iter().all(u8::is_ascii_alphabetic) {
                break;
            }
            labels.pop();
        }
        if labels.len() < 2 {
            continue;
        }
        let end = labels[labels.len() - 1].1;
        out.push((start, end));
        from = end;
    }
    out
}

/// Addresses quoted in `<...>` or followed by a "wrote:"-like word are someone else's (the plugin
/// strips them); "fax:", "tel:", "phone:", "e-mail:" after one do not count as such a word.
fn quoted(t: &[u8], start: usize, end: usize) -> bool {
    if start >= 7 && t[start - 7..start].eq_ignore_ascii_case(b"mailto:") {
        return false;
    }
    if t.get(end) == Some(&b'>') {
        return true;
    }
    let ws = t[end..]
        .iter()
        .take_while(|c| c.is_ascii_whitespace())
        .count();
    if !(1..=10).contains(&ws) {
        return false;
    }
    let rest = &t[end + ws..];
    let letters = rest.iter().take_while(|c| c.is_ascii_alphabetic()).count();
    if !(2..=11).contains(&letters) || rest.get(letters) != Some(&b':') {
        return false;
    }
    let word = rest[..letters].to_ascii_lowercase();
    !["fax", "facsi", "tel", "phone", "email", "mail"]
        .iter()
        .any(|w| word.starts_with(w.as_bytes()))
}

/// The freemail addresses written in the body, or None when the body has too many addresses to judge.
fn body_freemails(v: &View, st: &Settings) -> Option<Vec<String>> {
    let mut seen: Vec<String> = Vec::new();
    // `<a href="mailto:...">` first: rendered text does not show them.
    for r in &v.html {
        for u in &r.uris {
            if let Some(addr) = u
                .get(..7)
                .filter(|p| p.eq_ignore_ascii_case("mailto:"))
                .map(|_| &u[7..])
            {
                let b = addr.as_bytes();
                if let Some(&(s, e)) = find_emails(b).first().filter(|&&(s, _)| s == 0) {
                    let m = String::from_utf8_lossy(&b[s..e]).to_ascii_lowercase();
                    if !seen.contains(&m) && seen.len() < 20 {
                        seen.push(m);
                    }
                }
            }
        }
    }
    let (_, links) = statics();
    'body: for line in &v.body {
        // An address needs an '@' in the line, and taking links out cannot add one: a line without
        // one gives nothing, and the link regex (its lazy DFA counts up to 255 bytes twice) is not
        // worth running over it.
        if memchr::memchr(b'@', line).is_none() {
            continue;
        }
        let text = String::from_utf8_lossy(line);
        let text = links.replace_all(&text, " ");
        let t = text.as_bytes();
        for (s, e) in find_emails(t) {
            if quoted(t, s, e) {
                continue;
            }
            let m = String::from_utf8_lossy(&t[s..e]).to_ascii_lowercase();
            if !seen.contains(&m) {
                seen.push(m);
                if seen.len() >= 40 {
                    break 'body;
                }
            }
        }
    }
    let mut fm = Vec::new();
    for (n, e) in seen.into_iter().enumerate() {
        if n + 1 == MAX_BODY_EMAILS {
            return None;
        }
        if !st.is_freemail(&e) {
            continue;
        }
        fm.push(e);
        if fm.len() == MAX_BODY_FREEMAILS {
            return None;
        }
    }
    Some(fm)
}

fn addrs(v: &View, spec: &str) -> Vec<String> {
    super::eval::get(v, spec)
        .to_ascii_lowercase()
        .split('\n')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

/// `check_freemail_replyto('replyto'|'reply')`.
pub fn replyto(v: &View, st: &Settings, what: &str) -> bool {
    if what != "replyto" && what != "reply" {
        return false;
    }
    let (bulk, _) = statics();
    let env = super::eval::get(v, "EnvelopeFrom:addr");
    if bulk.is_match(env.trim().trim_matches(['<', '>'])) {
        return false;
    }
    let from = addrs(v, "From:addr");
    let reply = addrs(v, "Reply-To:addr");
    let from_fm = from.iter().any(|e| st.is_freemail(e));
    let reply_fm = reply.iter().any(|e| st.is_freemail(e));
    let from_not_in_reply = !from.iter().any(|f| reply.contains(f));
    if from_fm && reply_fm && from_not_in_reply {
        return true;
    }
    let skip = if what == "replyto" {
        !reply_fm
    } else if !reply.is_empty() && !reply_fm {
        true
    } else {
        // FreeMail.pm's elsif: a freemail Reply-To is enough, otherwise From must be one.
        reply.is_empty() && !from_fm
    };
    if skip {
        return false;
    }
    let Some(body) = body_freemails(v, st) else {
        return false;
    };
    let against = if what == "replyto" || reply_fm {
        &reply
    } else {
        &from
    };
    body.iter().any(|b| against.iter().any(|r| r != b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_addresses_as_the_plugin_does() {
        let t =
            b"mail joe.doe@gmail.com or <x@yahoo.co.uk>, not a..b@c.com nor foo@bar, end@x.org.";
        let got: Vec<&[u8]> = find_emails(t).iter().map(|&(s, e)| &t[s..e]).collect();
        assert_eq!(
            got,
            vec![
                &b"joe.doe@gmail.com"[..],
                b"x@yahoo.co.uk",
                b"b@c.com",
                b"end@x.org"
            ]
        );
        let t = b"joe@gmail.com wrote: hi, call jane@gmail.com phone: 1";
        let f = find_emails(t);
        assert!(quoted(t, f[0].0, f[0].1));
        assert!(!quoted(t, f[1].0, f[1].1));
    }

    fn settings() -> Settings {
        let rs = super::super::rules::compile(super::super::load::load_text(
            "freemail_domains gmail.com yahoo.com\n",
        ));
        rs.settings
    }

    #[test]
    fn reply_to_and_body_freemails() {
        let st = settings();
        let msg =
            |hdrs: &str, body: &str| View::new(format!("{hdrs}Subject: s\n\n{body}\n").as_bytes());
        // Different freemails in From and Reply-To.
        let v = msg("From: a@gmail.com\nReply-To: b@yahoo.com\n", "hi");
        assert!(replyto(&v, &st, "replyto"));
        assert!(replyto(&v, &st, "reply"));
        // Same address: only a different freemail in the body makes it a hit.
        let v = msg(
            "From: a@gmail.com\nReply-To: a@gmail.com\n",
            "write to c@yahoo.com",
        );
        assert!(replyto(&v, &st, "replyto"));
        let v = msg(
            "From: a@gmail.com\nReply-To: a@gmail.com\n",
            "write to a@gmail.com",
        );
        assert!(!replyto(&v, &st, "replyto"));
        // No Reply-To: 'reply' compares From with the body, 'replyto' does not look.
        let v = msg("From: a@gmail.com\n", "write to c@yahoo.com");
        assert!(replyto(&v, &st, "reply"));
        assert!(!replyto(&v, &st, "replyto"));
        // Role addresses are not freemail; quoted ones are not the sender's.
        let v = msg(
            "From: a@gmail.com\n",
            "write to support@yahoo.com or <c@yahoo.com>",
        );
        assert!(!replyto(&v, &st, "reply"));
        // Bulk envelope senders are skipped.
        let v = msg(
            "Return-Path: <list-bounces@example.org>\nFrom: a@gmail.com\nReply-To: b@yahoo.com\n",
            "hi",
        );
        assert!(!replyto(&v, &st, "replyto"));
    }
}
