//! Memory on transparent huge pages for the tables a rule set reads on every message and keeps until
//! the next reload: the Hyperscan databases (this is Hyperscan's database allocator) and the dense
//! DFA gates (`HugeBuf`). Owns the arena: 8 MB anonymous chunks aligned to 2 MB and advised
//! MADV_HUGEPAGE, tables packed into them one after another, a chunk unmapped once its last table is
//! freed.
//!
//! Why: a message's scans walk tens of MB of these tables, which other work pushes out of the caches
//! between messages, and on 4 KB pages each walk also misses the TLB, which in a virtual machine costs
//! a two-level page walk. Fresh daemons, 200 cold messages (bench/RESULTS.md, stop 33): the databases
//! on huge pages took 4-17% off the daemon's CPU a message over 5 alternating pairs, the DFA gates
//! 7-13% more over 4. The process keeps huge pages off everywhere else (`main.rs`): the heap's
//! short-lived memory would have the kernel zero 2 MB at each fresh touch. These tables are made once
//! per rule load, so that zeroing costs only then. Without Linux 6.18 (PR_THP_DISABLE_EXCEPT_ADVISED)
//! the advice is moot and the arena is plain memory.

use std::ffi::c_void;
use std::sync::Mutex;

/// Huge page size on x86-64 and the alignment that lets the kernel back a range with them.
const HUGE_PAGE: usize = 2 << 20;

/// Size of one arena chunk: four huge pages. The stock rules' ~50 Hyperscan databases (48 MB) take a
/// dozen chunks; a table bigger than a chunk gets one its size.
const CHUNK_BYTES: usize = 4 * HUGE_PAGE;

/// The arena's chunks, each an anonymous mapping: (start, length, bytes handed out, tables still in
/// it). Handed-out space is never reused; a chunk is unmapped when its last table is freed.
static CHUNKS: Mutex<Vec<(usize, usize, usize, usize)>> = Mutex::new(Vec::new());

/// `size` bytes from the arena (64-byte aligned), or null. Also Hyperscan's database allocator
/// (`hs_set_database_allocator`, with `free`). A reload's new tables may fill the old set's last chunk,
/// whose space then stays taken until all of that chunk's tables are gone.
///
/// # Safety
/// Safe to call from any thread; the memory must go back through `free` only, once.
pub unsafe extern "C" fn alloc(size: usize) -> *mut c_void {
    // Cache-line alignment: enough for Hyperscan and for DFA tables, and keeps tables' starts apart.
    let size = size.max(1).div_ceil(64) * 64;
    let mut chunks = CHUNKS.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(c) = chunks.last_mut().filter(|c| c.1 - c.2 >= size) {
        let p = c.0 + c.2;
        c.2 += size;
        c.3 += 1;
        return p as *mut c_void;
    }
    let len = size.max(CHUNK_BYTES).div_ceil(HUGE_PAGE) * HUGE_PAGE;
    // One huge page more, to start on a 2 MB boundary inside it; the slack is unmapped below.
    let map_len = len + HUGE_PAGE;
    // SAFETY: a fresh private anonymous mapping, nothing else refers to it.
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            map_len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if base == libc::MAP_FAILED {
        return std::ptr::null_mut();
    }
    let (base, start) = (
        base as usize,
        (base as usize).div_ceil(HUGE_PAGE) * HUGE_PAGE,
    );
    // SAFETY: both ranges lie in the mapping just made, outside [start, start + len); the advice only
    // changes speed, so a refusal is ignored.
    unsafe {
        if start > base {
            libc::munmap(base as *mut c_void, start - base);
        }
        let end = start + len;
        if base + map_len > end {
            libc::munmap(end as *mut c_void, base + map_len - end);
        }
        libc::madvise(start as *mut c_void, len, libc::MADV_HUGEPAGE);
    }
    chunks.push((start, len, size, 1));
    start as *mut c_void
}

/// Frees what `alloc` returned: unmaps its chunk once the chunk's last table is gone.
///
/// # Safety
/// `p` came from `alloc` and is not used after this call; null is ignored.
pub unsafe extern "C" fn free(p: *mut c_void) {
    let p = p as usize;
    let mut chunks = CHUNKS.lock().unwrap_or_else(|e| e.into_inner());
    let Some(k) = chunks.iter().position(|c| c.0 <= p && p < c.0 + c.1) else {
        return;
    };
    chunks[k].3 -= 1;
    if chunks[k].3 == 0 {
        let (start, len, _, _) = chunks.remove(k);
        // SAFETY: the chunk's whole mapping, with nothing left in it, unmapped once.
        unsafe { libc::munmap(start as *mut c_void, len) };
    }
}

/// A read-only copy of some bytes in the arena: for tables that must live at a fixed address (a DFA
/// read in place by `dense::DFA::from_bytes`).
#[derive(Debug)]
pub struct HugeBuf {
    ptr: std::ptr::NonNull<u8>,
    len: usize,
}

// SAFETY: the bytes are written once in `filled`, then only read; the arena is behind a mutex.
unsafe impl Send for HugeBuf {}
// SAFETY: as above: shared references only read.
unsafe impl Sync for HugeBuf {}

impl HugeBuf {
    /// `len` bytes in the arena, written by `fill` (which says whether it could); None when no memory
    /// could be mapped or `fill` failed.
    pub fn filled(len: usize, fill: impl FnOnce(&mut [u8]) -> bool) -> Option<HugeBuf> {
        // SAFETY: alloc returns at least `len` writable bytes or null.
        let ptr = std::ptr::NonNull::new(unsafe { alloc(len) } as *mut u8)?;
        let buf = HugeBuf { ptr, len };
        // SAFETY: the `len` bytes just allocated, not yet shared with anyone.
        let bytes = unsafe { std::slice::from_raw_parts_mut(ptr.as_ptr(), len) };
        fill(bytes).then_some(buf)
    }

    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: `len` bytes written in `filled`, alive until drop.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for HugeBuf {
    fn drop(&mut self) {
        // SAFETY: allocated by `alloc` in `filled`, freed once.
        unsafe { free(self.ptr.as_ptr().cast()) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The VmFlags line of the mapping that holds address `p`, from /proc/self/smaps.
    fn vm_flags(p: usize) -> Option<String> {
        crate::hugeheap::mapping_of(p).map(|(flags, _)| flags)
    }

    /// A table lands on a 2 MB boundary in memory advised for huge pages (`hg`), and its chunk is
    /// unmapped once it is freed. A size of whole huge pages over a chunk gets a chunk of its own with
    /// no room left, so tables other tests make meanwhile cannot share it.
    #[test]
    fn tables_sit_in_huge_page_chunks() {
        let size = 5 * HUGE_PAGE;
        // SAFETY: alloc returns `size` writable bytes or null.
        let p = unsafe { alloc(size) } as usize;
        assert!(p != 0 && p.is_multiple_of(HUGE_PAGE), "{p:#x}");
        // SAFETY: the bytes just allocated.
        unsafe { std::ptr::write_bytes(p as *mut u8, 7, size) };
        let flags = vm_flags(p).expect("mapped");
        assert!(flags.split_whitespace().any(|f| f == "hg"), "{flags}");
        // SAFETY: allocated above, freed once.
        unsafe { free(p as *mut c_void) };
        let chunks = CHUNKS.lock().unwrap_or_else(|e| e.into_inner());
        assert!(
            !chunks.iter().any(|c| c.0 <= p && p < c.0 + c.1),
            "chunk kept"
        );
    }

    /// A HugeBuf holds a copy of its bytes, 64-byte aligned, inside an advised chunk.
    #[test]
    fn a_huge_buf_holds_its_bytes() {
        let bytes: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let b = HugeBuf::filled(bytes.len(), |b| {
            b.copy_from_slice(&bytes);
            true
        })
        .expect("mapped");
        assert_eq!(b.as_slice(), bytes.as_slice());
        let p = b.as_slice().as_ptr() as usize;
        assert!(p.is_multiple_of(64));
        let flags = vm_flags(p).expect("mapped");
        assert!(flags.split_whitespace().any(|f| f == "hg"), "{flags}");
    }
}
