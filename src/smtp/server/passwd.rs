//! The AUTH password file: `user:$pbkdf2-sha256$ITERATIONS$SALT$HASH` (base64 salt and hash), one per
//! line, `#` comments. PBKDF2-HMAC-SHA256 from ring (already a dependency), compared in constant time.

use base64::Engine;
use std::collections::HashMap;
use std::num::NonZeroU32;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD_NO_PAD;
/// OWASP's 2023 floor for PBKDF2-HMAC-SHA256.
pub const ITERATIONS: u32 = 600_000;

#[derive(Debug, Clone, Default)]
pub struct Passwd {
    users: HashMap<String, Record>,
}

impl Passwd {
    /// Parses the file; every bad line is named.
    pub fn parse(text: &str) -> Result<Passwd, Vec<String>> {
        let mut p = Passwd::default();
        let mut errors = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            match parse_line(line) {
                Some((user, rec)) => {
                    p.users.insert(user, rec);
                }
                None => errors.push(format!(
                    "line {}: expected user:$pbkdf2-sha256$ITER$SALT$HASH",
                    i + 1
                )),
            }
        }
        if errors.is_empty() {
            Ok(p)
        } else {
            Err(errors)
        }
    }

    /// True when `user` exists and `password` matches. Unknown users cost the same as wrong passwords.
    pub fn verify(&self, user: &str, password: &str) -> bool {
        match self.users.get(user) {
            Some((iter, salt, hash)) => {
                let Some(n) = NonZeroU32::new(*iter) else {
                    return false;
                };
                ring::pbkdf2::verify(
                    ring::pbkdf2::PBKDF2_HMAC_SHA256,
                    n,
                    salt,
                    password.as_bytes(),
                    hash,
                )
                .is_ok()
            }
            None => {
                let mut out = [0u8; 32];
                ring::pbkdf2::derive(
                    ring::pbkdf2::PBKDF2_HMAC_SHA256,
                    NonZeroU32::new(ITERATIONS).unwrap_or(NonZeroU32::MIN),
                    b"dummy-salt",
                    password.as_bytes(),
                    &mut out,
                );
                false
            }
        }
    }
}

/// Iterations, salt, hash.
type Record = (u32, Vec<u8>, Vec<u8>);

fn parse_line(line: &str) -> Option<(String, Record)> {
    let (user, hash) = line.split_once(':')?;
    let mut parts = hash.split('$');
    if !parts.next()?.is_empty() || parts.next()? != "pbkdf2-sha256" {
        return None;
    }
    let iter: u32 = parts.next()?.parse().ok()?;
    let salt = B64.decode(parts.next()?).ok()?;
    let h = B64.decode(parts.next()?).ok()?;
    if user.is_empty() || h.is_empty() || iter == 0 {
        return None;
    }
    Some((user.to_string(), (iter, salt, h)))
}

/// Makes a password-file hash (`correo serve --hash-password`).
pub fn hash(password: &str, iterations: u32) -> String {
    let mut salt = [0u8; 16];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut salt);
    let mut out = [0u8; 32];
    let n = NonZeroU32::new(iterations).unwrap_or(NonZeroU32::MIN);
    ring::pbkdf2::derive(
        ring::pbkdf2::PBKDF2_HMAC_SHA256,
        n,
        &salt,
        password.as_bytes(),
        &mut out,
    );
    format!(
        "$pbkdf2-sha256${}${}${}",
        n,
        B64.encode(salt),
        B64.encode(out)
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn hash_then_verify() {
        let h = super::hash("s3cret", 1000);
        let p = super::Passwd::parse(&format!("# users\nana:{h}\n")).unwrap();
        assert!(p.verify("ana", "s3cret"));
        assert!(!p.verify("ana", "wrong"));
        assert!(!p.verify("bob", "s3cret"));
        assert!(super::Passwd::parse("ana:plaintext\n").is_err());
    }
}
