//! `correo list ...`: list administration, the analogue of Mailman's bin/ tools (newlist, list_lists,
//! config_list, rmlist, list_members, add_members, remove_members) and the moderation queue.

use crate::config::Home;
use crate::lists::model::{self, List};
use crate::lists::{hold, members, outbox, post, shunt, subscription};
use crate::message::address::Address;
use crate::message::error::{Error, Result};
use std::io::BufRead;

#[derive(clap::Subcommand, Debug)]
pub enum ListCmd {
    /// Create a list: `correo list create dev@lists.example.org --owner you@example.org`.
    Create {
        address: String,
        #[arg(long)]
        owner: String,
    },
    /// Show all lists with their member counts.
    Ls,
    /// Show a list's settings.
    Show { list: String },
    /// Change a setting (`correo list show` names them; a bad value names the allowed ones).
    Set {
        list: String,
        key: String,
        value: String,
    },
    /// Remove a list, its members and its queues.
    Rm { list: String },
    /// Print the members, one per line.
    Members { list: String },
    /// Subscribe addresses at once, without confirmation (`-` reads them from stdin, one per line).
    Add {
        list: String,
        #[arg(required = true)]
        addresses: Vec<String>,
        /// Send the welcome message (default: the list's send_welcome setting).
        #[arg(long, overrides_with = "no_welcome")]
        welcome: bool,
        #[arg(long)]
        no_welcome: bool,
    },
    /// Unsubscribe addresses at once (`-` reads them from stdin).
    Del {
        list: String,
        #[arg(required = true)]
        addresses: Vec<String>,
        /// Send the goodbye message.
        #[arg(long)]
        goodbye: bool,
    },
    /// Show the posts held for moderation.
    Held { list: String },
    /// Send a held post to the list.
    Approve { list: String, id: i64 },
    /// Drop a held post.
    Discard {
        list: String,
        id: i64,
        /// The post was spam: teach Bayes so (approving a post teaches ham).
        #[arg(long)]
        spam: bool,
    },
    /// Drop a held post and tell the poster why.
    Reject {
        list: String,
        id: i64,
        #[arg(long)]
        reason: String,
    },
    /// Print the alias lines for /etc/mail/aliases (or Postfix/OpenSMTPD aliases).
    Aliases { list: String },
    /// Retry everything in the outgoing spool (run it from cron).
    Flush,
    /// Show messages that failed in processing and were kept.
    Shunt,
    /// Run the shunted messages through their lists again.
    Unshunt,
}

pub fn run(home: &Home, cmd: ListCmd) -> Result<()> {
    let mut conn = model::db(home)?;
    match cmd {
        ListCmd::Create { address, owner } => {
            let l = model::create(&conn, &address, &owner)?;
            println!("created {} (owner {})", l.address(), owner);
            println!(
                "add these lines to your aliases file (see `correo list aliases {}`):",
                l.address()
            );
            print!("{}", alias_lines(home, &l)?);
        }
        ListCmd::Ls => {
            for l in model::all(&conn)? {
                let n = members::count(&conn, &l)?;
                println!("{}\t{} members\t{}", l.address(), n, l.settings.description);
            }
        }
        ListCmd::Show { list } => {
            let l = model::find(&conn, &list)?;
            show(&l);
        }
        ListCmd::Set { list, key, value } => {
            let mut l = model::find(&conn, &list)?;
            l.settings.set(&key, &value)?;
            l.save(&conn)?;
            println!("{}: {key} set", l.address());
        }
        ListCmd::Rm { list } => {
            let l = model::find(&conn, &list)?;
            model::remove(&conn, &l)?;
            println!("removed {}", l.address());
        }
        ListCmd::Members { list } => {
            let l = model::find(&conn, &list)?;
            for m in members::all(&conn, &l)? {
                let mut flags = Vec::new();
                if !m.delivery {
                    flags.push("nomail");
                }
                if m.digest {
                    flags.push("digest");
                }
                let bounces = format!("bounces={}", m.bounces);
                if m.bounces > 0 {
                    flags.push(&bounces);
                }
                if flags.is_empty() {
                    println!("{}", m.address);
                } else {
                    println!("{}\t{}", m.address, flags.join(","));
                }
            }
        }
        ListCmd::Add {
            list,
            addresses,
            welcome,
            no_welcome,
        } => {
            let mut l = model::find(&conn, &list)?;
            if welcome || no_welcome {
                l.settings.send_welcome = welcome && !no_welcome;
            }
            let (mut added, mut already, mut bad) = (0, 0, 0);
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let mut to_welcome = Vec::new();
            for a in expand(&addresses)? {
                match Address::parse(&a) {
                    Ok(addr) => {
                        if members::add(&tx, &l, &addr, false)? {
                            added += 1;
                            to_welcome.push(addr);
                        } else {
                            already += 1;
                        }
                    }
                    Err(e) => {
                        bad += 1;
                        eprintln!("correo: skipped {e}");
                    }
                }
            }
            tx.commit()?;
            if l.settings.send_welcome {
                for addr in &to_welcome {
                    // Added in the transaction above, so send the welcome directly.
                    crate::lists::notice::to_member(
                        home,
                        &mut conn,
                        &l,
                        "welcome",
                        &addr.to_string(),
                    )?;
                }
            }
            println!(
                "{}: {added} added, {already} already members, {bad} invalid",
                l.address()
            );
            if bad > 0 {
                return Err(Error::data(format!("{bad} invalid address(es) skipped")));
            }
        }
        ListCmd::Del {
            list,
            addresses,
            goodbye,
        } => {
            let mut l = model::find(&conn, &list)?;
            l.settings.send_goodbye = goodbye;
            let (mut removed, mut absent) = (0, 0);
            for a in expand(&addresses)? {
                let addr = Address::parse(&a).map_err(Error::usage)?;
                if subscription::unsubscribe_now(home, &mut conn, &l, &addr)? {
                    removed += 1;
                } else {
                    absent += 1;
                }
            }
            println!("{}: {removed} removed, {absent} not members", l.address());
        }
        ListCmd::Held { list } => {
            let l = model::find(&conn, &list)?;
            for h in hold::all(&conn, &l)? {
                let when = chrono::DateTime::from_timestamp(h.created, 0)
                    .map(|d| d.format("%Y-%m-%d %H:%M").to_string())
                    .unwrap_or_default();
                println!(
                    "{}\t{}\t{}\t{}\t{}",
                    h.id, when, h.sender, h.subject, h.reason
                );
            }
        }
        ListCmd::Approve { list, id } => {
            let l = model::find(&conn, &list)?;
            let raw = hold::raw(home, &conn, &l, id)?;
            let outcome = hold::approve(home, &mut conn, &l, id)?;
            crate::spam::bayes::cli::learn_moderated(home, &raw, false);
            match outcome {
                post::Outcome::Sent { recipients, .. } => println!(
                    "{}: held message {id} approved, sent to {recipients} members",
                    l.address()
                ),
                other => println!("{}: {other:?}", l.address()),
            }
        }
        ListCmd::Discard { list, id, spam } => {
            let l = model::find(&conn, &list)?;
            let raw = if spam {
                Some(hold::raw(home, &conn, &l, id)?)
            } else {
                None
            };
            hold::discard(home, &mut conn, &l, id)?;
            if let Some(raw) = raw {
                crate::spam::bayes::cli::learn_moderated(home, &raw, true);
            }
            println!("{}: held message {id} discarded", l.address());
        }
        ListCmd::Reject { list, id, reason } => {
            let l = model::find(&conn, &list)?;
            hold::reject(home, &mut conn, &l, id, &reason)?;
            println!("{}: held message {id} rejected", l.address());
        }
        ListCmd::Aliases { list } => {
            let l = model::find(&conn, &list)?;
            print!("{}", alias_lines(home, &l)?);
        }
        ListCmd::Flush => {
            let s = outbox::flush(home, &mut conn)?;
            if s.sent + s.deferred + s.failed > 0 {
                println!(
                    "sent {}, deferred {}, failed {}",
                    s.sent, s.deferred, s.failed
                );
            }
        }
        ListCmd::Shunt => {
            for (p, m) in shunt::shunted(home)? {
                println!(
                    "{}\t{} {}\t{}",
                    p.display(),
                    m.action,
                    m.list,
                    m.error.unwrap_or_default()
                );
            }
        }
        ListCmd::Unshunt => {
            for (p, m) in shunt::shunted(home)? {
                let data = std::fs::read(&p)?;
                let (_, raw) = shunt::decode(&data)?;
                let l = model::find(&conn, &m.list)?;
                let inc = crate::lists::service::Incoming {
                    raw,
                    sender: m.sender,
                    recipients: m.recipients,
                };
                // Move back to the incoming spool so process() handles it like a fresh delivery.
                let back = crate::message::spool::move_durable(&p, &shunt::in_dir(home))?;
                match crate::cli::mail::process(home, &mut conn, &l, &m.action, &inc, &back) {
                    Ok(()) => println!("{}: re-run", p.display()),
                    Err(e) => println!("{}: {}", p.display(), e),
                }
            }
        }
    }
    Ok(())
}

fn show(l: &List) {
    let s = &l.settings;
    println!("list              {}", l.address());
    println!("description       {}", s.description);
    println!("owners            {}", s.owners.join(", "));
    println!("moderators        {}", s.moderators.join(", "));
    println!("posting           {:?}", s.posting);
    println!("nonmember         {:?}", s.nonmember);
    println!("max_size_kb       {}", s.max_size_kb);
    println!("subject_prefix    {}", l.prefix());
    println!("reply_to          {:?}", s.reply_to);
    println!(
        "reply_to_address  {}",
        s.reply_to_address.as_deref().unwrap_or("")
    );
    println!("footer            {}", s.footer.replace('\n', "\\n"));
    println!("verp              {}", if s.verp { "yes" } else { "no" });
    println!(
        "moderator_password {}",
        if s.moderator_password.is_some() {
            "(set)"
        } else {
            "(unset)"
        }
    );
    println!("subscribe_policy  {:?}", s.subscribe_policy);
    println!("who               {:?}", s.who);
    println!(
        "send_welcome      {}",
        if s.send_welcome { "yes" } else { "no" }
    );
    println!(
        "send_goodbye      {}",
        if s.send_goodbye { "yes" } else { "no" }
    );
}

/// Addresses from the command line, where `-` means "read stdin, one per line" (Mailman's add_members).
fn expand(args: &[String]) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for a in args {
        if a == "-" {
            for line in std::io::stdin().lock().lines() {
                let line = line?;
                let t = line.trim();
                if !t.is_empty() && !t.starts_with('#') {
                    out.push(t.to_string());
                }
            }
        } else {
            out.push(a.clone());
        }
    }
    Ok(out)
}

/// The ten alias lines, Mailman-style, with the absolute path of this binary and the data directory.
/// The list name was validated at creation, so nothing here can carry shell syntax; the paths are
/// checked too, since they end up inside a quoted command.
pub fn alias_lines(home: &Home, l: &List) -> Result<String> {
    let exe = std::env::current_exe()
        .map_err(|e| Error::software(format!("cannot find my own path: {e}")))?;
    let exe = exe.to_string_lossy().to_string();
    let home_dir = home.dir.to_string_lossy().to_string();
    for p in [&exe, &home_dir] {
        if p.bytes()
            .any(|b| !(b.is_ascii_alphanumeric() || b"/._-+".contains(&b)))
        {
            return Err(Error::config(format!("path '{p}' has characters that are unsafe in an aliases file; install correo under a plain path")));
        }
    }
    let mut s = format!("## {} mailing list\n", l.address());
    for action in model::ACTIONS {
        let alias = if *action == "post" {
            l.name.clone()
        } else {
            format!("{}-{action}", l.name)
        };
        let cmd = format!("{exe} --home {home_dir} mail {action} {}", l.address());
        s.push_str(&format!(
            "{:<width$} \"|{cmd}\"\n",
            format!("{alias}:"),
            width = l.name.len() + 14
        ));
    }
    Ok(s)
}
