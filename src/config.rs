//! The data directory and `correo.toml`: typed, validated, with defaults a newcomer can run on.
//!
//! Each part owns its own section type (next to the code that reads it); this file only ties them
//! together and finds the files. Unknown keys are errors, so a typo never silently means "default".

use crate::message::error::{Error, Result};
use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub outbound: crate::lists::config::OutboundConfig,
    pub lists: crate::lists::config::ListsConfig,
    pub smtp: crate::smtp::config::SmtpConfig,
    pub relay: crate::smtp::config::RelayConfig,
    pub spam: crate::spam::config::SpamConfig,
    pub web: crate::web::WebConfig,
}

impl Config {
    /// Where list mail goes: `[outbound] smtp`, else the first `[smtp] listen` address of correo serve
    /// (a wildcard bind is reached on loopback).
    pub fn outbound_smtp(&self) -> String {
        if let Some(s) = &self.outbound.smtp {
            return s.clone();
        }
        let first = self
            .smtp
            .listen
            .first()
            .cloned()
            .unwrap_or_else(|| "127.0.0.1:25".into());
        match first.rsplit_once(':') {
            Some(("0.0.0.0" | "[::]" | "", port)) => format!("127.0.0.1:{port}"),
            _ => first,
        }
    }

    pub fn parse(text: &str) -> Result<Config> {
        toml::from_str(text).map_err(|e| Error::config(format!("correo.toml: {e}")))
    }
}

/// The data directory: database, spools and logs, plus the parsed configuration.
#[derive(Debug, Clone)]
pub struct Home {
    pub dir: PathBuf,
    pub config: Config,
    /// The --home given on the command line (absolute), to repeat it in generated alias lines.
    pub explicit: bool,
}

impl Home {
    /// Finds the directory (`--home`, `CORREO_HOME`, else `./var`), creates it, reads the config and
    /// starts the maillog there. A config that does not parse is EX_CONFIG, never a silent default.
    pub fn open(home: Option<&Path>, config: Option<&Path>) -> Result<Home> {
        let explicit = home.is_some();
        let dir = home
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("var"));
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::from(e).context(format!("data directory {}", dir.display())))?;
        let dir = std::fs::canonicalize(&dir)
            .map_err(|e| Error::from(e).context(format!("data directory {}", dir.display())))?;
        let config_path = match config {
            Some(p) => Some(p.to_path_buf()),
            None => Some(dir.join("correo.toml")).filter(|p| p.exists()),
        };
        let config = match config_path {
            Some(p) => {
                let text = std::fs::read_to_string(&p)
                    .map_err(|e| Error::config(format!("cannot read {}: {e}", p.display())))?;
                Config::parse(&text)?
            }
            None => Config::default(),
        };
        let home = Home {
            dir,
            config,
            explicit,
        };
        let log_dir = home.log_dir();
        std::fs::create_dir_all(&log_dir)
            .map_err(|e| Error::from(e).context(format!("log directory {}", log_dir.display())))?;
        crate::message::log::init(&log_dir.join("maillog"));
        Ok(home)
    }

    pub fn db_path(&self) -> PathBuf {
        self.dir.join("correo.db")
    }
    pub fn log_dir(&self) -> PathBuf {
        self.dir.join("log")
    }
    /// A spool directory under HOME/spool, e.g. `spool("lists/out")`.
    pub fn spool(&self, name: &str) -> PathBuf {
        self.dir.join("spool").join(name)
    }
    /// Opens the shared SQLite database (WAL, busy timeout, migrations of the parts that ask for them).
    pub fn db(&self) -> Result<rusqlite::Connection> {
        crate::store::open(&self.db_path())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_config_is_default() {
        let c = Config::parse("").unwrap();
        assert_eq!(
            c.outbound_smtp(),
            "127.0.0.1:2525",
            "serve's default listener"
        );
        let c = Config::parse("[smtp]\nlisten = [\"0.0.0.0:25\"]\n").unwrap();
        assert_eq!(c.outbound_smtp(), "127.0.0.1:25");
        let c = Config::parse("[outbound]\nsmtp = \"mx.example.org:2525\"\n").unwrap();
        assert_eq!(c.outbound_smtp(), "mx.example.org:2525");
    }

    /// A home whose `log` is a file, not a directory: the error names what could not be made, not
    /// just "File exists".
    #[test]
    fn a_blocked_log_directory_is_named() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("log"), "not a directory").unwrap();
        let Err(e) = Home::open(Some(tmp.path()), None) else {
            panic!("log is a file: opening the home must fail");
        };
        assert!(e.msg.starts_with("log directory "), "{}", e.msg);
        assert!(
            e.msg.contains(&*tmp.path().join("log").to_string_lossy()),
            "{}",
            e.msg
        );
    }

    #[test]
    fn unknown_key_is_an_error() {
        let e = Config::parse("[outbound]\nsmtpp = \"x\"\n").unwrap_err();
        assert!(e.msg.contains("smtpp"), "{}", e.msg);
    }
}
