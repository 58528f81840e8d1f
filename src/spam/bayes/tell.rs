//! spamd's TELL verb (`spamc -L spam|ham|forget`, `-C`): `Set: local` with a `Message-class` learns the
//! message as that class, `Remove: local` forgets it. The reply names what changed (`DidSet: local`,
//! `DidRemove: local`); nothing changed (already learned, never learned) means no such line, which
//! spamc reports as "Message was already un/learned". `remote` (Razor and friends) is not ours to do.

use super::store::{Class, Did};
use super::Bayes;
use crate::message::log;
use crate::message::sysexits::Exit;
use crate::spam::protocol::{tell_reply, MessageClass, ProtoError, Request};

/// Builds TELL's reply bytes; learning errors become spamd's EX_TEMPFAIL-style error line.
pub fn answer(bayes: &Bayes, req: &Request, msg: &[u8]) -> Vec<u8> {
    let has = |v: &[String]| v.iter().any(|s| s.eq_ignore_ascii_case("local"));
    let set = has(&req.set);
    let remove = has(&req.remove);
    if !set && !remove {
        return ProtoError::bad("(TELL without Set: local or Remove: local)").to_bytes();
    }
    if set && req.message_class.is_none() {
        return ProtoError::bad("(TELL Set without Message-class)").to_bytes();
    }
    if !bayes.cfg.allow_tell {
        // spamd's answer without --allow-tell, so spamc users see the message they know.
        return ProtoError::unavailable(
            "TELL commands are not enabled, set the --allow-tell switch.",
        )
        .to_bytes();
    }
    if !bayes.cfg.enabled {
        return ProtoError::unavailable(
            "Bayes is disabled in correo.toml ([spam.bayes] enabled = false)",
        )
        .to_bytes();
    }
    let user = req.user.as_deref();
    let msg = super::learn::strip_from_line(msg);
    let mut did_set = Vec::new();
    let mut did_remove = Vec::new();
    let class = match req.message_class {
        Some(MessageClass::Spam) => Some(Class::Spam),
        Some(MessageClass::Ham) => Some(Class::Ham),
        None => None,
    };
    let result = if set {
        bayes.learn_bytes(user, msg, class)
    } else {
        bayes.learn_bytes(user, msg, None)
    };
    match result {
        Ok(did) => {
            match did {
                Did::Learned | Did::Relearned => did_set.push("local"),
                Did::Forgot => did_remove.push("local"),
                Did::Already | Did::NotLearned => {}
            }
            let what = if set {
                class
                    .map(|c| if c == Class::Spam { "spam" } else { "ham" })
                    .unwrap_or("-")
            } else {
                "forget"
            };
            log::event(
                "spamd",
                "tell",
                &[
                    ("class", what),
                    ("user", bayes.user_name(user)),
                    ("did", &format!("{did:?}").to_lowercase()),
                ],
            );
            tell_reply(&did_set, &did_remove)
        }
        Err(e) => {
            log::event("spamd", "tell", &[("status", "failed"), ("error", &e.msg)]);
            ProtoError::other(Exit::TempFail, format!("learning failed: {}", e.msg)).to_bytes()
        }
    }
}
