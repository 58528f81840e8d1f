//! aliases(5) and sendmail's virtusertable: the parsers only turn text into typed tables (and name every bad
//! line with its number); `Router` in `route.rs` acts on them.
//!
//! aliases(5): `name: target, target, ...`; a line starting with blank space continues the previous one;
//! `#` starts a comment line; a target is an address, a local name, `"|command"`, `/file`, or
//! `:include:/path` (a file of more targets). `owner-NAME` is an ordinary alias that, as in sendmail, also
//! becomes the envelope sender of mail expanded from `NAME` so bounces reach the list owner.
//!
//! SMTPUTF8 (RFC 6531): names and addresses may have UTF-8 local parts (`josé: jose`), compared after
//! Unicode lowercasing (no other normalisation: NFC and NFD spellings are different names), and domains
//! may be written as U-labels; every domain is kept in A-label form (`bücher.example` becomes
//! `xn--bcher-kva.example`), the one spelling the router compares and DNS uses.

use crate::message::address::{valid_local, Address};
use crate::smtp::path;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// One delivery target named on the right-hand side of an alias.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A full address, remote or in one of our domains.
    Address(Address),
    /// An address with a UTF-8 local part (the domain in A-label form): needs SMTPUTF8 to go anywhere.
    Utf8Address { local: String, domain: String },
    /// A bare local name: another alias or a local user.
    Local(String),
    /// `|command`: run with the message on stdin.
    Pipe(String),
    /// `/path`: append the message in mbox format.
    File(PathBuf),
    /// `:include:/path`: more targets, one or more per line.
    Include(PathBuf),
    /// `error:CODE text` (sendmail): refuse the address with this reply.
    Error(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub line: usize,
    pub targets: Vec<Target>,
}

/// The form a local part is compared in: lowercase (ASCII as before; Unicode for UTF-8 names).
pub fn fold_local(local: &str) -> String {
    local.to_lowercase()
}

/// A domain as the router compares it: ASCII lowercase, U-labels converted to A-labels (IDNA 2008);
/// None when it is not a valid domain. Address literals are kept as written.
pub fn canonical_domain(domain: &str) -> Option<String> {
    if domain.starts_with('[') {
        return crate::message::address::valid_domain(domain).then(|| domain.to_string());
    }
    path::to_ascii_domain(domain)
}

/// A local part we take in a name or an address: ASCII atext, or UTF-8 under the same restrictions.
fn valid_any_local(local: &str) -> bool {
    valid_local(local) || path::valid_utf8_local(local)
}

/// A parsed aliases file, keyed by lowercase local part.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Table {
    pub entries: BTreeMap<String, Entry>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    pub line: usize,
    pub msg: String,
}

impl std::fmt::Display for LineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.msg)
    }
}

/// Joins continuation lines and drops comments, keeping the number of the line each logical line began on.
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut out: Vec<(usize, String)> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let trimmed = raw.trim_start();
        if trimmed.starts_with('#') || trimmed.is_empty() {
            continue;
        }
        if raw.starts_with([' ', '\t']) {
            if let Some(last) = out.last_mut() {
                last.1.push(' ');
                last.1.push_str(trimmed.trim_end());
                continue;
            }
        }
        out.push((n, raw.trim_end().to_string()));
    }
    out
}

/// Splits a right-hand side on commas outside double quotes.
fn split_targets(rhs: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in rhs.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                cur.push(c);
            }
            ',' if !quoted => {
                out.push(std::mem::take(&mut cur));
            }
            _ => cur.push(c),
        }
    }
    if quoted {
        return Err("unterminated quote".into());
    }
    out.push(cur);
    Ok(out
        .into_iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect())
}

/// Parses one target as written in an aliases or :include: file.
pub fn parse_target(t: &str) -> Result<Target, String> {
    let unq = t
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(t)
        .trim();
    if let Some(cmd) = unq.strip_prefix('|') {
        let cmd = cmd.trim();
        if cmd.is_empty() {
            return Err("empty pipe command".into());
        }
        if cmd.contains(['\n', '\r', '\0']) {
            return Err("control character in pipe command".into());
        }
        return Ok(Target::Pipe(cmd.to_string()));
    }
    if let Some(p) = unq.strip_prefix(":include:") {
        let p = p.trim();
        if !p.starts_with('/') {
            return Err(format!(":include: needs an absolute path, got '{p}'"));
        }
        return Ok(Target::Include(PathBuf::from(p)));
    }
    if unq.starts_with('/') {
        if unq.contains('\0') || unq.split('/').any(|c| c == "..") {
            return Err(format!("bad file path '{unq}'"));
        }
        return Ok(Target::File(PathBuf::from(unq)));
    }
    if let Some(e) = unq.strip_prefix("error:") {
        return Ok(Target::Error(e.trim().to_string()));
    }
    if unq.contains('@') {
        return match Address::parse(unq) {
            Ok(a) => Ok(Target::Address(a)),
            Err(e) if unq.is_ascii() => Err(e),
            Err(_) => {
                let m = path::parse_utf8(unq).map_err(|e| format!("'{unq}': {e}"))?;
                // Only the domain was UTF-8: its A-label form is the same, plain ASCII address.
                if let Some(a) = m.to_ascii() {
                    return Ok(Target::Address(a));
                }
                let domain = m
                    .ascii_domain()
                    .ok_or_else(|| format!("'{unq}': bad domain"))?;
                Ok(Target::Utf8Address {
                    local: m.local,
                    domain,
                })
            }
        };
    }
    let name = unq.strip_prefix('\\').unwrap_or(unq); // sendmail's "\user": no further aliasing; we never loop anyway
    if valid_any_local(name) {
        return Ok(Target::Local(fold_local(name)));
    }
    Err(format!(
        "'{unq}' is not an address, |command, /file or :include:"
    ))
}

/// Parses an aliases(5) file. Returns the table of good entries and one error per bad line, so
/// `correo newaliases` can name them all and `serve` can refuse to start on a broken file.
pub fn parse(text: &str) -> (Table, Vec<LineError>) {
    let mut table = Table::default();
    let mut errors = Vec::new();
    for (line, l) in logical_lines(text) {
        let Some((name, rhs)) = l.split_once(':') else {
            errors.push(LineError {
                line,
                msg: "missing ':' after the alias name".into(),
            });
            continue;
        };
        let name = fold_local(name.trim().trim_matches('"'));
        if !valid_any_local(&name) {
            errors.push(LineError {
                line,
                msg: format!("bad alias name '{name}'"),
            });
            continue;
        }
        let parts = match split_targets(rhs) {
            Ok(p) => p,
            Err(e) => {
                errors.push(LineError { line, msg: e });
                continue;
            }
        };
        if parts.is_empty() {
            errors.push(LineError {
                line,
                msg: format!("alias '{name}' has no targets"),
            });
            continue;
        }
        let mut targets = Vec::new();
        let mut bad = false;
        for p in parts {
            match parse_target(&p) {
                Ok(t) => targets.push(t),
                Err(e) => {
                    errors.push(LineError { line, msg: e });
                    bad = true;
                }
            }
        }
        if bad {
            continue;
        }
        if let Some(prev) = table.entries.get(&name) {
            errors.push(LineError {
                line,
                msg: format!("alias '{name}' already defined on line {}", prev.line),
            });
            continue;
        }
        table.entries.insert(name, Entry { line, targets });
    }
    (table, errors)
}

/// Parses an `:include:` file: targets separated by commas or newlines, `#` comments.
pub fn parse_include(text: &str) -> (Vec<Target>, Vec<LineError>) {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for (i, l) in text.lines().enumerate() {
        let l = l.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        match split_targets(l) {
            Ok(parts) => {
                for p in parts {
                    match parse_target(&p) {
                        Ok(Target::Include(_)) => errors.push(LineError {
                            line: i + 1,
                            msg: "nested :include:".into(),
                        }),
                        Ok(t) => out.push(t),
                        Err(e) => errors.push(LineError {
                            line: i + 1,
                            msg: e,
                        }),
                    }
                }
            }
            Err(e) => errors.push(LineError {
                line: i + 1,
                msg: e,
            }),
        }
    }
    (out, errors)
}

/// The left side of a virtusertable line: one address, or a whole domain (`@domain`, the catch-all).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum VirtKey {
    Address(String),
    Domain(String),
}

/// sendmail's virtusertable: `pablofelipe@miong.org  pablo` (the seed's §5.3), `@example.org  user`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Virtusers {
    pub map: BTreeMap<VirtKey, (usize, Target)>,
}

impl Virtusers {
    pub fn domains(&self) -> impl Iterator<Item = &str> {
        self.map.keys().map(|k| match k {
            VirtKey::Address(a) => a.rsplit_once('@').map(|(_, d)| d).unwrap_or(""),
            VirtKey::Domain(d) => d.as_str(),
        })
    }

    /// The exact address first, then the domain's catch-all (sendmail's order).
    pub fn lookup(&self, addr: &Address) -> Option<&Target> {
        self.lookup_parts(addr.local(), addr.domain())
    }

    /// `lookup` for a local part (ASCII or UTF-8) and a canonical domain.
    pub fn lookup_parts(&self, local: &str, domain: &str) -> Option<&Target> {
        self.map
            .get(&VirtKey::Address(format!("{}@{domain}", fold_local(local))))
            .or_else(|| self.map.get(&VirtKey::Domain(domain.to_string())))
            .map(|(_, t)| t)
    }
}

pub fn parse_virtusers(text: &str) -> (Virtusers, Vec<LineError>) {
    let mut v = Virtusers::default();
    let mut errors = Vec::new();
    for (i, l) in text.lines().enumerate() {
        let line = i + 1;
        let l = l.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let mut it = l.splitn(2, char::is_whitespace);
        let (Some(lhs), Some(rhs)) = (it.next(), it.next()) else {
            errors.push(LineError {
                line,
                msg: "expected 'address  target'".into(),
            });
            continue;
        };
        let key = if let Some(d) = lhs.strip_prefix('@') {
            match canonical_domain(d) {
                Some(d) => VirtKey::Domain(d),
                None => {
                    errors.push(LineError {
                        line,
                        msg: format!("bad domain '{d}'"),
                    });
                    continue;
                }
            }
        } else {
            match Address::parse(lhs) {
                Ok(a) => VirtKey::Address(a.key()),
                Err(e) if lhs.is_ascii() => {
                    errors.push(LineError { line, msg: e });
                    continue;
                }
                Err(_) => match path::parse_utf8(lhs) {
                    Ok(m) => match m.ascii_domain() {
                        Some(d) => VirtKey::Address(format!("{}@{d}", fold_local(&m.local))),
                        None => {
                            errors.push(LineError {
                                line,
                                msg: format!("'{lhs}': bad domain"),
                            });
                            continue;
                        }
                    },
                    Err(e) => {
                        errors.push(LineError {
                            line,
                            msg: format!("'{lhs}': {e}"),
                        });
                        continue;
                    }
                },
            }
        };
        match parse_target(rhs.trim()) {
            Ok(Target::Include(_)) => errors.push(LineError {
                line,
                msg: ":include: is not allowed in virtusertable".into(),
            }),
            Ok(t) => {
                if let Some((prev, _)) = v.map.get(&key) {
                    errors.push(LineError {
                        line,
                        msg: format!("'{lhs}' already defined on line {prev}"),
                    });
                } else {
                    v.map.insert(key, (line, t));
                }
            }
            Err(e) => errors.push(LineError { line, msg: e }),
        }
    }
    (v, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_usual_forms() {
        let text = "# comment\npostmaster: root\nlista: \"|/usr/bin/correo mail post lista\"\n\
                    owner-lista: pablo@miong.org\narchive: /var/spool/archive,\n  other@x.org\n\
                    staff: :include:/etc/staff\n";
        let (t, errs) = parse(text);
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(
            t.entries["postmaster"].targets,
            vec![Target::Local("root".into())]
        );
        assert_eq!(
            t.entries["lista"].targets,
            vec![Target::Pipe("/usr/bin/correo mail post lista".into())]
        );
        assert_eq!(t.entries["archive"].targets.len(), 2);
        assert_eq!(t.entries["archive"].line, 5);
        assert_eq!(
            t.entries["staff"].targets,
            vec![Target::Include("/etc/staff".into())]
        );
    }

    #[test]
    fn names_every_bad_line() {
        let (_, errs) = parse("ok: root\nnocolon root\nbad name: x\nempty:\nrel: :include:etc/x\nok: again\nq: \"|x\n");
        let lines: Vec<usize> = errs.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![2, 3, 4, 5, 6, 7], "{errs:?}");
    }

    #[test]
    fn quoted_commas_stay_in_the_command() {
        let (t, errs) = parse("x: \"|/bin/echo a,b\", y@z.org\n");
        assert!(errs.is_empty());
        assert_eq!(
            t.entries["x"].targets[0],
            Target::Pipe("/bin/echo a,b".into())
        );
    }

    #[test]
    fn virtusertable_like_the_seed() {
        let (v, errs) =
            parse_virtusers("pablofelipe@miong.org  pablo\n@lists.miong.org  listmaster\nbad\n");
        assert_eq!(errs.len(), 1);
        let a = Address::parse("PabloFelipe@miong.org").unwrap();
        assert_eq!(v.lookup(&a), Some(&Target::Local("pablo".into())));
        let b = Address::parse("any@lists.miong.org").unwrap();
        assert_eq!(v.lookup(&b), Some(&Target::Local("listmaster".into())));
    }

    #[test]
    fn utf8_names_and_idn_domains() {
        let (t, errs) = parse(
            "José: jose\nDörte: dörte@bücher.example, josé\nweb: josé@münchen.example\nbad name ü: x\n",
        );
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(
            t.entries["josé"].targets,
            vec![Target::Local("jose".into())]
        );
        assert_eq!(
            t.entries["dörte"].targets,
            vec![
                Target::Utf8Address {
                    local: "dörte".into(),
                    domain: "xn--bcher-kva.example".into()
                },
                Target::Local("josé".into())
            ]
        );
        assert_eq!(
            t.entries["web"].targets,
            vec![Target::Utf8Address {
                local: "josé".into(),
                domain: "xn--mnchen-3ya.example".into()
            }]
        );
        // A UTF-8 domain alone gives the plain ASCII (A-label) address.
        assert_eq!(
            parse_target("info@münchen.example"),
            Ok(Target::Address(
                Address::parse("info@xn--mnchen-3ya.example").unwrap()
            ))
        );
        let (v, errs) = parse_virtusers(
            "Dörte@München.example  dorte\n@bücher.example  root\nx@xn--mnchen-3ya.example  x\njo sé@x.org y\n",
        );
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(
            v.lookup_parts("DÖRTE", "xn--mnchen-3ya.example"),
            Some(&Target::Local("dorte".into()))
        );
        assert_eq!(
            v.lookup_parts("any", "xn--bcher-kva.example"),
            Some(&Target::Local("root".into()))
        );
        assert!(v.lookup_parts("x", "xn--mnchen-3ya.example").is_some());
    }
}
