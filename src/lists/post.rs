//! The posting pipeline: policy (loops, approval, membership, moderation, size), then the list's
//! changes to the message (Subject prefix, RFC 2369/2919 headers, Reply-To, footer), then the durable
//! outgoing spool and the fan-out. Each step is one function; none reaches back up.

use super::headers::{self, Headers};
use super::model::{Action, List, Posting, ReplyTo};
use super::{hold, members, outbox};
use crate::config::Home;
use crate::message::address::Address;
use crate::message::error::{Error, Result};
use crate::message::log;
use mail_parser::MessageParser;
use rusqlite::Connection;

#[derive(Debug)]
pub enum Outcome {
    Sent { out_id: i64, recipients: usize },
    Held { id: i64, reason: String },
    Rejected { reason: String },
    Discarded { reason: String },
}

/// What the policy needs to know about a post, read once.
pub struct Facts {
    pub from: Address,
    pub senders: Vec<Address>,
    pub subject: String,
    pub message_id: String,
}

/// Reads the poster's identity; a post with no usable From is bad data (EX_DATAERR), as Mailman
/// cannot moderate what it cannot attribute.
pub fn facts(raw: &[u8], envelope_sender: Option<&str>) -> Result<Facts> {
    let msg = MessageParser::default()
        .parse(raw)
        .ok_or_else(|| Error::data("message could not be parsed"))?;
    let from_hdr = msg
        .from()
        .and_then(|a| a.first())
        .and_then(|a| a.address())
        .map(str::to_string);
    let from = match from_hdr {
        Some(f) => Address::parse(&f).map_err(|e| Error::data(format!("From header: {e}")))?,
        None => return Err(Error::data("message has no From header")),
    };
    let mut senders = vec![from.clone()];
    if let Some(s) = msg
        .sender()
        .and_then(|a| a.first())
        .and_then(|a| a.address())
        .and_then(|s| Address::parse(s).ok())
    {
        senders.push(s);
    }
    if let Some(s) = envelope_sender.and_then(|s| Address::parse(s).ok()) {
        senders.push(s);
    }
    Ok(Facts {
        from,
        senders,
        subject: msg.subject().unwrap_or("").to_string(),
        message_id: msg
            .message_id()
            .map(|m| format!("<{m}>"))
            .unwrap_or_else(|| "-".into()),
    })
}

/// Header names an `Approved:` password may hide under (Mailman accepts all four).
const APPROVED: &[&str] = &["Approved", "Approve", "X-Approved", "X-Approve"];

fn is_loop(list: &List, h: &Headers) -> bool {
    let addr = list.address();
    h.get_all("X-BeenThere")
        .iter()
        .chain(h.get_all("X-Loop").iter())
        .any(|v| v.trim().eq_ignore_ascii_case(&addr))
        || h.get_all("List-Id").iter().any(|v| {
            v.to_ascii_lowercase()
                .contains(&format!("<{}>", list.list_id()))
        })
}

/// Runs the whole pipeline for a message piped to `NAME` (or NAME-post).
pub fn receive(
    home: &Home,
    conn: &mut Connection,
    list: &List,
    raw: &[u8],
    envelope_sender: Option<&str>,
) -> Result<Outcome> {
    let f = facts(raw, envelope_sender)?;
    let (hblock, body) = headers::split(raw);
    let mut h = Headers::parse(hblock);

    let outcome = (|| -> Result<Outcome> {
        if is_loop(list, &h) {
            return Ok(Outcome::Discarded {
                reason: "mail loop: the message already went through this list".into(),
            });
        }
        let mut approved = false;
        for name in APPROVED {
            if let Some(pw) = h.get(name) {
                approved |= list.settings.password_matches(&pw);
            }
            h.remove(name);
        }
        let stripped = headers::join(&h, body);
        if approved {
            return accept(home, conn, list, &stripped);
        }
        let is_member = f.senders.iter().try_fold(false, |acc, s| {
            Ok::<bool, Error>(acc || members::is_member(conn, list, s)?)
        })?;
        let policy = match list.settings.posting {
            Posting::Open => None,
            Posting::Moderated => Some((Action::Hold, "Post to a moderated list".to_string())),
            Posting::Members if is_member => None,
            Posting::Members => Some((
                list.settings.nonmember,
                "Post by non-member to a members-only list".to_string(),
            )),
        };
        match policy {
            Some((Action::Hold, reason)) => {
                return hold::hold(home, conn, list, &stripped, &f, &reason)
            }
            Some((Action::Reject, reason)) => {
                hold::notify_rejected(home, conn, list, &f, &reason)?;
                return Ok(Outcome::Rejected { reason });
            }
            Some((Action::Discard, reason)) => return Ok(Outcome::Discarded { reason }),
            None => {}
        }
        let limit = list.settings.max_size_kb * 1024;
        if limit > 0 && raw.len() as u64 > limit {
            let reason = format!(
                "Message body is too big: {} bytes with a limit of {} KB",
                raw.len(),
                list.settings.max_size_kb
            );
            return hold::hold(home, conn, list, &stripped, &f, &reason);
        }
        accept(home, conn, list, &stripped)
    })()?;

    let (action, detail) = match &outcome {
        Outcome::Sent { recipients, .. } => ("accepted", format!("recipients={recipients}")),
        Outcome::Held { id, reason } => ("held", format!("id={id} reason={reason}")),
        Outcome::Rejected { reason } => ("rejected", format!("reason={reason}")),
        Outcome::Discarded { reason } => ("discarded", format!("reason={reason}")),
    };
    log::event(
        "list",
        &list.address(),
        &[
            ("message-id", &f.message_id),
            ("from", &f.from.to_string()),
            ("action", action),
            ("status", &detail),
        ],
    );
    Ok(outcome)
}

/// Decorates an approved post, spools it for every member whose delivery is on and sends it.
pub fn accept(home: &Home, conn: &mut Connection, list: &List, raw: &[u8]) -> Result<Outcome> {
    accept_with(home, conn, list, raw, |_| Ok(()))
}

/// `accept`, running `also` in the transaction that spools the post (a held post leaves the
/// moderation queue exactly when it is spooled).
pub fn accept_with(
    home: &Home,
    conn: &mut Connection,
    list: &List,
    raw: &[u8],
    also: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<()>,
) -> Result<Outcome> {
    let data = decorate(home, list, raw)?;
    let rcpts = members::recipients(conn, list)?;
    let n = rcpts.len();
    let env = outbox::Envelope {
        list: Some(list),
        kind: "post",
        sender: list.service("bounces"),
        verp: list.settings.verp,
        rcpts,
    };
    let out_id = outbox::enqueue_with(home, conn, &env, &data, also)?;
    // Sending now is best effort: the post is already durable, `list flush` retries what is left.
    if let Err(e) = outbox::deliver(home, conn, out_id) {
        log::event(
            "list",
            &list.address(),
            &[
                ("out", &out_id.to_string()),
                ("status", &format!("deferred ({e})")),
            ],
        );
    }
    Ok(Outcome::Sent {
        out_id,
        recipients: n,
    })
}

/// Headers a list removes from posts: other lists' RFC 2369 fields (ours replace them), read-receipt
/// requests that would make every member's client write to the poster, and Precedence (ours is "list").
const STRIP: &[&str] = &[
    "List-Id",
    "List-Post",
    "List-Help",
    "List-Subscribe",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "List-Archive",
    "List-Owner",
    "Precedence",
    "Return-Receipt-To",
    "Disposition-Notification-To",
    "X-Confirm-Reading-To",
    "X-PMRQC",
    "Return-Path",
    "Errors-To",
];

/// The list's changes to a post. The body is only touched to add the footer, and never inside a
/// signed or encoded part.
pub fn decorate(home: &Home, list: &List, raw: &[u8]) -> Result<Vec<u8>> {
    let msg = MessageParser::default()
        .parse(raw)
        .ok_or_else(|| Error::data("message could not be parsed"))?;
    let (hblock, body) = headers::split(raw);
    let mut h = Headers::parse(hblock);
    for name in STRIP {
        h.remove(name);
    }

    // Subject prefix, once: a reply keeps the prefix it already carries.
    let prefix = list.prefix();
    if !prefix.is_empty() {
        let decoded = msg.subject().unwrap_or("");
        if !decoded.to_lowercase().contains(&prefix.to_lowercase()) {
            let raw_subject = h.get("Subject").unwrap_or_default();
            let new = if raw_subject.is_empty() {
                format!("{prefix} (no subject)")
            } else {
                format!("{prefix} {raw_subject}")
            };
            h.set("Subject", &new);
        }
    }

    match list.settings.reply_to {
        ReplyTo::Poster => {}
        ReplyTo::List => h.set("Reply-To", &format!("<{}>", list.address())),
        ReplyTo::Explicit => {
            if let Some(a) = &list.settings.reply_to_address {
                h.set("Reply-To", &format!("<{a}>"));
            }
        }
    }
    if !h.contains("Message-ID") {
        h.append(
            "Message-ID",
            &format!("<{}@{}>", crate::message::spool::unique_id(), list.domain),
        );
    }

    // RFC 2919 List-Id and RFC 2369 fields. With VERP each member's copy gets its own List-Unsubscribe
    // (outbox::personal_headers) so the RFC 8058 one-click URL can name the member.
    let desc = list
        .settings
        .description
        .replace(['"', '\\', '\r', '\n'], " ");
    let id = if desc.trim().is_empty() {
        format!("<{}>", list.list_id())
    } else {
        format!("\"{}\" <{}>", desc.trim(), list.list_id())
    };
    h.append("X-BeenThere", &list.address());
    h.append("List-Id", &id);
    h.append("List-Post", &format!("<mailto:{}>", list.address()));
    h.append(
        "List-Help",
        &format!("<mailto:{}?subject=help>", list.service("request")),
    );
    h.append(
        "List-Subscribe",
        &format!("<mailto:{}?subject=subscribe>", list.service("request")),
    );
    if !list.settings.verp {
        let mut v = format!("<mailto:{}?subject=unsubscribe>", list.service("request"));
        if let Some(url) = &home.config.web.url {
            v.push_str(&format!(
                ",\n <{}/lists/{}/unsubscribe>",
                url.trim_end_matches('/'),
                list.address()
            ));
        }
        h.append("List-Unsubscribe", &v);
    }
    h.append("Precedence", "list");

    let footer = list.settings.footer.trim_end();
    if footer.is_empty() {
        return Ok(headers::join(&h, body));
    }
    let body = super::footer::add(&msg, &mut h, body, footer);
    Ok(headers::join(&h, &body))
}
