//! Address validation. Anything that later becomes part of a path, an SMTP command or a command line is
//! checked here first: a conservative subset of RFC 5321 §4.1.2 (dot-atom local parts, LDH domains or
//! address literals), with no quoting, whitespace or shell metacharacters.

use std::fmt;

/// A validated `local@domain` address; the domain is kept lowercase, the local part as given.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Address {
    local: String,
    domain: String,
}

/// RFC 5321 §4.5.3.1: local part 64 octets, domain 255, path 256.
const MAX_LOCAL: usize = 64;
const MAX_DOMAIN: usize = 255;

impl Address {
    pub fn parse(s: &str) -> Result<Address, String> {
        let s = s.trim();
        let s = s
            .strip_prefix('<')
            .and_then(|r| r.strip_suffix('>'))
            .unwrap_or(s);
        let (local, domain) = s
            .rsplit_once('@')
            .ok_or_else(|| format!("'{s}' is not an address (no @)"))?;
        if !valid_local(local) {
            return Err(format!("'{s}': bad local part"));
        }
        if !valid_domain(domain) {
            return Err(format!("'{s}': bad domain"));
        }
        Ok(Address {
            local: local.to_string(),
            domain: domain.to_ascii_lowercase(),
        })
    }

    pub fn local(&self) -> &str {
        &self.local
    }
    pub fn domain(&self) -> &str {
        &self.domain
    }
    /// The form used as a key in the database: local part case preserved (RFC 5321 §2.4 says it may be
    /// significant) but compared case-insensitively by callers that store `key()`.
    pub fn key(&self) -> String {
        format!("{}@{}", self.local.to_ascii_lowercase(), self.domain)
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.local, self.domain)
    }
}

/// atext from RFC 5322 §3.2.3 minus the characters that mean something to a shell or a path
/// (`|`, `` ` ``, `$`, `&`, `'`, `/`, `{`, `}`), joined by single dots.
pub fn valid_local(local: &str) -> bool {
    if local.is_empty() || local.len() > MAX_LOCAL || local.starts_with('.') || local.ends_with('.')
    {
        return false;
    }
    if local.contains("..") {
        return false;
    }
    local
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"!#%*+-=?^_~.".contains(&b))
}

/// LDH labels (RFC 1035 §2.3.1, with leading digits allowed per RFC 1123) or a bracketed address literal.
pub fn valid_domain(domain: &str) -> bool {
    if domain.is_empty() || domain.len() > MAX_DOMAIN {
        return false;
    }
    if let Some(lit) = domain.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        let lit = lit.strip_prefix("IPv6:").unwrap_or(lit);
        return lit.parse::<std::net::IpAddr>().is_ok();
    }
    domain.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_addresses() {
        let a = Address::parse("<Pablo.Felipe+x@Miong.ORG>").unwrap();
        assert_eq!(a.to_string(), "Pablo.Felipe+x@miong.org");
        assert_eq!(a.key(), "pablo.felipe+x@miong.org");
        assert!(Address::parse("u@[127.0.0.1]").is_ok());
    }

    #[test]
    fn rejects_shell_and_path_tricks() {
        for bad in [
            "a|b@x.org",
            "`id`@x.org",
            "a@x.org;rm",
            "a b@x.org",
            "../x@y.org",
            "a@-x.org",
            "@x.org",
            "a@",
            "a$(x)@y.org",
            "a..b@x.org",
        ] {
            assert!(Address::parse(bad).is_err(), "{bad} accepted");
        }
    }
}
