//! Byte-faithful header editing for posts. A post's header block is kept as the poster's MTA wrote it
//! (folding, encoded words, odd bytes) and only the fields the list changes are touched; the body is
//! never re-encoded here, so signatures over the body stay valid.
//!
//! mail-parser is used to *read* values (decoded Subject, addresses); this module only *edits*.

/// One header field: its name as written and the raw bytes of the whole field, continuation lines
/// and the final newline included.
#[derive(Debug, Clone)]
struct Field {
    name: String,
    raw: Vec<u8>,
}

#[derive(Debug, Clone, Default)]
pub struct Headers {
    fields: Vec<Field>,
}

/// Splits a message at the first empty line. A message with no empty line is all header.
pub fn split(msg: &[u8]) -> (&[u8], &[u8]) {
    let mut i = 0;
    while i < msg.len() {
        // Looking at the start of a line.
        if msg[i] == b'\n' {
            return (&msg[..i], &msg[i + 1..]);
        }
        if msg[i] == b'\r' && msg.get(i + 1) == Some(&b'\n') {
            return (&msg[..i], &msg[i + 2..]);
        }
        match memchr::memchr(b'\n', &msg[i..]) {
            Some(n) => i += n + 1,
            None => return (msg, &[]),
        }
    }
    (msg, &[])
}

impl Headers {
    /// Parses a header block. An mbox `From ` line at the top is dropped; a line that is neither a
    /// field nor a continuation is kept with the field before it (so nothing the poster wrote vanishes).
    pub fn parse(block: &[u8]) -> Headers {
        let mut fields: Vec<Field> = Vec::new();
        let mut first = true;
        for line in block.split_inclusive(|&b| b == b'\n') {
            if first && line.starts_with(b"From ") {
                first = false;
                continue;
            }
            first = false;
            let is_cont = matches!(line.first(), Some(b' ' | b'\t'));
            let colon = line.iter().position(|&b| b == b':');
            let name_ok = colon.is_some_and(|c| {
                c > 0 && line[..c].iter().all(|&b| b.is_ascii_graphic() && b != b':')
            });
            match (is_cont, name_ok, fields.last_mut()) {
                (false, true, _) => {
                    let c = colon.unwrap_or(0);
                    let name = String::from_utf8_lossy(&line[..c]).trim().to_string();
                    fields.push(Field {
                        name,
                        raw: line.to_vec(),
                    });
                }
                (_, _, Some(last)) => last.raw.extend_from_slice(line),
                (_, _, None) => fields.push(Field {
                    name: String::new(),
                    raw: line.to_vec(),
                }),
            }
        }
        for f in &mut fields {
            if !f.raw.ends_with(b"\n") {
                f.raw.push(b'\n');
            }
        }
        Headers { fields }
    }

    /// The first value of `name`, unfolded, raw (not RFC 2047 decoded), trimmed.
    pub fn get(&self, name: &str) -> Option<String> {
        self.fields
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(name))
            .map(value_of)
    }

    pub fn get_all(&self, name: &str) -> Vec<String> {
        self.fields
            .iter()
            .filter(|f| f.name.eq_ignore_ascii_case(name))
            .map(value_of)
            .collect()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.fields
            .iter()
            .any(|f| f.name.eq_ignore_ascii_case(name))
    }

    pub fn remove(&mut self, name: &str) {
        self.fields.retain(|f| !f.name.eq_ignore_ascii_case(name));
    }

    /// Replaces every `name` field with one new one at the place of the first (or at the end).
    pub fn set(&mut self, name: &str, value: &str) {
        let field = Field {
            name: name.to_string(),
            raw: format!("{name}: {value}\n").into_bytes(),
        };
        match self
            .fields
            .iter()
            .position(|f| f.name.eq_ignore_ascii_case(name))
        {
            Some(i) => {
                self.fields[i] = field;
                let mut seen = 0;
                self.fields.retain(|f| {
                    if f.name.eq_ignore_ascii_case(name) {
                        seen += 1;
                        seen == 1
                    } else {
                        true
                    }
                });
            }
            None => self.fields.push(field),
        }
    }

    pub fn append(&mut self, name: &str, value: &str) {
        self.fields.push(Field {
            name: name.to_string(),
            raw: format!("{name}: {value}\n").into_bytes(),
        });
    }

    pub fn prepend(&mut self, name: &str, value: &str) {
        self.fields.insert(
            0,
            Field {
                name: name.to_string(),
                raw: format!("{name}: {value}\n").into_bytes(),
            },
        );
    }

    pub fn write(&self, out: &mut Vec<u8>) {
        for f in &self.fields {
            out.extend_from_slice(&f.raw);
        }
    }

    pub fn byte_len(&self) -> usize {
        self.fields.iter().map(|f| f.raw.len()).sum()
    }
}

fn value_of(f: &Field) -> String {
    let raw = String::from_utf8_lossy(&f.raw);
    let v = raw.split_once(':').map(|x| x.1).unwrap_or("");
    v.split(['\r', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Joins a header block and a body back into a message.
pub fn join(headers: &Headers, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(headers.byte_len() + body.len() + 2);
    headers.write(&mut out);
    out.push(b'\n');
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_folding_and_edits_only_what_it_must() {
        let msg = b"From x@y Mon Jan 1\nSubject: a\n long\nX-A: 1\r\nTo: b@c\n\nbody\n";
        let (h, b) = split(msg);
        assert_eq!(b, b"body\n");
        let mut hs = Headers::parse(h);
        assert_eq!(hs.get("subject").as_deref(), Some("a long"));
        hs.set("X-A", "2");
        hs.append("List-Id", "<l.d>");
        let out = join(&hs, b);
        assert_eq!(
            out,
            b"Subject: a\n long\nX-A: 2\nTo: b@c\nList-Id: <l.d>\n\nbody\n"
        );
    }

    #[test]
    fn no_blank_line_means_no_body() {
        let (h, b) = split(b"Subject: x\n");
        assert_eq!(h, b"Subject: x\n");
        assert!(b.is_empty());
        let hs = Headers::parse(b"junk line\nSubject: y");
        assert_eq!(hs.get("Subject").as_deref(), Some("y"));
    }
}
