//! HTML to text, as SpamAssassin's HTML renderer does it for body rules: tags dropped, script and style
//! skipped, entities decoded, block tags as line breaks; plus the links and the facts the HTML evals need.

use std::collections::HashMap;

#[derive(Debug, Clone, Default)]
pub struct Rendered {
    pub text: String,
    pub uris: Vec<String>,
    /// How many times each (lower-case) tag name opened.
    pub tags: HashMap<String, usize>,
    pub images: usize,
    pub title: String,
    /// Bytes of HTML source and of visible text, for html_text ratios.
    pub raw_len: usize,
}

impl Rendered {
    pub fn has_tag(&self, t: &str) -> bool {
        self.tags.contains_key(t)
    }
}

const BLOCK2: &[&str] = &[
    "p",
    "table",
    "blockquote",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "ul",
    "ol",
    "pre",
    "hr",
];
const BLOCK1: &[&str] = &["br", "div", "tr", "li", "dd", "dt", "title", "td", "th"];

pub fn render(html: &str) -> Rendered {
    let mut r = Rendered {
        raw_len: html.len(),
        ..Default::default()
    };
    let b = html.as_bytes();
    let mut i = 0;
    let mut text_start = 0;
    let mut in_title = false;
    while i < b.len() {
        if b[i] != b'<' {
            i += 1;
            continue;
        }
        // Flush text before the tag.
        push_text(&mut r, &html[text_start..i], in_title);
        if b[i..].starts_with(b"<!--") {
            i = find_from(b, i + 4, b"-->")
                .map(|p| p + 3)
                .unwrap_or(b.len());
            text_start = i;
            continue;
        }
        let end = match memchr::memchr(b'>', &b[i..]) {
            Some(p) => i + p,
            None => {
                // No closing '>': the rest is text, as browsers show it.
                text_start = i;
                break;
            }
        };
        let inner = &html[i + 1..end];
        i = end + 1;
        text_start = i;
        if inner.starts_with('!') || inner.starts_with('?') {
            continue;
        }
        let closing = inner.starts_with('/');
        let inner = inner.trim_start_matches('/');
        let name_end = inner
            .find(|c: char| c.is_whitespace() || c == '/')
            .unwrap_or(inner.len());
        let name = inner[..name_end].to_ascii_lowercase();
        if name.is_empty()
            || !name
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b':')
        {
            // Not a tag ("a < b"): keep it as text.
            push_text(&mut r, &html[end - inner.len() - 1..end + 1], in_title);
            continue;
        }
        if closing {
            if name == "title" {
                in_title = false;
            }
            if BLOCK2.contains(&name.as_str()) {
                r.text.push_str("\n\n");
            } else if BLOCK1.contains(&name.as_str()) {
                r.text.push('\n');
            }
            continue;
        }
        *r.tags.entry(name.clone()).or_insert(0) += 1;
        let attrs = &inner[name_end..];
        for (k, v) in parse_attrs(attrs) {
            if matches!(k.as_str(), "href" | "src" | "action" | "background") && !v.is_empty() {
                let v = decode_entities(v.trim());
                if !v.starts_with('#') && !v.to_ascii_lowercase().starts_with("javascript:") {
                    r.uris.push(v);
                }
            }
        }
        match name.as_str() {
            "script" | "style" => {
                let close = format!("</{name}");
                let lower = html[i..].to_ascii_lowercase();
                i = lower.find(&close).map(|p| i + p).unwrap_or(b.len());
                text_start = i;
            }
            "img" => r.images += 1,
            "title" => in_title = true,
            _ => {}
        }
        if BLOCK2.contains(&name.as_str()) {
            r.text.push_str("\n\n");
        } else if BLOCK1.contains(&name.as_str()) {
            r.text.push('\n');
        }
    }
    if text_start < b.len() {
        push_text(&mut r, &html[text_start..], in_title);
    }
    r
}

fn push_text(r: &mut Rendered, t: &str, in_title: bool) {
    if t.is_empty() {
        return;
    }
    let d = decode_entities(t);
    if in_title {
        r.title.push_str(&d);
        return;
    }
    r.text.push_str(&d);
}

fn find_from(h: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(h.get(from..)?, needle).map(|p| p + from)
}

fn parse_attrs(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && (b[i].is_ascii_whitespace() || b[i] == b'/') {
            i += 1;
        }
        let ks = i;
        while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b'=' {
            i += 1;
        }
        let key = s[ks..i].to_ascii_lowercase();
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if i < b.len() && b[i] == b'=' {
            i += 1;
            while i < b.len() && b[i].is_ascii_whitespace() {
                i += 1;
            }
            let val = if i < b.len() && (b[i] == b'"' || b[i] == b'\'') {
                let q = b[i];
                let vs = i + 1;
                let ve = memchr::memchr(q, &b[vs..])
                    .map(|p| vs + p)
                    .unwrap_or(b.len());
                i = (ve + 1).min(b.len());
                &s[vs..ve]
            } else {
                let vs = i;
                while i < b.len() && !b[i].is_ascii_whitespace() {
                    i += 1;
                }
                &s[vs..i]
            };
            out.push((key, val.to_string()));
        } else if !key.is_empty() {
            out.push((key, String::new()));
        }
    }
    out
}

/// Named entities SpamAssassin's renderer decodes most often, plus numeric ones.
pub fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(p) = rest.find('&') {
        out.push_str(&rest[..p]);
        let after = &rest[p + 1..];
        let semi = after.find(';').filter(|&e| e <= 10);
        let decoded = semi.and_then(|e| {
            let ent = &after[..e];
            let ch = if let Some(num) = ent.strip_prefix('#') {
                let v = if let Some(h) = num.strip_prefix(['x', 'X']) {
                    u32::from_str_radix(h, 16).ok()
                } else {
                    num.parse::<u32>().ok()
                };
                v.and_then(char::from_u32)
            } else {
                match ent {
                    "amp" => Some('&'),
                    "lt" => Some('<'),
                    "gt" => Some('>'),
                    "quot" => Some('"'),
                    "apos" => Some('\''),
                    "nbsp" => Some('\u{a0}'),
                    "copy" => Some('\u{a9}'),
                    "reg" => Some('\u{ae}'),
                    "trade" => Some('\u{2122}'),
                    "euro" => Some('\u{20ac}'),
                    "pound" => Some('\u{a3}'),
                    "mdash" => Some('\u{2014}'),
                    "ndash" => Some('\u{2013}'),
                    "hellip" => Some('\u{2026}'),
                    _ => None,
                }
            }?;
            Some((ch, e))
        });
        match decoded {
            Some((ch, e)) => {
                out.push(ch);
                rest = &after[e + 1..];
            }
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Links written out in plain text: schemes SpamAssassin recognises, and bare `www.` hosts (which it
/// prefixes with `http://`).
pub fn uris_in_text(text: &str) -> Vec<String> {
    use std::sync::OnceLock;
    static RE: OnceLock<regex::Regex> = OnceLock::new();
    let re = RE.get_or_init(|| {
        regex::Regex::new(r#"(?i)\b(?:(?:https?|ftp)://[^\s<>"'()\[\]{}]+|www\d{0,3}\.[a-z0-9-]+\.[a-z0-9.-]+[^\s<>"'()\[\]{}]*)"#)
            .expect("static regex")
    });
    re.find_iter(text)
        .map(|m| {
            let u = m.as_str().trim_end_matches(['.', ',', ';', ':', '!', '?']);
            if u.len() > 4 && u[..4].eq_ignore_ascii_case("www.") {
                format!("http://{u}")
            } else {
                u.to_string()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_text_and_links() {
        let r = render("<html><head><title>T</title><style>x{}</style></head><body><p>Hi &amp; <b>bye</b></p><a href=\"http://x.org/a\">l</a><img src='i.gif'></body>");
        assert!(r.text.contains("Hi & bye"), "{:?}", r.text);
        assert!(!r.text.contains("x{}"));
        assert_eq!(r.title, "T");
        assert_eq!(r.uris, vec!["http://x.org/a", "i.gif"]);
        assert_eq!(r.images, 1);
    }

    #[test]
    fn text_links() {
        assert_eq!(
            uris_in_text("see www.x.com. and https://a.b/c?d=1,"),
            vec!["http://www.x.com", "https://a.b/c?d=1"]
        );
    }
}
