//! Incoming spool and shunt queue. Every message piped to `correo mail` is first written durably to
//! `spool/lists/in`; if processing then fails for a reason a retry cannot fix (a bug, a broken
//! template), the file moves to `spool/lists/shunt`, the MTA hears "delivered" (nothing is lost:
//! it is on our disk) and the postmaster re-runs it with `correo list unshunt` after fixing things.
//!
//! File format: one JSON line with the envelope, then the message bytes as received.

use super::service::Incoming;
use crate::config::Home;
use crate::message::error::{Error, Result};
use crate::message::spool;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Serialize, Deserialize, Debug)]
pub struct Meta {
    pub action: String,
    pub list: String,
    pub sender: Option<String>,
    pub recipients: Vec<String>,
    #[serde(default)]
    pub error: Option<String>,
}

pub fn in_dir(home: &Home) -> PathBuf {
    home.spool("lists/in")
}
pub fn shunt_dir(home: &Home) -> PathBuf {
    home.spool("lists/shunt")
}

fn encode(meta: &Meta, raw: &[u8]) -> Vec<u8> {
    let mut v = serde_json::to_vec(meta).unwrap_or_default();
    v.push(b'\n');
    v.extend_from_slice(raw);
    v
}

pub fn decode(data: &[u8]) -> Result<(Meta, Vec<u8>)> {
    let nl = memchr::memchr(b'\n', data)
        .ok_or_else(|| Error::data("spool file has no envelope line"))?;
    let meta: Meta = serde_json::from_slice(&data[..nl])
        .map_err(|e| Error::data(format!("spool envelope: {e}")))?;
    Ok((meta, data[nl + 1..].to_vec()))
}

/// Writes the incoming message durably before anything else happens to it.
pub fn save_incoming(home: &Home, action: &str, list: &str, inc: &Incoming) -> Result<PathBuf> {
    let meta = Meta {
        action: action.into(),
        list: list.into(),
        sender: inc.sender.clone(),
        recipients: inc.recipients.clone(),
        error: None,
    };
    let name = format!("{}.msg", spool::unique_id());
    spool::write_durable(&in_dir(home), &name, &encode(&meta, &inc.raw))
        .map_err(|e| Error::from(e).context("incoming spool"))
}

/// Moves a message that could not be processed to the shunt queue, noting why.
pub fn shunt(home: &Home, path: &Path, why: &str) -> Result<PathBuf> {
    let data = std::fs::read(path)?;
    let (mut meta, raw) = decode(&data)?;
    meta.error = Some(why.to_string());
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("unknown.msg")
        .to_string();
    let p = spool::write_durable(&shunt_dir(home), &name, &encode(&meta, &raw))?;
    std::fs::remove_file(path)?;
    Ok(p)
}

pub fn shunted(home: &Home) -> Result<Vec<(PathBuf, Meta)>> {
    let mut v = Vec::new();
    let dir = shunt_dir(home);
    let rd = match std::fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(v),
        Err(e) => return Err(e.into()),
    };
    for e in rd {
        let p = e?.path();
        if p.extension().is_some_and(|x| x == "msg") {
            let data = std::fs::read(&p)?;
            if let Ok((meta, _)) = decode(&data) {
                v.push((p, meta));
            }
        }
    }
    v.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(v)
}
