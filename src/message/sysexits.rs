//! sysexits(3) codes: the only language an MTA understands from a pipe. 75 means "keep it and retry",
//! so every temporary trouble must map to it and never to a bounce.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Ok,
    /// Exit 1: used by `spam check` (spam found), like `spamc -E`.
    One,
    Usage,
    DataErr,
    NoInput,
    NoUser,
    NoHost,
    Unavailable,
    Software,
    OsErr,
    CantCreat,
    IoErr,
    TempFail,
    Protocol,
    NoPerm,
    Config,
}

impl Exit {
    pub fn code(self) -> i32 {
        match self {
            Exit::Ok => 0,
            Exit::One => 1,
            Exit::Usage => 64,
            Exit::DataErr => 65,
            Exit::NoInput => 66,
            Exit::NoUser => 67,
            Exit::NoHost => 68,
            Exit::Unavailable => 69,
            Exit::Software => 70,
            Exit::OsErr => 71,
            Exit::CantCreat => 73,
            Exit::IoErr => 74,
            Exit::TempFail => 75,
            Exit::Protocol => 76,
            Exit::NoPerm => 77,
            Exit::Config => 78,
        }
    }

    /// The name spamd and sysexits.h use, e.g. `EX_TEMPFAIL`.
    pub fn name(self) -> &'static str {
        match self {
            Exit::Ok => "EX_OK",
            Exit::One => "EX_SPAM",
            Exit::Usage => "EX_USAGE",
            Exit::DataErr => "EX_DATAERR",
            Exit::NoInput => "EX_NOINPUT",
            Exit::NoUser => "EX_NOUSER",
            Exit::NoHost => "EX_NOHOST",
            Exit::Unavailable => "EX_UNAVAILABLE",
            Exit::Software => "EX_SOFTWARE",
            Exit::OsErr => "EX_OSERR",
            Exit::CantCreat => "EX_CANTCREAT",
            Exit::IoErr => "EX_IOERR",
            Exit::TempFail => "EX_TEMPFAIL",
            Exit::Protocol => "EX_PROTOCOL",
            Exit::NoPerm => "EX_NOPERM",
            Exit::Config => "EX_CONFIG",
        }
    }

    /// True when the MTA should keep the message and try again later.
    pub fn is_temporary(self) -> bool {
        matches!(
            self,
            Exit::TempFail | Exit::OsErr | Exit::IoErr | Exit::CantCreat
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_match_sysexits_h() {
        assert_eq!(Exit::TempFail.code(), 75);
        assert_eq!(Exit::NoUser.code(), 67);
        assert_eq!(Exit::DataErr.code(), 65);
        assert_eq!(Exit::Usage.code(), 64);
        assert!(Exit::TempFail.is_temporary());
        assert!(!Exit::NoUser.is_temporary());
    }
}
