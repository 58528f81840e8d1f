//! Local delivery: alias pipes, `/file` targets and local users' mailboxes. Each returns a classified
//! `Delivered` so the queue knows whether to retry (sysexits 75 and friends → 4.x.x) or bounce (67 → 5.1.1).
//!
//! Nothing here builds a path or a command line from a remote address: pipe commands and file paths come
//! from the aliases file the postmaster wrote, user names were checked against the password database, and
//! the envelope sender reaches a pipe only through the environment after `Address` validation.

use crate::message::address::Address;
use std::ffi::{CStr, CString};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What happened to one local delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivered {
    Ok,
    /// Try again later; the text says why and carries the enhanced status code.
    Temporary(String),
    Permanent(String),
}

/// A local account from the password database.
#[derive(Debug, Clone)]
pub struct User {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
}

/// getpwnam_r(3): the only source of truth for "is this a local user".
pub fn lookup_user(name: &str) -> Option<User> {
    let cname = CString::new(name).ok()?;
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: all pointers are valid for the call; buf outlives the strings we copy out below.
    let rc = unsafe {
        libc::getpwnam_r(
            cname.as_ptr(),
            &mut pwd,
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        )
    };
    if rc != 0 || result.is_null() {
        return None;
    }
    // SAFETY: getpwnam_r succeeded, so pw_dir points into buf and is NUL-terminated.
    let home = unsafe { CStr::from_ptr(pwd.pw_dir) }
        .to_string_lossy()
        .into_owned();
    Some(User {
        name: name.to_string(),
        uid: pwd.pw_uid,
        gid: pwd.pw_gid,
        home: PathBuf::from(home),
    })
}

/// getpwuid_r(3): the name of a uid, for "run as the owner of the data directory".
pub fn user_name(uid: u32) -> Option<String> {
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: all pointers are valid for the call; buf outlives the string we copy out below.
    let rc = unsafe { libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result) };
    if rc != 0 || result.is_null() {
        return None;
    }
    // SAFETY: getpwuid_r succeeded, so pw_name points into buf and is NUL-terminated.
    Some(
        unsafe { CStr::from_ptr(pwd.pw_name) }
            .to_string_lossy()
            .into_owned(),
    )
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// How long a pipe may run before it counts as a temporary failure (sendmail's default is similar).
const PIPE_TIMEOUT: Duration = Duration::from_secs(600);

/// Maps a pipe's exit status to a delivery result (sysexits(3); RFC 3463 codes as sendmail picks them).
pub fn classify_exit(code: Option<i32>, output: &str) -> Delivered {
    let out = output.trim();
    let why = |status: &str, what: &str| {
        if out.is_empty() {
            format!("{status} {what}")
        } else {
            format!("{status} {what}: {out}")
        }
    };
    match code {
        Some(0) => Delivered::Ok,
        None => Delivered::Temporary(why("4.3.0", "command killed by a signal")),
        Some(c @ (75 | 71 | 74 | 73)) => Delivered::Temporary(why(
            "4.3.0",
            &format!("command exited {c} (temporary failure)"),
        )),
        Some(67) => Delivered::Permanent(why("5.1.1", "command exited 67 (EX_NOUSER)")),
        Some(68) => Delivered::Permanent(why("5.1.2", "command exited 68 (EX_NOHOST)")),
        Some(65) => Delivered::Permanent(why("5.6.0", "command exited 65 (EX_DATAERR)")),
        Some(77) => Delivered::Permanent(why("5.7.1", "command exited 77 (EX_NOPERM)")),
        Some(c) => Delivered::Permanent(why("5.3.0", &format!("command exited {c}"))),
    }
}

/// Runs `|command` from an aliases file with the message on stdin, as `run_as` when we are root.
/// The command is the postmaster's own text, so it goes to /bin/sh as sendmail's prog mailer does.
pub fn pipe(
    cmd: &str,
    msg: &[u8],
    sender: &str,
    rcpt: &str,
    run_as: &str,
    home: &Path,
) -> Delivered {
    let mut c = Command::new("/bin/sh");
    c.env("CORREO_HOME", home);
    c.arg("-c")
        .arg(cmd)
        .env("SENDER", sender)
        .env("RECIPIENT", rcpt)
        .env("ORIGINAL_RECIPIENT", rcpt);
    run(c, msg, run_as)
}

/// Runs the recipe engine (`correo deliver` by default) for a local user, as that user.
pub fn deliver_command(command: &str, msg: &[u8], sender: &str, user: &User) -> Delivered {
    let mut words = command.split_whitespace();
    let Some(prog) = words.next() else {
        return Delivered::Temporary("4.3.5 deliver_command is empty".into());
    };
    let prog = if prog == "correo" {
        std::env::current_exe()
            .map(|p| p.display().to_string())
            .unwrap_or(prog.into())
    } else {
        prog.to_string()
    };
    let mut c = Command::new(prog);
    c.args(words)
        .arg("-f")
        .arg(if sender.is_empty() { "<>" } else { sender });
    c.env("HOME", &user.home)
        .env("USER", &user.name)
        .env("LOGNAME", &user.name);
    run(c, msg, &user.name)
}

fn run(mut c: Command, msg: &[u8], run_as: &str) -> Delivered {
    if is_root() {
        match lookup_user(run_as) {
            Some(u) => {
                c.uid(u.uid).gid(u.gid);
            }
            None => {
                return Delivered::Temporary(format!(
                    "4.3.5 user '{run_as}' to run the command as does not exist"
                ))
            }
        }
    }
    c.env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c.current_dir("/");
    // Own process group, so a timeout kills the whole pipeline, not just the shell.
    c.process_group(0);
    let mut child = match c.spawn() {
        Ok(ch) => ch,
        Err(e) => return Delivered::Temporary(format!("4.3.0 cannot run command: {e}")),
    };
    let mut stdin = child.stdin.take();
    let data = msg.to_vec();
    let writer = std::thread::spawn(move || {
        if let Some(s) = stdin.as_mut() {
            // A command that does not read all its input is not an error (sendmail ignores EPIPE too).
            let _ = s.write_all(&data);
        }
    });
    let mut output = String::new();
    let mut out = child.stdout.take();
    let mut err = child.stderr.take();
    let reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        if let Some(o) = out.as_mut() {
            let _ = o.take(4096).read_to_end(&mut s);
        }
        if let Some(e) = err.as_mut() {
            let _ = e.take(4096).read_to_end(&mut s);
        }
        s
    });
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break Some(st),
            Ok(None) if start.elapsed() > PIPE_TIMEOUT => {
                // SAFETY: kill(2) on the child's process group, which we created above.
                unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(_) => break None,
        }
    };
    let _ = writer.join();
    if let Ok(s) = reader.join() {
        output = String::from_utf8_lossy(&s).chars().take(300).collect();
        output = output.replace(['\r', '\n'], " ");
    }
    match status {
        Some(st) if start.elapsed() <= PIPE_TIMEOUT => classify_exit(st.code(), &output),
        _ => Delivered::Temporary("4.4.7 command timed out".into()),
    }
}

/// The mbox "From " line (RFC 4155) and body with mboxrd quoting of `>*From ` lines; CRLF becomes LF.
pub fn mbox_entry(msg: &[u8], sender: &str) -> Vec<u8> {
    let date = chrono::Local::now().format("%a %b %e %H:%M:%S %Y");
    let from = if sender.is_empty() {
        "MAILER-DAEMON"
    } else {
        sender
    };
    let mut out = format!("From {from} {date}\n").into_bytes();
    for line in msg.split_inclusive(|&b| b == b'\n') {
        let body = line.strip_suffix(b"\n").unwrap_or(line);
        let body = body.strip_suffix(b"\r").unwrap_or(body);
        let unquoted = body
            .iter()
            .position(|&b| b != b'>')
            .map(|i| &body[i..])
            .unwrap_or(&[]);
        if unquoted.starts_with(b"From ") {
            out.push(b'>');
        }
        out.extend_from_slice(body);
        out.push(b'\n');
    }
    out.push(b'\n');
    out
}

/// Appends to an mbox file under an exclusive flock(2), fsyncs, and on a short write truncates back so the
/// mailbox is never left with half a message.
pub fn append_mbox(path: &Path, msg: &[u8], sender: &str, owner: Option<&User>) -> Delivered {
    let entry = mbox_entry(msg, sender);
    let f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path);
    let mut f = match f {
        Ok(f) => f,
        Err(e) => {
            return Delivered::Temporary(format!("4.2.0 cannot open {}: {e}", path.display()))
        }
    };
    use std::os::unix::io::AsRawFd;
    // SAFETY: flock on a file descriptor we own.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Delivered::Temporary(format!("4.2.0 cannot lock {}", path.display()));
    }
    if let (Some(u), true) = (owner, is_root()) {
        let _ = std::os::unix::fs::fchown(&f, Some(u.uid), Some(u.gid));
    }
    let before = f.metadata().map(|m| m.len()).unwrap_or(0);
    if let Err(e) = f.write_all(&entry).and_then(|_| f.sync_all()) {
        let _ = f.set_len(before);
        return Delivered::Temporary(format!("4.3.0 write to {} failed: {e}", path.display()));
    }
    Delivered::Ok
}

/// Delivers into ~/Maildir/new via tmp/ (the Maildir protocol), fsynced before the rename.
pub fn maildir(dir: &Path, msg: &[u8], user: &User) -> Delivered {
    let name = format!(
        "{}.{}.correo",
        chrono::Utc::now().timestamp(),
        crate::message::spool::unique_id()
    );
    for sub in ["tmp", "new", "cur"] {
        if let Err(e) = std::fs::create_dir_all(dir.join(sub)) {
            return Delivered::Temporary(format!("4.2.0 cannot create {}: {e}", dir.display()));
        }
        if is_root() {
            let _ = std::os::unix::fs::chown(dir.join(sub), Some(user.uid), Some(user.gid));
        }
    }
    let lf: Vec<u8> = msg.iter().copied().filter(|&b| b != b'\r').collect();
    match crate::message::spool::write_durable(&dir.join("tmp"), &name, &lf) {
        Ok(p) => {
            if is_root() {
                let _ = std::os::unix::fs::chown(&p, Some(user.uid), Some(user.gid));
            }
            match crate::message::spool::move_durable(&p, &dir.join("new")) {
                Ok(_) => Delivered::Ok,
                Err(e) => Delivered::Temporary(format!("4.3.0 maildir rename: {e}")),
            }
        }
        Err(e) => Delivered::Temporary(format!("4.3.0 maildir write: {e}")),
    }
}

/// Checks an envelope sender before it reaches a command's environment.
pub fn safe_sender(sender: &str) -> String {
    if sender.is_empty() {
        return String::new();
    }
    Address::parse(sender)
        .map(|a| a.to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysexits_map_to_retry_or_bounce() {
        assert_eq!(classify_exit(Some(0), ""), Delivered::Ok);
        assert!(matches!(
            classify_exit(Some(75), ""),
            Delivered::Temporary(_)
        ));
        assert!(matches!(classify_exit(None, ""), Delivered::Temporary(_)));
        match classify_exit(Some(67), "no list") {
            Delivered::Permanent(m) => {
                assert!(m.starts_with("5.1.1") && m.ends_with("no list"), "{m}")
            }
            o => panic!("{o:?}"),
        }
    }

    #[test]
    fn mbox_quotes_from_lines() {
        let e = mbox_entry(b"Subject: x\r\n\r\nFrom here\r\n>From there\r\n", "a@b.org");
        let s = String::from_utf8(e).unwrap();
        assert!(s.starts_with("From a@b.org "));
        assert!(s.contains("\n>From here\n>>From there\n\n"), "{s}");
    }

    #[test]
    fn pipe_runs_and_classifies() {
        assert_eq!(
            pipe(
                "cat >/dev/null",
                b"hi\n",
                "a@b.org",
                "x@y.org",
                "nobody",
                Path::new("/tmp")
            ),
            Delivered::Ok
        );
        assert!(matches!(
            pipe("exit 75", b"", "", "x@y.org", "nobody", Path::new("/tmp")),
            Delivered::Temporary(_)
        ));
        assert!(
            matches!(pipe("echo nope; exit 67", b"", "", "x@y.org", "nobody", Path::new("/tmp")), Delivered::Permanent(m) if m.contains("nope"))
        );
    }
}
