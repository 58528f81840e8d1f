//! The durability invariant lives here and only here: write to a temp file, fsync it, rename it into place,
//! fsync the directory. Only after `write_durable` returns may anyone say "accepted" (250 or exit 0).
//!
//! Tests make it fail with `CORREO_FAULT=spool` (simulates a full disk), so the "keep the mail, exit 75"
//! paths are exercised for real.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Writes `data` as `dir/name` durably. The temp file lives in `dir` so the rename never crosses a
/// filesystem. Fails if `name` already exists (callers generate unique names).
pub fn write_durable(dir: &Path, name: &str, data: &[u8]) -> std::io::Result<PathBuf> {
    if injected_fault("spool") {
        return Err(std::io::Error::new(
            std::io::ErrorKind::StorageFull,
            "injected fault: no space left on device",
        ));
    }
    fs::create_dir_all(dir)?;
    let final_path = dir.join(name);
    let tmp_path = dir.join(format!(".tmp.{name}"));
    {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp_path)?;
        let r = f.write_all(data).and_then(|_| f.sync_all());
        if let Err(e) = r {
            let _ = fs::remove_file(&tmp_path);
            return Err(e);
        }
    }
    if final_path.exists() {
        let _ = fs::remove_file(&tmp_path);
        return Err(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            format!("{} exists", final_path.display()),
        ));
    }
    fs::rename(&tmp_path, &final_path)?;
    sync_dir(dir)?;
    Ok(final_path)
}

/// fsync on the directory makes the rename itself durable (POSIX leaves it in the page cache otherwise).
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Moves a spooled file to another directory durably (same filesystem).
pub fn move_durable(from: &Path, to_dir: &Path) -> std::io::Result<PathBuf> {
    fs::create_dir_all(to_dir)?;
    let name = from
        .file_name()
        .ok_or_else(|| std::io::Error::other("no file name"))?;
    let to = to_dir.join(name);
    fs::rename(from, &to)?;
    sync_dir(to_dir)?;
    if let Some(parent) = from.parent() {
        sync_dir(parent)?;
    }
    Ok(to)
}

/// A unique, sortable, filename-safe id: time in microseconds, pid and a random suffix.
pub fn unique_id() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let mut r = [0u8; 4];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut r);
    format!(
        "{:x}{:05x}{:08x}",
        now.as_micros(),
        std::process::id() & 0xfffff,
        u32::from_be_bytes(r)
    )
}

/// True when the test hook `CORREO_FAULT` names this fault (comma separated list).
pub fn injected_fault(what: &str) -> bool {
    std::env::var("CORREO_FAULT")
        .map(|v| v.split(',').any(|f| f == what))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_and_refuses_overwrite() {
        let d = tempfile::tempdir().unwrap();
        let p = write_durable(d.path(), "m1", b"hello").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"hello");
        assert!(write_durable(d.path(), "m1", b"again").is_err());
        assert_eq!(fs::read(&p).unwrap(), b"hello");
        assert!(!d.path().join(".tmp.m1").exists());
    }

    #[test]
    fn unique_ids_differ() {
        assert_ne!(unique_id(), unique_id());
    }
}
