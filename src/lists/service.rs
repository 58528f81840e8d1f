//! What happens to mail sent to each of a list's ten addresses (`correo mail ACTION LIST`). This is
//! the dispatcher; the work is in post.rs, subscription.rs, commands.rs, bounces.rs and hold.rs.

use super::commands::{self, Command};
use super::headers::{self, Headers};
use super::model::{List, Who};
use super::notice::{self, Notice};
use super::outbox::{self, Envelope};
use super::{bounces, members, pending, post, subscription};
use crate::config::Home;
use crate::message::address::Address;
use crate::message::error::{Error, Result};
use crate::message::log;
use mail_parser::MessageParser;
use rusqlite::Connection;

/// A message as the MTA handed it over, with what we could learn of its envelope.
pub struct Incoming {
    pub raw: Vec<u8>,
    /// Envelope sender: $SENDER from the MTA, else Return-Path, else the mbox From_ line.
    pub sender: Option<String>,
    /// Envelope recipients we could find: $ORIGINAL_RECIPIENT/$RECIPIENT, X-Original-To, Delivered-To.
    pub recipients: Vec<String>,
}

impl Incoming {
    /// Reads the envelope from the environment variables MTAs set for pipes (Postfix local(8) and
    /// OpenSMTPD's mda both set SENDER and RECIPIENT) and from the headers delivery agents add.
    pub fn new(raw: Vec<u8>) -> Incoming {
        let (hb, _) = headers::split(&raw);
        let h = Headers::parse(hb);
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let mut sender = env("SENDER");
        if sender.is_none() {
            sender = h
                .get("Return-Path")
                .map(|v| v.trim().trim_matches(['<', '>']).to_string())
                .filter(|s| !s.is_empty());
        }
        if sender.is_none() && raw.starts_with(b"From ") {
            let line = raw.split(|&b| b == b'\n').next().unwrap_or_default();
            sender = String::from_utf8_lossy(line)
                .split_whitespace()
                .nth(1)
                .map(str::to_string);
        }
        let mut recipients: Vec<String> = ["ORIGINAL_RECIPIENT", "RECIPIENT"]
            .iter()
            .filter_map(|k| env(k))
            .collect();
        for name in ["X-Original-To", "Delivered-To", "Envelope-To", "To"] {
            recipients.extend(h.get_all(name).into_iter().flat_map(|v| {
                v.split(',')
                    .map(|s| s.trim().to_string())
                    .collect::<Vec<_>>()
            }));
        }
        Incoming {
            raw,
            sender,
            recipients,
        }
    }
}

/// RFC 3834 §2: robots must not answer robots. Also our own X-Loop.
fn is_automatic(list: &List, h: &Headers) -> bool {
    let auto = h
        .get("Auto-Submitted")
        .is_some_and(|v| !v.trim().eq_ignore_ascii_case("no"));
    let bulk = h.get("Precedence").is_some_and(|v| {
        matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "bulk" | "junk" | "list"
        )
    });
    let ours = h.get_all("X-Loop").iter().any(|v| {
        v.to_ascii_lowercase().contains(&format!("{}-", list.name))
            && v.to_ascii_lowercase().contains(&list.domain)
    });
    auto || bulk || ours
}

pub fn handle(
    home: &Home,
    conn: &mut Connection,
    list: &List,
    action: &str,
    inc: &Incoming,
) -> Result<()> {
    // Test hook: simulates a bug in processing, to prove the shunt keeps the message.
    if crate::message::spool::injected_fault("list-panic") {
        panic!("injected fault: list-panic");
    }
    match action {
        "post" => post::receive(home, conn, list, &inc.raw, inc.sender.as_deref()).map(|_| ()),
        "owner" | "admin" => to_owners(home, conn, list, inc),
        "bounces" => bounce(home, conn, list, inc),
        "request" => request(home, conn, list, inc),
        "join" | "subscribe" => shortcut(home, conn, list, inc, true),
        "leave" | "unsubscribe" => shortcut(home, conn, list, inc, false),
        "confirm" => confirm(home, conn, list, inc),
        _ => Err(Error::usage(format!(
            "unknown action '{action}'; actions are: {}",
            super::model::ACTIONS.join(" ")
        ))),
    }
}

/// Who asked: the From address (Mailman answers the From, not a Reply-To, so a forged request is
/// seen by the address it names).
fn requester(inc: &Incoming) -> Result<Address> {
    post::facts(&inc.raw, inc.sender.as_deref()).map(|f| f.from)
}

fn header_block(inc: &Incoming) -> Headers {
    Headers::parse(headers::split(&inc.raw).0)
}

fn skip_automatic(list: &List, action: &str, inc: &Incoming) -> bool {
    if is_automatic(list, &header_block(inc)) {
        log::event(
            "list",
            &list.address(),
            &[
                ("action", action),
                ("status", "ignored (automatic message)"),
                ("from", inc.sender.as_deref().unwrap_or("-")),
            ],
        );
        return true;
    }
    false
}

fn to_owners(home: &Home, conn: &mut Connection, list: &List, inc: &Incoming) -> Result<()> {
    let mut h = header_block(inc);
    let owner = list.service("owner");
    if h.get_all("X-Loop")
        .iter()
        .any(|v| v.trim().eq_ignore_ascii_case(&owner))
    {
        log::event(
            "list",
            &list.address(),
            &[("action", "owner"), ("status", "discarded (loop)")],
        );
        return Ok(());
    }
    h.remove("Return-Path");
    h.prepend("X-Loop", &owner);
    let data = headers::join(&h, headers::split(&inc.raw).1);
    let staff = list.staff();
    let env = Envelope {
        list: Some(list),
        kind: "owner",
        sender: list.service("bounces"),
        verp: false,
        rcpts: staff.clone(),
    };
    let id = outbox::enqueue(home, conn, &env, &data)?;
    log::event(
        "list",
        &list.address(),
        &[
            ("action", "owner"),
            ("from", inc.sender.as_deref().unwrap_or("-")),
            ("recipients", &staff.len().to_string()),
        ],
    );
    outbox::deliver(home, conn, id).map(|_| ())
}

fn bounce(home: &Home, conn: &mut Connection, list: &List, inc: &Incoming) -> Result<()> {
    let mut found: Vec<Address> = inc
        .recipients
        .iter()
        .filter_map(|r| bounces::decode_verp(list, r))
        .collect();
    if found.is_empty() {
        found = bounces::dsn_recipients(&inc.raw);
    }
    found.dedup();
    let mut recorded = 0;
    for a in &found {
        if members::is_member(conn, list, a)? {
            bounces::record(conn, list, &a.to_string(), "bounce received")?;
            recorded += 1;
            log::event(
                "list",
                &list.address(),
                &[
                    ("action", "bounce"),
                    ("member", &a.to_string()),
                    ("status", "recorded"),
                ],
            );
        }
    }
    if recorded == 0 {
        // Mailman forwards bounces it cannot attribute to the owners rather than dropping them.
        log::event(
            "list",
            &list.address(),
            &[
                ("action", "bounce"),
                ("status", "unrecognised, forwarded to owners"),
            ],
        );
        return to_owners(home, conn, list, inc);
    }
    Ok(())
}

fn shortcut(
    home: &Home,
    conn: &mut Connection,
    list: &List,
    inc: &Incoming,
    join: bool,
) -> Result<()> {
    if skip_automatic(list, if join { "join" } else { "leave" }, inc) {
        return Ok(());
    }
    let who = requester(inc)?;
    if join {
        subscription::request_subscribe(home, conn, list, &who, false)?;
    } else {
        subscription::request_unsubscribe(home, conn, list, &who)?;
    }
    Ok(())
}

fn confirm(home: &Home, conn: &mut Connection, list: &List, inc: &Incoming) -> Result<()> {
    let h = header_block(inc);
    let subject = MessageParser::default()
        .parse(&inc.raw)
        .and_then(|m| m.subject().map(str::to_string))
        .unwrap_or_default();
    let token = inc
        .recipients
        .iter()
        .filter(|r| {
            r.to_ascii_lowercase()
                .contains(&format!("{}-confirm+", list.name))
        })
        .find_map(|r| pending::find_token(r))
        .or_else(|| pending::find_token(&subject));
    let Some(token) = token else {
        log::event(
            "list",
            &list.address(),
            &[("action", "confirm"), ("status", "no token found")],
        );
        return Ok(());
    };
    let approved = ["Approved", "Approve", "X-Approved"]
        .iter()
        .find_map(|n| h.get(n));
    let result = subscription::confirm(home, conn, list, &token, approved.as_deref())?;
    log::event(
        "list",
        &list.address(),
        &[("action", "confirm"), ("status", &result)],
    );
    Ok(())
}

fn request(home: &Home, conn: &mut Connection, list: &List, inc: &Incoming) -> Result<()> {
    if skip_automatic(list, "request", inc) {
        return Ok(());
    }
    let who = requester(inc)?;
    let msg = MessageParser::default()
        .parse(&inc.raw)
        .ok_or_else(|| Error::data("message could not be parsed"))?;
    let subject = msg.subject().unwrap_or("").to_string();
    let body = msg.body_text(0).map(|b| b.into_owned()).unwrap_or_default();
    let h = header_block(inc);
    let approved = ["Approved", "Approve", "X-Approved"]
        .iter()
        .find_map(|n| h.get(n));
    let lines = commands::read(&subject, &body);
    let mut results = String::new();
    let mut extra_notices: Vec<&str> = Vec::new();
    for line in &lines {
        results.push_str(&format!("> {}\n", line.text));
        let r = match &line.parsed {
            Err(e) => format!("{e}\nNo further commands were read.\n"),
            Ok(cmd) => {
                run_command(
                    home,
                    conn,
                    list,
                    &who,
                    cmd,
                    approved.as_deref(),
                    &mut extra_notices,
                )? + "\n"
            }
        };
        results.push_str(&r);
        results.push('\n');
    }
    if lines.is_empty() {
        results.push_str(
            "No commands were found in your message. Send \"help\" for the list of commands.\n",
        );
    }
    for t in extra_notices {
        notice::send(
            home,
            conn,
            list,
            Notice {
                template: t,
                to: vec![who.to_string()],
                vars: vec![],
                reply_to: None,
                attach: None,
                in_reply_to: None,
            },
        )?;
    }
    let in_reply_to = msg.message_id().map(str::to_string);
    notice::send(
        home,
        conn,
        list,
        Notice {
            template: "request-reply",
            to: vec![who.to_string()],
            vars: vec![("results", results)],
            reply_to: None,
            attach: None,
            in_reply_to,
        },
    )?;
    log::event(
        "list",
        &list.address(),
        &[
            ("action", "request"),
            ("from", &who.to_string()),
            ("commands", &lines.len().to_string()),
        ],
    );
    Ok(())
}

fn run_command(
    home: &Home,
    conn: &mut Connection,
    list: &List,
    who: &Address,
    cmd: &Command,
    approved: Option<&str>,
    extra: &mut Vec<&'static str>,
) -> Result<String> {
    Ok(match cmd {
        Command::Subscribe { digest, address } => {
            let a = address.as_ref().unwrap_or(who);
            subscription::request_subscribe(home, conn, list, a, digest.unwrap_or(false))?
        }
        Command::Unsubscribe { address } => {
            subscription::request_unsubscribe(home, conn, list, address.as_ref().unwrap_or(who))?
        }
        Command::Help => {
            extra.push("help");
            "Help is on its way in a separate message.".into()
        }
        Command::Info => {
            extra.push("info");
            "Information about the list is on its way in a separate message.".into()
        }
        Command::Who => {
            let allowed = match list.settings.who {
                Who::Public => true,
                Who::Members => members::is_member(conn, list, who)?,
                Who::Nobody => false,
            };
            if allowed {
                let all = members::all(conn, list)?;
                let mut s = format!("Members of {} ({}):\n", list.address(), all.len());
                for m in all {
                    s.push_str(&format!("    {}\n", m.address));
                }
                s
            } else {
                "The member list of this list is not available to you.".into()
            }
        }
        Command::Confirm(t) => subscription::confirm(home, conn, list, t, approved)?,
        Command::SetDelivery(on) => {
            if members::set_delivery(conn, list, who, *on)? {
                format!(
                    "Delivery of posts to {who} is now {}.",
                    if *on { "on" } else { "off" }
                )
            } else {
                format!("{who} is not a member of {}.", list.address())
            }
        }
        Command::End => String::new(),
    })
}
