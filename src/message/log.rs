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
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
        {
            // One write call per line: O_APPEND keeps concurrent processes' lines whole.
            let _ = f.write_all(line.as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
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
