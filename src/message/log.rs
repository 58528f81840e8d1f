//! The maillog: one syslog-style line per message event, like Postfix's, appended to HOME/log/maillog
//! (and to stderr when `CORREO_LOG_STDERR=1`, handy under a supervisor).
//!
//! `Mon DD HH:MM:SS host correo/PART[pid]: ID: key=value, key=value`

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

static LOG_PATH: OnceLock<PathBuf> = OnceLock::new();

/// Sets the log file once at start-up; events before that go to stderr only.
pub fn init(path: &Path) {
    let _ = LOG_PATH.set(path.to_path_buf());
}

fn hostname() -> String {
    static HOST: OnceLock<String> = OnceLock::new();
    HOST.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "localhost".into())
    })
    .clone()
}

/// Formats one line; `id` is the queue id, list name or message id the event is keyed by.
pub fn format_line(part: &str, id: &str, fields: &[(&str, &str)]) -> String {
    let ts = chrono::Local::now().format("%b %e %H:%M:%S");
    let mut line = format!(
        "{ts} {} correo/{part}[{}]: {id}:",
        hostname(),
        std::process::id()
    );
    for (i, (k, v)) in fields.iter().enumerate() {
        let sep = if i == 0 { " " } else { ", " };
        let v: String = v
            .chars()
            .map(|c| if c.is_control() { '?' } else { c })
            .collect();
        line.push_str(&format!("{sep}{k}={v}"));
    }
    line.push('\n');
    line
}

/// Whether `init` has run (events then go to the maillog, not only to stderr).
pub fn initialized() -> bool {
    LOG_PATH.get().is_some()
}

/// Appends one event. Logging never fails the caller: a mail must not be refused because the log is full.
pub fn event(part: &str, id: &str, fields: &[(&str, &str)]) {
    let line = format_line(part, id, fields);
    if std::env::var_os("CORREO_LOG_STDERR").is_some() || LOG_PATH.get().is_none() {
        let _ = std::io::stderr().write_all(line.as_bytes());
    }
    if let Some(p) = LOG_PATH.get() {
        append(p, line.as_bytes());
    }
}

/// The open maillog: its path, the file, the identity (device, inode) it had when opened, and when the
/// path was last checked against it.
type Open = (PathBuf, std::fs::File, (u64, u64), std::time::Instant);

/// How long a file handle is trusted before the path is looked at again. Opening the file for every
/// line (so that a rotated log is followed at once) was 1-2% of a spam daemon's CPU; with the handle
/// kept, a rename by newsyslog or logrotate sends at most this long of lines to the renamed file,
/// where they are kept, not lost.
const RECHECK: std::time::Duration = std::time::Duration::from_secs(1);

fn append(path: &Path, line: &[u8]) {
    use std::os::unix::fs::MetadataExt;
    static OPEN: std::sync::Mutex<Option<Open>> = std::sync::Mutex::new(None);
    let mut open = match OPEN.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    };
    let current = match open.take() {
        Some((p, f, id, at)) if p == path && at.elapsed() < RECHECK => Some((f, id, at)),
        Some((p, f, id, _)) if p == path => std::fs::metadata(path)
            .ok()
            .filter(|m| (m.dev(), m.ino()) == id)
            .map(|_| (f, id, std::time::Instant::now())),
        _ => None,
    };
    let current = current.or_else(|| {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .ok()?;
        let m = f.metadata().ok()?;
        Some((f, (m.dev(), m.ino()), std::time::Instant::now()))
    });
    if let Some((f, id, at)) = current {
        // One write call per line: O_APPEND keeps concurrent processes' lines whole.
        if (&f).write_all(line).is_ok() {
            *open = Some((path.to_path_buf(), f, id, at));
        }
    }
}

#[cfg(test)]
mod tests {
    /// Lines go to the file at the path; once the log is renamed away (newsyslog), lines reach a new
    /// file at the path within `RECHECK`, and none is lost in between.
    #[test]
    fn follows_a_rotated_log() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("maillog");
        super::append(&log, b"one\n");
        super::append(&log, b"two\n");
        let old = dir.path().join("maillog.0");
        std::fs::rename(&log, &old).expect("rename");
        super::append(&log, b"three\n");
        std::thread::sleep(super::RECHECK + std::time::Duration::from_millis(100));
        super::append(&log, b"four\n");
        let old = std::fs::read_to_string(&old).expect("old");
        let new = std::fs::read_to_string(&log).expect("new");
        assert!(old.starts_with("one\ntwo\n"), "{old:?}");
        assert!(new.ends_with("four\n"), "{new:?}");
        assert_eq!(format!("{old}{new}").lines().count(), 4, "{old:?} {new:?}");
    }

    #[test]
    fn line_shape() {
        let l = super::format_line(
            "list",
            "dev@x.org",
            &[("from", "a@b"), ("status", "sent\r\nX")],
        );
        assert!(l.contains("correo/list["), "{l}");
        assert!(
            l.ends_with(": dev@x.org: from=a@b, status=sent??X\n"),
            "{l}"
        );
    }
}
