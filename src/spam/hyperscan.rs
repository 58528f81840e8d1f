//! Hyperscan (libhs 5.4), loaded at run time: the multi-pattern engine rspamd uses. Owns the library
//! handle, compiled databases and per-thread scratch space; knows nothing about rules.
//!
//! The library is opened with dlopen rather than linked, so correo builds and runs on hosts without it
//! (no headers, no .so symlink, other CPUs): then `Engine::get` is None and callers keep their
//! Hyperscan-free path. Only the block-mode calls of the 5.4 ABI are declared (`hs_compile.h`,
//! `hs_runtime.h`, `hs_common.h`).
//!
//! Compiling the databases costs seconds of CPU at every rule load and the gain per message is modest
//! (bench/RESULTS.md), so only long-running processes (the daemon) ask for it with [`want`]; one-shot
//! commands do not. `CORREO_HYPERSCAN=1` or `=0` overrides either way.

use std::cell::RefCell;
use std::ffi::{c_char, c_int, c_uint, c_ulonglong, c_void, CStr, CString};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

pub const HS_FLAG_CASELESS: c_uint = 1;
pub const HS_FLAG_MULTILINE: c_uint = 4;
pub const HS_FLAG_SINGLEMATCH: c_uint = 8;
pub const HS_FLAG_PREFILTER: c_uint = 128;
const HS_MODE_BLOCK: c_uint = 1;
const HS_SUCCESS: c_int = 0;

#[repr(C)]
struct CompileError {
    message: *const c_char,
    expression: c_int,
}

type Db = c_void;
type Scratch = c_void;
type OnMatch = unsafe extern "C" fn(c_uint, c_ulonglong, c_ulonglong, c_uint, *mut c_void) -> c_int;

type CompileMulti = unsafe extern "C" fn(
    *const *const c_char,
    *const c_uint,
    *const c_uint,
    c_uint,
    c_uint,
    *const c_void,
    *mut *mut Db,
    *mut *mut CompileError,
) -> c_int;
type ExpressionInfo =
    unsafe extern "C" fn(*const c_char, c_uint, *mut *mut c_void, *mut *mut CompileError) -> c_int;
type FreeCompileError = unsafe extern "C" fn(*mut CompileError) -> c_int;
type FreeDatabase = unsafe extern "C" fn(*mut Db) -> c_int;
type AllocScratch = unsafe extern "C" fn(*const Db, *mut *mut Scratch) -> c_int;
type CloneScratch = unsafe extern "C" fn(*const Scratch, *mut *mut Scratch) -> c_int;
type FreeScratch = unsafe extern "C" fn(*mut Scratch) -> c_int;
type Scan = unsafe extern "C" fn(
    *const Db,
    *const c_char,
    c_uint,
    c_uint,
    *mut Scratch,
    OnMatch,
    *mut c_void,
) -> c_int;
type Serialize = unsafe extern "C" fn(*const Db, *mut *mut c_char, *mut usize) -> c_int;
type Deserialize = unsafe extern "C" fn(*const c_char, usize, *mut *mut Db) -> c_int;
type ValidPlatform = unsafe extern "C" fn() -> c_int;
type SetAllocator = unsafe extern "C" fn(
    unsafe extern "C" fn(usize) -> *mut c_void,
    unsafe extern "C" fn(*mut c_void),
) -> c_int;
type Version = unsafe extern "C" fn() -> *const c_char;

/// The entry points we call, resolved once from the shared object.
struct Api {
    compile_multi: CompileMulti,
    expression_info: ExpressionInfo,
    free_compile_error: FreeCompileError,
    free_database: FreeDatabase,
    alloc_scratch: AllocScratch,
    clone_scratch: CloneScratch,
    free_scratch: FreeScratch,
    scan: Scan,
    serialize: Serialize,
    deserialize: Deserialize,
}

/// A loaded, usable Hyperscan.
pub struct Engine {
    api: Api,
    pub version: String,
}

/// Why Hyperscan is not in use (for the start-up log line and `spam lint`), or its version.
pub fn status() -> String {
    match Engine::get() {
        Some(e) => format!("hyperscan {}", e.version),
        None => format!("literal prefilter only ({})", unavailable_reason()),
    }
}

static ENGINE: OnceLock<Result<Engine, String>> = OnceLock::new();
static WANTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Called by a process that compiles its rules once and scores many messages, before the first
/// compile: the load cost then pays for itself.
pub fn want() {
    WANTED.store(true, Ordering::Relaxed);
}

/// Whether this process uses Hyperscan at all: the environment decides, else [`want`]. Asked on every
/// call rather than frozen in the engine, so a `want` after some rule set was compiled still counts.
fn switched_on() -> Result<(), String> {
    match std::env::var("CORREO_HYPERSCAN").as_deref() {
        Ok("0" | "off") => Err("CORREO_HYPERSCAN=0".into()),
        Ok("1" | "on") => Ok(()),
        _ if WANTED.load(Ordering::Relaxed) => Ok(()),
        _ => Err("off outside the daemon; CORREO_HYPERSCAN=1 turns it on".into()),
    }
}

fn unavailable_reason() -> String {
    if let Err(e) = switched_on() {
        return e;
    }
    match ENGINE.get() {
        Some(Err(e)) => e.clone(),
        _ => String::new(),
    }
}

impl Engine {
    /// The process-wide engine, loaded on first use; None when off or unavailable.
    pub fn get() -> Option<&'static Engine> {
        switched_on().ok()?;
        ENGINE.get_or_init(load).as_ref().ok()
    }
}

/// Debian's libhyperscan5 ships `libhs.so.5`; the unversioned name only comes with the -dev package.
const LIBRARY_NAMES: &[&str] = &["libhs.so.5", "libhs.so"];

fn load() -> Result<Engine, String> {
    let mut handle = std::ptr::null_mut();
    for name in LIBRARY_NAMES {
        let c = CString::new(*name).map_err(|e| e.to_string())?;
        // SAFETY: dlopen with a valid C string; the handle is never closed, so the symbols stay valid
        // for the life of the process.
        handle = unsafe { libc::dlopen(c.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
        if !handle.is_null() {
            break;
        }
    }
    if handle.is_null() {
        return Err("libhs.so.5 not found".into());
    }
    let sym = |name: &str| -> Result<*mut c_void, String> {
        let c = CString::new(name).map_err(|e| e.to_string())?;
        // SAFETY: handle is a live dlopen handle and c a valid C string.
        let p = unsafe { libc::dlsym(handle, c.as_ptr()) };
        if p.is_null() {
            Err(format!("libhs lacks {name}"))
        } else {
            Ok(p)
        }
    };
    // SAFETY: transmuted to the signature hs_common.h declares; set before any database exists, so
    // every database is allocated and freed by the same pair. The databases go on huge pages
    // (`hugepages`): a message's scans walk tens of MB of them.
    unsafe {
        let set =
            std::mem::transmute::<*mut c_void, SetAllocator>(sym("hs_set_database_allocator")?);
        if set(super::hugepages::alloc, super::hugepages::free) != HS_SUCCESS {
            return Err("hs_set_database_allocator failed".into());
        }
    }
    // SAFETY: each symbol is transmuted to the signature its 5.4 header declares.
    let engine = unsafe {
        let valid = std::mem::transmute::<*mut c_void, ValidPlatform>(sym("hs_valid_platform")?);
        if valid() != HS_SUCCESS {
            return Err("CPU not supported by hyperscan (needs SSSE3)".into());
        }
        let version = std::mem::transmute::<*mut c_void, Version>(sym("hs_version")?);
        let v = CStr::from_ptr(version()).to_string_lossy();
        Engine {
            version: v.split_whitespace().next().unwrap_or("").to_string(),
            api: Api {
                compile_multi: std::mem::transmute::<*mut c_void, CompileMulti>(sym(
                    "hs_compile_multi",
                )?),
                expression_info: std::mem::transmute::<*mut c_void, ExpressionInfo>(sym(
                    "hs_expression_info",
                )?),
                free_compile_error: std::mem::transmute::<*mut c_void, FreeCompileError>(sym(
                    "hs_free_compile_error",
                )?),
                free_database: std::mem::transmute::<*mut c_void, FreeDatabase>(sym(
                    "hs_free_database",
                )?),
                alloc_scratch: std::mem::transmute::<*mut c_void, AllocScratch>(sym(
                    "hs_alloc_scratch",
                )?),
                clone_scratch: std::mem::transmute::<*mut c_void, CloneScratch>(sym(
                    "hs_clone_scratch",
                )?),
                free_scratch: std::mem::transmute::<*mut c_void, FreeScratch>(sym(
                    "hs_free_scratch",
                )?),
                scan: std::mem::transmute::<*mut c_void, Scan>(sym("hs_scan")?),
                serialize: std::mem::transmute::<*mut c_void, Serialize>(sym(
                    "hs_serialize_database",
                )?),
                deserialize: std::mem::transmute::<*mut c_void, Deserialize>(sym(
                    "hs_deserialize_database",
                )?),
            },
        }
    };
    Ok(engine)
}

/// Takes the message out of a compile error and frees it.
fn error_text(api: &Api, err: *mut CompileError) -> (String, c_int) {
    if err.is_null() {
        return ("unknown error".into(), -1);
    }
    // SAFETY: err came from the library and is freed exactly once, here.
    unsafe {
        let e = &*err;
        let msg = if e.message.is_null() {
            String::new()
        } else {
            CStr::from_ptr(e.message).to_string_lossy().into_owned()
        };
        let idx = e.expression;
        (api.free_compile_error)(err);
        (msg, idx)
    }
}

/// One pattern for `Database::compile`: its text, flags and the id reported on a match.
#[derive(Clone)]
pub struct Pattern {
    pub expr: String,
    pub flags: c_uint,
    pub id: u32,
}

/// One compiled block-mode database.
pub struct Database {
    engine: &'static Engine,
    db: *mut Db,
}

/// Databases scanned together (one per kind of text), with one scratch prototype sized for all of
/// them, so a thread clones its scratch once per rule set rather than once per database switch.
pub struct Databases {
    dbs: Vec<Database>,
    proto: *mut Scratch,
    /// Tells threads when their scratch was cloned for an older set.
    generation: u64,
}

// SAFETY: a compiled database is immutable and Hyperscan allows scanning it from many threads at once,
// each with its own scratch (which `scan` takes from a thread-local); the prototype is only read
// (cloned) after construction.
unsafe impl Send for Database {}
unsafe impl Sync for Database {}
unsafe impl Send for Databases {}
unsafe impl Sync for Databases {}

impl std::fmt::Debug for Databases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "hyperscan::Databases({})", self.dbs.len())
    }
}

static GENERATION: AtomicU64 = AtomicU64::new(1);

impl Engine {
    /// Whether Hyperscan's parser accepts a pattern on its own (cheaper than a full compile).
    pub fn accepts(&self, expr: &str, flags: c_uint) -> Result<(), String> {
        let c = CString::new(expr).map_err(|_| "NUL in pattern".to_string())?;
        let mut info = std::ptr::null_mut();
        let mut err = std::ptr::null_mut();
        // SAFETY: valid C string and out-pointers; the info block is malloc'd by the library's default
        // allocator and freed with libc::free.
        let rc = unsafe { (self.api.expression_info)(c.as_ptr(), flags, &mut info, &mut err) };
        if rc != HS_SUCCESS {
            return Err(error_text(&self.api, err).0);
        }
        unsafe { libc::free(info) };
        Ok(())
    }

    /// Compiles the patterns into one database. A pattern the compiler rejects is dropped and the rest
    /// compiled again; the dropped ones are returned with the reason. None when nothing compiles.
    /// With a cache directory (`set_cache_dir`), a database compiled before from the same patterns is
    /// read back instead, and a new one that took every pattern is stored there.
    pub fn compile(
        &'static self,
        pats: Vec<Pattern>,
    ) -> (Option<Database>, Vec<(Pattern, String)>) {
        let dir = CACHE_DIR.lock().ok().and_then(|d| d.clone());
        self.compile_in(pats, dir.as_deref())
    }

    /// `compile` with the cache in `dir` (None: no cache).
    fn compile_in(
        &'static self,
        pats: Vec<Pattern>,
        dir: Option<&std::path::Path>,
    ) -> (Option<Database>, Vec<(Pattern, String)>) {
        let Some(path) = dir.map(|d| cache_path(self, d, &pats)) else {
            return self.compile_now(pats);
        };
        if let Some(db) = self.read_cached(&path) {
            return (Some(db), Vec::new());
        }
        let (db, rejected) = self.compile_now(pats);
        if let (Some(db), true) = (&db, rejected.is_empty()) {
            self.write_cached(db, &path);
        }
        (db, rejected)
    }

    /// A database stored by `write_cached`, or None (missing, unreadable, or made by another
    /// Hyperscan or for another CPU: the library checks its own header).
    fn read_cached(&'static self, path: &std::path::Path) -> Option<Database> {
        let bytes = std::fs::read(path).ok()?;
        let mut db = std::ptr::null_mut();
        // SAFETY: bytes is a readable buffer of its length; db is an out-pointer.
        let rc = unsafe {
            (self.api.deserialize)(bytes.as_ptr() as *const c_char, bytes.len(), &mut db)
        };
        if rc != HS_SUCCESS || db.is_null() {
            let _ = std::fs::remove_file(path);
            return None;
        }
        // Used now: `prune_cache` keeps it.
        if let Ok(f) = std::fs::File::options().append(true).open(path) {
            let _ = f.set_modified(std::time::SystemTime::now());
        }
        Some(Database { engine: self, db })
    }

    /// Stores `db` at `path` (written to a temporary name, then renamed, so a reader never sees
    /// half a file). Failing to store only costs the next start a compile.
    fn write_cached(&self, db: &Database, path: &std::path::Path) {
        let mut bytes = std::ptr::null_mut();
        let mut len = 0usize;
        // SAFETY: db is a live database; the out-pointers are valid. The buffer is malloc'd by the
        // library's default allocator and freed with libc::free below.
        if unsafe { (self.api.serialize)(db.db, &mut bytes, &mut len) } != HS_SUCCESS
            || bytes.is_null()
        {
            return;
        }
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        // SAFETY: the library wrote `len` bytes at `bytes`; the slice ends before the free.
        let written = std::fs::write(&tmp, unsafe {
            std::slice::from_raw_parts(bytes as *const u8, len)
        });
        // SAFETY: allocated by the library's default allocator (malloc), freed once.
        unsafe { libc::free(bytes as *mut c_void) };
        if written.is_ok() && std::fs::rename(&tmp, path).is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
    }

    fn compile_now(
        &'static self,
        mut pats: Vec<Pattern>,
    ) -> (Option<Database>, Vec<(Pattern, String)>) {
        let mut rejected = Vec::new();
        // Each retry is a full compile, so stop after a few and give up on the database.
        for _ in 0..16 {
            if pats.is_empty() {
                break;
            }
            let cs: Vec<CString> = pats
                .iter()
                .map(|p| CString::new(p.expr.as_str()).unwrap_or_default())
                .collect();
            let ptrs: Vec<*const c_char> = cs.iter().map(|c| c.as_ptr()).collect();
            let flags: Vec<c_uint> = pats.iter().map(|p| p.flags).collect();
            let ids: Vec<c_uint> = pats.iter().map(|p| p.id).collect();
            let mut db = std::ptr::null_mut();
            let mut err = std::ptr::null_mut();
            // SAFETY: arrays of equal length `pats.len()`, C strings alive for the call.
            let rc = unsafe {
                (self.api.compile_multi)(
                    ptrs.as_ptr(),
                    flags.as_ptr(),
                    ids.as_ptr(),
                    pats.len() as c_uint,
                    HS_MODE_BLOCK,
                    std::ptr::null(),
                    &mut db,
                    &mut err,
                )
            };
            if rc == HS_SUCCESS {
                return (Some(Database { engine: self, db }), rejected);
            }
            let (msg, idx) = error_text(&self.api, err);
            if idx < 0 || idx as usize >= pats.len() {
                // Not about one pattern (out of memory, too large as a whole): nothing to drop.
                rejected.extend(pats.into_iter().map(|p| (p, msg.clone())));
                return (None, rejected);
            }
            rejected.push((pats.remove(idx as usize), msg));
        }
        rejected.extend(
            pats.into_iter()
                .map(|p| (p, "too many retries".to_string())),
        );
        (None, rejected)
    }
}

static CACHE_DIR: std::sync::Mutex<Option<std::path::PathBuf>> = std::sync::Mutex::new(None);

/// Where compiled databases are kept between runs (the daemon's `HOME/spam/hyperscan`): compiling the
/// stock rules costs ~25 s of CPU, reading them back well under one. Created if missing; without a
/// directory (or when it cannot be made) every load compiles.
pub fn set_cache_dir(dir: std::path::PathBuf) {
    if std::fs::create_dir_all(&dir).is_ok() {
        if let Ok(mut d) = CACHE_DIR.lock() {
            *d = Some(dir);
        }
    }
}

/// The cache file for these patterns: named by a SHA-256 of the library version and every pattern's
/// expression, flags and id, so any change to the rules or to how they are translated misses.
fn cache_path(engine: &Engine, dir: &std::path::Path, pats: &[Pattern]) -> std::path::PathBuf {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(engine.version.as_bytes());
    for p in pats {
        ctx.update(&(p.expr.len() as u64).to_le_bytes());
        ctx.update(p.expr.as_bytes());
        ctx.update(&p.flags.to_le_bytes());
        ctx.update(&p.id.to_le_bytes());
    }
    let hex: String = ctx
        .finish()
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    dir.join(format!("{hex}.hsdb"))
}

/// Removes cached databases no load has used for `max_age` (rule sets since replaced).
pub fn prune_cache(max_age: std::time::Duration) {
    let Some(dir) = CACHE_DIR.lock().ok().and_then(|d| d.clone()) else {
        return;
    };
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        let old = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > max_age);
        if old
            && path
                .extension()
                .is_some_and(|x| x == "hsdb" || x.to_string_lossy().starts_with("tmp"))
        {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// This thread's scratch and the database generation it was cloned for.
struct ThreadScratch {
    ptr: *mut Scratch,
    generation: u64,
    free: Option<FreeScratch>,
}

impl Drop for ThreadScratch {
    fn drop(&mut self) {
        if let (false, Some(free)) = (self.ptr.is_null(), self.free) {
            // SAFETY: ptr was cloned by the library for this thread and is not in use.
            unsafe { free(self.ptr) };
        }
    }
}

thread_local! {
    /// One scratch per database set this thread scans (a rule set has two: the body-side filter and
    /// the header filter), so switching between them does not clone a scratch each time.
    static SCRATCH: [RefCell<ThreadScratch>; SCRATCH_SLOTS] = const {
        [const { RefCell::new(ThreadScratch { ptr: std::ptr::null_mut(), generation: 0, free: None }) }; SCRATCH_SLOTS]
    };
}

/// Scratch slots per thread: a set uses slot `generation % SCRATCH_SLOTS`, so two live sets (and a
/// reload's new pair) rarely evict each other.
const SCRATCH_SLOTS: usize = 4;

unsafe extern "C" fn on_match(
    id: c_uint,
    _from: c_ulonglong,
    to: c_ulonglong,
    _flags: c_uint,
    ctx: *mut c_void,
) -> c_int {
    // SAFETY: ctx is the `&mut dyn FnMut(u32, u64)` that `scan_ends` passed, alive for the whole
    // hs_scan call.
    let f = unsafe { &mut *(ctx as *mut &mut dyn FnMut(u32, u64)) };
    f(id, to);
    0
}

impl Databases {
    /// Groups databases and sizes one scratch prototype for all of them; None if that fails.
    pub fn new(dbs: Vec<Database>) -> Option<Databases> {
        let api = &dbs.first()?.engine.api;
        let mut proto = std::ptr::null_mut();
        for d in &dbs {
            // SAFETY: d.db is valid; proto starts null and the library grows it to fit each database.
            if unsafe { (api.alloc_scratch)(d.db, &mut proto) } != HS_SUCCESS {
                if !proto.is_null() {
                    unsafe { (api.free_scratch)(proto) };
                }
                return None;
            }
        }
        Some(Databases {
            dbs,
            proto,
            generation: GENERATION.fetch_add(1, Ordering::Relaxed),
        })
    }

    /// Calls `hit` with the id of each pattern of database `which` that matches in `text` (once per
    /// pattern when compiled with HS_FLAG_SINGLEMATCH). Returns false when the scan failed, so the
    /// caller must treat every pattern as a possible match.
    /// How many databases the set holds.
    pub fn count(&self) -> usize {
        self.dbs.len()
    }

    pub fn scan(&self, which: usize, text: &[u8], hit: &mut dyn FnMut(u32)) -> bool {
        self.scan_ends(which, text, &mut |id, _| hit(id))
    }

    /// `scan`, with each report's end offset in `text`.
    pub fn scan_ends(&self, which: usize, text: &[u8], hit: &mut dyn FnMut(u32, u64)) -> bool {
        let Some(d) = self.dbs.get(which) else {
            return false;
        };
        let Ok(len) = c_uint::try_from(text.len()) else {
            return false;
        };
        let api = &d.engine.api;
        SCRATCH.with(|cells| {
            let cell = &cells[(self.generation % SCRATCH_SLOTS as u64) as usize];
            let Ok(mut s) = cell.try_borrow_mut() else {
                return false;
            };
            if s.ptr.is_null() || s.generation != self.generation {
                let mut fresh = std::ptr::null_mut();
                // SAFETY: proto is this set's scratch prototype, only ever read.
                if unsafe { (api.clone_scratch)(self.proto, &mut fresh) } != HS_SUCCESS {
                    return false;
                }
                *s = ThreadScratch {
                    ptr: fresh,
                    generation: self.generation,
                    free: Some(api.free_scratch),
                };
            }
            let mut f: &mut dyn FnMut(u32, u64) = hit;
            let ctx = &mut f as *mut &mut dyn FnMut(u32, u64) as *mut c_void;
            // SAFETY: db and scratch are valid and the scratch fits every database of the set; it
            // belongs to this thread and is not in use (the RefCell borrow guards re-entry); ctx
            // outlives the call.
            let rc = unsafe {
                (api.scan)(
                    d.db,
                    text.as_ptr() as *const c_char,
                    len,
                    0,
                    s.ptr,
                    on_match,
                    ctx,
                )
            };
            rc == HS_SUCCESS
        })
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        // SAFETY: allocated by the library for this value and freed once.
        unsafe { (self.engine.api.free_database)(self.db) };
    }
}

impl Drop for Databases {
    fn drop(&mut self) {
        // SAFETY: the prototype was allocated by the library for this set and is freed once; threads'
        // clones are separate allocations, freed by their own ThreadScratch. The databases drop after.
        unsafe { (self.dbs[0].engine.api.free_scratch)(self.proto) };
    }
}

/// For tests that compare results with and without Hyperscan: loads it and says whether it is there;
/// a missing library fails the test when CI requires every peer (`CORREO_REQUIRE_PEERS`).
#[cfg(test)]
pub fn for_tests() -> bool {
    want();
    if Engine::get().is_some() {
        return true;
    }
    assert!(
        std::env::var_os("CORREO_REQUIRE_PEERS").is_none(),
        "libhs.so.5 not loadable: {}",
        status()
    );
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cached database answers as the compiled one did; a damaged cache file is compiled again
    /// (and replaced), never trusted.
    #[test]
    fn cached_databases_scan_the_same() {
        if !for_tests() {
            return;
        }
        let Some(engine) = Engine::get() else { return };
        let dir = std::env::temp_dir().join(format!("correo-hscache-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let pats = || {
            ["fo+bar", "(?i:hello) world", "[0-9]{3}-x"]
                .iter()
                .enumerate()
                .map(|(i, e)| Pattern {
                    expr: e.to_string(),
                    flags: HS_FLAG_SINGLEMATCH,
                    id: i as u32,
                })
                .collect::<Vec<_>>()
        };
        let text = b"xx foooobar, HELLO world; 123-x";
        let hits = |db: Database| {
            let set = Databases::new(vec![db]).expect("scratch");
            let mut ids = Vec::new();
            assert!(set.scan(0, text, &mut |id| ids.push(id)));
            ids.sort();
            ids
        };
        let fresh = engine.compile_in(pats(), None).0.expect("compiles");
        let want = hits(fresh);
        assert_eq!(want, vec![0, 1, 2]);
        // First load writes the file, the second reads it.
        let stored = engine.compile_in(pats(), Some(&dir)).0.expect("compiles");
        assert_eq!(hits(stored), want);
        let file = cache_path(engine, &dir, &pats());
        assert!(file.exists(), "nothing cached");
        assert!(engine.read_cached(&file).is_some());
        let cached = engine.compile_in(pats(), Some(&dir)).0.expect("from cache");
        assert_eq!(hits(cached), want);
        // Other patterns, other file.
        let mut other = pats();
        other[0].expr = "fo+baz".into();
        assert_ne!(cache_path(engine, &dir, &other), file);
        // A damaged file is not used, and the compile that follows replaces it.
        std::fs::write(&file, b"not a database").expect("write");
        assert!(engine.read_cached(&file).is_none());
        let again = engine.compile_in(pats(), Some(&dir)).0.expect("recompiled");
        assert_eq!(hits(again), want);
        assert!(engine.read_cached(&file).is_some());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
