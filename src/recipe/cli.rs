//! procmail's command line and start-up, in front of the executor: `-m` filter mode, `-d USER` delivery
//! mode (with `.forward` read first, as the issue asks: a `.forward`, else `.procmailrc`, else the
//! mailbox), `-f`, `-a`, `-t`, `-Y`, `-p`, `VAR=value` arguments and rcfile paths; plus correo's own
//! `--explain` (dry run) and `--bounce` (exit 73 like procmail instead of 75 when nothing delivered).
//!
//! Invariant: exit 0 only after a delivery made the mail durable; every failure path exits 75 unless
//! `--bounce` or `EXITCODE` says otherwise.

use super::exec::{Engine, Flow};
use super::forward::{self, Entry};
use super::mail::Mail;
use super::vars::Vars;
use std::ffi::{CStr, CString};
use std::io::Read;

#[derive(Debug, Default, Clone, PartialEq)]
pub struct Options {
    pub filter_mode: bool,
    pub recipients: Vec<String>,
    pub from: Option<String>,
    pub args: Vec<String>,
    pub assigns: Vec<(String, String)>,
    pub rcfiles: Vec<String>,
    pub preserve_env: bool,
    pub bounce: bool,
    pub explain: bool,
    pub berkeley: bool,
}

/// Parses procmail's arguments. Options come first; in `-m` mode the first non-assignment is the rcfile
/// and everything after it becomes `$1`, `$2`...; with `-d` every remaining word is a recipient.
pub fn parse_args(argv: &[String]) -> Result<Options, String> {
    let mut o = Options::default();
    let mut i = 0;
    let mut delivery = false;
    while i < argv.len() {
        let a = &argv[i];
        if a == "--" {
            i += 1;
            break;
        }
        if a == "--explain" {
            o.explain = true;
            i += 1;
            continue;
        }
        if a == "--bounce" {
            o.bounce = true;
            i += 1;
            continue;
        }
        if !a.starts_with('-') || a.len() < 2 || a.starts_with("--") {
            break;
        }
        let flags: Vec<char> = a[1..].chars().collect();
        let mut j = 0;
        while j < flags.len() {
            let c = flags[j];
            let attached: String = flags[j + 1..].iter().collect();
            let take_value = |i: &mut usize| -> Result<String, String> {
                if !attached.is_empty() {
                    Ok(attached.clone())
                } else {
                    *i += 1;
                    argv.get(*i)
                        .cloned()
                        .ok_or_else(|| format!("missing argument to -{c}"))
                }
            };
            match c {
                'm' => o.filter_mode = true,
                'p' => o.preserve_env = true,
                't' => {}
                'Y' => o.berkeley = true,
                'o' => {}
                'v' => return Err("version".into()),
                'f' | 'r' => {
                    o.from = Some(take_value(&mut i)?);
                    break;
                }
                'a' => {
                    o.args.push(take_value(&mut i)?);
                    break;
                }
                'd' => {
                    delivery = true;
                    if !attached.is_empty() {
                        o.recipients.push(attached);
                    }
                    break;
                }
                _ => return Err(format!("unknown option -{c}")),
            }
            j += 1;
        }
        i += 1;
        if delivery {
            break;
        }
    }
    let rest = &argv[i.min(argv.len())..];
    if delivery {
        o.recipients.extend(rest.iter().cloned());
        if o.recipients.is_empty() {
            return Err("-d needs a recipient".into());
        }
        return Ok(o);
    }
    let mut k = 0;
    while k < rest.len() {
        let a = &rest[k];
        match assignment(a) {
            Some((n, v)) if o.rcfiles.is_empty() || !o.filter_mode => o.assigns.push((n, v)),
            _ => {
                o.rcfiles.push(a.clone());
                if o.filter_mode {
                    o.args.extend(rest[k + 1..].iter().cloned());
                    break;
                }
            }
        }
        k += 1;
    }
    if o.filter_mode && o.rcfiles.is_empty() {
        return Err("-m needs an rcfile".into());
    }
    Ok(o)
}

fn assignment(a: &str) -> Option<(String, String)> {
    let (n, v) = a.split_once('=')?;
    if n.is_empty()
        || !n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        || n.as_bytes()[0].is_ascii_digit()
    {
        return None;
    }
    Some((n.to_string(), v.to_string()))
}

/// The password-file entry procmail takes HOME, SHELL and LOGNAME from.
#[derive(Debug, Clone)]
pub struct User {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: String,
    pub shell: String,
}

fn from_passwd(p: *const libc::passwd) -> Option<User> {
    if p.is_null() {
        return None;
    }
    // SAFETY: getpw* returned a valid entry; fields are NUL-terminated C strings.
    unsafe {
        let s = |c: *const libc::c_char| {
            if c.is_null() {
                String::new()
            } else {
                CStr::from_ptr(c).to_string_lossy().into_owned()
            }
        };
        Some(User {
            name: s((*p).pw_name),
            uid: (*p).pw_uid,
            gid: (*p).pw_gid,
            home: s((*p).pw_dir),
            shell: s((*p).pw_shell),
        })
    }
}

pub fn user_by_name(name: &str) -> Option<User> {
    let c = CString::new(name).ok()?;
    // SAFETY: valid C string; the result is copied out immediately.
    from_passwd(unsafe { libc::getpwnam(c.as_ptr()) })
}

pub fn current_user() -> Option<User> {
    // SAFETY: getuid cannot fail; result copied out immediately.
    from_passwd(unsafe { libc::getpwuid(libc::getuid()) })
}

/// Becomes `u` (group, supplementary groups, then user) when running as root, as procmail -d does.
fn become_user(u: &User) -> Result<(), String> {
    // SAFETY: plain syscalls with values from the password file.
    unsafe {
        if libc::geteuid() != 0 {
            return if libc::geteuid() == u.uid {
                Ok(())
            } else {
                Err(format!("cannot deliver as {}: not root", u.name))
            };
        }
        let name = CString::new(u.name.clone()).map_err(|_| "bad user name".to_string())?;
        if libc::setgid(u.gid) != 0
            || libc::initgroups(name.as_ptr(), u.gid as _) != 0
            || libc::setuid(u.uid) != 0
        {
            return Err(format!("cannot switch to user {}", u.name));
        }
    }
    Ok(())
}

/// The start-up environment (procmailrc(5), "Environment variable defaults").
pub fn default_vars(u: &User, o: &Options) -> Vars {
    let mut v = Vars::default();
    if o.preserve_env {
        for (k, val) in std::env::vars() {
            v.set(&k, &val);
        }
    } else if let Ok(tz) = std::env::var("TZ") {
        v.set("TZ", &tz);
    }
    let shell = if u.shell.is_empty() {
        "/bin/sh".to_string()
    } else {
        u.shell.clone()
    };
    for (k, val) in [
        ("HOME", u.home.as_str()),
        ("LOGNAME", u.name.as_str()),
        ("USER", u.name.as_str()),
        ("SHELL", shell.as_str()),
        ("SHELLMETAS", "&|<>~;?*["),
        ("SHELLFLAGS", "-c"),
        ("MSGPREFIX", "msg."),
        ("SENDMAIL", "/usr/sbin/sendmail"),
        ("SENDMAILFLAGS", "-oi"),
        ("LOCKEXT", ".lock"),
        ("PROCMAIL_VERSION", "3.22"),
    ] {
        v.set(k, val);
    }
    v.set(
        "PATH",
        &format!("{}/bin:/usr/local/bin:/usr/bin:/bin", u.home),
    );
    v.set("HOST", &super::exec::hostname());
    if !o.filter_mode {
        let org = format!("/var/mail/{}", u.name);
        v.set("ORGMAIL", &org);
        v.set("DEFAULT", &org);
        v.set("MAILDIR", &u.home);
    } else {
        v.set("MAILDIR", ".");
    }
    v.args = o.args.clone();
    v
}

/// Generates the `From_` line procmail adds outside `-m` mode when the mail has none, or rewrites it with
/// `-f` (measured against procmail 3.22: `From root  Wed Nov 25 15:26:00 2026`, the invoking user when
/// there is no `-f`; `-f -` keeps the sender and refreshes the date).
fn with_from_line(data: Vec<u8>, from: Option<&str>, invoker: &str) -> Vec<u8> {
    let has = data.starts_with(b"From ");
    if has && from.is_none() {
        return data;
    }
    let first_end = data.iter().position(|&c| c == b'\n');
    let old_sender = has.then(|| {
        let line = &data[5..first_end.unwrap_or(data.len())];
        String::from_utf8_lossy(line)
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_string()
    });
    let sender = match from {
        Some("-") => old_sender
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| invoker.to_string()),
        Some(f) => f.to_string(),
        None => invoker.to_string(),
    };
    let date = chrono::Local::now().format("%a %b %e %H:%M:%S %Y");
    let mut out = format!("From {sender}  {date}\n").into_bytes();
    let rest = if has {
        match first_end {
            Some(p) => &data[p + 1..],
            None => &[][..],
        }
    } else {
        &data[..]
    };
    out.extend_from_slice(rest);
    out
}

/// procmail(1) "-d" and sendmail's rule: a file we act on must be owned by the user or root and not
/// writable by group or others.
/// The directory must not be writable by others unless it is sticky (procmail's "Suspicious rcfile":
/// measured, an rcfile in a mode 777 directory is refused).
fn trusted(path: &str, uid: u32) -> Result<bool, String> {
    use std::os::unix::fs::MetadataExt;
    match std::fs::metadata(path) {
        Err(_) => Ok(false),
        Ok(m) => {
            let dir_open = std::path::Path::new(path)
                .parent()
                .map(|p| {
                    if p.as_os_str().is_empty() {
                        std::path::Path::new(".")
                    } else {
                        p
                    }
                })
                .and_then(|p| std::fs::metadata(p).ok())
                .is_some_and(|d| d.mode() & 0o002 != 0 && d.mode() & 0o1000 == 0);
            if (m.uid() != uid && m.uid() != 0) || m.mode() & 0o022 != 0 || dir_open {
                Err(format!(
                    "Suspicious rcfile \"{path}\": owned by another user or writable by others"
                ))
            } else {
                Ok(true)
            }
        }
    }
}

/// Runs one delivery; returns the process exit code.
pub fn main(argv: &[String]) -> i32 {
    let o = match parse_args(argv) {
        Ok(o) => o,
        Err(e) if e == "version" => {
            println!("correo deliver (procmail 3.22 compatible)");
            return 0;
        }
        Err(e) => {
            eprintln!("correo deliver: {e}");
            return 64;
        }
    };
    // SAFETY: umask cannot fail; procmail's default is 077.
    unsafe {
        libc::umask(0o077);
    }
    // Room for a typical mail up front: `read_to_end` on an empty Vec starts at 32 bytes and doubles,
    // one read(2) per doubling.
    let mut data = Vec::with_capacity(64 * 1024);
    if let Err(e) = std::io::stdin().read_to_end(&mut data) {
        eprintln!("correo deliver: reading the mail: {e}");
        return 75;
    }
    let requeue = !o.bounce;
    if !o.recipients.is_empty() {
        if o.recipients.len() == 1 {
            return deliver_to_user(&o, &o.recipients[0], data);
        }
        // Several recipients: procmail forks one child per recipient (each switches to its user, which
        // cannot be undone in-process). Any failure makes the whole run temporary: the MTA retries.
        let mut worst = 0;
        for r in &o.recipients {
            // SAFETY: single-threaded here; the child only delivers and exits.
            let pid = unsafe { libc::fork() };
            if pid == 0 {
                let code = deliver_to_user(&o, r, data.clone());
                std::process::exit(code);
            }
            let code = if pid < 0 {
                75
            } else {
                let mut st = 0;
                // SAFETY: waiting for our own child.
                unsafe { libc::waitpid(pid, &mut st, 0) };
                if libc::WIFEXITED(st) {
                    libc::WEXITSTATUS(st)
                } else {
                    75
                }
            };
            if code != 0 {
                worst = code;
            }
        }
        return worst;
    }
    let Some(u) = current_user() else {
        eprintln!("correo deliver: who am I? (no password entry)");
        return if requeue { 75 } else { 67 };
    };
    // Without -d procmail leaves the mail as it came (measured: no From_ line is added when a user runs
    // it from a .forward or mailbox_command); -f rewrites the From_ line in any mode.
    if o.from.is_some() {
        data = with_from_line(data, o.from.as_deref(), &u.name);
    }
    let vars = default_vars(&u, &o);
    let rc = o
        .rcfiles
        .first()
        .cloned()
        .unwrap_or_else(|| format!("{}/.procmailrc", u.home));
    run_engine(&o, vars, data, Some(rc), requeue)
}

fn run_engine(
    o: &Options,
    vars: Vars,
    data: Vec<u8>,
    rcfile: Option<String>,
    requeue: bool,
) -> i32 {
    let mut e = Engine::new(vars, Mail::new(data), o.filter_mode);
    if o.explain {
        e.explain = Some(Vec::new());
    }
    let maildir = e.vars.get("MAILDIR").unwrap_or(".").to_string();
    let _ = std::env::set_current_dir(&maildir);
    for (n, v) in &o.assigns {
        if matches!(n.as_str(), "INCLUDERC" | "SWITCHRC") {
            // procmailrc(5): command-line assignments to these have no effect.
            e.vars.set(n, v);
            continue;
        }
        if e.assign(n, Some(v)) == Flow::Stop {
            break;
        }
    }
    // SAFETY: getuid cannot fail.
    let uid = unsafe { libc::getuid() };
    let rcfile = rcfile.filter(|rc| match trusted(rc, uid) {
        Err(why) => {
            e.diag(&why);
            false
        }
        Ok(_) => true,
    });
    if let Some(rc) = rcfile {
        match std::fs::read(&rc) {
            Ok(d) => {
                let _ = e.run_rcfile(&rc, &d);
            }
            Err(err) => {
                if o.filter_mode {
                    e.diag(&format!("Couldn't read \"{rc}\": {err}"));
                }
            }
        }
    }
    e.fall_off();
    let code = e.finish(requeue);
    if let Some(lines) = &e.explain {
        for l in lines {
            println!("{l}");
        }
        let dest = if e.delivered {
            e.vars.get("LASTFOLDER").unwrap_or("").to_string()
        } else {
            "nowhere (exit 75: the MTA keeps it)".into()
        };
        println!("result: {dest}");
    }
    code
}

/// `-d USER`: `.forward` first, then `.procmailrc`, then the mailbox.
fn deliver_to_user(o: &Options, name: &str, data: Vec<u8>) -> i32 {
    let requeue = !o.bounce;
    let temp = if requeue { 75 } else { 73 };
    let Some(u) = user_by_name(name) else {
        eprintln!("correo deliver: unknown user \"{name}\"");
        return 67;
    };
    let invoker = current_user()
        .map(|c| c.name)
        .unwrap_or_else(|| "MAILER-DAEMON".into());
    if !o.explain {
        if let Err(e) = become_user(&u) {
            eprintln!("correo deliver: {e}");
            return temp;
        }
    }
    let data = with_from_line(data, o.from.as_deref(), &invoker);
    let mut vars = default_vars(&u, o);
    let fwd = format!("{}/.forward", u.home);
    match trusted(&fwd, u.uid) {
        Ok(true) => {
            if let Ok(src) = std::fs::read(&fwd) {
                let entries = forward::parse(&src);
                if !entries.is_empty() {
                    return forward_entries(o, &u, vars, data, &entries);
                }
            }
        }
        Ok(false) => {}
        Err(e) => eprintln!("correo deliver: {e}"),
    }
    let rc = format!("{}/.procmailrc", u.home);
    let rc = match trusted(&rc, u.uid) {
        Ok(true) => Some(rc),
        Ok(false) => None,
        Err(e) => {
            eprintln!("correo deliver: {e}");
            None
        }
    };
    vars.set("MAILDIR", &u.home);
    run_engine(o, vars, data, rc, requeue)
}

/// Acts on `.forward` entries in order; the mail counts as delivered only when every entry succeeded
/// (otherwise exit 75 and the MTA retries all of them: a duplicate beats a loss). A pipe that runs
/// procmail (or correo deliver) is the seed's `"| exec /usr/local/bin/procmail"`: we run our own engine
/// on `.procmailrc` in place of a new process.
fn forward_entries(o: &Options, u: &User, vars: Vars, data: Vec<u8>, entries: &[Entry]) -> i32 {
    let requeue = !o.bounce;
    let mut all_ok = true;
    for ent in entries {
        let _ = std::env::set_current_dir(&u.home);
        let rc = match ent {
            Entry::Pipe(cmd) => {
                let words: Vec<&str> = cmd.split_whitespace().filter(|w| *w != "exec").collect();
                let prog = words
                    .first()
                    .map(|w| w.rsplit('/').next().unwrap_or(w))
                    .unwrap_or("");
                if prog == "procmail" || (prog == "correo" && words.get(1) == Some(&"deliver")) {
                    let rcpath = format!("{}/.procmailrc", u.home);
                    let rc = matches!(trusted(&rcpath, u.uid), Ok(true)).then_some(rcpath);
                    let mut v = vars.clone();
                    v.set("MAILDIR", &u.home);
                    if run_engine(o, v, data.clone(), rc, requeue) != 0 {
                        all_ok = false;
                    }
                    continue;
                }
                format!(":0 w\n| {cmd}\n")
            }
            Entry::File(p) => format!(":0:\n\"{p}\"\n"),
            Entry::Local(_) => ":0:\n$DEFAULT\n".to_string(),
            Entry::Address(a) => {
                if crate::message::address::Address::parse(a).is_err()
                    && !a
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
                {
                    eprintln!("correo deliver: .forward: skipping \"{a}\"");
                    continue;
                }
                format!(":0 w\n! {a}\n")
            }
        };
        let mut e = Engine::new(vars.clone(), Mail::new(data.clone()), false);
        if o.explain {
            e.explain = Some(Vec::new());
        }
        for it in &super::rcfile::parse(rc.as_bytes()).items {
            if let super::rcfile::Item::Recipe(r) = it {
                if !e.run_action(r) {
                    all_ok = false;
                }
            }
        }
        if let Some(lines) = &e.explain {
            for l in lines {
                println!("{l}");
            }
        }
    }
    if all_ok {
        0
    } else if requeue {
        75
    } else {
        73
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn from_lines_like_procmail() {
        let d =
            String::from_utf8(with_from_line(b"Subject: t\n\nb\n".to_vec(), None, "root")).unwrap();
        assert!(
            d.starts_with("From root  ") && d.contains("\nSubject: t\n"),
            "{d}"
        );
        let d = String::from_utf8(with_from_line(
            b"From a@b  Mon Jan  1 00:00:00 2024\nX: y\n".to_vec(),
            Some("-"),
            "root",
        ))
        .unwrap();
        assert!(
            d.starts_with("From a@b  ") && !d.contains("2024") && d.ends_with("\nX: y\n"),
            "{d}"
        );
        let d = with_from_line(b"From a@b  Mon\nX: y\n".to_vec(), None, "root");
        assert_eq!(d, b"From a@b  Mon\nX: y\n");
    }

    #[test]
    fn procmail_command_lines() {
        let o = parse_args(&s(&["-m", "BASE=/x", "/x/rc", "a1", "B=2"])).unwrap();
        assert!(o.filter_mode);
        assert_eq!(o.assigns, vec![("BASE".into(), "/x".into())]);
        assert_eq!(o.rcfiles, vec!["/x/rc"]);
        assert_eq!(o.args, vec!["a1", "B=2"]);
        let o = parse_args(&s(&["-t", "-f", "me@x", "-a", "X", "-d", "pablo", "ana"])).unwrap();
        assert_eq!(o.recipients, vec!["pablo", "ana"]);
        assert_eq!(o.from.as_deref(), Some("me@x"));
        assert_eq!(o.args, vec!["X"]);
        let o = parse_args(&s(&["-Yf-", "--explain", "VERBOSE=on"])).unwrap();
        assert!(o.berkeley && o.explain);
        assert_eq!(o.from.as_deref(), Some("-"));
        assert!(parse_args(&s(&["-m"])).is_err());
    }
}
