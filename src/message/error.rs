//! One error type for the whole program, always carrying its sysexits classification, so no caller has to
//! guess whether a failure is temporary (keep the mail, exit 75) or permanent.

use super::sysexits::Exit;
use std::fmt;

#[derive(Debug)]
pub struct Error {
    pub exit: Exit,
    pub msg: String,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn new(exit: Exit, msg: impl Into<String>) -> Self {
        Error {
            exit,
            msg: msg.into(),
        }
    }
    pub fn usage(msg: impl Into<String>) -> Self {
        Self::new(Exit::Usage, msg)
    }
    pub fn data(msg: impl Into<String>) -> Self {
        Self::new(Exit::DataErr, msg)
    }
    pub fn nouser(msg: impl Into<String>) -> Self {
        Self::new(Exit::NoUser, msg)
    }
    pub fn temp(msg: impl Into<String>) -> Self {
        Self::new(Exit::TempFail, msg)
    }
    pub fn config(msg: impl Into<String>) -> Self {
        Self::new(Exit::Config, msg)
    }
    pub fn software(msg: impl Into<String>) -> Self {
        Self::new(Exit::Software, msg)
    }
    /// Adds what we were doing in front of the message, keeping the classification.
    pub fn context(mut self, what: impl fmt::Display) -> Self {
        self.msg = format!("{what}: {}", self.msg);
        self
    }
    /// Prints `correo: message` on stderr and returns the exit code.
    pub fn report(&self) -> Exit {
        eprintln!("correo: {}", self.msg);
        self.exit
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.msg, self.exit.name())
    }
}

impl std::error::Error for Error {}

/// I/O trouble is temporary unless it is plainly a permission or missing-file problem: a full disk or an
/// interrupted write must make the MTA retry, never bounce.
impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        use std::io::ErrorKind::*;
        let exit = match e.kind() {
            PermissionDenied => Exit::NoPerm,
            _ => Exit::TempFail,
        };
        Error::new(exit, e.to_string())
    }
}

/// A busy or locked database, or a full disk under SQLite, is temporary; a constraint or schema error is a
/// software error we must not hide behind a retry loop forever... but the mail must still be kept, so the
/// pipe entry treats Software as "keep and exit 75" too (see cli::mail).
impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode::*;
        let exit = match e.sqlite_error_code() {
            Some(
                DatabaseBusy | DatabaseLocked | DiskFull | SystemIoFailure | CannotOpen
                | OutOfMemory,
            ) => Exit::TempFail,
            Some(ReadOnly | PermissionDenied) => Exit::TempFail,
            _ => Exit::Software,
        };
        Error::new(exit, format!("database: {e}"))
    }
}
