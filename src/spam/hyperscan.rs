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
type ValidPlatform = unsafe extern "C" fn() -> c_int;
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
    pub fn compile(
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
