//! Running programs for pipes, filters, `VAR=|` captures, `?` conditions, backquotes, TRAP and
//! `$SENDMAIL`. The one place where a shell may be started, and only as procmail decides it: when the
//! command line contains one of `$SHELLMETAS`. Otherwise the line is split into words here and run
//! directly. `$SENDMAIL` is always run directly, never through a shell.

use std::io::{self, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::time::Duration;

/// What a program needs from the executor.
pub struct Run<'a> {
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub stdin: &'a [u8],
    pub capture: bool,
    /// Where the child's stderr goes (the LOGFILE, as procmail redirects its own stderr there).
    pub stderr: Option<std::fs::File>,
    /// TIMEOUT in seconds; 0 waits forever.
    pub timeout: u64,
    /// True when the child's stdout should go to our stderr (conditions) rather than our stdout.
    pub stdout_to_stderr: bool,
}

#[derive(Debug)]
pub struct Outcome {
    /// The exit code, or 128+signal when killed.
    pub code: i32,
    pub stdout: Vec<u8>,
    /// The child closed its stdin before reading everything.
    pub write_error: bool,
}

/// Decides how procmail would run `cmd`: through `$SHELL $SHELLFLAGS cmd` when a shell metacharacter is
/// present, otherwise as words split with sh quoting.
pub fn argv_for(cmd: &str, shell: &str, shellflags: &str, metas: &str) -> Vec<String> {
    if cmd.chars().any(|c| metas.contains(c)) {
        return vec![shell.to_string(), shellflags.to_string(), cmd.to_string()];
    }
    split_words(cmd)
}

/// sh-style word splitting with quote removal (no expansion: that was done already).
pub fn split_words(s: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut have = false;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\n' => {
                if have {
                    words.push(std::mem::take(&mut cur));
                    have = false;
                }
            }
            '\'' => {
                have = true;
                for n in chars.by_ref() {
                    if n == '\'' {
                        break;
                    }
                    cur.push(n);
                }
            }
            '"' => {
                have = true;
                while let Some(n) = chars.next() {
                    match n {
                        '"' => break,
                        '\\' if matches!(chars.peek(), Some('"' | '\\' | '$' | '`')) => {
                            if let Some(x) = chars.next() {
                                cur.push(x);
                            }
                        }
                        _ => cur.push(n),
                    }
                }
            }
            '\\' => {
                have = true;
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            _ => {
                have = true;
                cur.push(c);
            }
        }
    }
    if have {
        words.push(cur);
    }
    words
}

/// Runs the program, feeding `stdin` and collecting stdout when asked. A program that cannot be started
/// gives an error (procmail logs "Failed to execute"); a timeout kills it with SIGTERM.
pub fn run(r: Run<'_>) -> io::Result<Outcome> {
    let Some((prog, args)) = r.argv.split_first() else {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "empty command"));
    };
    let mut cmd = Command::new(prog);
    cmd.args(args)
        .env_clear()
        .envs(r.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped());
    if r.capture {
        cmd.stdout(Stdio::piped());
    } else if r.stdout_to_stderr {
        match &r.stderr {
            Some(f) => cmd.stdout(f.try_clone()?),
            None => cmd.stdout(Stdio::from(io::stderr().as_fd_owned()?)),
        };
    }
    if let Some(f) = &r.stderr {
        cmd.stderr(f.try_clone()?);
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        // procmail, when execvp fails, hands the words to /bin/sh as a script (sh then reports "cannot
        // open" and exits 2); the rcfile sees that exit code in `$?`, so we do the same.
        Err(e) if e.kind() == io::ErrorKind::NotFound && prog != "/bin/sh" => {
            let mut argv = vec!["/bin/sh".to_string()];
            argv.extend(r.argv.iter().cloned());
            return run(Run { argv, ..r });
        }
        Err(e) => return Err(e),
    };
    let pid = child.id();
    let mut stdin = child.stdin.take();
    let data = r.stdin.to_vec();
    let writer = std::thread::spawn(move || -> bool {
        let mut err = false;
        if let Some(s) = stdin.as_mut() {
            err = s.write_all(&data).is_err();
        }
        drop(stdin);
        err
    });
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let timeout = r.timeout;
    let watchdog = (timeout > 0).then(|| {
        std::thread::spawn(move || {
            if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                rx.recv_timeout(Duration::from_secs(timeout))
            {
                // SAFETY: plain kill(2) on our own child's pid.
                unsafe {
                    libc::kill(pid as libc::pid_t, libc::SIGTERM);
                }
            }
        })
    });
    let mut stdout = Vec::new();
    if let Some(mut o) = child.stdout.take() {
        o.read_to_end(&mut stdout)?;
    }
    let status = child.wait()?;
    let _ = tx.send(());
    if let Some(w) = watchdog {
        let _ = w.join();
    }
    let write_error = writer.join().unwrap_or(true);
    let code = match status.code() {
        Some(c) => c,
        None => 128 + status.signal().unwrap_or(0),
    };
    Ok(Outcome {
        code,
        stdout,
        write_error,
    })
}

trait AsFdOwned {
    fn as_fd_owned(&self) -> io::Result<std::os::fd::OwnedFd>;
}
impl AsFdOwned for io::Stderr {
    fn as_fd_owned(&self) -> io::Result<std::os::fd::OwnedFd> {
        use std::os::fd::AsFd;
        self.as_fd().try_clone_to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_only_with_metas() {
        assert_eq!(
            argv_for("formail -r", "/bin/sh", "-c", "&|<>~;?*["),
            vec!["formail", "-r"]
        );
        assert_eq!(
            argv_for("cat > x", "/bin/sh", "-c", "&|<>~;?*["),
            vec!["/bin/sh", "-c", "cat > x"]
        );
        assert_eq!(
            split_words("a 'b c' \"d\\\"e\" f\\ g"),
            vec!["a", "b c", "d\"e", "f g"]
        );
    }

    #[test]
    fn runs_and_captures() {
        let o = run(Run {
            argv: vec!["/bin/sh".into(), "-c".into(), "tr a-z A-Z; exit 3".into()],
            env: vec![("PATH".into(), "/usr/bin:/bin".into())],
            stdin: b"hello",
            capture: true,
            stderr: None,
            timeout: 10,
            stdout_to_stderr: false,
        })
        .unwrap();
        assert_eq!(o.code, 3);
        assert_eq!(o.stdout, b"HELLO");
    }
}
