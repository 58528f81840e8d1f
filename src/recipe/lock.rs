//! Locks, as procmail takes them: dotlock files (`file.lock`, created atomically, removed when done,
//! broken after LOCKTIMEOUT seconds of staleness) and the kernel lock (fcntl) on the mbox itself, so that
//! concurrent deliveries into one mailbox never interleave, whichever of the two a reader honours.

use std::fs::{self, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// A held dotlock; dropping it removes the file.
#[derive(Debug)]
pub struct DotLock {
    path: PathBuf,
}

impl Drop for DotLock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

impl DotLock {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Takes `path` as a dotlock. `sleep` is LOCKSLEEP, `timeout` LOCKTIMEOUT (0: never break a stale lock).
/// Gives up (error) when the directory does not exist or cannot be written: waiting cannot fix that.
pub fn dotlock(path: &Path, sleep: u64, timeout: u64) -> io::Result<DotLock> {
    // Waiting is bounded even when LOCKTIMEOUT is 0, so a wedged lock ends in a retry (exit 75) rather
    // than a hung MTA; TIMEOUT-like bound of one hour.
    let deadline = SystemTime::now() + Duration::from_secs(3600);
    loop {
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o444)
            .open(path)
        {
            Ok(_) => {
                return Ok(DotLock {
                    path: path.to_path_buf(),
                })
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                if timeout > 0 {
                    if let Ok(meta) = fs::metadata(path) {
                        let age = meta
                            .modified()
                            .ok()
                            .and_then(|m| SystemTime::now().duration_since(m).ok());
                        if age.is_some_and(|a| a.as_secs() >= timeout) {
                            let _ = fs::remove_file(path);
                            continue;
                        }
                    }
                }
                if SystemTime::now() > deadline {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "lock wait timed out",
                    ));
                }
                // Poll faster than LOCKSLEEP at first: most locks are held for milliseconds.
                std::thread::sleep(
                    Duration::from_millis(20).min(Duration::from_secs(sleep.max(1))),
                );
            }
            Err(e) => return Err(e),
        }
    }
}

/// Blocks until an exclusive fcntl write lock on the whole file is held; released when the fd closes.
pub fn kernel_lock(f: &fs::File) -> io::Result<()> {
    use std::os::unix::io::AsRawFd;
    // SAFETY: flock struct fully initialised; fd is valid for the life of `f`.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = libc::F_WRLCK as _;
    fl.l_whence = libc::SEEK_SET as _;
    fl.l_start = 0;
    fl.l_len = 0;
    loop {
        // SAFETY: valid fd and pointer to an initialised flock.
        let r = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_SETLKW, &fl) };
        if r == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotlock_is_exclusive_and_released() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("box.lock");
        {
            let _l = dotlock(&p, 1, 0).unwrap();
            assert!(p.exists());
        }
        assert!(!p.exists());
        assert!(dotlock(&d.path().join("missing/box.lock"), 1, 0).is_err());
    }
}
