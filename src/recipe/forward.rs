//! The `.forward` parser (sendmail's aliases(5) right-hand side, one file): entries separated by commas
//! or newlines, `#` comment lines, `"|command"` pipes, `/path` files, `\user` local delivery without
//! further forwarding, and plain addresses. Parsing only; `recipe::cli` acts on the entries.

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Address(String),
    Pipe(String),
    File(String),
    /// `\user`: deliver to that user's mailbox, do not read their `.forward` again.
    Local(String),
}

pub fn parse(src: &[u8]) -> Vec<Entry> {
    let text = String::from_utf8_lossy(src);
    let mut out = Vec::new();
    for line in text.lines() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        for tok in split_entries(t) {
            let tok = tok.trim();
            if tok.is_empty() {
                continue;
            }
            let unq = if tok.len() >= 2 && tok.starts_with('"') && tok.ends_with('"') {
                &tok[1..tok.len() - 1]
            } else {
                tok
            };
            let e = if let Some(c) = unq.strip_prefix('|') {
                Entry::Pipe(c.trim().to_string())
            } else if unq.starts_with('/') {
                Entry::File(unq.to_string())
            } else if let Some(u) = unq.strip_prefix('\\') {
                Entry::Local(u.to_string())
            } else {
                Entry::Address(unq.to_string())
            };
            out.push(e);
        }
    }
    out
}

/// Splits on commas outside double quotes.
fn split_entries(s: &str) -> Vec<String> {
    let mut v = Vec::new();
    let mut cur = String::new();
    let mut q = false;
    let mut esc = false;
    for c in s.chars() {
        if esc {
            cur.push(c);
            esc = false;
            continue;
        }
        match c {
            '\\' if q => {
                cur.push(c);
                esc = true;
            }
            '"' => {
                q = !q;
                cur.push(c);
            }
            ',' if !q => v.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    v.push(cur);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_forward_and_friends() {
        assert_eq!(
            parse(b"\"| exec /usr/local/bin/procmail\"\n"),
            vec![Entry::Pipe("exec /usr/local/bin/procmail".into())]
        );
        assert_eq!(
            parse(b"# me\n\\pablo, pablo@elsewhere.org\n/home/pablo/archive\n\"|/bin/cat, x\"\n"),
            vec![
                Entry::Local("pablo".into()),
                Entry::Address("pablo@elsewhere.org".into()),
                Entry::File("/home/pablo/archive".into()),
                Entry::Pipe("/bin/cat, x".into()),
            ]
        );
    }
}
