//! Double opt-in: subscribe and unsubscribe requests become pending tokens mailed to the address
//! concerned (never to whoever asked), and only a reply carrying the token changes membership.
//! A stranger's address gets at most `confirm_per_day` such mails, so a list cannot be used to
//! mail-bomb someone.

use super::model::{List, SubscribePolicy};
use super::notice::{self, Notice};
use super::pending::{self, Kind};
use super::{hold, members};
use crate::config::Home;
use crate::message::address::Address;
use crate::message::error::Result;
use crate::message::log;
use rusqlite::Connection;

fn confirm_notice(
    home: &Home,
    conn: &mut Connection,
    list: &List,
    template: &str,
    addr: &Address,
    token: &str,
) -> Result<()> {
    let confirm_address = format!("{}-confirm+{token}@{}", list.name, list.domain);
    notice::send(
        home,
        conn,
        list,
        Notice {
            template,
            to: vec![addr.to_string()],
            vars: vec![
                ("token", token.to_string()),
                ("address", addr.to_string()),
                ("confirm_address", confirm_address.clone()),
                ("hours", home.config.lists.confirm_hours.to_string()),
            ],
            reply_to: Some(confirm_address),
            attach: None,
            in_reply_to: None,
        },
    )
}

/// Handles "subscribe": returns the sentence that goes into the reply to the requester.
pub fn request_subscribe(
    home: &Home,
    conn: &mut Connection,
    list: &List,
    addr: &Address,
    digest: bool,
) -> Result<String> {
    if members::is_member(conn, list, addr)? {
        return Ok(format!("{addr} is already a member of {}.", list.address()));
    }
    if list.settings.subscribe_policy == SubscribePolicy::Open {
        subscribe_now(home, conn, list, addr, digest)?;
        return Ok(format!("{addr} is now subscribed to {}.", list.address()));
    }
    ask_confirmation(home, conn, list, addr, Kind::Subscribe, digest)
}

pub fn request_unsubscribe(
    home: &Home,
    conn: &mut Connection,
    list: &List,
    addr: &Address,
) -> Result<String> {
    if !members::is_member(conn, list, addr)? {
        return Ok(format!("{addr} is not a member of {}.", list.address()));
    }
    ask_confirmation(home, conn, list, addr, Kind::Unsubscribe, false)
}

/// Mails a confirmation request for `kind` to `addr` unless the per-address daily limit is reached;
/// returns the sentence for the requester's reply.
fn ask_confirmation(
    home: &Home,
    conn: &mut Connection,
    list: &List,
    addr: &Address,
    kind: Kind,
    digest: bool,
) -> Result<String> {
    let (template, action) = match kind {
        Kind::Unsubscribe => ("confirm-unsubscribe", "unsubscribe-confirmation"),
        _ => ("confirm-subscribe", "subscribe-confirmation"),
    };
    if !pending::may_send_confirmation(conn, &addr.key(), home.config.lists.confirm_per_day)? {
        let to = addr.to_string();
        log::event(
            "list",
            &list.address(),
            &[("to", &to), ("action", action), ("status", "rate-limited")],
        );
        return Ok(format!(
            "Too many confirmation requests for {addr} today; try again tomorrow."
        ));
    }
    let token = pending::create(
        conn,
        list,
        kind,
        &addr.to_string(),
        digest,
        None,
        home.config.lists.confirm_hours,
    )?;
    confirm_notice(home, conn, list, template, addr, &token)?;
    let to = addr.to_string();
    log::event(
        "list",
        &list.address(),
        &[("to", &to), ("action", action), ("status", "sent")],
    );
    Ok(format!("A confirmation request was sent to {addr}."))
}

pub fn subscribe_now(
    home: &Home,
    conn: &mut Connection,
    list: &List,
    addr: &Address,
    digest: bool,
) -> Result<bool> {
    let added = members::add(conn, list, addr, digest)?;
    if added {
        log::event(
            "list",
            &list.address(),
            &[("member", &addr.to_string()), ("action", "subscribed")],
        );
        if list.settings.send_welcome {
            notice::to_member(home, conn, list, "welcome", &addr.to_string())?;
        }
    }
    Ok(added)
}

pub fn unsubscribe_now(
    home: &Home,
    conn: &mut Connection,
    list: &List,
    addr: &Address,
) -> Result<bool> {
    let removed = members::remove(conn, list, addr)?;
    if removed {
        log::event(
            "list",
            &list.address(),
            &[("member", &addr.to_string()), ("action", "unsubscribed")],
        );
        if list.settings.send_goodbye {
            notice::to_member(home, conn, list, "goodbye", &addr.to_string())?;
        }
    }
    Ok(removed)
}

/// Completes whatever the token stands for. `approved_password` is the Approved: header of the
/// reply, which decides a held post (approve with the right password, discard otherwise).
pub fn confirm(
    home: &Home,
    conn: &mut Connection,
    list: &List,
    token: &str,
    approved_password: Option<&str>,
) -> Result<String> {
    let p = match pending::take(conn, list, token) {
        Ok(p) => p,
        Err(e) => return Ok(format!("Confirmation failed: {}.", e.msg)),
    };
    let addr = Address::parse(&p.address).map_err(crate::message::error::Error::software)?;
    Ok(match p.kind {
        Kind::Subscribe => {
            if subscribe_now(home, conn, list, &addr, p.digest)? {
                format!("{addr} is now subscribed to {}.", list.address())
            } else {
                format!("{addr} was already a member of {}.", list.address())
            }
        }
        Kind::Unsubscribe => {
            if unsubscribe_now(home, conn, list, &addr)? {
                format!("{addr} has been removed from {}.", list.address())
            } else {
                format!("{addr} was not a member of {}.", list.address())
            }
        }
        Kind::Held => {
            let id = p.held_id.unwrap_or(-1);
            if approved_password.is_some_and(|pw| list.settings.password_matches(pw)) {
                hold::approve(home, conn, list, id)?;
                format!("Held message {id} approved and sent.")
            } else {
                hold::discard(home, conn, list, id)?;
                format!("Held message {id} discarded.")
            }
        }
    })
}
