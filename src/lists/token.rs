//! Unguessable tokens (confirmations, held-message cookies) and per-recipient unsubscribe keys.
//! 160 random bits from the OS, as Mailman's cookies carry; HMAC-SHA256 for the unsubscribe keys
//! so they can be checked without storing one per member.

use ring::rand::{SecureRandom, SystemRandom};

pub fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    // The OS RNG does not fail on Linux once booted; if it ever did, an all-zero token would be
    // guessable, so refuse loudly instead.
    SystemRandom::new()
        .fill(&mut b)
        .expect("operating system random generator failed");
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A confirmation token: 20 random bytes, 40 hex characters.
pub fn confirm_token() -> String {
    random_hex(20)
}

/// True when `s` has the shape of a token we issue (so junk never reaches a database query).
pub fn looks_like_token(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The unsubscribe key for one member: HMAC(secret, list address | member key), 128 bits hex.
pub fn unsubscribe_key(secret: &str, list: &str, member: &str) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let tag = ring::hmac::sign(
        &key,
        format!("{list}|{}", member.to_ascii_lowercase()).as_bytes(),
    );
    tag.as_ref()[..16]
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_random_and_recognised() {
        let a = confirm_token();
        assert!(looks_like_token(&a));
        assert_ne!(a, confirm_token());
        assert!(!looks_like_token("1234"));
        assert!(!looks_like_token(&"g".repeat(40)));
    }

    #[test]
    fn unsubscribe_key_depends_on_all_inputs() {
        let k = unsubscribe_key("s", "l@d", "A@x.org");
        assert_eq!(k, unsubscribe_key("s", "l@d", "a@x.org"));
        assert_ne!(k, unsubscribe_key("t", "l@d", "a@x.org"));
        assert_ne!(k, unsubscribe_key("s", "l@d", "b@x.org"));
    }
}
