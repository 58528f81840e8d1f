//! `correo spam learn`: reads messages from single files, directories (recursively), Maildirs (`cur/`
//! and `new/`, never `tmp/`) and mbox files, tokenizes them on all cores, and teaches the store in
//! batches. Progress goes to stderr (a live line on a terminal, a line every few seconds otherwise) and
//! a summary ends the run, as `sa-learn` prints one.

use super::store::{self, Class, Did, Learner};
use super::Tokens;
use crate::message::error::{Error, Result};
use crate::spam::view::View;
use rusqlite::Connection;
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Where one message comes from: a file, or a byte range of an mbox file.
#[derive(Debug, Clone)]
pub enum Source {
    File(PathBuf),
    Mbox {
        path: PathBuf,
        start: usize,
        end: usize,
    },
}

/// Lists the messages under the given paths, in a stable order.
pub fn sources(paths: &[PathBuf]) -> Result<Vec<Source>> {
    let mut out = Vec::new();
    for p in paths {
        let md = std::fs::metadata(p).map_err(|e| Error::from(e).context(p.display()))?;
        if md.is_dir() {
            walk(p, &mut out)?;
        } else {
            file_sources(p, &mut out)?;
        }
    }
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<Source>) -> Result<()> {
    let mut names: Vec<(PathBuf, Option<std::fs::FileType>)> = std::fs::read_dir(dir)
        .map_err(|e| Error::from(e).context(dir.display()))?
        .filter_map(|e| e.ok().map(|e| (e.path(), e.file_type().ok())))
        .collect();
    names.sort_by(|a, b| a.0.cmp(&b.0));
    for (p, ft) in names {
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        // Hidden files and a Maildir's tmp/ (messages still being written) are not mail to learn.
        if name.starts_with('.') || (name == "tmp" && dir.join("cur").is_dir()) {
            continue;
        }
        // The directory entry's type spares a stat per file; a symbolic link is followed.
        let (is_dir, is_file) = match ft {
            Some(t) if !t.is_symlink() => (t.is_dir(), t.is_file()),
            _ => (p.is_dir(), p.is_file()),
        };
        if is_dir {
            walk(&p, out)?;
        } else if is_file {
            file_sources(&p, out)?;
        }
    }
    Ok(())
}

/// A file holds one message, or (when it starts with an mbox `From ` line and has more than one) many.
fn file_sources(p: &Path, out: &mut Vec<Source>) -> Result<()> {
    // Only a file starting with `From ` can be an mbox: the others are not read here (they are read
    // once, when learned).
    let mut head = Vec::with_capacity(5);
    std::fs::File::open(p)
        .and_then(|f| f.take(5).read_to_end(&mut head))
        .map_err(|e| Error::from(e).context(p.display()))?;
    if head != b"From " {
        out.push(Source::File(p.to_path_buf()));
        return Ok(());
    }
    let data = std::fs::read(p).map_err(|e| Error::from(e).context(p.display()))?;
    let starts = mbox_starts(&data);
    if starts.len() <= 1 {
        out.push(Source::File(p.to_path_buf()));
        return Ok(());
    }
    for (i, &s) in starts.iter().enumerate() {
        let end = starts.get(i + 1).copied().unwrap_or(data.len());
        out.push(Source::Mbox {
            path: p.to_path_buf(),
            start: s,
            end,
        });
    }
    Ok(())
}

/// Offsets of the `From ` lines that begin messages in an mbox: at the start of the file, or after a
/// blank line (a `From ` inside a body is escaped as `>From ` by any sane MDA).
pub fn mbox_starts(data: &[u8]) -> Vec<usize> {
    if !data.starts_with(b"From ") {
        return Vec::new();
    }
    let mut v = vec![0];
    for i in memchr::memmem::find_iter(data, b"\n\nFrom ") {
        v.push(i + 2);
    }
    v
}

/// The message without its mbox `From ` envelope line.
pub fn strip_from_line(m: &[u8]) -> &[u8] {
    if m.starts_with(b"From ") {
        match memchr::memchr(b'\n', m) {
            Some(i) => &m[i + 1..],
            None => &[],
        }
    } else {
        m
    }
}

/// Reads one message's bytes. mbox files are read once per message here; a file cache is not worth
/// it next to tokenizing.
pub fn read(src: &Source) -> Result<Vec<u8>> {
    match src {
        Source::File(p) => {
            let mut d = std::fs::read(p).map_err(|e| Error::from(e).context(p.display()))?;
            let skip = d.len() - strip_from_line(&d).len();
            d.drain(..skip);
            Ok(d)
        }
        Source::Mbox { path, start, end } => {
            let d = std::fs::read(path).map_err(|e| Error::from(e).context(path.display()))?;
            let m = d.get(*start..(*end).min(d.len())).unwrap_or(&[]);
            Ok(strip_from_line(m).to_vec())
        }
    }
}

/// Tokenizes messages on every core; order is kept.
pub fn tokenize_all(msgs: &[Vec<u8>]) -> Vec<Tokens> {
    let n = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(8);
    if n <= 1 || msgs.len() < 16 {
        return msgs.iter().map(|m| Tokens::of(&View::new(m))).collect();
    }
    let chunk = msgs.len().div_ceil(n);
    std::thread::scope(|s| {
        let handles: Vec<_> = msgs
            .chunks(chunk)
            .map(|c| {
                s.spawn(move || {
                    c.iter()
                        .map(|m| Tokens::of(&View::new(m)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    })
}

/// The numbers a learning run ends with.
#[derive(Debug, Default, Clone)]
pub struct Summary {
    pub messages: usize,
    pub learned: usize,
    pub already: usize,
    pub relearned: usize,
    pub forgot: usize,
    pub not_learned: usize,
    pub unreadable: usize,
    pub expired: u64,
    pub secs: f64,
}

/// Live progress on stderr.
pub(crate) struct Progress {
    total: usize,
    tty: bool,
    started: Instant,
    last: Instant,
    quiet: bool,
}

impl Progress {
    pub(crate) fn new(total: usize, quiet: bool) -> Progress {
        let now = Instant::now();
        Progress {
            total,
            tty: std::io::stderr().is_terminal(),
            started: now,
            last: now,
            quiet,
        }
    }
    pub(crate) fn tick(&mut self, done: usize) {
        if self.quiet {
            return;
        }
        let every = if self.tty {
            Duration::from_millis(100)
        } else {
            Duration::from_secs(5)
        };
        if self.last.elapsed() < every && done < self.total {
            return;
        }
        self.last = Instant::now();
        let rate = done as f64 / self.started.elapsed().as_secs_f64().max(1e-6);
        let pct = (done * 100).checked_div(self.total).unwrap_or(100);
        let width = 30;
        let fill = pct * width / 100;
        let line = format!(
            "[{}{}] {done}/{} {pct:>3}% {rate:.0} msg/s",
            "#".repeat(fill),
            " ".repeat(width - fill),
            self.total
        );
        let mut e = std::io::stderr().lock();
        if self.tty {
            let _ = write!(e, "\r{line}");
            if done >= self.total {
                let _ = writeln!(e);
            }
        } else {
            let _ = writeln!(e, "{line}");
        }
    }
}

/// Learns (or with `class` None forgets) every message under `paths` for `user`.
pub fn run(
    conn: &mut Connection,
    user: &str,
    paths: &[PathBuf],
    class: Option<Class>,
    max_tokens: u64,
    quiet: bool,
) -> Result<Summary> {
    let t0 = Instant::now();
    let srcs = sources(paths)?;
    let mut sum = Summary {
        messages: srcs.len(),
        ..Default::default()
    };
    let mut progress = Progress::new(srcs.len(), quiet || srcs.len() < 50);
    // A learning batch needs to be durable only once it is complete: the intermediate commits skip
    // their fsync (WAL, synchronous=NORMAL: a crash can lose them, never corrupt the database), and
    // the last one is made with FULL, which syncs the log holding them all. A cache the size of a
    // large token table keeps SQLite from spilling pages in the middle of a batch.
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "cache_size", -65536)?;
    let mut learner = Learner::new(conn, user)?;
    // Reading and tokenizing run on worker threads while this one teaches the store, message by
    // message in the listed order. Worker k takes messages k, k+n, k+2n...; each hands them over in
    // a bounded queue, so at most ~512 tokenized messages wait in memory.
    let n = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 8)
        .min(srcs.len().max(1));
    let srcs = &srcs;
    std::thread::scope(|scope| -> Result<()> {
        let queues: Vec<_> = (0..n)
            .map(|k| {
                let (tx, rx) = std::sync::mpsc::sync_channel(512 / n);
                scope.spawn(move || {
                    for src in srcs.iter().skip(k).step_by(n) {
                        let t = read(src).map(|m| Tokens::for_learning(&View::from_vec(m)));
                        if tx.send(t.map_err(|e| e.msg)).is_err() {
                            break;
                        }
                    }
                });
                rx
            })
            .collect();
        for i in 0..srcs.len() {
            let t = match queues[i % n].recv() {
                Ok(Ok(t)) => t,
                Ok(Err(msg)) => {
                    sum.unreadable += 1;
                    let _ = writeln!(std::io::stderr(), "correo: {msg}");
                    progress.tick(i + 1);
                    continue;
                }
                Err(_) => return Err(Error::software("learn: a tokenizer thread died")),
            };
            match learner.learn(&t.hashes, &t.sig, class)? {
                Did::Learned => sum.learned += 1,
                Did::Already => sum.already += 1,
                Did::Relearned => sum.relearned += 1,
                Did::Forgot => sum.forgot += 1,
                Did::NotLearned => sum.not_learned += 1,
            }
            progress.tick(i + 1);
        }
        Ok(())
    })?;
    learner.durable()?;
    learner.flush()?;
    sum.expired = learner.expire(max_tokens)?;
    sum.secs = t0.elapsed().as_secs_f64();
    Ok(sum)
}

/// The summary line, in the spirit of sa-learn's "Learned tokens from N message(s) (M message(s) examined)".
pub fn summary_line(s: &Summary, class: Option<Class>) -> String {
    let what = match class {
        Some(Class::Spam) => "spam",
        Some(Class::Ham) => "ham",
        None => "forget",
    };
    let rate = s.messages as f64 / s.secs.max(1e-6);
    let mut line = if class.is_some() {
        format!(
            "{what}: learned from {} message(s), {} already learned, {} moved from the other class ({} examined, {:.2}s, {rate:.0} msg/s)",
            s.learned, s.already, s.relearned, s.messages, s.secs
        )
    } else {
        format!(
            "forgot {} message(s), {} were not learned ({} examined, {:.2}s)",
            s.forgot, s.not_learned, s.messages, s.secs
        )
    };
    if s.unreadable > 0 {
        line.push_str(&format!(", {} unreadable", s.unreadable));
    }
    if s.expired > 0 {
        line.push_str(&format!(", {} tokens expired", s.expired));
    }
    line
}

/// `learn --dump`: one line per database, sa-learn `--dump magic` style.
pub fn dump_lines(conn: &mut Connection) -> Result<Vec<String>> {
    let rows = store::dump(conn)?;
    let mut v = Vec::new();
    if rows.is_empty() {
        v.push("user=$GLOBAL nspam=0 nham=0 ntokens=0".to_string());
    }
    for r in rows {
        v.push(format!(
            "user={} nspam={} nham={} ntokens={} last_expire={}",
            r.user, r.nspam, r.nham, r.ntokens, r.last_expire
        ));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mbox_split() {
        let m = b"From a@b Mon\nSubject: 1\n\nx\n\nFrom c@d Tue\nSubject: 2\n\ny\n";
        let s = mbox_starts(m);
        assert_eq!(s.len(), 2);
        assert!(m[s[1]..].starts_with(b"From c@d"));
        assert!(mbox_starts(b"Subject: x\n\nFrom here\n").is_empty());
        assert_eq!(strip_from_line(b"From x\nA: b\n"), b"A: b\n");
    }

    #[test]
    fn maildir_skips_tmp() {
        let d = tempfile::tempdir().unwrap();
        for sub in ["cur", "new", "tmp"] {
            std::fs::create_dir(d.path().join(sub)).unwrap();
            std::fs::write(d.path().join(sub).join("1"), "Subject: x\n\nhi\n").unwrap();
        }
        let s = sources(&[d.path().to_path_buf()]).unwrap();
        assert_eq!(s.len(), 2);
    }
}
