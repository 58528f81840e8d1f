//! An SMTP reply with its enhanced status code (RFC 3463, advertised per RFC 2034): every 2xx/4xx/5xx
//! reply correo sends carries one, so clients and log readers never guess whether a failure is temporary.
//! The exceptions are the ones the RFCs make: the 220 greeting (sent before ENHANCEDSTATUSCODES is
//! negotiated), 354 and 334 (RFC 3463 defines no 3.x.x class), and the EHLO keyword lines, whose
//! grammar (RFC 5321 §4.1.1.1) has no room for a code; an empty `status` marks those.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    /// "x.y.z", always present.
    pub status: String,
    pub text: String,
}

impl Reply {
    pub fn new(code: u16, status: &str, text: impl Into<String>) -> Reply {
        Reply {
            code,
            status: status.to_string(),
            text: text.into(),
        }
    }
    pub fn ok(text: impl Into<String>) -> Reply {
        Reply::new(250, "2.0.0", text)
    }
    pub fn is_positive(&self) -> bool {
        self.code < 400
    }
    pub fn is_temporary(&self) -> bool {
        (400..500).contains(&self.code)
    }

    /// The wire form; multi-line text becomes continuation lines (RFC 5321 §4.2.1).
    pub fn to_wire(&self) -> String {
        let lines: Vec<&str> = self
            .text
            .split('\n')
            .map(|l| l.trim_end_matches('\r'))
            .collect();
        let mut out = String::new();
        for (i, l) in lines.iter().enumerate() {
            let sep = if i + 1 == lines.len() { ' ' } else { '-' };
            if self.status.is_empty() {
                out.push_str(&format!("{}{sep}{}\r\n", self.code, l));
            } else {
                out.push_str(&format!("{}{sep}{} {}\r\n", self.code, self.status, l));
            }
        }
        out
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {}",
            self.code,
            self.status,
            self.text.replace('\n', " ")
        )
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn wire_form_carries_the_status_on_every_line() {
        let r = super::Reply::new(250, "2.0.0", "a\nb");
        assert_eq!(r.to_wire(), "250-2.0.0 a\r\n250 2.0.0 b\r\n");
    }
}
