//! The heap of the spam daemon's scoring side on transparent huge pages. Owns the global allocator
//! (mimalloc, with a fallback) and one mimalloc arena in a large anonymous mapping advised
//! MADV_HUGEPAGE, which only threads inside `enter` allocate from.
//!
//! Why: the rule set's own structures (its ~1,000 compiled regexes and their lazy DFA states, the rule
//! tables) are read on every message and spread over a hundred-odd MB. After the daemon has idled a
//! while, its first messages are many times slower than the same messages scored back to back (55-83
//! ms of CPU for the first, 3-12 for the next ones, against 0.4-1.7), and on 4 KB pages much of that is
//! page walks: in process, the first message after 9 s of idling took 150-154 ms on 4 KB pages and 56-76
//! ms with the heap on huge pages (bench/RESULTS.md, stop 34).
//!
//! Only these threads: the Bayes learner allocates and frees fresh memory for every batch, and on huge
//! pages the kernel zeroes 2 MB at each fresh touch (stop 28, stop 33). The arena is pinned, so mimalloc
//! never hands its memory back to the kernel: what the scoring side freed is reused without a new
//! fault. The arena is exclusive, so no other thread's allocations land in it. What a scoring thread
//! hands to another thread to free is allocated `outside` it (see `spam::bayes::lessons::Queued`).
//!
//! The daemon faults the arena in after its warm-up (`populate_ahead`), so that what the heap grows by
//! later costs no fault inside a request.
//!
//! A process that never calls `init` (every command but the daemon) allocates as before.

use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;
use std::ffi::{c_int, c_void};
use std::sync::OnceLock;

// mimalloc 3's heap and arena calls (mimalloc.h), from the library the `mimalloc` crate links.
extern "C" {
    fn mi_heap_main() -> *mut c_void;
    fn mi_heap_malloc_aligned(heap: *mut c_void, size: usize, alignment: usize) -> *mut c_void;
    fn mi_heap_zalloc_aligned(heap: *mut c_void, size: usize, alignment: usize) -> *mut c_void;
    fn mi_heap_realloc_aligned(
        heap: *mut c_void,
        p: *mut c_void,
        newsize: usize,
        alignment: usize,
    ) -> *mut c_void;
    fn mi_manage_os_memory_ex(
        start: *mut c_void,
        size: usize,
        is_committed: bool,
        is_pinned: bool,
        is_zero: bool,
        numa_node: c_int,
        exclusive: bool,
        arena_id: *mut *mut c_void,
    ) -> bool;
    fn mi_heap_new_in_arena(arena_id: *mut c_void) -> *mut c_void;
}

/// Address space reserved for the arena (MAP_NORESERVE: only pages touched cost memory). mimalloc
/// takes arenas of up to 16 GB less their bookkeeping; the stock rules' scoring side touches ~180 MB.
const RESERVE: usize = 4 << 30;

const HUGE_PAGE: usize = 2 << 20;

/// The huge-page heap (a `mi_heap_t*`) and the start of its arena, once `init` made them; None when
/// they could not be made.
static HEAP: OnceLock<Option<(usize, usize)>> = OnceLock::new();

thread_local! {
    /// The heap this thread allocates from when not the main one: the huge-page heap inside `enter`.
    /// Const-initialised and without a destructor, so the allocator may read it at any time.
    static CURRENT: Cell<*mut c_void> = const { Cell::new(std::ptr::null_mut()) };
}

/// Maps the arena and makes its heap, once. False when the kernel refused the mapping (a strict
/// overcommit policy) or mimalloc the arena: then `enter` does nothing and every thread allocates as
/// before.
pub fn init() -> bool {
    HEAP.get_or_init(make).is_some()
}

fn make() -> Option<(usize, usize)> {
    // SAFETY: a fresh private anonymous mapping that nothing else refers to, handed whole to mimalloc;
    // the advice only changes speed, so its refusal is ignored.
    unsafe {
        let base = libc::mmap(
            std::ptr::null_mut(),
            RESERVE + HUGE_PAGE,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        );
        if base == libc::MAP_FAILED {
            return None;
        }
        // Start on a 2 MB boundary so every whole huge page of the range can be one.
        let start = (base as usize).div_ceil(HUGE_PAGE) * HUGE_PAGE;
        libc::madvise(start as *mut c_void, RESERVE, libc::MADV_HUGEPAGE);
        let mut arena = std::ptr::null_mut();
        // Committed (the kernel backs it on touch), pinned (never purged: no page is faulted in
        // twice), zeroed, any NUMA node, exclusive (only heaps made for it allocate there).
        if !mi_manage_os_memory_ex(
            start as *mut c_void,
            RESERVE,
            true,
            true,
            true,
            -1,
            true,
            &mut arena,
        ) {
            libc::munmap(base, RESERVE + HUGE_PAGE);
            return None;
        }
        let heap = mi_heap_new_in_arena(arena);
        (!heap.is_null()).then_some((heap as usize, start))
    }
}

/// Faults in now, on huge pages, every page of the arena below its highest page in use and `extra`
/// bytes above it; returns the bytes of the arena now resident from its start. None without an arena,
/// or on a kernel without MADV_POPULATE_WRITE (Linux 5.14).
///
/// Why: the scoring side's heap still grows after the warm-up (a larger message, the other scoring
/// thread, lazy DFA states), and on this VM each fresh huge page is a ~6.5 ms fault in the middle of a
/// request. It grows above its highest page and into the holes below it: mimalloc gives each size
/// class its own 32 MB chunks, and after the warm-up with the stock rules the chunks for medium and
/// large blocks were nearly empty (`mi_debug_show_arenas`). Taking it all at start (the daemon calls
/// this after its warm-up, and after a reload's) costs resident memory the heap might never use: ~115
/// MB with the stock rules (bench/RESULTS.md, stop 35).
/// The contents of pages in use are left as they are, so this is safe while other threads allocate.
pub fn populate_ahead(extra: usize) -> Option<usize> {
    let (_, start) = (*HEAP.get()?)?;
    let top = resident(start, RESERVE)?
        .iter()
        .rposition(|&r| r)
        .map_or(0, |i| (i + 1) * PAGE);
    let end = (top.div_ceil(HUGE_PAGE) * HUGE_PAGE + extra).min(RESERVE);
    // SAFETY: inside the arena's own mapping; populating changes no byte of a page in use.
    let r = unsafe { libc::madvise(start as *mut c_void, end, libc::MADV_POPULATE_WRITE) };
    (r == 0).then_some(end)
}

const PAGE: usize = 4096;

/// Which 4 KB pages of `[start, start + len)` are resident (mincore), or None when the kernel will not
/// say.
fn resident(start: usize, len: usize) -> Option<Vec<bool>> {
    let mut v = vec![0u8; len.div_ceil(PAGE)];
    // SAFETY: `v` holds one byte per page of the range, which lies inside one mapping of ours.
    let r = unsafe { libc::mincore(start as *mut c_void, len, v.as_mut_ptr()) };
    (r == 0).then(|| v.iter().map(|b| b & 1 == 1).collect())
}

/// While alive, this thread allocates from the heap `enter` or `outside` chose; dropping it restores
/// what the thread used before. Memory allocated meanwhile may be freed from any thread, at any time.
pub struct Scope {
    previous: *mut c_void,
}

/// Puts this thread's allocations on the huge-page heap (None when `init` was not called or failed).
pub fn enter() -> Option<Scope> {
    let heap = (*HEAP.get()?)?.0 as *mut c_void;
    let previous = CURRENT.with(|c| c.replace(heap));
    Some(Scope { previous })
}

/// While alive, this thread allocates from its own heap even inside `enter`: for what another thread
/// will free (`spam::bayes::lessons::Queued`).
pub fn outside() -> Scope {
    let previous = CURRENT.with(|c| c.replace(std::ptr::null_mut()));
    Scope { previous }
}

impl Drop for Scope {
    fn drop(&mut self) {
        // Scope holds a raw pointer, so it is !Send: this is the thread that entered.
        CURRENT.with(|c| c.set(self.previous));
    }
}

/// The global allocator: mimalloc, from the huge-page heap on a thread inside `enter` and from the
/// thread's own heap elsewhere. When the huge-page arena cannot serve a request (full, or an alignment
/// over 64 KB, which mimalloc gives only from fresh OS memory), the request goes to the main heap
/// instead of failing.
pub struct Alloc;

fn current() -> *mut c_void {
    CURRENT.try_with(Cell::get).unwrap_or(std::ptr::null_mut())
}

/// A block for `layout` from `heap` by `get` (mimalloc's aligned malloc or zalloc), or from the main heap
/// when `heap`'s arena cannot serve it.
///
/// # Safety
/// `heap` is a live mimalloc heap.
unsafe fn from_heap(
    heap: *mut c_void,
    layout: Layout,
    get: unsafe extern "C" fn(*mut c_void, usize, usize) -> *mut c_void,
) -> *mut u8 {
    // SAFETY: both heaps are live (the main one as long as the process).
    unsafe {
        let p = get(heap, layout.size(), layout.align());
        if p.is_null() {
            get(mi_heap_main(), layout.size(), layout.align()) as *mut u8
        } else {
            p as *mut u8
        }
    }
}

// SAFETY: every block comes from mimalloc (some heap of it), and mimalloc frees or reallocates a block
// of any heap from any thread.
unsafe impl GlobalAlloc for Alloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let heap = current();
        if heap.is_null() {
            // SAFETY: forwarded with the caller's guarantees.
            return unsafe { mimalloc::MiMalloc.alloc(layout) };
        }
        // SAFETY: `heap` is the live huge-page heap.
        unsafe { from_heap(heap, layout, mi_heap_malloc_aligned) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let heap = current();
        if heap.is_null() {
            // SAFETY: forwarded with the caller's guarantees.
            return unsafe { mimalloc::MiMalloc.alloc_zeroed(layout) };
        }
        // SAFETY: `heap` is the live huge-page heap.
        unsafe { from_heap(heap, layout, mi_heap_zalloc_aligned) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { mimalloc::MiMalloc.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let heap = current();
        if heap.is_null() {
            // SAFETY: forwarded with the caller's guarantees.
            return unsafe { mimalloc::MiMalloc.realloc(ptr, layout, new_size) };
        }
        // SAFETY: `ptr` is a live mimalloc block of `layout`; a moved block lands in `heap`, or, when
        // its arena cannot serve, in the main heap. On failure the old block stays the caller's.
        unsafe {
            let p = mi_heap_realloc_aligned(heap, ptr as *mut c_void, new_size, layout.align());
            if !p.is_null() {
                return p as *mut u8;
            }
            let q = mi_heap_malloc_aligned(mi_heap_main(), new_size, layout.align()) as *mut u8;
            if !q.is_null() {
                std::ptr::copy_nonoverlapping(ptr, q, layout.size().min(new_size));
                mimalloc::MiMalloc.dealloc(ptr, layout);
            }
            q
        }
    }
}

/// For tests here and in `spam::hugepages`: the VmFlags line and AnonHugePages size of the mapping
/// that holds address `p`, from /proc/self/smaps.
#[cfg(test)]
pub(crate) fn mapping_of(p: usize) -> Option<(String, u64)> {
    let smaps = std::fs::read_to_string("/proc/self/smaps").ok()?;
    let (mut inside, mut huge) = (false, 0);
    for line in smaps.lines() {
        if let Some((range, _)) = line.split_once(' ') {
            if let Some((a, b)) = range.split_once('-') {
                if let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
                {
                    inside = a <= p && p < b;
                    continue;
                }
            }
        }
        if inside {
            if let Some(kb) = line.strip_prefix("AnonHugePages:") {
                huge = kb.trim().trim_end_matches(" kB").parse().unwrap_or(0);
            }
            if line.starts_with("VmFlags:") {
                return Some((line.to_string(), huge));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Inside `enter`, a block comes from the arena: advised for huge pages (`hg`) and, once touched,
    /// backed by them. Outside, a block of the same size comes from elsewhere. Both free normally.
    #[test]
    fn entered_threads_allocate_on_huge_pages() {
        assert!(init(), "arena refused");
        let layout = Layout::from_size_align(4 << 20, 8).expect("layout");
        std::thread::spawn(move || {
            let inside = {
                let _huge = enter().expect("entered");
                // SAFETY: a non-zero size; the block is freed below with the same layout.
                unsafe { Alloc.alloc(layout) }
            };
            // SAFETY: a fresh block of 4 MB, freed once below.
            unsafe {
                assert!(!inside.is_null());
                std::ptr::write_bytes(inside, 1, layout.size());
                let outside = Alloc.alloc(layout);
                assert!(!outside.is_null());
                let (flags, huge) = super::mapping_of(inside as usize).expect("mapped");
                assert!(flags.split_whitespace().any(|f| f == "hg"), "{flags}");
                // Backed by huge pages too, unless the machine turned THP off altogether.
                let thp = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
                    .unwrap_or_default();
                if !thp.contains("[never]") {
                    assert!(huge >= 2048, "{huge} kB on huge pages");
                }
                let (flags, _) = super::mapping_of(outside as usize).expect("mapped");
                assert!(!flags.split_whitespace().any(|f| f == "hg"), "{flags}");
                Alloc.dealloc(inside, layout);
                Alloc.dealloc(outside, layout);
            }
        })
        .join()
        .expect("thread");
    }

    /// After `populate_ahead`, the pages above the highest one in use are resident although nothing
    /// touched them, and what the call reports is resident.
    #[test]
    fn populate_ahead_faults_in_the_pages_above() {
        assert!(init(), "arena refused");
        let extra = 4 << 20;
        // The unit tests' global allocator is the system's: ask `Alloc` itself.
        let layout = Layout::from_size_align(1 << 20, 8).expect("layout");
        let kept = std::thread::spawn(move || {
            let _huge = enter().expect("entered");
            // SAFETY: a non-zero size; freed below with the same layout.
            let p = unsafe { Alloc.alloc(layout) };
            assert!(!p.is_null());
            // SAFETY: the fresh block is 1 MB long.
            unsafe { std::ptr::write_bytes(p, 1, layout.size()) };
            p as usize
        })
        .join()
        .expect("thread");
        let Some(end) = populate_ahead(extra) else {
            return; // a kernel before 5.14: nothing to check
        };
        let (_, start) = HEAP.get().copied().flatten().expect("arena");
        assert!(end >= extra);
        assert!(
            kept + layout.size() <= start + end,
            "the block in use lies below"
        );
        let pages = resident(start + end - extra, extra).expect("mincore");
        assert!(
            pages.iter().all(|&r| r),
            "{} of {} pages resident",
            pages.iter().filter(|&&r| r).count(),
            pages.len()
        );
        // SAFETY: allocated above with this layout, freed once.
        unsafe { Alloc.dealloc(kept as *mut u8, layout) };
    }

    /// What the arena cannot give (an alignment mimalloc serves only from fresh OS memory) comes from
    /// the main heap rather than failing, and a block keeps its bytes when realloc moves it.
    #[test]
    fn the_arena_falls_back_instead_of_failing() {
        assert!(init(), "arena refused");
        std::thread::spawn(|| {
            let _huge = enter().expect("entered");
            let layout = Layout::from_size_align(1000, 1 << 20).expect("layout");
            // SAFETY: a non-zero size, freed once with the layout realloc returned it under.
            unsafe {
                let p = Alloc.alloc(layout);
                assert!(!p.is_null() && (p as usize).is_multiple_of(1 << 20));
                for i in 0..1000 {
                    *p.add(i) = (i % 251) as u8;
                }
                let q = Alloc.realloc(p, layout, 3 << 20);
                assert!(!q.is_null() && (q as usize).is_multiple_of(1 << 20));
                assert!((0..1000).all(|i| *q.add(i) == (i % 251) as u8));
                Alloc.dealloc(
                    q,
                    Layout::from_size_align(3 << 20, 1 << 20).expect("layout"),
                );
                let z = Alloc.alloc_zeroed(layout);
                assert!(!z.is_null() && (0..1000).all(|i| *z.add(i) == 0));
                Alloc.dealloc(z, layout);
            }
        })
        .join()
        .expect("thread");
    }
}
