//! Deliveries into folders, each written the way procmail 3.22 writes it and made durable before we say
//! "delivered": mbox (append under a kernel lock, `>From ` quoting, fsync, truncate back on failure),
//! Maildir (`tmp/` then `new/`, unique `time.pid_n.host` names, fsync file and directory), MH (`dir/.`,
//! next free number) and plain directories (`$MSGPREFIX` names). Several directories at once are
//! hard links of the first, as procmail does.

use super::lock;
use super::mail::{escape_from, needs_newline, Mail};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Mbox,
    Maildir,
    Mh,
    Dir,
}

/// procmailrc(5): a name ending in `/` is a Maildir, in `/.` an MH folder, an existing directory a plain
/// directory folder; anything else is a file appended to.
pub fn classify(name: &str) -> (Kind, String) {
    if let Some(d) = name.strip_suffix("/.") {
        return (Kind::Mh, d.to_string());
    }
    if name.len() > 1 && name.ends_with('/') {
        return (Kind::Maildir, name.trim_end_matches('/').to_string());
    }
    if name != "/dev/null" && Path::new(name).is_dir() {
        return (Kind::Dir, name.to_string());
    }
    (Kind::Mbox, name.to_string())
}

/// What to write: which parts, and whether the trailing-newline rule applies.
#[derive(Debug, Clone, Copy)]
pub struct Parts {
    pub head: bool,
    pub body: bool,
    pub raw: bool,
}

/// The bytes a folder of this kind receives.
pub fn compose(mail: &Mail, parts: Parts, kind: Kind) -> Vec<u8> {
    let mut head: &[u8] = if parts.head { mail.header() } else { b"" };
    if kind == Kind::Maildir && parts.head && mail.has_from_line() {
        let skip = mail.data.len() - mail.without_from_line().len();
        head = &mail.header()[skip.min(mail.head_len)..];
    }
    let body: &[u8] = if parts.body { mail.body() } else { b"" };
    let mut out = Vec::with_capacity(head.len() + body.len() + 2);
    out.extend_from_slice(head);
    // procmail's `r` (raw) writes the mail as is: no `>From ` quoting either.
    if kind == Kind::Mbox && !parts.raw {
        out.extend_from_slice(&escape_from(body));
    } else {
        out.extend_from_slice(body);
    }
    if kind != Kind::Maildir && !parts.raw && needs_newline(&out) {
        out.push(b'\n');
    }
    out
}

/// The result of a delivery: the name procmail logs as the folder (and puts in LASTFOLDER) and the
/// number of bytes written.
#[derive(Debug, Clone)]
pub struct Written {
    pub names: Vec<String>,
    pub bytes: usize,
}

static MAILDIR_SEQ: AtomicU32 = AtomicU32::new(0);

fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: buffer is valid and its length is passed.
    let r = unsafe { libc::gethostname(buf.as_mut_ptr() as *mut libc::c_char, buf.len()) };
    if r != 0 {
        return "localhost".into();
    }
    let n = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    // Maildir names must not contain '/' or ':' (the info separator).
    String::from_utf8_lossy(&buf[..n])
        .replace('/', "\\057")
        .replace(':', "\\072")
}

fn maildir_name() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let n = MAILDIR_SEQ.fetch_add(1, Ordering::Relaxed);
    format!(
        "{}.{}_{}.{}",
        now.as_secs(),
        std::process::id(),
        n,
        hostname()
    )
}

fn sync_dir(d: &Path) -> io::Result<()> {
    File::open(d)?.sync_all()
}

/// Creates `dir` and the Maildir subdirectories (procmail does this too), mode from the umask.
fn ensure_maildir(dir: &Path) -> io::Result<()> {
    for sub in ["", "tmp", "new", "cur"] {
        let p = if sub.is_empty() {
            dir.to_path_buf()
        } else {
            dir.join(sub)
        };
        match fs::create_dir(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn write_new_file(path: &Path, data: &[u8]) -> io::Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o666)
        .open(path)?;
    let r = f.write_all(data).and_then(|_| f.sync_all());
    if let Err(e) = r {
        let _ = fs::remove_file(path);
        return Err(e);
    }
    Ok(())
}

fn deliver_maildir(dir: &str, data: &[u8]) -> io::Result<(String, PathBuf)> {
    let d = Path::new(dir);
    ensure_maildir(d)?;
    for _ in 0..100 {
        let name = maildir_name();
        let tmp = d.join("tmp").join(&name);
        let new = d.join("new").join(&name);
        match write_new_file(&tmp, data) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
        // link() refuses to overwrite, unlike rename(): a name clash in new/ cannot lose a message.
        match fs::hard_link(&tmp, &new) {
            Ok(()) => {
                // Only new/ must reach the disk: a tmp/ entry that comes back after a crash is just
                // cleaned up by the reader, the message itself is already safe in new/.
                let _ = fs::remove_file(&tmp);
                sync_dir(&d.join("new"))?;
                return Ok((format!("{dir}/new/{name}"), new));
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                let _ = fs::remove_file(&tmp);
                continue;
            }
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                return Err(e);
            }
        }
    }
    Err(io::Error::other("no unique Maildir name"))
}

fn next_mh_number(d: &Path) -> io::Result<u64> {
    let mut max = 0;
    for e in fs::read_dir(d)? {
        let e = e?;
        if let Some(n) = e.file_name().to_str().and_then(|s| s.parse::<u64>().ok()) {
            max = max.max(n);
        }
    }
    Ok(max + 1)
}

fn deliver_mh(dir: &str, data: &[u8]) -> io::Result<(String, PathBuf)> {
    let d = Path::new(if dir.is_empty() { "/" } else { dir });
    fs::create_dir_all(d)?;
    let mut n = next_mh_number(d)?;
    for _ in 0..1000 {
        let p = d.join(n.to_string());
        match write_new_file(&p, data) {
            Ok(()) => {
                sync_dir(d)?;
                return Ok((format!("{dir}/{n}"), p));
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => n += 1,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other("no free MH number"))
}

fn deliver_dir(dir: &str, prefix: &str, data: &[u8]) -> io::Result<(String, PathBuf)> {
    let d = Path::new(dir);
    for _ in 0..100 {
        let name = format!("{prefix}{}", crate::message::spool::unique_id());
        let p = d.join(&name);
        match write_new_file(&p, data) {
            Ok(()) => {
                sync_dir(d)?;
                return Ok((format!("{dir}/{name}"), p));
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other("no unique file name"))
}

/// Appends to an mbox under the kernel lock; on any write error the file is cut back to its old length
/// so a half-written message never corrupts the mailbox.
pub fn append_mbox(path: &str, data: &[u8]) -> io::Result<()> {
    if path == "/dev/null" {
        return Ok(());
    }
    let mut f = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o666)
        .open(path)?;
    if !f.metadata()?.is_file() {
        // A pipe or device: just write.
        return f.write_all(data);
    }
    lock::kernel_lock(&f)?;
    let start = f.seek(io::SeekFrom::End(0))?;
    if crate::message::spool::injected_fault("mbox") {
        return Err(io::Error::new(
            io::ErrorKind::StorageFull,
            "injected fault: no space left on device",
        ));
    }
    let r = f.write_all(data).and_then(|_| f.sync_data());
    if let Err(e) = r {
        let _ = f.set_len(start);
        let _ = f.sync_all();
        return Err(e);
    }
    // procmailrc(5), UMASK: "If the umask permits o+x, all the mailboxes procmail delivers to directly
    // will receive an o+x mode change" (a new-mail flag for biff-like tools).
    // SAFETY: umask(2) cannot fail; we put the old value straight back.
    let mask = unsafe {
        let m = libc::umask(0o077);
        libc::umask(m);
        m
    };
    if mask & 0o001 == 0 {
        use std::os::unix::fs::PermissionsExt;
        let mut p = f.metadata()?.permissions();
        p.set_mode(p.mode() | 0o001);
        let _ = f.set_permissions(p);
    }
    Ok(())
}

/// Delivers to one or more folders. Directory folders after the first get hard links of the first
/// file; an mbox among several is written in turn.
pub fn deliver(
    mail: &Mail,
    parts: Parts,
    folders: &[String],
    msgprefix: &str,
) -> io::Result<Written> {
    let mut names = Vec::new();
    let mut bytes = 0;
    let mut first_file: Option<PathBuf> = None;
    for f in folders {
        let (kind, dir) = classify(f);
        if dir == "/dev/null" {
            // procmail does not write to /dev/null; it logs the mail's own length.
            bytes = mail.data.len();
            names.push(dir);
            continue;
        }
        // Directory folders after the first get a hard link to the first one's file (procmail does this:
        // the link has the first folder's contents and the logged length stays the first's).
        let is_dir = matches!(kind, Kind::Maildir | Kind::Mh | Kind::Dir);
        if let (Some(src), true) = (&first_file, is_dir) {
            let d = Path::new(&dir);
            let (name, to) = match kind {
                Kind::Maildir => {
                    ensure_maildir(d)?;
                    let n = maildir_name();
                    (format!("{dir}/new/{n}"), d.join("new").join(n))
                }
                Kind::Mh => {
                    fs::create_dir_all(d)?;
                    let n = next_mh_number(d)?;
                    (format!("{dir}/{n}"), d.join(n.to_string()))
                }
                _ => {
                    let n = format!("{msgprefix}{}", crate::message::spool::unique_id());
                    (format!("{dir}/{n}"), d.join(n))
                }
            };
            fs::hard_link(src, &to)?;
            if let Some(parent) = to.parent() {
                sync_dir(parent)?;
            }
            names.push(name);
            continue;
        }
        let data = compose(mail, parts, kind);
        bytes = data.len();
        if crate::message::spool::injected_fault("folder") {
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                "injected fault: no space left on device",
            ));
        }
        match kind {
            Kind::Mbox => {
                append_mbox(&dir, &data)?;
                names.push(dir);
            }
            Kind::Maildir | Kind::Mh | Kind::Dir => {
                let (name, path) = match kind {
                    Kind::Maildir => deliver_maildir(&dir, &data)?,
                    Kind::Mh => deliver_mh(&dir, &data)?,
                    _ => deliver_dir(&dir, msgprefix, &data)?,
                };
                if first_file.is_none() {
                    first_file = Some(path);
                }
                names.push(name);
            }
        }
    }
    Ok(Written { names, bytes })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds() {
        assert_eq!(classify("Maildir/").0, Kind::Maildir);
        assert_eq!(classify("inbox/.").0, Kind::Mh);
        assert_eq!(classify("mbox").0, Kind::Mbox);
        assert_eq!(classify("/dev/null").0, Kind::Mbox);
    }

    #[test]
    fn compose_rules() {
        let m = Mail::new(b"From a  x\nSubject: s\n\nbody\nFrom x".to_vec());
        let all = Parts {
            head: true,
            body: true,
            raw: false,
        };
        assert_eq!(
            compose(&m, all, Kind::Mbox),
            b"From a  x\nSubject: s\n\nbody\n>From x\n"
        );
        assert_eq!(
            compose(&m, all, Kind::Maildir),
            b"Subject: s\n\nbody\nFrom x"
        );
        assert_eq!(
            compose(&m, all, Kind::Mh),
            b"From a  x\nSubject: s\n\nbody\nFrom x\n"
        );
    }

    #[test]
    fn maildir_and_mh() {
        let d = tempfile::tempdir().unwrap();
        let m = Mail::new(b"Subject: s\n\nb\n".to_vec());
        let p = Parts {
            head: true,
            body: true,
            raw: false,
        };
        let md = format!("{}/md/", d.path().display());
        let mh = format!("{}/mh/.", d.path().display());
        let w = deliver(&m, p, &[md, mh.clone()], "msg.").unwrap();
        assert_eq!(w.names.len(), 2);
        assert!(w.names[1].ends_with("/mh/1"));
        let w = deliver(&m, p, &[mh], "msg.").unwrap();
        assert!(w.names[0].ends_with("/mh/2"));
    }
}
