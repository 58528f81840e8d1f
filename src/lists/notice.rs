//! Messages the list itself writes (confirmations, welcomes, moderation notices, command replies).
//! They go through the same durable outgoing spool as posts, from `NAME-request`, marked as automatic
//! (RFC 3834 Auto-Submitted) so that no robot answers a robot.

use super::model::List;
use super::outbox::{self, Envelope};
use super::templates;
use crate::config::Home;
use crate::message::error::{Error, Result};
use mail_builder::headers::text::Text;
use mail_builder::MessageBuilder;
use rusqlite::Connection;

pub struct Notice<'a> {
    pub template: &'a str,
    pub to: Vec<String>,
    pub vars: Vec<(&'a str, String)>,
    pub reply_to: Option<String>,
    /// A message to attach as message/rfc822 (the held post, for moderators).
    pub attach: Option<Vec<u8>>,
    pub in_reply_to: Option<String>,
}

pub fn build(home: &Home, list: &List, n: &Notice<'_>) -> Result<Vec<u8>> {
    let r = templates::render(home, list, n.template, &n.vars)?;
    let from = list.service("request");
    let mut b = MessageBuilder::new()
        .from((list.address(), from.clone()))
        .to(n.to.iter().map(|t| t.as_str()).collect::<Vec<_>>())
        .header("Auto-Submitted", Text::new("auto-replied"))
        .header("Precedence", Text::new("bulk"))
        .header("X-Loop", Text::new(from))
        .header("List-Id", Text::new(format!("<{}>", list.list_id())))
        .text_body(r.body);
    // mail-builder folds long ASCII subjects into encoded words; a plain ASCII subject stays readable
    // (and keeps a confirmation token in one piece) when written raw.
    b = if r.subject.is_ascii() && !r.subject.contains(['\r', '\n']) {
        b.header("Subject", mail_builder::headers::raw::Raw::new(r.subject))
    } else {
        b.subject(r.subject)
    };
    if let Some(rt) = &n.reply_to {
        b = b.reply_to(rt.as_str());
    }
    if let Some(irt) = &n.in_reply_to {
        b = b.in_reply_to(irt.trim_matches(['<', '>']).to_string());
    }
    if let Some(a) = &n.attach {
        b = b.attachment("message/rfc822", "message.eml", a.clone());
    }
    b.write_to_vec()
        .map_err(|e| Error::software(format!("building notice: {e}")))
}

/// Builds, spools durably and tries to send at once; a failed attempt stays spooled for `list flush`.
pub fn send(home: &Home, conn: &mut Connection, list: &List, n: Notice<'_>) -> Result<()> {
    if n.to.is_empty() {
        return Ok(());
    }
    let data = build(home, list, &n)?;
    let env = Envelope {
        list: Some(list),
        kind: n.template,
        sender: list.service("bounces"),
        verp: false,
        rcpts: n.to.clone(),
    };
    let id = outbox::enqueue(home, conn, &env, &data)?;
    outbox::deliver(home, conn, id)?;
    Ok(())
}

/// A plain notice to one member (welcome, goodbye, help, info): the template gets `{address}`.
pub fn to_member(
    home: &Home,
    conn: &mut Connection,
    list: &List,
    template: &str,
    addr: &str,
) -> Result<()> {
    send(
        home,
        conn,
        list,
        Notice {
            template,
            to: vec![addr.to_string()],
            vars: vec![("address", addr.to_string())],
            reply_to: None,
            attach: None,
            in_reply_to: None,
        },
    )
}
