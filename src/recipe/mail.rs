//! The mail being delivered, as procmail holds it: raw bytes, split into header and body at the first
//! empty line. The header keeps a leading `From_` line when there is one (conditions see it, as
//! `^FROM_DAEMON`'s `>?From ` branch expects), and the body starts after the empty line.

#[derive(Debug, Clone, Default)]
pub struct Mail {
    pub data: Vec<u8>,
    /// Length of the header part, including the newline that ends the last header line and the empty line.
    pub head_len: usize,
}

impl Mail {
    pub fn new(data: Vec<u8>) -> Mail {
        let head_len = header_end(&data);
        Mail { data, head_len }
    }
    pub fn header(&self) -> &[u8] {
        &self.data[..self.head_len]
    }
    pub fn body(&self) -> &[u8] {
        &self.data[self.head_len..]
    }
    /// The header as the search area. procmail includes the empty line that ends it (measured: a
    /// `1^1 ^.*$` count over a five-line header gives 7, the blank line and the end of the area).
    pub fn header_area(&self) -> &[u8] {
        self.header()
    }
    pub fn has_from_line(&self) -> bool {
        self.data.starts_with(b"From ")
    }
    /// The message without its leading `From_` line (what Maildir and `$SENDMAIL` get).
    pub fn without_from_line(&self) -> &[u8] {
        if self.has_from_line() {
            match self.data.iter().position(|&c| c == b'\n') {
                Some(p) => &self.data[p + 1..],
                None => &[],
            }
        } else {
            &self.data
        }
    }
    /// The value of the first header field `name` (unfolded, trimmed), for the log abstract and explain.
    pub fn field(&self, name: &str) -> Option<String> {
        let h = self.header_area();
        let mut start = 0;
        while start < h.len() {
            let end = h[start..]
                .iter()
                .position(|&c| c == b'\n')
                .map(|p| start + p)
                .unwrap_or(h.len());
            let line = &h[start..end];
            if line.len() > name.len()
                && line[name.len()] == b':'
                && line[..name.len()].eq_ignore_ascii_case(name.as_bytes())
            {
                return Some(
                    String::from_utf8_lossy(&line[name.len() + 1..])
                        .trim()
                        .to_string(),
                );
            }
            start = end + 1;
        }
        None
    }
    /// Replaces the header, the body or both with a filter's output (the `f` flag with `h`/`b`).
    pub fn replace(&mut self, head: bool, body: bool, out: Vec<u8>) {
        let data = match (head, body) {
            (true, true) => out,
            (true, false) => {
                let mut d = out;
                d.extend_from_slice(&self.data[self.head_len..]);
                d
            }
            (false, true) => {
                let mut d = self.data[..self.head_len].to_vec();
                d.extend_from_slice(&out);
                d
            }
            (false, false) => return,
        };
        *self = Mail::new(data);
    }
}

/// Where the header ends: after the first empty line (or the whole mail when there is none).
pub fn header_end(d: &[u8]) -> usize {
    if d.first() == Some(&b'\n') {
        return 1;
    }
    match d.windows(2).position(|w| w == b"\n\n") {
        Some(p) => p + 2,
        None => d.len(),
    }
}

/// procmail's trailing-newline rule for files and programs (not Maildir): unless the `r` flag is given,
/// the mail must end in an empty line, so one newline is added when it does not already end in "\n\n".
/// Measured against procmail 3.22: "body" gets one newline ("body\n"), "body\n" gets one, "" gets one.
pub fn needs_newline(d: &[u8]) -> bool {
    !d.ends_with(b"\n\n")
}

/// Quotes body lines that start with `From ` as `>From ` (mbox only; procmail leaves the header alone).
pub fn escape_from(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 16);
    let mut at_line_start = true;
    let mut i = 0;
    while i < body.len() {
        if at_line_start && body[i..].starts_with(b"From ") {
            out.push(b'>');
        }
        let c = body[i];
        out.push(c);
        at_line_start = c == b'\n';
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_and_fields() {
        let m = Mail::new(b"From a@b  Mon\nSubject: hi\nTo: x\n\nbody\nFrom me\n".to_vec());
        assert_eq!(m.header(), b"From a@b  Mon\nSubject: hi\nTo: x\n\n");
        assert_eq!(m.header_area(), b"From a@b  Mon\nSubject: hi\nTo: x\n\n");
        assert_eq!(m.body(), b"body\nFrom me\n");
        assert_eq!(m.field("subject").as_deref(), Some("hi"));
        assert_eq!(
            m.without_from_line(),
            b"Subject: hi\nTo: x\n\nbody\nFrom me\n"
        );
        assert_eq!(escape_from(m.body()), b"body\n>From me\n");
    }

    #[test]
    fn trailing_newline_rule() {
        assert!(needs_newline(b"body"));
        assert!(needs_newline(b"body\n"));
        assert!(!needs_newline(b"body\n\n"));
        assert!(needs_newline(b""));
    }
}
