//! Lists and their settings: name validation, the typed settings a postmaster can change with
//! `correo list set`, and the SQLite rows behind them. Nothing in a list name can reach a shell or a
//! path: names are checked here before anything is stored.

use crate::message::address::{valid_domain, Address};
use crate::message::error::{Error, Result};
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

/// The SQL for the list manager's tables; append a step to change them, never edit one.
pub const MIGRATIONS: &[&str] = &[r#"
CREATE TABLE lists (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    domain TEXT NOT NULL,
    settings TEXT NOT NULL,
    created INTEGER NOT NULL,
    UNIQUE (name, domain)
);
CREATE TABLE members (
    list_id INTEGER NOT NULL REFERENCES lists(id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    address TEXT NOT NULL,
    delivery INTEGER NOT NULL DEFAULT 1,
    digest INTEGER NOT NULL DEFAULT 0,
    created INTEGER NOT NULL,
    bounces INTEGER NOT NULL DEFAULT 0,
    last_bounce INTEGER,
    PRIMARY KEY (list_id, key)
);
CREATE TABLE pending (
    token TEXT PRIMARY KEY,
    list_id INTEGER NOT NULL REFERENCES lists(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    address TEXT NOT NULL,
    digest INTEGER NOT NULL DEFAULT 0,
    held_id INTEGER,
    created INTEGER NOT NULL,
    expires INTEGER NOT NULL
);
CREATE INDEX pending_address ON pending (address, created);
CREATE TABLE held (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    list_id INTEGER NOT NULL REFERENCES lists(id) ON DELETE CASCADE,
    file TEXT NOT NULL,
    sender TEXT NOT NULL,
    subject TEXT NOT NULL,
    reason TEXT NOT NULL,
    created INTEGER NOT NULL
);
CREATE TABLE outgoing (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    list_id INTEGER REFERENCES lists(id) ON DELETE SET NULL,
    file TEXT NOT NULL,
    kind TEXT NOT NULL,
    verp INTEGER NOT NULL,
    sender TEXT NOT NULL,
    created INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT
);
CREATE TABLE outgoing_rcpts (
    out_id INTEGER NOT NULL REFERENCES outgoing(id) ON DELETE CASCADE,
    rcpt TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    PRIMARY KEY (out_id, rcpt)
) WITHOUT ROWID;
CREATE TABLE bounces (
    id INTEGER PRIMARY KEY,
    list_id INTEGER NOT NULL REFERENCES lists(id) ON DELETE CASCADE,
    address TEXT NOT NULL,
    created INTEGER NOT NULL,
    info TEXT NOT NULL
);
CREATE TABLE confirm_sent (
    address TEXT NOT NULL,
    created INTEGER NOT NULL
);
CREATE INDEX confirm_sent_address ON confirm_sent (address, created);
"#];

/// Opens the database with the list tables in place.
pub fn db(home: &crate::config::Home) -> Result<Connection> {
    let mut conn = home.db()?;
    crate::store::migrate(&mut conn, "lists", MIGRATIONS)?;
    Ok(conn)
}

/// Suffixes that name a list's service addresses; a list may not be called `x-request` and so on.
pub const ACTIONS: &[&str] = &[
    "post",
    "admin",
    "bounces",
    "confirm",
    "join",
    "leave",
    "owner",
    "request",
    "subscribe",
    "unsubscribe",
];

/// A list name (local part): lowercase letters, digits, `.`, `_`, `-`; starts with a letter or digit.
/// Stricter than an address local part on purpose: it ends up in alias lines, paths and commands.
pub fn validate_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 48
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        && !name.ends_with('.')
        && !name.contains("..");
    if !ok {
        return Err(Error::usage(format!(
            "bad list name '{name}': use lowercase letters, digits, '.', '_' and '-', starting with a letter or digit"
        )));
    }
    if let Some(a) = ACTIONS.iter().find(|a| name.ends_with(&format!("-{a}"))) {
        return Err(Error::usage(format!(
            "bad list name '{name}': '-{a}' is reserved for the list's service addresses"
        )));
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Posting {
    /// Members post freely; everyone else gets `nonmember`.
    Members,
    /// Every post is held for a moderator.
    Moderated,
    /// Anyone may post.
    Open,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Hold,
    Reject,
    Discard,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReplyTo {
    /// Leave Reply-To as the poster set it (Mailman's default).
    Poster,
    /// Replies go to the list.
    List,
    /// Replies go to `reply_to_address`.
    Explicit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SubscribePolicy {
    /// Double opt-in: the address must answer a confirmation.
    Confirm,
    /// Anyone who asks is subscribed at once (for closed networks only).
    Open,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Who {
    Nobody,
    Members,
    Public,
}

/// Per-list settings, stored as JSON so new keys get their defaults on old rows.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    pub description: String,
    pub owners: Vec<String>,
    pub moderators: Vec<String>,
    pub posting: Posting,
    pub nonmember: Action,
    pub max_size_kb: u64,
    pub subject_prefix: Option<String>,
    pub reply_to: ReplyTo,
    pub reply_to_address: Option<String>,
    pub footer: String,
    pub verp: bool,
    /// SHA-256 of salt + password, hex; None: `Approved:` is not accepted.
    pub moderator_password: Option<String>,
    pub password_salt: String,
    pub subscribe_policy: SubscribePolicy,
    pub who: Who,
    pub send_welcome: bool,
    pub send_goodbye: bool,
    /// Secret for per-recipient unsubscribe URLs (HMAC key), made at creation.
    pub secret: String,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            description: String::new(),
            owners: vec![],
            moderators: vec![],
            posting: Posting::Members,
            nonmember: Action::Hold,
            max_size_kb: 40,
            subject_prefix: None,
            reply_to: ReplyTo::Poster,
            reply_to_address: None,
            footer: String::new(),
            verp: true,
            moderator_password: None,
            password_salt: String::new(),
            subscribe_policy: SubscribePolicy::Confirm,
            who: Who::Nobody,
            send_welcome: true,
            send_goodbye: true,
            secret: String::new(),
        }
    }
}

/// The keys `list set` understands, with what each takes; shown in errors.
pub const KEYS: &[(&str, &str)] = &[
    ("description", "text"),
    ("owners", "comma-separated addresses"),
    ("moderators", "comma-separated addresses (may be empty)"),
    ("posting", "members | moderated | open"),
    ("nonmember", "hold | reject | discard"),
    ("max_size_kb", "a number of KB, 0 for no limit"),
    ("subject_prefix", "text, e.g. \"[dev]\"; empty for none"),
    ("reply_to", "poster | list | explicit"),
    (
        "reply_to_address",
        "an address (used when reply_to = explicit)",
    ),
    ("footer", "text appended to posts; empty for none"),
    ("verp", "yes | no"),
    (
        "moderator_password",
        "the password an Approved: header must carry; empty disables",
    ),
    ("subscribe_policy", "confirm | open"),
    ("who", "nobody | members | public"),
    ("send_welcome", "yes | no"),
    ("send_goodbye", "yes | no"),
];

fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "yes" | "true" | "on" | "1" => Some(true),
        "no" | "false" | "off" | "0" => Some(false),
        _ => None,
    }
}

fn parse_enum<T: for<'de> Deserialize<'de>>(v: &str) -> Option<T> {
    serde_json::from_value(serde_json::Value::String(v.to_ascii_lowercase())).ok()
}

fn parse_addresses(v: &str) -> std::result::Result<Vec<String>, String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| Address::parse(s).map(|a| a.to_string()))
        .collect()
}

impl Settings {
    /// Sets one key from text, validating it; the error names the allowed values.
    pub fn set(&mut self, key: &str, value: &str) -> Result<()> {
        let allowed = KEYS
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, a)| *a)
            .ok_or_else(|| {
                let keys: Vec<&str> = KEYS.iter().map(|(k, _)| *k).collect();
                Error::usage(format!(
                    "unknown setting '{key}'; settings are: {}",
                    keys.join(", ")
                ))
            })?;
        let bad = || Error::usage(format!("bad value '{value}' for {key}: expected {allowed}"));
        match key {
            "description" => self.description = value.to_string(),
            "owners" => {
                let v = parse_addresses(value).map_err(|e| Error::usage(format!("owners: {e}")))?;
                if v.is_empty() {
                    return Err(Error::usage("owners: a list needs at least one owner"));
                }
                self.owners = v;
            }
            "moderators" => {
                self.moderators =
                    parse_addresses(value).map_err(|e| Error::usage(format!("moderators: {e}")))?
            }
            "posting" => self.posting = parse_enum(value).ok_or_else(bad)?,
            "nonmember" => self.nonmember = parse_enum(value).ok_or_else(bad)?,
            "max_size_kb" => self.max_size_kb = value.parse().map_err(|_| bad())?,
            "subject_prefix" => self.subject_prefix = Some(value.to_string()),
            "reply_to" => self.reply_to = parse_enum(value).ok_or_else(bad)?,
            "reply_to_address" => {
                self.reply_to_address = if value.is_empty() {
                    None
                } else {
                    Some(
                        Address::parse(value)
                            .map_err(|e| Error::usage(format!("reply_to_address: {e}")))?
                            .to_string(),
                    )
                }
            }
            "footer" => self.footer = value.replace("\\n", "\n"),
            "verp" => self.verp = parse_bool(value).ok_or_else(bad)?,
            "moderator_password" => {
                if value.is_empty() {
                    self.moderator_password = None;
                } else {
                    self.password_salt = super::token::random_hex(8);
                    self.moderator_password = Some(hash_password(&self.password_salt, value));
                }
            }
            "subscribe_policy" => self.subscribe_policy = parse_enum(value).ok_or_else(bad)?,
            "who" => self.who = parse_enum(value).ok_or_else(bad)?,
            "send_welcome" => self.send_welcome = parse_bool(value).ok_or_else(bad)?,
            "send_goodbye" => self.send_goodbye = parse_bool(value).ok_or_else(bad)?,
            _ => return Err(bad()),
        }
        if self.reply_to == ReplyTo::Explicit
            && self.reply_to_address.is_none()
            && key == "reply_to"
        {
            return Err(Error::usage(
                "reply_to = explicit needs reply_to_address set first",
            ));
        }
        Ok(())
    }

    /// Checks a password from an `Approved:` header in constant time.
    pub fn password_matches(&self, given: &str) -> bool {
        match &self.moderator_password {
            Some(h) => {
                // Constant-time comparison: no early exit that would time how much of a guess is right.
                let given = hash_password(&self.password_salt, given.trim());
                h.len() == given.len()
                    && h.bytes()
                        .zip(given.bytes())
                        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                        == 0
            }
            None => false,
        }
    }
}

fn hash_password(salt: &str, password: &str) -> String {
    let d = ring::digest::digest(
        &ring::digest::SHA256,
        format!("{salt}\0{password}").as_bytes(),
    );
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// A list as loaded from the database.
#[derive(Debug, Clone)]
pub struct List {
    pub id: i64,
    pub name: String,
    pub domain: String,
    pub settings: Settings,
}

impl List {
    pub fn address(&self) -> String {
        format!("{}@{}", self.name, self.domain)
    }
    /// `NAME-ACTION@DOMAIN`, e.g. the -request or -bounces address.
    pub fn service(&self, action: &str) -> String {
        format!("{}-{action}@{}", self.name, self.domain)
    }
    /// RFC 2919 §2: the list-id is the list address with `@` turned into a dot.
    pub fn list_id(&self) -> String {
        format!("{}.{}", self.name, self.domain)
    }
    pub fn prefix(&self) -> String {
        self.settings
            .subject_prefix
            .clone()
            .unwrap_or_else(|| format!("[{}]", self.name))
    }
    /// Owners and moderators, without repeats: who gets -owner mail and moderation notices.
    pub fn staff(&self) -> Vec<String> {
        let mut v: Vec<String> = Vec::new();
        for a in self
            .settings
            .owners
            .iter()
            .chain(self.settings.moderators.iter())
        {
            if !v.iter().any(|x| x.eq_ignore_ascii_case(a)) {
                v.push(a.clone());
            }
        }
        v
    }

    pub fn save(&self, conn: &Connection) -> Result<()> {
        let s =
            serde_json::to_string(&self.settings).map_err(|e| Error::software(e.to_string()))?;
        conn.execute(
            "UPDATE lists SET settings = ?1 WHERE id = ?2",
            params![s, self.id],
        )?;
        Ok(())
    }
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Creates a list; the owner gets the first seat.
pub fn create(conn: &Connection, address: &str, owner: &str) -> Result<List> {
    let (name, domain) = address
        .rsplit_once('@')
        .ok_or_else(|| Error::usage(format!("'{address}': give the list as NAME@DOMAIN")))?;
    let name = name.to_ascii_lowercase();
    let domain = domain.to_ascii_lowercase();
    validate_name(&name)?;
    if !valid_domain(&domain) || domain.starts_with('[') {
        return Err(Error::usage(format!("bad list domain '{domain}'")));
    }
    let owner = Address::parse(owner).map_err(|e| Error::usage(format!("--owner: {e}")))?;
    let settings = Settings {
        owners: vec![owner.to_string()],
        secret: super::token::random_hex(32),
        ..Default::default()
    };
    let json = serde_json::to_string(&settings).map_err(|e| Error::software(e.to_string()))?;
    let r = conn.execute(
        "INSERT INTO lists (name, domain, settings, created) VALUES (?1, ?2, ?3, ?4)",
        params![name, domain, json, now()],
    );
    match r {
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            return Err(Error::usage(format!("list {name}@{domain} already exists")))
        }
        r => r?,
    };
    Ok(List {
        id: conn.last_insert_rowid(),
        name,
        domain,
        settings,
    })
}

fn row_to_list(r: &rusqlite::Row<'_>) -> rusqlite::Result<(i64, String, String, String)> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
}

fn to_list((id, name, domain, json): (i64, String, String, String)) -> Result<List> {
    let settings: Settings = serde_json::from_str(&json)
        .map_err(|e| Error::software(format!("list {name}@{domain}: bad settings: {e}")))?;
    Ok(List {
        id,
        name,
        domain,
        settings,
    })
}

pub fn all(conn: &Connection) -> Result<Vec<List>> {
    let mut st =
        conn.prepare("SELECT id, name, domain, settings FROM lists ORDER BY domain, name")?;
    let rows = st
        .query_map([], row_to_list)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    rows.into_iter().map(to_list).collect()
}

/// Finds a list by address, or by bare name when exactly one list has it. Unknown is EX_NOUSER (67),
/// which is what an MTA must hear when an alias points at a list that no longer exists.
pub fn find(conn: &Connection, spec: &str) -> Result<List> {
    let spec = spec.trim().to_ascii_lowercase();
    let rows: Vec<(i64, String, String, String)> =
        if let Some((name, domain)) = spec.rsplit_once('@') {
            conn.query_row(
                "SELECT id, name, domain, settings FROM lists WHERE name = ?1 AND domain = ?2",
                params![name, domain],
                row_to_list,
            )
            .optional()?
            .into_iter()
            .collect()
        } else {
            let mut st =
                conn.prepare("SELECT id, name, domain, settings FROM lists WHERE name = ?1")?;
            let v = st
                .query_map([&spec], row_to_list)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            v
        };
    match rows.len() {
        0 => Err(Error::nouser(format!("no such list: {spec}"))),
        1 => to_list(rows.into_iter().next().expect("one row")),
        _ => Err(Error::usage(format!(
            "'{spec}' names several lists; give NAME@DOMAIN"
        ))),
    }
}

pub fn by_id(conn: &Connection, id: i64) -> Result<Option<List>> {
    let row = conn
        .query_row(
            "SELECT id, name, domain, settings FROM lists WHERE id = ?1",
            [id],
            row_to_list,
        )
        .optional()?;
    row.map(to_list).transpose()
}

pub fn remove(conn: &Connection, list: &List) -> Result<()> {
    conn.execute("DELETE FROM lists WHERE id = ?1", [list.id])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_could_reach_a_shell_are_refused() {
        for bad in [
            "",
            "Dev",
            "a b",
            "a;b",
            "a|b",
            "$(x)",
            "`x`",
            "../x",
            "-x",
            "x-request",
            "x-bounces",
            "x.",
            "a/b",
        ] {
            assert!(validate_name(bad).is_err(), "{bad:?} accepted");
        }
        for good in ["dev", "dev-team", "a.b_c", "9lives"] {
            assert!(validate_name(good).is_ok(), "{good:?} refused");
        }
    }

    #[test]
    fn set_validates_and_names_allowed_values() {
        let mut s = Settings::default();
        s.set("posting", "Moderated").unwrap();
        assert_eq!(s.posting, Posting::Moderated);
        let e = s.set("posting", "sometimes").unwrap_err();
        assert!(e.msg.contains("members | moderated | open"), "{}", e.msg);
        let e = s.set("postng", "open").unwrap_err();
        assert!(
            e.msg.contains("unknown setting") && e.msg.contains("posting"),
            "{}",
            e.msg
        );
        assert!(s.set("max_size_kb", "ten").is_err());
        s.set("moderator_password", "s3cret").unwrap();
        assert!(s.password_matches("s3cret"));
        assert!(!s.password_matches("S3cret"));
        assert!(s.set("owners", "not an address").is_err());
    }
}
