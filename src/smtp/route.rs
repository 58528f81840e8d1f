//! Where a recipient goes: the accept rules (OpenSMTPD's `match for domain` / `match from local`) and alias
//! expansion, done at RCPT time so the client learns about unknown users while it is still connected
//! (RFC 5321 §3.3) and the queue only ever holds final delivery targets.
//!
//! Invariant: relaying to a domain that is not ours happens only for authenticated sessions or trusted
//! networks; everything else gets `550 5.7.1` here. An open relay is a failed test.

use super::aliases::{self, Table, Target, Virtusers};
use super::config::SmtpConfig;
use super::local;
use super::path::Utf8Mailbox;
use super::queue::{Kind, Rcpt};
use super::reply::Reply;
use crate::message::address::Address;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// RFC 5321 §4.5.3.1.8 / sendmail's MaxAliasRecursion: deeper than this is a loop.
const MAX_DEPTH: usize = 10;

#[derive(Debug, Default)]
pub struct Router {
    /// Domains whose bare local names are local users (`[smtp] domains`).
    pub local_domains: BTreeSet<String>,
    pub aliases: Table,
    pub domain_aliases: BTreeMap<String, Table>,
    pub virtusers: Virtusers,
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
}

impl Router {
    /// Loads every table named in the config. Errors name file and line; `serve` refuses to start on any,
    /// and `newaliases` prints them all.
    pub fn load(cfg: &SmtpConfig) -> Result<Router, Vec<String>> {
        let mut errors = Vec::new();
        // Domains are compared in A-label form, so `münchen.example` in the config takes mail for
        // both spellings, as does `xn--mnchen-3ya.example` (RFC 5890 §2.3.2.1: the same name).
        let mut canonical = |d: &str, what: &str| -> String {
            aliases::canonical_domain(d).unwrap_or_else(|| {
                errors.push(format!("{what}: bad domain '{d}'"));
                d.to_lowercase()
            })
        };
        let mut r = Router {
            local_domains: cfg
                .domains
                .iter()
                .map(|d| canonical(d, "[smtp] domains"))
                .collect(),
            ..Router::default()
        };
        let domain_tables: Vec<(String, &std::path::PathBuf)> = cfg
            .domain_aliases
            .iter()
            .map(|(d, p)| (canonical(d, "[smtp] domain_aliases"), p))
            .collect();
        let load_table = |path: &Path, errors: &mut Vec<String>| -> Table {
            match read(path) {
                Ok(text) => {
                    let (t, errs) = aliases::parse(&text);
                    errors.extend(
                        errs.iter()
                            .map(|e| format!("{}:{}: {}", path.display(), e.line, e.msg)),
                    );
                    for entry in t.entries.values() {
                        for target in &entry.targets {
                            if let Target::Include(p) = target {
                                match read(p) {
                                    Ok(inc) => {
                                        errors.extend(aliases::parse_include(&inc).1.iter().map(
                                            |e| format!("{}:{}: {}", p.display(), e.line, e.msg),
                                        ))
                                    }
                                    Err(e) => errors.push(format!(
                                        "{}:{}: {e}",
                                        path.display(),
                                        entry.line
                                    )),
                                }
                            }
                        }
                    }
                    t
                }
                Err(e) => {
                    errors.push(e);
                    Table::default()
                }
            }
        };
        if let Some(p) = &cfg.aliases {
            r.aliases = load_table(p, &mut errors);
        }
        for (domain, p) in domain_tables {
            let t = load_table(p, &mut errors);
            r.domain_aliases.insert(domain, t);
        }
        if let Some(p) = &cfg.virtusers {
            match read(p) {
                Ok(text) => {
                    let (v, errs) = aliases::parse_virtusers(&text);
                    errors.extend(
                        errs.iter()
                            .map(|e| format!("{}:{}: {}", p.display(), e.line, e.msg)),
                    );
                    r.virtusers = v;
                }
                Err(e) => errors.push(e),
            }
        }
        if errors.is_empty() {
            Ok(r)
        } else {
            Err(errors)
        }
    }

    /// True when we take mail for this domain ourselves (local, per-domain table, or virtusertable).
    pub fn is_ours(&self, domain: &str) -> bool {
        self.local_domains.contains(domain)
            || self.domain_aliases.contains_key(domain)
            || self.virtusers.domains().any(|d| d == domain)
    }

    /// Resolves one RCPT TO address into queue rows, or the reply refusing it.
    pub fn resolve(&self, addr: &Address, may_relay: bool) -> Result<Vec<Rcpt>, Reply> {
        let orig = addr.to_string();
        let mut out = Vec::new();
        if !self.is_ours(addr.domain()) {
            if !may_relay {
                return Err(Reply::new(
                    550,
                    "5.7.1",
                    format!("<{orig}>: relay access denied"),
                ));
            }
            out.push(Rcpt {
                orig: orig.clone(),
                kind: Kind::Smtp,
                target: orig,
                sender: None,
            });
            return Ok(out);
        }
        self.resolve_ours(addr.local(), addr.domain(), &orig, None, 0, &mut out)?;
        if out.is_empty() {
            return Err(Reply::new(
                550,
                "5.1.1",
                format!("<{orig}>: alias expands to nothing"),
            ));
        }
        // One delivery per target even when several aliases reach it (sendmail's duplicate suppression).
        let mut seen = BTreeSet::new();
        out.retain(|r| seen.insert((r.kind, r.target.clone())));
        Ok(out)
    }

    /// Resolves an RCPT TO address with a UTF-8 local part (RFC 6531; the session announced SMTPUTF8).
    /// At our domains it goes through the virtusertable and alias tables like any other (their names may
    /// be UTF-8); local user names are ASCII, so a UTF-8 name no table knows is unknown. Elsewhere it is
    /// relayed under the usual rules, with the domain in A-label form (the same domain, and what DNS and
    /// the queue's destinations use).
    pub fn resolve_utf8(&self, m: &Utf8Mailbox, may_relay: bool) -> Result<Vec<Rcpt>, Reply> {
        let orig = m.to_string();
        let Some(domain) = m.ascii_domain() else {
            return Err(Reply::new(553, "5.1.3", "Bad recipient address syntax"));
        };
        if self.is_ours(&domain) {
            let mut out = Vec::new();
            self.resolve_ours(&m.local, &domain, &orig, None, 0, &mut out)?;
            if out.is_empty() {
                return Err(Reply::new(
                    550,
                    "5.1.1",
                    format!("<{orig}>: no such user here"),
                ));
            }
            let mut seen = BTreeSet::new();
            out.retain(|r| seen.insert((r.kind, r.target.clone())));
            return Ok(out);
        }
        if !may_relay {
            return Err(Reply::new(
                550,
                "5.7.1",
                format!("<{orig}>: relay access denied"),
            ));
        }
        Ok(vec![Rcpt {
            orig,
            kind: Kind::Smtp,
            target: format!("{}@{domain}", m.local),
            sender: None,
        }])
    }

    /// `local` (ASCII or UTF-8) at `domain`, one of ours in canonical form.
    #[allow(clippy::too_many_arguments)] // the expansion state; a struct would only rename it
    fn resolve_ours(
        &self,
        local: &str,
        domain: &str,
        orig: &str,
        sender: Option<String>,
        depth: usize,
        out: &mut Vec<Rcpt>,
    ) -> Result<(), Reply> {
        if depth > MAX_DEPTH {
            return Err(Reply::new(554, "5.4.6", format!("<{orig}>: alias loop")));
        }
        let local_part = aliases::fold_local(local);
        if let Some(t) = self
            .virtusers
            .map
            .get(&aliases::VirtKey::Address(format!("{local_part}@{domain}")))
            .map(|(_, t)| t)
        {
            return self.expand(t, domain, orig, sender, depth + 1, out);
        }
        let table = self.domain_aliases.get(domain).unwrap_or(&self.aliases);
        let in_table = table.entries.contains_key(&local_part);
        if !in_table {
            if let Some(t) = self.virtusers.lookup_parts(local, domain) {
                return self.expand(t, domain, orig, sender, depth + 1, out);
            }
        }
        if in_table || self.local_domains.contains(domain) {
            return self.expand_name(&local_part, table, domain, orig, sender, depth, out);
        }
        Err(Reply::new(
            550,
            "5.1.1",
            format!("<{orig}>: no such user here"),
        ))
    }

    #[allow(clippy::too_many_arguments)] // the expansion state; a struct would only rename it
    fn expand_name(
        &self,
        name: &str,
        table: &Table,
        domain: &str,
        orig: &str,
        sender: Option<String>,
        depth: usize,
        out: &mut Vec<Rcpt>,
    ) -> Result<(), Reply> {
        if depth > MAX_DEPTH {
            return Err(Reply::new(554, "5.4.6", format!("<{orig}>: alias loop")));
        }
        if let Some(entry) = table.entries.get(name) {
            let owner = format!("owner-{name}");
            let sender = if table.entries.contains_key(&owner) {
                Some(format!("{owner}@{domain}"))
            } else {
                sender
            };
            for t in &entry.targets {
                // A name that lists itself (`root: root, /var/log/root`) means the user, not the alias.
                if let Target::Local(n) = t {
                    if n == name {
                        self.local_user(n, orig, sender.clone(), out)?;
                        continue;
                    }
                }
                self.expand(t, domain, orig, sender.clone(), depth + 1, out)?;
            }
            return Ok(());
        }
        // RFC 5321 §4.5.1: postmaster must always be accepted.
        if name == "postmaster" {
            return if table.entries.contains_key("root") {
                self.expand_name("root", table, domain, orig, sender, depth + 1, out)
            } else {
                self.local_user("root", orig, sender, out)
            };
        }
        self.local_user(name, orig, sender, out)
    }

    fn local_user(
        &self,
        name: &str,
        orig: &str,
        sender: Option<String>,
        out: &mut Vec<Rcpt>,
    ) -> Result<(), Reply> {
        if local::lookup_user(name).is_none() {
            return Err(Reply::new(
                550,
                "5.1.1",
                format!("<{orig}>: no such user here"),
            ));
        }
        out.push(Rcpt {
            orig: orig.to_string(),
            kind: Kind::Mailbox,
            target: name.to_string(),
            sender,
        });
        Ok(())
    }

    fn expand(
        &self,
        t: &Target,
        domain: &str,
        orig: &str,
        sender: Option<String>,
        depth: usize,
        out: &mut Vec<Rcpt>,
    ) -> Result<(), Reply> {
        match t {
            Target::Utf8Address { local, domain: d } => {
                if self.is_ours(d) {
                    self.resolve_ours(local, d, orig, sender, depth, out)
                } else {
                    // Needs SMTPUTF8 at the next hop; the runner bounces it (5.6.7) where it is missing.
                    out.push(Rcpt {
                        orig: orig.to_string(),
                        kind: Kind::Smtp,
                        target: format!("{local}@{d}"),
                        sender,
                    });
                    Ok(())
                }
            }
            Target::Address(a) => {
                if self.is_ours(a.domain()) {
                    self.resolve_ours(a.local(), a.domain(), orig, sender, depth, out)
                } else {
                    out.push(Rcpt {
                        orig: orig.to_string(),
                        kind: Kind::Smtp,
                        target: a.to_string(),
                        sender,
                    });
                    Ok(())
                }
            }
            Target::Local(n) => {
                let table = self.domain_aliases.get(domain).unwrap_or(&self.aliases);
                self.expand_name(n, table, domain, orig, sender, depth, out)
            }
            Target::Pipe(cmd) => {
                out.push(Rcpt {
                    orig: orig.to_string(),
                    kind: Kind::Pipe,
                    target: cmd.clone(),
                    sender,
                });
                Ok(())
            }
            Target::File(p) => {
                out.push(Rcpt {
                    orig: orig.to_string(),
                    kind: Kind::File,
                    target: p.display().to_string(),
                    sender,
                });
                Ok(())
            }
            Target::Include(p) => {
                let text = std::fs::read_to_string(p).map_err(|_| {
                    Reply::new(
                        451,
                        "4.3.0",
                        format!("<{orig}>: cannot read an include file; try again later"),
                    )
                })?;
                let (targets, _) = aliases::parse_include(&text);
                // sendmail's rule: a file anyone but root (or us) can change may only list addresses,
                // or whoever can edit it could run commands or write files as the delivery user.
                let trusted = include_is_trusted(p);
                for t in &targets {
                    if !trusted && matches!(t, Target::Pipe(_) | Target::File(_)) {
                        crate::message::log::event(
                            "smtpd",
                            "NOQUEUE",
                            &[("include", &p.display().to_string()), ("status", "pipe or file target ignored: include file is not owned by root or is writable by others")],
                        );
                        continue;
                    }
                    self.expand(t, domain, orig, sender.clone(), depth + 1, out)?;
                }
                Ok(())
            }
            Target::Error(text) => Err(error_reply(orig, text)),
        }
    }
}

/// An :include: file may name pipes and files only if root or we own it and only its owner can write it.
fn include_is_trusted(p: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    std::fs::metadata(p).is_ok_and(|m| (m.uid() == 0 || m.uid() == me) && m.mode() & 0o022 == 0)
}

/// The current tables, reloaded when one of the files changes (checked at most once a second), so a new
/// list's alias line takes effect without a restart, as `newaliases` makes it for sendmail. A file that
/// no longer parses is logged and the previous tables stay in force.
pub struct Routes {
    cfg: Option<SmtpConfig>,
    current: std::sync::RwLock<std::sync::Arc<Router>>,
    check: std::sync::Mutex<(std::time::Instant, Vec<Option<std::time::SystemTime>>)>,
}

impl Routes {
    /// Tables that never change (tests, fuzzing).
    pub fn fixed(r: Router) -> Routes {
        Routes {
            cfg: None,
            current: std::sync::RwLock::new(std::sync::Arc::new(r)),
            check: std::sync::Mutex::new((std::time::Instant::now(), vec![])),
        }
    }

    /// Loads the tables named in the config and watches their files.
    pub fn watch(cfg: &SmtpConfig) -> Result<Routes, Vec<String>> {
        let r = Router::load(cfg)?;
        Ok(Routes {
            cfg: Some(cfg.clone()),
            current: std::sync::RwLock::new(std::sync::Arc::new(r)),
            check: std::sync::Mutex::new((std::time::Instant::now(), stamps(cfg))),
        })
    }

    pub fn get(&self) -> std::sync::Arc<Router> {
        if let Some(cfg) = &self.cfg {
            if let Ok(mut check) = self.check.try_lock() {
                if check.0.elapsed() >= std::time::Duration::from_secs(1) {
                    check.0 = std::time::Instant::now();
                    let now = stamps(cfg);
                    if now != check.1 {
                        check.1 = now;
                        match Router::load(cfg) {
                            Ok(r) => {
                                if let Ok(mut cur) = self.current.write() {
                                    *cur = std::sync::Arc::new(r);
                                }
                                crate::message::log::event(
                                    "serve",
                                    "aliases",
                                    &[("status", "reloaded")],
                                );
                            }
                            Err(errs) => crate::message::log::event(
                                "serve",
                                "aliases",
                                &[
                                    ("status", "reload refused, keeping the old tables"),
                                    ("error", &errs.join("; ")),
                                ],
                            ),
                        }
                    }
                }
            }
        }
        self.current
            .read()
            .map(|c| c.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }
}

fn stamps(cfg: &SmtpConfig) -> Vec<Option<std::time::SystemTime>> {
    cfg.aliases
        .iter()
        .chain(cfg.domain_aliases.values())
        .chain(cfg.virtusers.iter())
        .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
        .collect()
}

/// sendmail's `error:5.1.1 text` or `error:550 5.1.1 text`; anything unclear is a permanent 550 5.1.1.
fn error_reply(orig: &str, text: &str) -> Reply {
    let mut words = text.split_whitespace().peekable();
    let mut code = 550;
    if let Some(c) = words
        .peek()
        .and_then(|w| w.parse::<u16>().ok())
        .filter(|c| (400..600).contains(c))
    {
        code = c;
        words.next();
    }
    let mut status = if code < 500 {
        "4.0.0".to_string()
    } else {
        "5.1.1".to_string()
    };
    if let Some(s) = words
        .peek()
        .filter(|w| w.len() == 5 && w.as_bytes()[1] == b'.' && w.as_bytes()[3] == b'.')
    {
        if s.starts_with(if code < 500 { '4' } else { '5' }) {
            status = s.to_string();
            words.next();
        }
    }
    let rest: Vec<&str> = words.collect();
    let text = if rest.is_empty() {
        "refused".to_string()
    } else {
        rest.join(" ")
    };
    Reply::new(code, &status, format!("<{orig}>: {text}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router(aliases: &str, virt: &str, domains: &[&str]) -> Router {
        Router {
            local_domains: domains.iter().map(|s| s.to_string()).collect(),
            aliases: aliases::parse(aliases).0,
            domain_aliases: BTreeMap::new(),
            virtusers: aliases::parse_virtusers(virt).0,
        }
    }

    #[test]
    fn no_relay_for_strangers() {
        let r = router("", "", &["example.org"]);
        let a = Address::parse("x@elsewhere.net").unwrap();
        assert_eq!(r.resolve(&a, false).unwrap_err().status, "5.7.1");
        assert_eq!(r.resolve(&a, true).unwrap()[0].kind, Kind::Smtp);
    }

    #[test]
    fn aliases_expand_with_owner_sender() {
        let r = router("lista: \"|/bin/post lista\", out@far.net\nowner-lista: root\nloop: loop2\nloop2: loop\n", "", &["example.org"]);
        let rows = r
            .resolve(&Address::parse("Lista@example.org").unwrap(), false)
            .unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].kind, Kind::Pipe);
        assert_eq!(rows[0].sender.as_deref(), Some("owner-lista@example.org"));
        assert_eq!(rows[1].target, "out@far.net");
        let e = r
            .resolve(&Address::parse("loop@example.org").unwrap(), false)
            .unwrap_err();
        assert_eq!(e.status, "5.4.6");
        let e = r
            .resolve(
                &Address::parse("nosuchuser-xyz@example.org").unwrap(),
                false,
            )
            .unwrap_err();
        assert_eq!(e.status, "5.1.1");
    }

    #[test]
    fn virtual_domain_and_error_targets() {
        let r = router(
            "",
            "pablofelipe@miong.org  far@away.net\ngone@miong.org error:5.1.6 moved away\n",
            &[],
        );
        let rows = r
            .resolve(&Address::parse("pablofelipe@miong.org").unwrap(), false)
            .unwrap();
        assert_eq!(rows[0].target, "far@away.net");
        let e = r
            .resolve(&Address::parse("gone@miong.org").unwrap(), false)
            .unwrap_err();
        assert_eq!((e.code, e.status.as_str()), (550, "5.1.6"));
        let e = r
            .resolve(&Address::parse("other@miong.org").unwrap(), false)
            .unwrap_err();
        assert_eq!(e.status, "5.1.1");
    }
}

#[cfg(test)]
mod include_tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_writable_include_file_cannot_add_pipes() {
        let d = tempfile::tempdir().unwrap();
        let inc = d.path().join("staff");
        std::fs::write(&inc, "a@far.net\n\"|/bin/sh -c evil\"\n/etc/evil\n").unwrap();
        let table = format!("staff: :include:{}\n", inc.display());
        let r = Router {
            local_domains: ["example.org".to_string()].into_iter().collect(),
            aliases: aliases::parse(&table).0,
            ..Router::default()
        };
        let addr = Address::parse("staff@example.org").unwrap();
        std::fs::set_permissions(&inc, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(r.resolve(&addr, false).unwrap().len(), 3);
        std::fs::set_permissions(&inc, std::fs::Permissions::from_mode(0o666)).unwrap();
        let rows = r.resolve(&addr, false).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].kind, Kind::Smtp);
    }
}
