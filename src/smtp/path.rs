//! Internationalized SMTP paths (RFC 6531 §3.3): a UTF-8 local part and/or U-label domain, accepted only
//! in a transaction whose MAIL FROM carried `SMTPUTF8`. `message::address::Address` stays ASCII on
//! purpose (list keys, alias targets, file names); this is the separate, SMTP-only check.
//!
//! Still refused, even in UTF-8: control characters (C0, DEL, C1), every kind of white space, quoting,
//! and the ASCII characters that mean something to a shell or a path (the same set `Address` refuses),
//! so such an address is as harmless as an ASCII one should it ever reach a pipe's environment or a log.

use crate::message::address::Address;

/// RFC 5321 §4.5.3.1: 64 octets of local part, 255 of domain (UTF-8 octets, RFC 6531 §3.3).
const MAX_LOCAL: usize = 64;
const MAX_DOMAIN: usize = 255;

/// A UTF-8 mailbox split into its parts; the domain is in the form the client gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Utf8Mailbox {
    pub local: String,
    pub domain: String,
}

impl Utf8Mailbox {
    /// The domain in A-label (ASCII) form, for comparing with our domains and for DNS.
    pub fn ascii_domain(&self) -> Option<String> {
        to_ascii_domain(&self.domain)
    }

    /// The same mailbox as a plain ASCII `Address` when only the domain was UTF-8 (A-labels are
    /// equivalent, RFC 5890 §2.3.2.1), so it needs no SMTPUTF8 further on.
    pub fn to_ascii(&self) -> Option<Address> {
        Address::parse(&format!("{}@{}", self.local, self.ascii_domain()?)).ok()
    }
}

impl std::fmt::Display for Utf8Mailbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.local, self.domain)
    }
}

/// Parses `local@domain` where either part may be UTF-8 (RFC 6531's Mailbox with UTF8-non-ascii).
pub fn parse_utf8(s: &str) -> Result<Utf8Mailbox, String> {
    let (local, domain) = s
        .rsplit_once('@')
        .ok_or_else(|| "not an address (no @)".to_string())?;
    if !valid_utf8_local(local) {
        return Err("bad local part".into());
    }
    if domain.is_empty() || domain.len() > MAX_DOMAIN || to_ascii_domain(domain).is_none() {
        return Err("bad domain".into());
    }
    Ok(Utf8Mailbox {
        local: local.to_string(),
        domain: domain.to_string(),
    })
}

/// A dot-atom of the same ASCII atext `Address` allows, plus any non-ASCII character that is neither a
/// control character nor white space (RFC 6532 §3.2 UTF8-non-ascii).
pub fn valid_utf8_local(local: &str) -> bool {
    if local.is_empty() || local.len() > MAX_LOCAL || local.starts_with('.') || local.ends_with('.')
    {
        return false;
    }
    if local.contains("..") {
        return false;
    }
    local.chars().all(|c| {
        if c.is_ascii() {
            c.is_ascii_alphanumeric() || "!#%*+-=?^_~.".contains(c)
        } else {
            !c.is_control() && !c.is_whitespace() && !is_invisible(c)
        }
    })
}

/// Format and bidi controls that are not `is_control` but could hide what an address really is.
fn is_invisible(c: char) -> bool {
    matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
}

/// The A-label form of a domain (IDNA 2008 via UTS 46, lowercase), or None when it is not a valid host
/// name: every label must come out as LDH, so nothing but letters, digits, '-' and '.' survives.
pub fn to_ascii_domain(domain: &str) -> Option<String> {
    if domain.is_empty() || domain.len() > MAX_DOMAIN || domain.ends_with('.') {
        return None;
    }
    let ascii = idna::domain_to_ascii_strict(domain).ok()?;
    crate::message::address::valid_domain(&ascii).then_some(ascii)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_utf8_local_parts_and_u_labels() {
        let m = parse_utf8("josé.müller@bücher.example").unwrap();
        assert_eq!(m.local, "josé.müller");
        assert_eq!(m.ascii_domain().as_deref(), Some("xn--bcher-kva.example"));
        assert!(parse_utf8("用户@例子.广告").is_ok());
        assert!(parse_utf8("ascii@example.org").is_ok());
    }

    #[test]
    fn still_refuses_controls_spaces_and_shell_characters() {
        for bad in [
            "jo sé@x.org",
            "josé\u{a0}@x.org",
            "jo\u{85}sé@x.org",
            "jo\u{202e}sé@x.org",
            "josé|id@x.org",
            "`josé`@x.org",
            "josé$(x)@x.org",
            "jo/sé@x.org",
            "josé@x.org;rm",
            "josé@bü cher.example",
            "josé@-bücher.example",
            "josé@",
            "@bücher.example",
            ".josé@x.org",
            "jo..sé@x.org",
            "josé\0@x.org",
            "josé@[192.0.2.1]",
        ] {
            assert!(parse_utf8(bad).is_err(), "{bad:?} accepted");
        }
        let long = "é".repeat(33);
        assert!(parse_utf8(&format!("{long}@x.org")).is_err());
    }
}
