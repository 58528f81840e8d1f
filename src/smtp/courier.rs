//! The courier: `correo serve`'s deliveries run in a child process (`correo serve ... --courier`), the
//! way Postfix's smtp(8) and local(8) run apart from master(8).
//!
//! Why a process of its own: when the server is killed (SIGKILL, the OOM killer, a crash), a next hop
//! may already have answered 250 to a final dot that the dying process never read, and a restart would
//! send that message again (RFC 1047). The courier outlives its server: it learns of the server's death
//! from end-of-file on its stdin pipe, starts nothing new, reads the replies of the transactions under
//! way, records them (journal, then SQLite), and exits. The server started next spawns a new courier,
//! which waits on `HOME/courier.lock` until the old one is gone, so one courier delivers at a time.
//!
//! The server wakes its courier with one byte on that pipe per newly queued message; the courier also
//! polls the queue, so a lost byte only delays mail by a second.

use crate::message::log;
use std::io::Write;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The server's side: spawns the courier, keeps it running, wakes it, stops it.
pub struct Supervisor {
    stdin: Mutex<Option<ChildStdin>>,
    stopping: AtomicBool,
    done: Mutex<Option<std::sync::mpsc::Receiver<()>>>,
}

/// The command that starts this process's courier: the same program, arguments and environment, with
/// `--courier` added to `serve`'s own flags.
fn command() -> std::io::Result<Command> {
    let exe = std::env::current_exe()?;
    let mut cmd = Command::new(exe);
    cmd.args(std::env::args_os().skip(1));
    cmd.arg("--courier");
    cmd.stdin(Stdio::piped());
    Ok(cmd)
}

/// Starts a courier; its stdin pipe is made non-blocking on our side so that a courier that stopped
/// reading can never stall the server's wake-ups (a full pipe already means "work is waiting").
fn spawn() -> std::io::Result<Child> {
    use std::os::unix::io::AsRawFd;
    let child = command()?.spawn()?;
    if let Some(w) = child.stdin.as_ref() {
        let fd = w.as_raw_fd();
        // SAFETY: fcntl on a pipe descriptor we own.
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFL);
            if flags >= 0 {
                libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
            }
        }
    }
    Ok(child)
}

impl Supervisor {
    /// Starts the courier and a thread that restarts it if it dies while the server runs.
    pub fn start() -> std::io::Result<Arc<Supervisor>> {
        let mut child = spawn()?;
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let sup = Arc::new(Supervisor {
            stdin: Mutex::new(child.stdin.take()),
            stopping: AtomicBool::new(false),
            done: Mutex::new(Some(done_rx)),
        });
        let s = sup.clone();
        std::thread::Builder::new()
            .name("courier-watch".into())
            .spawn(move || {
                loop {
                    let how = match child.wait() {
                        Ok(st) => st.to_string(),
                        Err(e) => e.to_string(),
                    };
                    if s.stopping.load(Ordering::SeqCst) {
                        break;
                    }
                    log::event(
                        "serve",
                        "courier",
                        &[("status", "restarting"), ("exit", &how)],
                    );
                    match s.respawn() {
                        Some(c) => child = c,
                        None => break,
                    }
                }
                let _ = done_tx.send(());
            })?;
        Ok(sup)
    }

    /// Starts a new courier after the last one died: a second's pause first (a courier that dies at
    /// once must not spin), then until a spawn succeeds. None when the server is stopping.
    fn respawn(&self) -> Option<Child> {
        let mut pause = Duration::from_secs(1);
        loop {
            std::thread::sleep(pause);
            if self.stopping.load(Ordering::SeqCst) {
                return None;
            }
            match spawn() {
                Ok(mut c) => {
                    *self.stdin.lock().unwrap_or_else(|p| p.into_inner()) = c.stdin.take();
                    return Some(c);
                }
                Err(e) => {
                    log::event(
                        "serve",
                        "courier",
                        &[("status", "error"), ("error", &e.to_string())],
                    );
                    pause = Duration::from_secs(5);
                }
            }
        }
    }

    /// New mail is queued: wake the courier. Never blocks: the pipe is non-blocking, and when it is full
    /// the courier has wake-ups enough waiting already.
    pub fn poke(&self) {
        if let Some(w) = self
            .stdin
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_mut()
        {
            let _ = w.write(b"\n");
        }
    }

    /// Orderly stop: close the pipe (the courier finishes what is under way and exits) and wait for it,
    /// at most `limit`.
    pub fn stop(&self, limit: Duration) -> bool {
        self.stopping.store(true, Ordering::SeqCst);
        self.stdin.lock().unwrap_or_else(|p| p.into_inner()).take();
        let rx = self.done.lock().unwrap_or_else(|p| p.into_inner()).take();
        match rx {
            Some(rx) => rx.recv_timeout(limit).is_ok(),
            None => true,
        }
    }
}

/// The courier's side: waits until no other courier of this home runs (a killed server's courier may
/// still be finishing its transactions), and holds the lock for the rest of the process's life.
pub fn lock(dir: &std::path::Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::io::AsRawFd;
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("courier.lock"))?;
    loop {
        // SAFETY: flock on a file descriptor we own.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } == 0 {
            return Ok(f);
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}
