//! The Hyperscan prefilter: every body, rawbody, full and uri rule's pattern in one Hyperscan database per
//! kind of text, compiled in prefilter mode, so one pass over a message's text tells which rules may
//! match. Only those run their own regex; the others cannot match, so results never change.
//!
//! Invariant: for every rule this filter gates, a match of the rule's regex (as `check` runs it) implies
//! a Hyperscan report for it. Three things keep that true:
//! - Patterns are printed from the regex crate's own parse (HIR) of the rule's regex, not from the Perl
//!   source, so classes, case folding and `.` are byte-for-byte what the regex crate matches. Fallback
//!   (fancy) rules use their widened regex, which `Re` already requires to match first.
//! - The lines of a kind are joined with '\n' and scanned once. Within a line the bytes are unchanged, a
//!   '\n' beside a line is a non-word byte just like the edge of the text (so `\b`/`\B` agree), and `^`
//!   and `$` (start and end of the text the rule sees, or of a line under /m) become Hyperscan's
//!   multi-line anchors, which hold at every line edge. Assertions Hyperscan cannot express are dropped,
//!   which only widens.
//! - HS_FLAG_PREFILTER: Hyperscan may report more than the pattern matches, never less. A pattern it
//!   rejects, one that matches the empty string, or a failed scan leaves the rule always run.
//!
//! Exact patterns (`translate_exact`, `exact_ok`): a rule whose regex Hyperscan can say exactly, and whose
//! hits the joined texts keep (no match across a '\n', no text anchor, one hit counted), is compiled
//! without HS_FLAG_PREFILTER in the same databases; its report is then its hit and its regex never runs.
//! The invariant above still holds for it, and so does its converse.
//!
//! Repeat gates (`repeat_part`): for the few rules whose pattern needs one long part n times in a row, a
//! second database reports every end of that part, and the rule runs only on lines with n ends far
//! enough apart to be a run of parts (`chain`).
//!
//! Line ends (`ends_wanted`): a body or rawbody rule with a long superset pattern reports every end,
//! not just the first, and runs its regex only on the lines those ends fall in (`end_lines`): its lazy
//! DFA builds states as it reads, and on a fresh daemon that is most of its cost.
//!
//! ASCII twins (`ascii_only`): most mail's texts are all ASCII (177 of 200 sample bodies), and the
//! stock rules spend much of their patterns on what only non-ASCII text can hold (look-alike letters
//! as UTF-8 sequences, `[\W_]` reaching up to 0xff). Each area also gets a second set of databases
//! holding every gated rule's pattern as it reads ASCII text: the same matches on such text, fewer
//! automaton states. A text that is all ASCII is scanned with that set, any other with the first.
//! Per rule the twin keeps its original's kind (exact or prefilter); a rule that cannot match ASCII
//! text at all has no twin (no report: it cannot match); a twin the compiler refuses falls back to the
//! original pattern, and an area whose twin databases do not all compile whole has no twin set.
//!
//! The same database set also holds one literal database per area (header included) for `prefilter`:
//! each literal caseless, reported once; an area whose literals do not all compile keeps its automaton.

use super::hyperscan::{self, Databases, Engine, Pattern};
use super::prefilter::Area;
use super::rules::{Rule, Test};
use regex_syntax::hir::{Class, Hir, HirKind, Look};
use std::fmt::Write;

/// Per rule with a repeat gate (`repeat_part`), sorted by rule once complete: each text (line) where
/// it may match, with every place its repeated part may end in that text (offsets in the text,
/// increasing; a superset of where the part's matches end there).
pub type RepeatLines = Vec<(usize, Vec<(usize, Vec<usize>)>)>;

/// Patterns per database (the originals; the ASCII twins have `ASCII_CHUNK`). Hyperscan's compile time
/// grows much faster than linearly with the number of patterns in one database (the stock body rules
/// took minutes in one). 64 rather than 32: the same time to compile the stock rules from scratch
/// (21 s, 32 s of CPU; 128 took 23 s, 37 s of CPU), and the non-ASCII lines of a body (`split`) scan
/// 9 databases instead of 18: over the 44 sample messages whose text is not all ASCII, 5 alternating
/// runs in process, 2.59 -> 2.44 ms a message on a first pass (128: no faster than 64).
const CHUNK: usize = 64;

/// Patterns per uri database: all of them in one. The uri texts are short (a message's links, ~120
/// bytes over the sample), so a scan costs mostly its fixed start-up, paid once per database.
const URI_CHUNK: usize = 1024;

/// Patterns per ASCII twin database (`ascii_only`): all of an area's in one. The twins compile about
/// three times as fast as the originals (the 491 stock body twins: 4.2 s of CPU in one database), and
/// Hyperscan shares work only within a database: over the 552 ASCII sample bodies (libhs from Python,
/// hot cache) the body twins scanned in 87 us a body in databases of 128, 69 in one.
const ASCII_CHUNK: usize = 1024;

/// Whether to move literal-free body patterns to dense DFAs (`dfagate`): yes unless CORREO_DFA_GATES=0.
fn dfa_wanted() -> bool {
    std::env::var("CORREO_DFA_GATES").map_or(true, |v| v != "0")
}

/// Whether to compile ASCII twins: yes unless CORREO_HYPERSCAN_ASCII=0 (to measure what they save).
fn twins_wanted() -> bool {
    std::env::var("CORREO_HYPERSCAN_ASCII").map_or(true, |v| v != "0")
}

/// The kinds of text scanned; header rules stay with the literal prefilter (their text differs per rule).
pub const AREAS: [Area; 4] = [Area::Body, Area::Rawbody, Area::Full, Area::Uri];

/// `f` over `items` on every core (Hyperscan's compiler is thread-safe, and compiling is what a rule
/// load waits for), results in order (None only if a slot was never filled).
pub(crate) fn par_map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<Option<R>> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(items.len().max(1));
    let next = AtomicUsize::new(0);
    let out: Vec<std::sync::Mutex<Option<R>>> =
        items.iter().map(|_| std::sync::Mutex::new(None)).collect();
    std::thread::scope(|sc| {
        for _ in 0..threads {
            sc.spawn(|| loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(k) else { return };
                let r = f(item);
                if let Ok(mut slot) = out[k].lock() {
                    *slot = Some(r);
                }
            });
        }
    });
    out.into_iter()
        .map(|m| m.into_inner().ok().flatten())
        .collect()
}

/// Compile jobs: a key saying what the patterns are for, and the patterns (taken out when compiled).
pub(crate) type Jobs<K> = Vec<(K, std::sync::Mutex<Vec<Pattern>>)>;

/// Adds `pats` to `jobs` under `key`, `chunk` patterns a job.
pub(crate) fn chunked<K: Copy>(key: K, pats: Vec<Pattern>, chunk: usize, jobs: &mut Jobs<K>) {
    let mut pats = pats.into_iter().peekable();
    while pats.peek().is_some() {
        jobs.push((
            key,
            std::sync::Mutex::new(pats.by_ref().take(chunk).collect()),
        ));
    }
}

/// Compiles every job on all cores; per job (None only if it never ran): the ids of its patterns, the
/// database, and the patterns the compiler refused with why.
pub(crate) fn compile_jobs<K: Sync>(
    engine: &'static Engine,
    jobs: &[(K, std::sync::Mutex<Vec<Pattern>>)],
) -> Vec<Compiled> {
    par_map(jobs, |(_, part)| {
        let part = match part.lock() {
            Ok(mut p) => std::mem::take(&mut *p),
            Err(p) => std::mem::take(&mut *p.into_inner()),
        };
        let ids: Vec<usize> = part.iter().map(|p| p.id as usize).collect();
        let (db, rejected) = engine.compile(part);
        (ids, db, rejected)
    })
}

/// What `compile_jobs` makes of one job.
pub(crate) type Compiled = Option<(
    Vec<usize>,
    Option<hyperscan::Database>,
    Vec<(Pattern, String)>,
)>;

/// `compile_jobs`, then once more for the exact patterns (`exact_flags`) the compiler refused (too
/// large to compile exactly): each is compiled from its superset pattern in `loose` (taken out of it)
/// with `flags`, in jobs appended to `jobs` under the key of the job that refused it, `chunk` patterns
/// a job. Returns every job's result in `jobs` order, and the ids compiled again.
pub(crate) fn compile_jobs_or_loose<K: Copy + PartialEq + Sync>(
    engine: &'static Engine,
    jobs: &mut Jobs<K>,
    loose: &mut std::collections::HashMap<usize, String>,
    exact_flags: std::ffi::c_uint,
    flags: std::ffi::c_uint,
    chunk: usize,
) -> (Vec<Compiled>, Vec<usize>) {
    let mut compiled = compile_jobs(engine, jobs);
    let mut retried = Vec::new();
    let mut retry: Vec<(K, Vec<Pattern>)> = Vec::new();
    for ((key, _), done) in jobs.iter().zip(&compiled) {
        for (p, _) in done.iter().flat_map(|d| &d.2) {
            let Some(expr) = loose
                .remove(&(p.id as usize))
                .filter(|_| p.flags == exact_flags)
            else {
                continue;
            };
            retried.push(p.id as usize);
            let pat = Pattern {
                expr,
                flags,
                id: p.id,
            };
            match retry.iter_mut().find(|(k, _)| k == key) {
                Some((_, pats)) => pats.push(pat),
                None => retry.push((*key, vec![pat])),
            }
        }
    }
    let first = jobs.len();
    for (key, pats) in retry {
        chunked(key, pats, chunk, jobs);
    }
    if jobs.len() > first {
        compiled.extend(compile_jobs(engine, &jobs[first..]));
    }
    (compiled, retried)
}

/// The compiled databases and which rules they gate.
#[derive(Debug, Default)]
pub struct HsFilter {
    dbs: Option<Databases>,
    /// For each area in `AREAS`: the indexes of its databases in `dbs`.
    slots: [Vec<usize>; 4],
    /// For each area in `AREAS`: the indexes in `dbs` of its ASCII twin databases (empty: none), which
    /// stand in for `slots` on a text that is all ASCII.
    ascii_slots: [Vec<usize>; 4],
    /// Per area (header included): the database in `dbs` holding the literal prefilter's literals, whose
    /// ids are the literals' indexes in that area's list.
    lit_slots: Vec<(Area, usize)>,
    /// Per rule: whether a database gates it.
    pub gated: Vec<bool>,
    /// For each area in `AREAS`: the indexes in `dbs` of its repeat databases (`repeat_part`).
    count_slots: [Vec<usize>; 4],
    /// `count_slots` for a text that is all ASCII: each database's twin where it has one.
    count_ascii: [Vec<usize>; 4],
    /// Per gated rule: how many distinct ends its repeated part needs in one line (0: no repeat gate).
    pub counts: Vec<u32>,
    /// Per rule with a repeat gate: the shortest match of its repeated part, so the least distance
    /// between the ends of two parts in a row.
    part_min: Vec<u32>,
    /// (carrier, rider): the rider's repeated part is the carrier's or a narrower form of it
    /// (`narrower`), so every place it ends the carrier's part ends too, and the carrier's reports
    /// gate both; the rider has no pattern of its own.
    riders: Vec<(u32, u32)>,
    /// Rules whose pattern Hyperscan could not take, with the reason (for lint).
    pub rejected: Vec<(usize, String)>,
    /// Per rule: its database holds its exact pattern (`translate_exact`), so a report is the rule's
    /// hit and needs no regex run (see `exact_ok`).
    pub exact: Vec<bool>,
    /// Per rule: its body or rawbody pattern reports every end, not just the first (`ends_wanted`), so
    /// a scan names the lines it can match in (`scan` adds them to `lines`, as a repeat gate does).
    pub line_ends: Vec<bool>,
    /// For each area in `AREAS`: dense-DFA gates standing in for some of its ASCII twins' patterns
    /// (`dfagate`), used only where the twins are.
    dfa: [super::dfagate::DfaGates; 4],
}

/// Whether a rule's hit can be read off an exact pattern's report on its area's joined texts: a body,
/// rawbody or uri rule that counts one hit on every text it is given, whose own regex (the regex
/// crate's, no fallback engine) cannot match a `\n` and has no text anchor (`Joined::Inline`: every
/// match in the joined text lies within one text and is a match there, and every match in a text is
/// one in the joined text), and that no repeat gate narrows.
fn exact_ok(r: &Rule, area: Area, re: &super::perlre::Re, hir: &Hir) -> bool {
    matches!(area, Area::Body | Area::Rawbody | Area::Uri)
        && !r.tflags.multiple
        && !r.tflags.nosubject
        && super::joined::Joined::of(re) == super::joined::Joined::Inline
        && repeat_part(hir).is_none()
}

fn area_index(a: Area) -> Option<usize> {
    AREAS.iter().position(|&x| x == a)
}

/// The regex a rule of these kinds runs, and its area.
fn regex_of(t: &Test) -> Option<(Area, &super::perlre::Re)> {
    match t {
        Test::Body(re) => Some((Area::Body, re)),
        Test::Rawbody(re) => Some((Area::Rawbody, re)),
        Test::Full(re) => Some((Area::Full, re)),
        Test::Uri(re) => Some((Area::Uri, re)),
        _ => None,
    }
}

/// Hyperscan syntax for the regex crate's source `src`: None when it cannot be said safely.
pub fn translate(src: &str) -> Option<String> {
    translate_hir(&parse(src)?)
}

/// A pattern printed for Hyperscan (`print`), read back: bytes, ASCII classes and word boundaries.
fn parse_printed(expr: &str) -> Option<Hir> {
    regex_syntax::ParserBuilder::new()
        .utf8(false)
        .unicode(false)
        .multi_line(true)
        .build()
        .parse(expr)
        .ok()
}

pub(crate) fn parse(src: &str) -> Option<Hir> {
    regex_syntax::ParserBuilder::new()
        .utf8(false)
        .build()
        .parse(src)
        .ok()
}

/// `hir` with every end anchor (`$`, `\z`) left out, which only widens. Hyperscan takes `$` only where
/// nothing can follow it, and refuses a pattern with one elsewhere (`T_FUZZY_OPTOUT`'s `(?:$|\W)`
/// before a word); such a rule is then gated by this pattern instead of running on every message.
fn without_ends(h: &Hir) -> Hir {
    map_looks(h, &|l| match l {
        Look::End | Look::EndLF => Hir::empty(),
        l => Hir::look(l),
    })
}

/// `h` with each assertion replaced by what `f` makes of it.
pub(crate) fn map_looks(h: &Hir, f: &dyn Fn(Look) -> Hir) -> Hir {
    use regex_syntax::hir::{Capture, Repetition};
    match h.kind() {
        HirKind::Look(l) => f(*l),
        HirKind::Repetition(r) => Hir::repetition(Repetition {
            sub: Box::new(map_looks(&r.sub, f)),
            ..r.clone()
        }),
        HirKind::Capture(c) => Hir::capture(Capture {
            sub: Box::new(map_looks(&c.sub, f)),
            ..c.clone()
        }),
        HirKind::Concat(subs) => Hir::concat(subs.iter().map(|s| map_looks(s, f)).collect()),
        HirKind::Alternation(subs) => {
            Hir::alternation(subs.iter().map(|s| map_looks(s, f)).collect())
        }
        _ => h.clone(),
    }
}

/// `hir` without the leading items of its outer concatenation that can match empty, except line
/// anchors: a superset pattern needs only the rest, since whatever matches the whole has a match of
/// the rest ending at the same place (so reported ends stay a superset too). Why: a leading word
/// boundary (`\b\_*[Aa]...`, `(?:\b|\s)[_\W]*[Pp]...`, the stock `__DRUGS_*` obfuscation rules)
/// makes Hyperscan try the pattern at every word start: 28 us a 1.2 KB body alone against 1 to 2
/// without, and the 63 such rules cost 103 of the 145 us of their database.
fn without_empty_lead(h: &Hir) -> Hir {
    let anchored = |s: &Hir| {
        let looks = s.properties().look_set();
        looks.contains(Look::Start)
            || looks.contains(Look::StartLF)
            || looks.contains(Look::StartCRLF)
    };
    match h.kind() {
        HirKind::Capture(c) => without_empty_lead(&c.sub),
        HirKind::Concat(subs) => {
            let k = subs
                .iter()
                .take_while(|s| s.properties().minimum_len() == Some(0) && !anchored(s))
                .count();
            if k == 0 || k == subs.len() {
                return h.clone();
            }
            Hir::concat(subs[k..].to_vec())
        }
        _ => h.clone(),
    }
}

fn translate_hir(hir: &Hir) -> Option<String> {
    // An empty match would make the rule a candidate on every message: not worth a pattern.
    if hir.properties().minimum_len().is_none_or(|n| n == 0) {
        return None;
    }
    let trimmed = without_empty_lead(hir);
    let hir = &trimmed;
    // In full when Hyperscan takes that length, else with long alternations loosened.
    let mut out = String::new();
    print(hir, &mut out, usize::MAX, None)?;
    if out.len() > MAX_PATTERN {
        out.clear();
        print(hir, &mut out, MAX_ALTERNATION, None)?;
    }
    Some(out)
}

/// Hyperscan syntax for exactly what the regex crate's `hir` matches, for compiling without
/// HS_FLAG_PREFILTER and with HS_FLAG_MULTILINE: then a report is a match and no report none, so the
/// rule's regex need not run. None when it cannot be said exactly or cheaply: Unicode or half word
/// boundaries, counted repeats over `EXACT_*_REPEAT`, a pattern longer than Hyperscan takes.
pub fn translate_exact(hir: &Hir) -> Option<String> {
    translate_exact_up_to(hir, EXACT_ATOM_REPEAT)
}

/// `translate_exact` with counted repeats of a byte or class kept up to `atoms` copies. The header
/// filter says backreference rules' PRE pieces this way (`\nReceived:[^\n]{0,200} for <?`): a few
/// patterns, where a long count costs little compile time, and only the exact ends will do.
pub fn translate_exact_up_to(hir: &Hir, atoms: u32) -> Option<String> {
    if hir.properties().minimum_len().is_none_or(|n| n == 0) {
        return None;
    }
    let mut out = String::new();
    print(hir, &mut out, usize::MAX, Some((atoms, EXACT_GROUP_REPEAT)))?;
    (out.len() <= MAX_PATTERN).then_some(out)
}

/// Largest count an exact pattern keeps for a repeated byte or class (`.{0,40}`), and for a repeated
/// group: Hyperscan's compiler spends a state per copy, and the stock rules' obfuscation patterns
/// (`[_\W]{0,3}` between every letter) took it minutes when printed with their counts. 16 for a group
/// (it was 4) lets `__LONGWORDS_A`/`_B` (`\b(?:[a-z]{6,}[\s.]+){9}`, 3 ms to compile each) be exact:
/// their prefilter form, counts widened to `+`, let every message through to the regex.
const EXACT_ATOM_REPEAT: u32 = 64;
const EXACT_GROUP_REPEAT: u32 = 16;

/// The repeated part of a pattern that must match `n` times in a row, `n` at least 2: `X` of
/// `P(?:X){n,m}S`, found through captures and concatenations only (so every match of the whole
/// holds one), with n, X's shortest match and X in Hyperscan syntax. X must be a group at least two
/// bytes long: a repeated byte or class reports at nearly every byte.
///
/// Why: a gate scan answers "X matches somewhere" where the rule needs X n times back to back, and
/// for `__FILL_THIS_FORM_SHORT2`/`LONG2` (`(?:FIELD ...){3}` / `{5}`) one field name is in most
/// mail: 155 of 200 sample messages passed, and each then ran a regex costing ~0.4 ms on a fresh
/// daemon. Those n matches end at n distinct offsets of one line, so fewer distinct ends of X in
/// every line rule the message out (11 and 42 of the 200 pass).
///
/// Also X's ASCII twin (`ascii_only`) in Hyperscan syntax, when it has one and it differs, and X's
/// narrower forms.
fn repeat_part(hir: &Hir) -> Option<RepeatPart> {
    fn find(h: &Hir) -> Option<(u32, &Hir)> {
        match h.kind() {
            HirKind::Repetition(r) if r.min >= 2 => {
                let group = !matches!(r.sub.kind(), HirKind::Class(_) | HirKind::Literal(_));
                let long = r.sub.properties().minimum_len().is_some_and(|n| n >= 2);
                (group && long).then_some((r.min, &*r.sub))
            }
            HirKind::Capture(c) => find(&c.sub),
            HirKind::Concat(subs) => subs.iter().filter_map(find).max_by_key(|&(n, _)| n),
            _ => None,
        }
    }
    let (n, x) = find(hir)?;
    let min = x.properties().minimum_len()?;
    let e = translate_hir(x).filter(|e| e.len() >= REPEAT_MIN_LEN)?;
    let twin = ascii_only(x)
        .as_ref()
        .and_then(translate_hir)
        .filter(|t| *t != e);
    let narrower = narrower(x)
        .iter()
        .filter_map(translate_hir)
        .filter(|v| *v != e)
        .collect();
    Some(RepeatPart {
        n,
        min: u32::try_from(min).unwrap_or(u32::MAX),
        expr: e,
        twin,
        narrower,
    })
}

/// What `repeat_part` found.
struct RepeatPart {
    /// How many times in a row the part must match.
    n: u32,
    /// The part's shortest match.
    min: u32,
    /// The part in Hyperscan syntax, its ASCII twin where that differs, and its narrower forms
    /// (`narrower`), printed.
    expr: String,
    twin: Option<String>,
    narrower: Vec<String>,
}

/// `h` with one of its optional items (a repetition that may match empty) left out, each way that
/// can be done through concatenations, alternations and captures: every one matches only what `h`
/// matches, and ends only where a match of `h` ends.
///
/// Why: `__FILL_THIS_FORM_SHORT1`/`SHORT2`'s repeated parts are `LONG1`/`LONG2`'s without an optional
/// `(?:P[a-z\.\s]{10,30})?`, so every place a SHORT part ends is one where the LONG part ends and
/// the LONG part's scan can gate both (`HsFilter::riders`): each of the four scans cost 9 to 23 us a
/// body.
fn narrower(h: &Hir) -> Vec<Hir> {
    let mut out = Vec::new();
    match h.kind() {
        HirKind::Capture(c) => out.extend(narrower(&c.sub)),
        HirKind::Concat(subs) => {
            for (k, sub) in subs.iter().enumerate() {
                let rebuilt = |mid: Vec<Hir>| {
                    let mut v = subs[..k].to_vec();
                    v.extend(mid);
                    v.extend_from_slice(&subs[k + 1..]);
                    Hir::concat(v)
                };
                if matches!(sub.kind(), HirKind::Repetition(r) if r.min == 0) {
                    out.push(rebuilt(Vec::new()));
                }
                out.extend(narrower(sub).into_iter().map(|n| rebuilt(vec![n])));
            }
        }
        HirKind::Alternation(subs) => {
            for (k, sub) in subs.iter().enumerate() {
                for n in narrower(sub) {
                    let mut v = subs.to_vec();
                    v[k] = n;
                    out.push(Hir::alternation(v));
                }
            }
        }
        _ => {}
    }
    out
}

/// Adds to `lines`, per rule, the texts its reported `ends` ((rule, text, offset in the text) of
/// each) fall in, each with its ends there. A rule's match within one text is a match of its pattern
/// in the joined texts too, and a superset pattern reports every end of every match, so the rule can
/// match in no other text.
fn end_lines(mut ends: Vec<(u32, usize, usize)>, lines: &mut RepeatLines) {
    ends.sort_unstable();
    ends.dedup();
    let mut k = 0;
    while k < ends.len() {
        let id = ends[k].0;
        let mut at: Vec<(usize, Vec<usize>)> = Vec::new();
        while k < ends.len() && ends[k].0 == id {
            let (l, off) = (ends[k].1, ends[k].2);
            match at.last_mut() {
                Some((line, e)) if *line == l => e.push(off),
                _ => at.push((l, vec![off])),
            }
            k += 1;
        }
        lines.push((id as usize, at));
    }
}

/// Texts joined with '\n' for one scan: text k starts at `starts[k]`, and is text `index[k]` of the
/// area (k itself without an index).
#[derive(Clone, Copy)]
struct Part<'a> {
    text: &'a [u8],
    starts: &'a [usize],
    index: Option<&'a [usize]>,
}

impl Part<'_> {
    /// The area's text holding the byte before `end` (a match's last byte: every match is at least
    /// one byte), and `end`'s offset in it.
    fn locate(&self, end: u64) -> (usize, usize) {
        let end = usize::try_from(end).unwrap_or(usize::MAX);
        let l = self.starts.partition_point(|&s| s < end).saturating_sub(1);
        let off = end.saturating_sub(self.starts.get(l).copied().unwrap_or(0));
        (self.index.and_then(|x| x.get(l).copied()).unwrap_or(l), off)
    }
}

/// One side of `Split`: its texts joined, where each starts, and which of the area's texts each is.
struct Joined {
    text: Vec<u8>,
    starts: Vec<usize>,
    index: Vec<usize>,
}

impl Joined {
    fn part(&self) -> Part<'_> {
        Part {
            text: &self.text,
            starts: &self.starts,
            index: Some(&self.index),
        }
    }
}

/// An area's texts, not all ASCII, in two scans: the ASCII ones and the others.
struct Split {
    ascii: Joined,
    other: Joined,
}

/// Splits `joined` (texts starting at `starts`) into its ASCII texts and the others, or None when
/// none is ASCII. Why: the twins and DFA gates read ASCII text only, and a body that is not all
/// ASCII (a signature's accented name, one curly quote) was scanned whole with the original
/// databases (18 of them for the stock body rules then): ~1 ms for a 4 KB body against ~0.1 ms for an
/// ASCII one. Each text is one line a rule matches within (the joining only adds matches across a
/// '\n'), so each rule sees every text it could match in one scan or the other.
fn split(joined: &[u8], starts: &[usize]) -> Option<Split> {
    let empty = || Joined {
        text: Vec::new(),
        starts: Vec::new(),
        index: Vec::new(),
    };
    let (mut ascii, mut other) = (empty(), empty());
    for (k, &s) in starts.iter().enumerate() {
        // Each text runs to the '\n' before the next one's start.
        let end = starts
            .get(k + 1)
            .map_or(joined.len(), |&n| n.saturating_sub(1));
        let t = joined.get(s..end.max(s)).unwrap_or_default();
        let side = if t.is_ascii() { &mut ascii } else { &mut other };
        if !side.starts.is_empty() {
            side.text.push(b'\n');
        }
        side.starts.push(side.text.len());
        side.index.push(k);
        side.text.extend_from_slice(t);
    }
    (!ascii.starts.is_empty()).then_some(Split { ascii, other })
}

/// Shortest pattern (Hyperscan syntax) whose rule gets its lines from the scan (`ends_wanted`): the 55
/// stock body and rawbody rules at or over it include the `__FILL_THIS_FORM_*` family and the big
/// `FUZZY_*` ones. With every superset pattern reporting ends, the body scans took a third longer
/// (frequent short patterns report hundreds of ends); with these, no longer. (Unit tests use short
/// patterns.)
const ENDS_MIN: usize = if cfg!(test) { 1 } else { 1000 };

/// Whether a rule's superset pattern `expr` should report every end: a body or rawbody rule (one line
/// a text; the caller checks the area and that it has no repeat gate) with a big pattern and no repeat
/// matcher (which reads its part's ends from `lines`, not its own). Such a rule's regex is slow to
/// start on new text (its lazy DFA builds states as it reads), and once Hyperscan names the lines, it
/// reads only those. Small patterns gain little from that and may report many ends.
fn ends_wanted(r: &Rule, re: &super::perlre::Re, hir: &Hir, expr: &str) -> bool {
    !r.tflags.nosubject
        && expr.len() >= ENDS_MIN
        && re
            .fast_source()
            .is_none_or(|src| !super::repeat::takes(src, hir))
}

/// How many of the increasing `ends` a run of parts can use: n parts in a row end at n places each
/// at least `gap` (the part's shortest match) after the one before, so when the ends include every
/// place a part ends, a line where this is under n holds no run of n. Greedy from the first end: any
/// such run's k-th end is at or after the k-th end taken here.
fn chain(ends: &[usize], gap: usize) -> usize {
    let mut n = 0;
    let mut next = 0;
    for &e in ends {
        if n == 0 || e >= next {
            n += 1;
            next = e.saturating_add(gap.max(1));
        }
    }
    n
}

/// Shortest repeated part worth a repeat gate. Scanning for every end of a part costs on every
/// message (short parts such as `__LONGWORDS_*`'s words report at nearly every word: +0.25 ms a
/// message for all 17 stock ones); only parts this long come with a regex slow enough to repay it.
/// (Unit tests use short parts to reach the gate with small rules.)
const REPEAT_MIN_LEN: usize = if cfg!(test) { 4 } else { 1000 };

/// One byte as short as Hyperscan reads it the same: letters and digits as themselves, other printable
/// ASCII escaped with a backslash (PCRE's rule: an escaped non-alphanumeric is itself, also in a
/// class), the rest in hex. Short matters: Hyperscan refuses patterns over `MAX_PATTERN` characters,
/// and the stock rules' phrase lists come near that in hex.
fn byte(out: &mut String, b: u8) {
    if b.is_ascii_alphanumeric() {
        out.push(b as char);
    } else if b.is_ascii_graphic() {
        out.push('\\');
        out.push(b as char);
    } else {
        let _ = write!(out, "\\x{b:02x}");
    }
}

fn byte_class(out: &mut String, ranges: impl Iterator<Item = (u8, u8)>) -> Option<()> {
    let ranges: Vec<(u8, u8)> = ranges.collect();
    match ranges.as_slice() {
        // An empty class matches nothing; Hyperscan has no syntax for that.
        [] => return None,
        // One byte needs no class.
        &[(a, b)] if a == b => {
            byte(out, a);
            return Some(());
        }
        _ => {}
    }
    out.push('[');
    for (a, b) in ranges {
        byte(out, a);
        if b > a {
            if b > a + 1 {
                out.push('-');
            }
            byte(out, b);
        }
    }
    out.push(']');
    Some(())
}

/// `exact`: None prints a superset (counts widened, assertions Hyperscan cannot say dropped);
/// Some((atom, group)) prints the pattern itself, refusing counted repeats over those bounds.
fn print(h: &Hir, out: &mut String, max_alt: usize, exact: Option<(u32, u32)>) -> Option<()> {
    match h.kind() {
        HirKind::Empty => {}
        HirKind::Literal(l) => {
            for &b in l.0.iter() {
                byte(out, b);
            }
        }
        HirKind::Class(Class::Bytes(c)) => {
            byte_class(out, c.ranges().iter().map(|r| (r.start(), r.end())))?;
        }
        HirKind::Class(Class::Unicode(c)) => {
            if c.ranges().iter().all(|r| u32::from(r.end()) < 0x80) {
                let ranges = c.ranges().iter().map(|r| (r.start() as u8, r.end() as u8));
                byte_class(out, ranges)?;
            } else {
                // What a Unicode class matches in bytes: the UTF-8 encodings of its code points.
                out.push_str("(?:");
                let mut first = true;
                for r in c.ranges() {
                    for seq in regex_syntax::utf8::Utf8Sequences::new(r.start(), r.end()) {
                        if !first {
                            out.push('|');
                        }
                        first = false;
                        for br in seq.as_slice() {
                            byte_class(out, std::iter::once((br.start, br.end)))?;
                        }
                    }
                }
                out.push(')');
                if first {
                    return None;
                }
            }
        }
        // Exact: only what Hyperscan says the same way (a multi-line pattern: `^`/`$` at line edges,
        // `\A`/`\z` at the text's).
        HirKind::Look(l) if exact.is_some() => out.push_str(match l {
            Look::Start => "\\A",
            Look::End => "\\z",
            Look::StartLF => "^",
            Look::EndLF => "$",
            Look::WordAscii => "\\b",
            Look::WordAsciiNegate => "\\B",
            _ => return None,
        }),
        HirKind::Look(l) => out.push_str(match l {
            Look::Start | Look::StartLF => "^",
            Look::End | Look::EndLF => "$",
            Look::WordAscii | Look::WordStartAscii | Look::WordEndAscii => "\\b",
            Look::WordAsciiNegate => "\\B",
            // CRLF anchors, Unicode word boundaries and half boundaries: dropping them only widens.
            _ => "",
        }),
        HirKind::Repetition(r) => {
            // One byte or class repeats without a group.
            let atom = match r.sub.kind() {
                HirKind::Class(Class::Bytes(_)) => true,
                HirKind::Class(Class::Unicode(c)) => {
                    c.ranges().iter().all(|r| u32::from(r.end()) < 0x80)
                }
                HirKind::Literal(l) => l.0.len() == 1,
                _ => false,
            };
            if atom {
                print(&r.sub, out, max_alt, exact)?;
            } else {
                out.push_str("(?:");
                print(&r.sub, out, max_alt, exact)?;
                out.push(')');
            }
            // Counted repeats cost Hyperscan's compiler one automaton state per copy (minutes for the
            // stock rules' `[_\W]{0,3}` obfuscation patterns): widen them to `*` or `+`. (Two copies
            // then `+` made the `__FILL_THIS_FORM_*` patterns so big that prefilter mode loosened them
            // to a gate every message passed.)
            match (r.min, r.max) {
                (0, Some(1)) => out.push('?'),
                (0, None) => out.push('*'),
                (1, None) => out.push('+'),
                // Exact counts, within the bounds Hyperscan compiles quickly.
                (m, n) if exact.is_some() => {
                    let (atoms, groups) = exact?;
                    let limit = if atom { atoms } else { groups };
                    if m > limit || n.is_some_and(|n| n > limit) {
                        return None;
                    }
                    match n {
                        None => write!(out, "{{{m},}}").ok()?,
                        Some(n) if n == m => write!(out, "{{{m}}}").ok()?,
                        Some(n) => write!(out, "{{{m},{n}}}").ok()?,
                    }
                }
                (0, _) => out.push('*'),
                _ => out.push('+'),
            }
        }
        HirKind::Capture(c) => {
            out.push_str("(?:");
            print(&c.sub, out, max_alt, exact)?;
            out.push(')');
        }
        HirKind::Concat(subs) => {
            let folded: Vec<Option<u8>> = subs.iter().map(folded_letter).collect();
            let mut k = 0;
            while k < subs.len() {
                // A run of case-folded letters (and the letter-free bytes between them) as one
                // caseless group: `(?i:name)` rather than `[Nn][Aa][Mm][Ee]`, a quarter the length.
                let run = (k..subs.len())
                    .take_while(|&j| folded[j].is_some() || caseless_safe(&subs[j]))
                    .count();
                let letters = folded[k..k + run].iter().flatten().count();
                if letters >= 2 {
                    out.push_str("(?i:");
                    for j in k..k + run {
                        match folded[j] {
                            Some(c) => out.push(c as char),
                            None => print(&subs[j], out, max_alt, exact)?,
                        }
                    }
                    out.push(')');
                    k += run;
                } else {
                    print(&subs[k], out, max_alt, exact)?;
                    k += 1;
                }
            }
        }
        HirKind::Alternation(subs) => {
            let start = out.len();
            out.push_str("(?:");
            for (i, s) in subs.iter().enumerate() {
                if i > 0 {
                    out.push('|');
                }
                print(s, out, max_alt, exact)?;
            }
            out.push(')');
            if out.len() - start > max_alt {
                if exact.is_some() {
                    return None;
                }
                // The obfuscation tags spell one letter as dozens of 1-4 byte look-alikes: say the
                // same letter as one byte class per position and length, a superset that stays small
                // (at most SHAPE_MAX lengths of at most SHAPE_MAX classes, whatever it printed as).
                out.truncate(start);
                let shape = short_shape(h)?;
                print_shape(&shape, out)?;
            }
        }
    }
    Some(())
}

/// What `h` matches in a text that is all ASCII, as a pattern of its own: classes cut to their ASCII
/// part, alternatives that need a byte over 0x7f dropped, a repeat of such a part kept only for its
/// zero count. None when `h` cannot match such a text at all. On an ASCII text the two match at the
/// same places (a match of `h` there holds only ASCII bytes, so every part of it matched one of the
/// parts kept), so the result's translations gate the same way on ASCII text.
pub(crate) fn ascii_only(h: &Hir) -> Option<Hir> {
    use regex_syntax::hir::{
        Capture, ClassBytes, ClassBytesRange, ClassUnicode, ClassUnicodeRange,
    };
    Some(match h.kind() {
        HirKind::Empty | HirKind::Look(_) => h.clone(),
        HirKind::Literal(l) => {
            if !l.0.is_ascii() {
                return None;
            }
            h.clone()
        }
        HirKind::Class(Class::Bytes(c)) => {
            let mut c = c.clone();
            c.intersect(&ClassBytes::new([ClassBytesRange::new(0, 0x7f)]));
            if c.ranges().is_empty() {
                return None;
            }
            Hir::class(Class::Bytes(c))
        }
        HirKind::Class(Class::Unicode(c)) => {
            let mut c = c.clone();
            c.intersect(&ClassUnicode::new([ClassUnicodeRange::new('\0', '\x7f')]));
            if c.ranges().is_empty() {
                return None;
            }
            Hir::class(Class::Unicode(c))
        }
        HirKind::Repetition(r) => match ascii_only(&r.sub) {
            Some(sub) => Hir::repetition(regex_syntax::hir::Repetition {
                sub: Box::new(sub),
                ..r.clone()
            }),
            None if r.min == 0 => Hir::empty(),
            None => return None,
        },
        HirKind::Capture(c) => Hir::capture(Capture {
            sub: Box::new(ascii_only(&c.sub)?),
            ..c.clone()
        }),
        HirKind::Concat(subs) => Hir::concat(subs.iter().map(ascii_only).collect::<Option<_>>()?),
        HirKind::Alternation(subs) => {
            let kept: Vec<Hir> = subs.iter().filter_map(ascii_only).collect();
            if kept.is_empty() {
                return None;
            }
            Hir::alternation(kept)
        }
    })
}

/// The lower-case letter when `h` is exactly an ASCII letter in both cases (what `(?i)` makes of one).
fn folded_letter(h: &Hir) -> Option<u8> {
    // The class's ranges as code points, whichever kind of class it is.
    let ranges: Vec<(u32, u32)> = match h.kind() {
        HirKind::Class(Class::Bytes(c)) => c
            .ranges()
            .iter()
            .map(|r| (r.start().into(), r.end().into()))
            .collect(),
        HirKind::Class(Class::Unicode(c)) => c
            .ranges()
            .iter()
            .map(|r| (r.start().into(), r.end().into()))
            .collect(),
        _ => return None,
    };
    match ranges.as_slice() {
        &[(a, b), (c, d)] if a == b && c == d && c < 0x80 => {
            let (upper, lower) = (a as u8, c as u8);
            (upper.is_ascii_uppercase() && lower == upper.to_ascii_lowercase()).then_some(lower)
        }
        _ => None,
    }
}

/// Whether `h` is a literal with no ASCII letter, so a caseless group around it changes nothing.
fn caseless_safe(h: &Hir) -> bool {
    matches!(h.kind(), HirKind::Literal(l) if l.0.iter().all(|b| !b.is_ascii_alphabetic()))
}

/// Longest string `short_shape` describes.
const SHAPE_MAX: usize = 8;

/// The strings a short, fixed-length expression matches, loosened to a byte set per position for each
/// length: a map from length to one 256-bit set per byte. None when the expression is not that shape
/// (a repeat, an assertion, anything longer than `SHAPE_MAX` bytes).
type Shape = std::collections::BTreeMap<usize, Vec<[bool; 256]>>;

fn short_shape(h: &Hir) -> Option<Shape> {
    let one = |sets: Vec<[bool; 256]>| -> Option<Shape> {
        (sets.len() <= SHAPE_MAX).then(|| Shape::from([(sets.len(), sets)]))
    };
    match h.kind() {
        HirKind::Empty => one(Vec::new()),
        HirKind::Literal(l) => one(l
            .0
            .iter()
            .map(|&b| {
                let mut s = [false; 256];
                s[b as usize] = true;
                s
            })
            .collect()),
        HirKind::Class(Class::Bytes(c)) => {
            let mut s = [false; 256];
            for r in c.ranges() {
                (r.start()..=r.end()).for_each(|b| s[b as usize] = true);
            }
            one(vec![s])
        }
        HirKind::Class(Class::Unicode(c)) => {
            let mut out = Shape::new();
            for r in c.ranges() {
                for seq in regex_syntax::utf8::Utf8Sequences::new(r.start(), r.end()) {
                    let sets = seq
                        .as_slice()
                        .iter()
                        .map(|br| {
                            let mut s = [false; 256];
                            (br.start..=br.end).for_each(|b| s[b as usize] = true);
                            s
                        })
                        .collect();
                    merge(&mut out, Shape::from([(seq.as_slice().len(), sets)]));
                }
            }
            Some(out)
        }
        HirKind::Capture(c) => short_shape(&c.sub),
        HirKind::Alternation(subs) => {
            let mut out = Shape::new();
            for s in subs {
                merge(&mut out, short_shape(s)?);
            }
            Some(out)
        }
        HirKind::Concat(subs) => {
            let mut acc = Shape::from([(0, Vec::new())]);
            for s in subs {
                let next = short_shape(s)?;
                let mut prod = Shape::new();
                for (la, sa) in &acc {
                    for (lb, sb) in &next {
                        if la + lb > SHAPE_MAX {
                            return None;
                        }
                        let sets: Vec<[bool; 256]> = sa.iter().chain(sb).copied().collect();
                        merge(&mut prod, Shape::from([(la + lb, sets)]));
                    }
                }
                acc = prod;
            }
            Some(acc)
        }
        HirKind::Look(_) | HirKind::Repetition(_) => None,
    }
}

/// Adds `b`'s strings to `a`'s: per length, the position-wise union of the byte sets.
fn merge(a: &mut Shape, b: Shape) {
    for (len, sets) in b {
        match a.get_mut(&len) {
            Some(have) => {
                for (x, y) in have.iter_mut().zip(&sets) {
                    for k in 0..256 {
                        x[k] |= y[k];
                    }
                }
            }
            None => {
                a.insert(len, sets);
            }
        }
    }
}

fn print_shape(shape: &Shape, out: &mut String) -> Option<()> {
    out.push_str("(?:");
    for (n, sets) in shape.values().enumerate() {
        if n > 0 {
            out.push('|');
        }
        for set in sets {
            let ranges = (0..256usize)
                .filter(|&b| set[b] && (b == 0 || !set[b - 1]))
                .map(|a| {
                    let mut b = a;
                    while b + 1 < 256 && set[b + 1] {
                        b += 1;
                    }
                    (a as u8, b as u8)
                });
            byte_class(out, ranges)?;
        }
    }
    out.push(')');
    Some(())
}

/// Longest alternation a pattern keeps when the whole would be longer than `MAX_PATTERN`. The stock
/// rules' obfuscation tags spell each letter as dozens of UTF-8 look-alikes (`__YOUR_PASSWORD` prints
/// to 31,000 characters): such alternations become one byte class per position and length, a superset
/// that stays short. Phrase lists such as `__FILL_THIS_FORM_*` (about 8,000 characters) stay whole:
/// they cost Hyperscan's compiler a few seconds in all at rule load, and gated they skip a regex that
/// cost ~1 ms on every message.
const MAX_ALTERNATION: usize = 200;

/// Hyperscan's parser refuses longer patterns ("Pattern length exceeds limit": 16,000 in 5.4).
const MAX_PATTERN: usize = 16_000;

/// Literals per database: one per area, since every database is one more pass over the text.
fn literal_pattern(lit: &[u8], id: usize) -> Pattern {
    let mut expr = String::new();
    for &b in lit {
        byte(&mut expr, b);
    }
    Pattern {
        expr,
        // Caseless folds ASCII letters as the literal automaton does (any further folding only
        // widens); single match: the filter asks only whether a literal occurs.
        flags: hyperscan::HS_FLAG_CASELESS | hyperscan::HS_FLAG_SINGLEMATCH,
        id: id as u32,
    }
}

/// What one compile job makes: a chunk of an area's rule patterns, or all of an area's literals.
#[derive(Clone, Copy, PartialEq)]
enum Job {
    Rules(usize),
    Literals(Area),
    /// A chunk of an area's repeated parts (`repeat_part`).
    Repeats(usize),
}

impl HsFilter {
    /// Compiles the databases for the rules in `order`, and one for each area's literals (lower-cased,
    /// each at least one byte: the literal prefilter's); an empty filter without an engine.
    pub fn build(
        rules: &[Rule],
        order: &[usize],
        literals: &[(Area, &[Vec<u8>])],
        engine: Option<&'static Engine>,
    ) -> HsFilter {
        let mut f = HsFilter {
            gated: vec![false; rules.len()],
            counts: vec![0; rules.len()],
            exact: vec![false; rules.len()],
            part_min: vec![0; rules.len()],
            riders: Vec::new(),
            line_ends: vec![false; rules.len()],
            ..HsFilter::default()
        };
        let t0 = std::time::Instant::now();
        let Some(engine) = engine else {
            f.log(t0);
            return f;
        };
        let flags = hyperscan::HS_FLAG_PREFILTER
            | hyperscan::HS_FLAG_SINGLEMATCH
            | hyperscan::HS_FLAG_MULTILINE;
        // Every end, not just the first, for the repeat gates.
        let count_flags = hyperscan::HS_FLAG_PREFILTER | hyperscan::HS_FLAG_MULTILINE;
        let exact_flags = hyperscan::HS_FLAG_SINGLEMATCH | hyperscan::HS_FLAG_MULTILINE;
        let mut cands: Vec<(usize, usize, String)> = Vec::new();
        let mut exacts: Vec<(usize, String)> = Vec::new();
        let mut repeats: Vec<(usize, usize, u32, String)> = Vec::new();
        // Per rule with a repeat gate: its part's narrower forms (`narrower`), printed.
        let mut narrower_of: std::collections::HashMap<usize, Vec<String>> = Default::default();
        // Per rule: whether its superset pattern should report every end (`ends_wanted`).
        let mut wants_ends = vec![false; rules.len()];
        // Per candidate rule: its ASCII twin's HIR (None: it cannot match ASCII text).
        let mut ascii_hir: std::collections::HashMap<usize, Option<Hir>> = Default::default();
        // Per rule with a repeat gate: its part's ASCII twin, where that differs.
        let mut part_twins: std::collections::HashMap<usize, String> = Default::default();
        for &i in order {
            let Some((area, re)) = regex_of(&rules[i].test) else {
                continue;
            };
            let hir = re.fast_source().and_then(parse);
            let Some(expr) = hir.as_ref().and_then(translate_hir) else {
                f.rejected.push((i, "no translation".into()));
                continue;
            };
            if let Some(h) = hir.as_ref().filter(|h| exact_ok(&rules[i], area, re, h)) {
                if let Some(x) = translate_exact(h) {
                    exacts.push((i, x));
                }
            }
            if let Some(a) = area_index(area) {
                if let Some(h) = hir.as_ref() {
                    ascii_hir.insert(i, ascii_only(h));
                }
                // Only where each text is one line the rule matches within (body and rawbody).
                if let (Area::Body | Area::Rawbody, Some(h)) = (area, hir.as_ref()) {
                    match repeat_part(h) {
                        Some(p) => {
                            repeats.push((i, a, p.n, p.expr));
                            narrower_of.insert(i, p.narrower);
                            f.part_min[i] = p.min;
                            if let Some(t) = p.twin {
                                part_twins.insert(i, t);
                            }
                        }
                        None => wants_ends[i] = ends_wanted(&rules[i], re, h, &expr),
                    }
                }
                cands.push((i, a, expr));
            }
        }
        // Each pattern alone first (a refused one would fail its whole chunk), on all cores.
        let mut verdicts = par_map(&cands, |(_, _, expr)| engine.accepts(expr, flags));
        for ((i, _, expr), ok) in cands.iter_mut().zip(verdicts.iter_mut()) {
            if !matches!(ok, Some(Err(e)) if e.contains("end anchors")) {
                continue;
            }
            let Some((_, re)) = regex_of(&rules[*i].test) else {
                continue;
            };
            if let Some(x) = re
                .fast_source()
                .and_then(parse)
                .and_then(|h| translate_hir(&without_ends(&h)))
            {
                *ok = Some(engine.accepts(&x, flags));
                *expr = x;
            }
        }
        let exact_verdicts = par_map(&exacts, |(_, x)| engine.accepts(x, exact_flags));
        // Per rule: its exact pattern, when Hyperscan parses it.
        let mut exact_of: std::collections::HashMap<usize, String> = exacts
            .into_iter()
            .zip(exact_verdicts)
            .filter(|(_, ok)| matches!(ok, Some(Ok(()))))
            .map(|(e, _)| e)
            .collect();
        let rep_verdicts = par_map(&repeats, |(_, _, _, x)| engine.accepts(x, count_flags));
        let mut need = vec![0u32; rules.len()];
        let mut rep_area: Vec<Vec<Pattern>> = (0..AREAS.len()).map(|_| Vec::new()).collect();
        // A part that is another's (the same, or a narrower form of it) rides on that one's scan.
        let accepted: Vec<(usize, usize, &String)> = repeats
            .iter()
            .zip(&rep_verdicts)
            .filter(|(_, ok)| matches!(ok, Some(Ok(()))))
            .map(|((i, a, _, x), _)| (*i, *a, x))
            .collect();
        let mut rides: Vec<(u32, u32)> = Vec::new();
        for &(b, area, x) in &accepted {
            let carrier = accepted.iter().find(|&&(c, ca, cx)| {
                c != b
                    && ca == area
                    && !rides.iter().any(|&(_, r)| r as usize == c)
                    && ((cx == x && c < b) || narrower_of.get(&c).is_some_and(|n| n.contains(x)))
            });
            if let Some(&(c, _, _)) = carrier {
                rides.push((c as u32, b as u32));
            }
        }
        for ((i, a, n, expr), ok) in repeats.into_iter().zip(rep_verdicts) {
            if rides.iter().any(|&(_, r)| r as usize == i) {
                if let Some(Ok(())) = ok {
                    need[i] = n;
                }
                continue;
            }
            if let Some(Ok(())) = ok {
                need[i] = n;
                rep_area[a].push(Pattern {
                    expr,
                    flags: count_flags,
                    id: i as u32,
                });
            }
        }
        let mut per_area: Vec<Vec<Pattern>> = (0..AREAS.len()).map(|_| Vec::new()).collect();
        // The prefilter patterns of the rules given exact ones, for when the compiler refuses those.
        let mut loose: std::collections::HashMap<usize, String> = Default::default();
        for ((i, a, expr), ok) in cands.into_iter().zip(verdicts) {
            match ok {
                Some(Ok(())) => match exact_of.remove(&i) {
                    Some(x) => {
                        per_area[a].push(Pattern {
                            expr: x,
                            flags: exact_flags,
                            id: i as u32,
                        });
                        loose.insert(i, expr);
                    }
                    // Only a rule compiled from its superset pattern from the start: one whose exact
                    // pattern the compiler refuses goes again with HS_FLAG_SINGLEMATCH.
                    None => {
                        let every = wants_ends[i];
                        f.line_ends[i] = every;
                        per_area[a].push(Pattern {
                            flags: if every {
                                flags & !hyperscan::HS_FLAG_SINGLEMATCH
                            } else {
                                flags
                            },
                            expr,
                            id: i as u32,
                        })
                    }
                },
                Some(Err(e)) => f.rejected.push((i, e)),
                None => f.rejected.push((i, "not checked".into())),
            }
        }
        // Each rule's pattern as first compiled, and its superset pattern kept for an exact one: the
        // ASCII twins fall back to whichever of these the rule ends up compiled from.
        let first_pats: std::collections::HashMap<usize, (usize, Pattern)> = per_area
            .iter()
            .enumerate()
            .flat_map(|(a, ps)| ps.iter().map(move |p| (p.id as usize, (a, p.clone()))))
            .collect();
        let loose_pats = loose.clone();
        let chunk = std::env::var("CORREO_HYPERSCAN_CHUNK")
            .ok()
            .and_then(|v| v.parse().ok())
            .filter(|&n: &usize| n > 0)
            .unwrap_or(CHUNK);
        let mut jobs: Vec<(Job, std::sync::Mutex<Vec<Pattern>>)> = Vec::new();
        for &(area, lits) in literals {
            if !lits.is_empty() && lits.iter().all(|l| !l.is_empty()) {
                let pats = lits
                    .iter()
                    .enumerate()
                    .map(|(id, l)| literal_pattern(l, id))
                    .collect();
                jobs.push((Job::Literals(area), std::sync::Mutex::new(pats)));
            }
        }
        for (a, pats) in per_area.into_iter().enumerate() {
            let chunk = if AREAS[a] == Area::Uri {
                URI_CHUNK
            } else {
                chunk
            };
            chunked(Job::Rules(a), pats, chunk, &mut jobs);
        }
        // One job each: these are few and big, and reporting every end makes them slow to compile.
        for (a, pats) in rep_area.into_iter().enumerate() {
            chunked(Job::Repeats(a), pats, 1, &mut jobs);
        }
        // Exact patterns the compiler refuses go again as prefilter patterns.
        let (compiled, retried) =
            compile_jobs_or_loose(engine, &mut jobs, &mut loose, exact_flags, flags, chunk);
        let mut dbs = Vec::new();
        // Twins of the repeat gates' parts, keyed by (area, index in `count_ascii`).
        let mut count_twin_jobs: Jobs<(usize, usize)> = Vec::new();
        for ((job, _), done) in jobs.iter().zip(compiled) {
            let Some((ids, db, rejected)) = done else {
                continue;
            };
            let a = match *job {
                Job::Rules(a) => a,
                Job::Repeats(a) => {
                    // A refused part only leaves its rule without this gate.
                    if let Some(db) = db {
                        let dropped: Vec<usize> =
                            rejected.iter().map(|r| r.0.id as usize).collect();
                        for &id in ids.iter().filter(|id| !dropped.contains(id)) {
                            f.counts[id] = need[id];
                            for &(_, r) in rides.iter().filter(|&&(c, _)| c as usize == id) {
                                f.counts[r as usize] = need[r as usize];
                                f.riders.push((id as u32, r));
                            }
                        }
                        f.count_slots[a].push(dbs.len());
                        f.count_ascii[a].push(dbs.len());
                        if let [id] = ids.as_slice() {
                            let gated = f.counts[*id] > 0;
                            if let Some(t) = part_twins.get(id).filter(|_| gated && twins_wanted())
                            {
                                count_twin_jobs.push((
                                    (a, f.count_ascii[a].len() - 1),
                                    std::sync::Mutex::new(vec![Pattern {
                                        expr: t.clone(),
                                        flags: count_flags,
                                        id: *id as u32,
                                    }]),
                                ));
                            }
                        }
                        dbs.push(db);
                    }
                    continue;
                }
                Job::Literals(area) => {
                    // A literal the compiler refused would go unreported: then that area keeps its
                    // automaton.
                    if let (Some(db), true) = (db, rejected.is_empty()) {
                        f.lit_slots.push((area, dbs.len()));
                        dbs.push(db);
                    }
                    continue;
                }
            };
            let dropped: Vec<usize> = rejected.iter().map(|r| r.0.id as usize).collect();
            f.rejected.extend(
                rejected
                    .into_iter()
                    .filter(|(p, _)| {
                        !(p.flags == exact_flags && retried.contains(&(p.id as usize)))
                    })
                    .map(|(p, why)| (p.id as usize, why)),
            );
            if let Some(db) = db {
                for id in ids.into_iter().filter(|id| !dropped.contains(id)) {
                    f.gated[id] = true;
                    // Still in `loose`: compiled from its exact pattern (the retries took theirs out).
                    f.exact[id] = loose.contains_key(&id);
                }
                f.slots[a].push(dbs.len());
                dbs.push(db);
            }
        }
        // A part's twin stands in for its database when it compiles; else the original does.
        for (((a, k), _), done) in count_twin_jobs
            .iter()
            .zip(compile_jobs(engine, &count_twin_jobs))
        {
            if let Some((_, Some(db), rejected)) = done {
                if rejected.is_empty() {
                    f.count_ascii[*a][*k] = dbs.len();
                    dbs.push(db);
                }
            }
        }
        f.ascii_twins(
            engine,
            &mut dbs,
            &first_pats,
            &loose_pats,
            &ascii_hir,
            (flags, exact_flags),
        );
        match Databases::new(dbs) {
            Some(d) => f.dbs = Some(d),
            None => {
                f.gated.iter_mut().for_each(|g| *g = false);
                f.exact.iter_mut().for_each(|g| *g = false);
                f.lit_slots.clear();
            }
        }
        // A repeat gate narrows the rule's own gate: without that there is nothing to narrow.
        for (c, &g) in f.counts.iter_mut().zip(&f.gated) {
            if !g {
                *c = 0;
            }
        }
        f.log(t0);
        f
    }

    /// Compiles each area's ASCII twin databases (see the module comment) into `dbs` and `ascii_slots`,
    /// after the originals: which rules are gated and exact is settled by then. `first` holds each
    /// rule's area and first pattern, `loose` the superset patterns of exact ones, `ascii` the twins'
    /// HIRs, `flags` the prefilter and exact flags.
    fn ascii_twins(
        &mut self,
        engine: &'static Engine,
        dbs: &mut Vec<hyperscan::Database>,
        first: &std::collections::HashMap<usize, (usize, Pattern)>,
        loose: &std::collections::HashMap<usize, String>,
        ascii: &std::collections::HashMap<usize, Option<Hir>>,
        (flags, exact_flags): (std::ffi::c_uint, std::ffi::c_uint),
    ) {
        if !twins_wanted() {
            return;
        }
        // Per area: (id, the twin's pattern when one is printed, the pattern the rule compiled from).
        let mut per_area: Vec<Vec<(u32, Option<String>, Pattern)>> =
            (0..AREAS.len()).map(|_| Vec::new()).collect();
        let mut ids: Vec<&usize> = first.keys().collect();
        ids.sort_unstable();
        for &id in ids {
            let (a, p) = &first[&id];
            if !self.gated[id] || self.slots[*a].is_empty() {
                continue;
            }
            let exact = self.exact[id];
            // What the rule's database holds now: its exact pattern, or a superset one (its first
            // pattern, or the superset of an exact one the compiler refused).
            let orig = if exact || p.flags != exact_flags {
                p.clone()
            } else {
                match loose.get(&id) {
                    Some(e) => Pattern {
                        expr: e.clone(),
                        flags,
                        id: p.id,
                    },
                    None => continue,
                }
            };
            let twin = match ascii.get(&id) {
                // No match on ASCII text: no pattern, so no report.
                Some(None) => continue,
                Some(Some(h)) if exact => translate_exact(h),
                Some(Some(h)) => translate_hir(h),
                None => None,
            };
            per_area[*a].push((p.id, twin.filter(|t| *t != orig.expr), orig));
        }
        for (a, mut rows) in per_area.into_iter().enumerate() {
            if rows.is_empty() || !rows.iter().any(|r| r.1.is_some()) {
                continue;
            }
            // Body rules with nothing for Hyperscan to anchor on go to dense DFAs (`dfagate`).
            if AREAS[a] == Area::Body && dfa_wanted() {
                let take: Vec<(u32, Hir)> = rows
                    .iter()
                    .filter_map(|(id, twin, orig)| {
                        let i = *id as usize;
                        // Superset patterns only, with no line ends or repeat gate to feed.
                        let plain = orig.flags & hyperscan::HS_FLAG_PREFILTER != 0
                            && !self.exact[i]
                            && !self.line_ends[i]
                            && self.counts[i] == 0;
                        if !plain {
                            return None;
                        }
                        ascii.get(&i)?.as_ref()?;
                        // The printed superset, not the exact twin: its loosened counts (`[_\W]*`
                        // for `{0,3}`) keep the DFA small (26 s to build the exact ones).
                        let h = parse_printed(twin.as_deref().unwrap_or(&orig.expr))?;
                        let lead = h.properties().look_set_prefix();
                        let anchored = lead.contains(Look::Start) || lead.contains(Look::StartLF);
                        (!anchored && super::prefilter::literal_free(&h)).then_some((*id, h))
                    })
                    .collect();
                let (gates, left) = super::dfagate::DfaGates::build(&take);
                let gone: std::collections::HashSet<u32> = take
                    .iter()
                    .map(|(id, _)| *id)
                    .filter(|id| !left.contains(id))
                    .collect();
                rows.retain(|(id, _, _)| !gone.contains(id));
                self.dfa[a] = gates;
            }
            let verdicts = par_map(&rows, |(_, twin, orig)| {
                twin.as_ref()
                    .is_some_and(|t| engine.accepts(t, orig.flags).is_ok())
            });
            let pats: Vec<Pattern> = rows
                .into_iter()
                .zip(verdicts)
                .map(|((_, twin, orig), ok)| match twin {
                    Some(expr) if ok == Some(true) => Pattern { expr, ..orig },
                    _ => orig,
                })
                .collect();
            let mut jobs: Jobs<()> = Vec::new();
            chunked((), pats, ASCII_CHUNK, &mut jobs);
            let compiled = compile_jobs(engine, &jobs);
            // All or nothing: a pattern left out would read as "cannot match" on ASCII text.
            let whole: Option<Vec<hyperscan::Database>> = compiled
                .into_iter()
                .map(|c| match c {
                    Some((_, Some(db), rejected)) if rejected.is_empty() => Some(db),
                    _ => None,
                })
                .collect();
            match whole {
                Some(whole) if !whole.is_empty() => {
                    for db in whole {
                        self.ascii_slots[a].push(dbs.len());
                        dbs.push(db);
                    }
                }
                // Without twins the originals, which hold every rule, scan ASCII text too.
                _ => self.dfa[a] = Default::default(),
            }
        }
    }

    /// "hyperscan VERSION" when databases gate rules, else why not.
    pub fn engine_name(&self) -> String {
        match &self.dbs {
            Some(_) => hyperscan::status(),
            None if Engine::get().is_some() => {
                "literal prefilter only (no database compiled)".into()
            }
            None => hyperscan::status(),
        }
    }

    /// One maillog line per rule compile (daemon start and each reload): which engine gates the rules.
    fn log(&self, t0: std::time::Instant) {
        if !crate::message::log::initialized() {
            return;
        }
        let gated = self.gated.iter().filter(|&&g| g).count().to_string();
        let exact = self.exact.iter().filter(|&&g| g).count().to_string();
        let ms = t0.elapsed().as_millis().to_string();
        let twins = self
            .ascii_slots
            .iter()
            .map(Vec::len)
            .sum::<usize>()
            .to_string();
        crate::message::log::event(
            "spamd",
            "prefilter",
            &[
                ("engine", &self.engine_name()),
                ("rules", &gated),
                ("exact", &exact),
                ("rejected", &self.rejected.len().to_string()),
                ("ascii_dbs", &twins),
                (
                    "dfa_rules",
                    &self
                        .dfa
                        .iter()
                        .map(|d| d.rules())
                        .sum::<usize>()
                        .to_string(),
                ),
                ("ms", &ms),
            ],
        );
    }

    /// Whether any database scans `area` (rules or literals): then the caller joins its texts once.
    pub fn covers(&self, area: Area) -> bool {
        self.dbs.is_some()
            && (area_index(area).is_some_and(|a| !self.slots[a].is_empty())
                || self.lit_slots.iter().any(|&(x, _)| x == area))
    }

    /// Marks in `hits` the rules of `area` that may match in `joined` (the area's texts joined with
    /// '\n', text k starting at `starts[k]`). False when this area has no rule database or a scan
    /// failed: then `hits` says nothing.
    /// For rules with a repeat gate, `lines` gets the texts where they may match, with the ends of
    /// the repeated part in each.
    pub fn scan(
        &self,
        area: Area,
        joined: &[u8],
        starts: &[usize],
        hits: &mut [bool],
        lines: &mut RepeatLines,
    ) -> bool {
        let (Some(dbs), Some(a)) = (&self.dbs, area_index(area)) else {
            return false;
        };
        if self.slots[a].is_empty() {
            return false;
        }
        let whole = Part {
            text: joined,
            starts,
            index: None,
        };
        // An all-ASCII text goes through the twins (where the area has them) and the DFA gates; so do
        // the ASCII texts of one that is not, when the area has twins (`split`).
        let twins = !self.ascii_slots[a].is_empty();
        let ascii = joined.is_ascii();
        let split = (!ascii && twins).then(|| split(joined, starts)).flatten();
        let parts: Vec<(Part, bool)> = match &split {
            Some(s) => vec![(s.ascii.part(), true), (s.other.part(), false)],
            None => vec![(whole, ascii)],
        };
        let mut ends: Vec<(u32, usize, usize)> = Vec::new();
        for (part, ascii) in &parts {
            let slots = if *ascii && twins {
                &self.ascii_slots[a]
            } else {
                &self.slots[a]
            };
            let ok = slots.iter().all(|&slot| {
                dbs.scan_ends(slot, part.text, &mut |id, to| {
                    if let Some(c) = hits.get_mut(id as usize) {
                        *c = true;
                        if self.line_ends[id as usize] {
                            let (l, off) = part.locate(to);
                            ends.push((id, l, off));
                        }
                    }
                })
            });
            if !ok {
                return false;
            }
            if *ascii && twins {
                self.dfa[a].scan(part.text, hits);
            }
        }
        if !ends.is_empty() {
            end_lines(ends, lines);
        }
        if !self.count_slots[a].is_empty() {
            self.repeat_gates(dbs, a, &parts, hits, lines);
        }
        true
    }

    /// Drops from `hits` the rules whose repeated part (`repeat_part`) has fewer distinct ends than
    /// it needs in every one of the texts, and adds to `lines` the texts where the others may match
    /// (sorted, per rule), scanning the repeat databases of area `a` over `parts` (each with whether
    /// it is all ASCII). A failed scan drops nothing.
    fn repeat_gates(
        &self,
        dbs: &Databases,
        a: usize,
        parts: &[(Part, bool)],
        hits: &mut [bool],
        lines: &mut RepeatLines,
    ) {
        let mut ends: Vec<(u32, usize, usize)> = Vec::new();
        for (part, ascii) in parts {
            let slots = if *ascii {
                &self.count_ascii[a]
            } else {
                &self.count_slots[a]
            };
            for &slot in slots {
                let ok = dbs.scan_ends(slot, part.text, &mut |id, to| {
                    let mut add = |r: u32| {
                        if hits.get(r as usize).copied().unwrap_or(false) {
                            let (l, off) = part.locate(to);
                            ends.push((r, l, off));
                        }
                    };
                    add(id);
                    for &(_, r) in self.riders.iter().filter(|&&(c, _)| c == id) {
                        add(r);
                    }
                });
                if !ok {
                    return;
                }
            }
        }
        ends.sort_unstable();
        ends.dedup();
        // Every gated rule is out unless one of its lines has the run (put back below), also one
        // whose part never matched at all.
        for (h, &c) in hits.iter_mut().zip(&self.counts) {
            if c > 0 {
                *h = false;
            }
        }
        let mut k = 0;
        while k < ends.len() {
            let id = ends[k].0 as usize;
            let need = self.counts.get(id).copied().unwrap_or(0) as usize;
            let gap = self.part_min.get(id).copied().unwrap_or(0) as usize;
            let mut at: Vec<(usize, Vec<usize>)> = Vec::new();
            while k < ends.len() && ends[k].0 as usize == id {
                let line = ends[k].1;
                let mut line_ends: Vec<usize> = Vec::new();
                while k < ends.len() && ends[k].0 as usize == id && ends[k].1 == line {
                    line_ends.push(ends[k].2);
                    k += 1;
                }
                if chain(&line_ends, gap) >= need {
                    at.push((line, line_ends));
                }
            }
            if !at.is_empty() {
                if let Some(h) = hits.get_mut(id) {
                    *h = true;
                }
                lines.push((id, at));
            }
        }
    }

    /// Marks in `seen` the literals of `area` that occur in `joined`. None when the area has no literal
    /// database or the scan failed: then the caller runs its automaton instead. Joining only adds
    /// occurrences (across a '\n'), so a literal of any one text is always seen.
    pub fn scan_literals(&self, area: Area, joined: &[u8], seen: &mut [bool]) -> Option<()> {
        let dbs = self.dbs.as_ref()?;
        let &(_, slot) = self.lit_slots.iter().find(|&&(x, _)| x == area)?;
        dbs.scan(slot, joined, &mut |id| {
            if let Some(c) = seen.get_mut(id as usize) {
                *c = true;
            }
        })
        .then_some(())
    }

    /// Whether `area`'s literals have a database (the literal prefilter then builds no automaton).
    pub fn has_literals(&self, area: Area) -> bool {
        self.lit_slots.iter().any(|&(x, _)| x == area)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `texts` joined with '\n' as `Prefilter::scan` joins an area's, and where each starts.
    fn join(texts: &[&[u8]]) -> (Vec<u8>, Vec<usize>) {
        let (mut joined, mut starts) = (Vec::new(), Vec::new());
        for t in texts {
            if !starts.is_empty() {
                joined.push(b'\n');
            }
            starts.push(joined.len());
            joined.extend_from_slice(t);
        }
        (joined, starts)
    }

    /// The filter must never hide a hit: rules whose anchors, word boundaries, flags and `tflags
    /// multiple` counts read the text per line score the same with Hyperscan as with literals alone.
    #[test]
    fn same_hits_with_and_without_hyperscan() {
        use crate::spam::load::load_text;
        use crate::spam::prefilter::Prefilter;
        if !hyperscan::for_tests() {
            return;
        }
        let cf = "body B_START /^second line/\nbody B_END /line\\.$/\nbody B_WORD /\\bfoo\\b/i\n\
                  body B_MULTI /o/\ntflags B_MULTI multiple maxhits=5\n\
                  body B_CROSS /first line.*second/s\nbody B_NOT /^line/\n\
                  rawbody R_ANCHOR /^\\s*<b>bold/im\nfull F_HDR /\\ASubject: hi/\n\
                  uri U_HOST /^https?:\\/\\/example\\.(?:org|net)\\b/i\n\
                  body B_LOOK /foo(?!bar)/\nbody B_BACK /(ba)r\\1/\n\
                  body B_RANGE /x{2,3}y/\nbody B_NOMATCH /zzqqzz/\n\
                  header H_LIT Subject =~ /OTHER/i\nheader H_NOLIT Subject =~ /qqzzqq/\n\
                  body B_REP3 /(?:(?:name|age|city|\u{e2}ge)[:,]\\s?){3}/i\n\
                  body B_REP3N /(?:(?:name|age|city)[:,]\\s?){3}x/i\n\
                  rawbody R_REP2 /(?:<b>\\w+<\\/b>\\s?){2}/\ntflags R_REP2 multiple\n\
                  uri U_PATH /example\\.net\\b/\nrawbody R_BOLD /<b>bo\\w{1,3}d/\n\
                  body B_EARLY_END /(?:$|\\W)baz(?:$|\\W)/\n\
                  body B_WIDE /(?:(?:name|age|city)(?:\\s?number)?[:,]\\s?){4}/i\n\
                  body B_NARROW /(?:(?:name|age|city)[:,]\\s?){2}/i\n";
        let mut rs = crate::spam::rules::compile(load_text(cf));
        assert!(rs.prefilter.hs.gated.iter().any(|&g| g), "nothing gated");
        // B_NARROW's part is B_WIDE's without its optional `number` (or B_REP3N's, the same): it has
        // no scan of its own and rides on another's.
        let narrow = rs.rules.iter().position(|r| r.name == "B_NARROW");
        let narrow = narrow.expect("B_NARROW") as u32;
        assert!(
            rs.prefilter.hs.riders.iter().any(|&(_, r)| r == narrow),
            "{:?}",
            rs.prefilter.hs.riders
        );
        // Rules whose report is their hit, and rules that must still run their regex: anchored to
        // the text, counting, fallback-engine, repeat-gated.
        let exact = |name: &str| {
            let i = rs.rules.iter().position(|r| r.name == name).expect(name);
            rs.prefilter.hs.exact[i]
        };
        for name in ["B_WORD", "B_RANGE", "B_NOMATCH", "U_PATH", "R_BOLD"] {
            assert!(exact(name), "{name} not exact");
        }
        for name in [
            "B_START", "B_END", "B_MULTI", "B_CROSS", "B_LOOK", "B_BACK", "B_REP3", "F_HDR",
        ] {
            assert!(!exact(name), "{name} exact");
        }
        for name in ["B_REP3", "B_REP3N", "R_REP2", "B_WIDE", "B_NARROW"] {
            let i = rs.rules.iter().position(|r| r.name == name).expect(name);
            assert!(rs.prefilter.hs.counts[i] >= 2, "{name} has no repeat gate");
        }
        // A `$` that something follows: Hyperscan refuses it, so the rule is gated without it.
        let early = rs.rules.iter().position(|r| r.name == "B_EARLY_END");
        assert!(rs.prefilter.hs.gated[early.expect("B_EARLY_END")]);
        // B_REP3's part has a non-ASCII alternative: the ASCII texts below are scanned with its twin.
        let hs = &rs.prefilter.hs;
        assert!(
            (0..AREAS.len()).any(|a| hs.count_ascii[a] != hs.count_slots[a]),
            "no repeat-gate twin"
        );
        let msgs: [&[u8]; 6] = [
            // SpamAssassin's body lines are paragraphs: `^second` needs the blank line before it.
            b"Subject: hi\n\nfirst line.\n\nsecond line.\nFOO baz xxy http://example.org/x\n",
            b"Subject: hi\nContent-Type: text/html\n\n<p>line one</p>\n  <b>bold</b> barbar foobar\n",
            b"Subject: other\n\nfoo\n\nline foobar goes on https://example.net\n",
            // The repeat gates: three fields in a row in the last paragraph, and in the first
            // paragraph three fields that are not in a row; two bold words in a row twice.
            b"Subject: form\n\nname: x age, city: y\n\nplain text\n\nName: AGE, city:x\n\
              <b>a</b> <b>b</b> <b>c</b><b>d</b>\n",
            // Fields spread over two paragraphs: the repeat gate must rule the message out.
            b"Subject: form\n\nname: age,\n\ncity: name:\n",
            // Four fields in a row, one with `number`: B_WIDE; and B_NARROW, from B_WIDE's ends.
            b"Subject: wide\n\nname number: age: city, name:\n",
        ];
        let view_hits = |rs: &crate::spam::rules::RuleSet| {
            msgs.iter()
                .map(|m| {
                    let (_, v) = rs.check(m);
                    (v.hit_names(&rs.rules), v.score)
                })
                .collect::<Vec<_>>()
        };
        let with = view_hits(&rs);
        rs.prefilter = Prefilter::with_engine(&rs.rules, &rs.order, None);
        let without = view_hits(&rs);
        assert_eq!(with, without);
        // The anchored rules hit somewhere, so the comparison covers them.
        for name in [
            "B_START",
            "B_END",
            "B_NOT",
            "R_ANCHOR",
            "F_HDR",
            "U_HOST",
            "B_WORD",
            "H_LIT",
            "B_REP3",
            "B_REP3N",
            "R_REP2",
            "B_RANGE",
            "U_PATH",
            "R_BOLD",
            "B_EARLY_END",
            "B_WIDE",
            "B_NARROW",
        ] {
            assert!(
                with.iter().any(|(h, _)| h.iter().any(|n| n == name)),
                "{name}: {with:?}"
            );
        }
    }

    /// A superset-gated body rule gets from the scan the lines its pattern ends in, and `check` then
    /// tries only those: the look-ahead rule hits in the last line, not the first `foo` (followed by
    /// `bar`), with the same verdict as without Hyperscan.
    #[test]
    fn superset_rules_get_their_lines_from_the_scan() {
        use crate::spam::load::load_text;
        use crate::spam::prefilter::{Area, Prefilter};
        if !hyperscan::for_tests() {
            return;
        }
        let cf = "body B_LOOK /foo(?!bar)/\nbody B_NONE /foo(?!d)qq/\n";
        let mut rs = crate::spam::rules::compile(load_text(cf));
        let id = |name: &str| rs.rules.iter().position(|r| r.name == name).expect(name);
        let (look, none) = (id("B_LOOK"), id("B_NONE"));
        let hs = &rs.prefilter.hs;
        assert!(hs.gated[look] && !hs.exact[look] && hs.line_ends[look]);
        let texts: [&[u8]; 5] = [
            b"subject",
            b"nothing here",
            b"a foobar b",
            b"more",
            b"foo end",
        ];
        let (joined, starts) = join(&texts);
        let mut hits = vec![false; rs.rules.len()];
        let mut lines = RepeatLines::new();
        assert!(hs.scan(Area::Body, &joined, &starts, &mut hits, &mut lines));
        assert!(hits[look] && !hits[none]);
        let at: Vec<(usize, Vec<usize>)> = lines
            .iter()
            .find(|l| l.0 == look)
            .map(|l| l.1.clone())
            .expect("no lines for B_LOOK");
        assert_eq!(at, vec![(2, vec![5]), (4, vec![3])]);
        assert!(!lines.iter().any(|l| l.0 == none));
        let msg: &[u8] = b"Subject: subject\n\nnothing here\n\na foobar b\n\nmore\n\nfoo end\n";
        let with = rs.check(msg).1.hit_names(&rs.rules);
        assert!(with.iter().any(|n| n == "B_LOOK"), "{with:?}");
        rs.prefilter = Prefilter::with_engine(&rs.rules, &rs.order, None);
        assert_eq!(with, rs.check(msg).1.hit_names(&rs.rules));
    }

    /// The ASCII form of a pattern keeps what can match ASCII text and nothing else.
    #[test]
    fn ascii_only_cuts_what_needs_high_bytes() {
        let show = |src: &str| {
            let h = ascii_only(&parse(src).unwrap())?;
            translate_exact(&h)
        };
        assert_eq!(show("(?:a|\u{e9})b").as_deref(), Some("ab"));
        assert_eq!(show("(?-u:[a\\xe9])b").as_deref(), Some("ab"));
        assert_eq!(show("x\u{e9}*y").as_deref(), Some("xy"));
        assert_eq!(show("x\u{e9}+y"), None);
        assert_eq!(show("caf\u{e9}"), None);
        // `\W` as the regex crate reads it in bytes: everything but ASCII word bytes, cut at 0x7f.
        assert_eq!(
            show("(?-u:\\W)").as_deref(),
            Some("[\\x00-\\/\\:-\\@\\[-\\^\\`\\{-\\x7f]")
        );
    }

    /// The ASCII twins answer as the originals do: the same hits with Hyperscan as without it, on
    /// ASCII texts (scanned with the twins) and on others, for rules whose patterns have non-ASCII
    /// alternatives, exact and not, and for one that only non-ASCII text can match.
    #[test]
    fn ascii_twins_give_the_same_hits() {
        use crate::spam::load::load_text;
        use crate::spam::prefilter::Prefilter;
        if !hyperscan::for_tests() {
            return;
        }
        let cf = "body B_FUZZY /\\b(?:v|\\\\\\/|\u{fc})[\\W_]{0,3}i[\\W_]{0,3}agra/i\n\
                  body B_HIGH /caf\u{e9}/\nbody B_OPT /price\u{a0}?\\d+/\n\
                  body B_START /^(?:free|gr\u{e1}tis)\\b/\n\
                  rawbody R_CLASS /[\\x80-\\xff]{2}|<b>x/\nuri U_IDN /\\.(?:com|xn--\\w+)\\b/\n\
                  body B_NO_LITERAL /\\b[v\\\\][\\W_]{0,3}[i1!|l][\\W_]{0,3}[a4@][\\W_]{0,3}g/i\n\
                  tflags B_NO_LITERAL nosubject\n\
                  body B_REP /(?:(?:name|age|city)[:,]\\s?){3}/i\n";
        let mut rs = crate::spam::rules::compile(load_text(cf));
        assert!(
            !rs.prefilter.hs.ascii_slots[0].is_empty(),
            "no ASCII twins for the body"
        );
        // A body pattern with no literal goes to a dense DFA (`dfagate`) on ASCII text (one that
        // wants its lines from the scan does not: `nosubject` keeps this one from that in tests).
        assert_eq!(rs.prefilter.hs.dfa[0].rules(), 1);
        let exact = |name: &str| {
            let i = rs.rules.iter().position(|r| r.name == name).expect(name);
            rs.prefilter.hs.exact[i]
        };
        // Twins of both kinds: exact ones, and supersets (a Unicode `\\b`; a text anchor).
        for name in ["B_OPT", "B_HIGH", "R_CLASS", "U_IDN"] {
            assert!(exact(name), "{name} not exact");
        }
        assert!(!exact("B_FUZZY") && !exact("B_START"));
        let msgs: [&[u8]; 5] = [
            b"Subject: hi\n\nget v-i-agra here, price10\n\nfree stuff <b>x http://a.example.com/\n",
            "Subject: hi\n\ncaf\u{e9} \u{fc}-i-agra, price\u{a0}20\n\ngr\u{e1}tis now\n".as_bytes(),
            b"Subject: plain\n\nnothing to see\n",
            "Subject: x\n\nviagra caf\u{e9}\n\nfree\n".as_bytes(),
            // Not all ASCII, but mostly: its ASCII lines go through the twins, DFA and repeat twin
            // (`split`), the other through the originals.
            "Subject: mixed\n\ncaf\u{e9} au lait\n\nfree v-i-agra now\n\nname: age, city: y\n"
                .as_bytes(),
        ];
        let hits = |rs: &crate::spam::rules::RuleSet| {
            msgs.iter()
                .map(|m| rs.check(m).1.hit_names(&rs.rules))
                .collect::<Vec<_>>()
        };
        let with = hits(&rs);
        rs.prefilter = Prefilter::with_engine(&rs.rules, &rs.order, None);
        assert_eq!(with, hits(&rs));
        // Every rule hits in some message and misses in another, ASCII ones included.
        for name in [
            "B_FUZZY",
            "B_HIGH",
            "B_OPT",
            "B_START",
            "R_CLASS",
            "U_IDN",
            "B_NO_LITERAL",
            "B_REP",
        ] {
            let n = with.iter().filter(|h| h.iter().any(|x| x == name)).count();
            assert!(0 < n && n < msgs.len(), "{name}: {with:?}");
        }
        assert!(with[0].iter().any(|x| x == "B_FUZZY"), "{with:?}");
        // On ASCII text (the DFA) and on text that is not (the original database).
        for k in [0, 3, 4] {
            assert!(with[k].iter().any(|x| x == "B_NO_LITERAL"), "{with:?}");
        }
        for name in ["B_HIGH", "B_START", "B_FUZZY", "B_REP"] {
            assert!(with[4].iter().any(|x| x == name), "{name}: {with:?}");
        }
        // The lines a repeat gate names are the area's own, not those of the ASCII half.
        let rs = crate::spam::rules::compile(load_text(cf));
        let hs = &rs.prefilter.hs;
        let rep = rs
            .rules
            .iter()
            .position(|r| r.name == "B_REP")
            .expect("B_REP");
        assert!(hs.counts[rep] >= 2, "B_REP has no repeat gate");
        let texts: [&[u8]; 4] = [
            b"mixed",
            "caf\u{e9}".as_bytes(),
            b"name: age, city: y",
            b"x",
        ];
        let (joined, starts) = join(&texts);
        let halves = split(&joined, &starts).expect("no split");
        assert_eq!(
            (halves.ascii.index, halves.other.index),
            (vec![0, 2, 3], vec![1])
        );
        assert_eq!(halves.ascii.text, b"mixed\nname: age, city: y\nx");
        let mut hits = vec![false; rs.rules.len()];
        let mut lines = RepeatLines::new();
        assert!(hs.scan(Area::Body, &joined, &starts, &mut hits, &mut lines));
        assert!(hits[rep]);
        let at = lines.iter().find(|l| l.0 == rep).map(|l| l.1.clone());
        assert_eq!(
            at.map(|a| a.iter().map(|x| x.0).collect::<Vec<_>>()),
            Some(vec![2])
        );
    }

    /// Ends closer together than a part's shortest match count once: five ends in a run of spaces
    /// after one field name are not five fields.
    #[test]
    fn chain_needs_room_for_each_part() {
        assert_eq!(chain(&[], 4), 0);
        assert_eq!(chain(&[5, 6, 7, 8, 9], 4), 2);
        assert_eq!(chain(&[5, 9, 13, 17, 21], 4), 5);
        assert_eq!(chain(&[5, 6, 7], 0), 3);
        // Greedy from the first end never takes fewer than a run that starts later.
        assert_eq!(chain(&[1, 3, 5, 7, 9], 4), 3);
    }

    /// Exact patterns keep counts and say anchors as Hyperscan reads them under HS_FLAG_MULTILINE;
    /// what they cannot say exactly gets no exact pattern.
    #[test]
    fn prints_exact_patterns() {
        let x = |src: &str| parse(src).as_ref().and_then(translate_exact);
        assert_eq!(
            x("(?-u)a{2,5}b{3}c{4,}").as_deref(),
            Some("a{2,5}b{3}c{4,}")
        );
        assert_eq!(x("(?m-u)^x$").as_deref(), Some("^x$"));
        assert_eq!(x("(?-u)\\Ax(?:\\n?\\z)").as_deref(), Some("\\Ax\\x0a?\\z"));
        assert_eq!(x("(?-u)\\bx\\B").as_deref(), Some("\\bx\\B"));
        // A Unicode word boundary, a large count of a group, an empty match: no exact pattern.
        assert_eq!(x("\\bx"), None);
        assert_eq!(x("(?-u)(?:ab){1,17}"), None);
        assert_eq!(x("(?-u)(?:ab){1,9}").as_deref(), Some("(?:ab){1,9}"));
        assert_eq!(x("(?-u)a{0,500}b"), None);
        assert_eq!(x("(?-u)a*"), None);
    }

    #[test]
    fn prints_bytes_classes_and_anchors() {
        assert_eq!(
            translate("(?-u)ab.c").as_deref(),
            Some("ab[\\x00-\\x09\\x0b-\\xff]c")
        );
        assert_eq!(translate("(?im-u)^x\\b$").as_deref(), Some("^[Xx]\\b$"));
        assert_eq!(translate("(?-u)a{2,5}").as_deref(), Some("a+"));
        // Case-folded letter runs, with the letter-free bytes between them, as one caseless group.
        assert_eq!(
            translate("(?i-u)name: x[0-9]").as_deref(),
            Some("(?i:name\\:\\x20x)[0-9]")
        );
        // Printable punctuation escaped, one-byte classes bare, groups only where needed.
        assert_eq!(
            translate("(?-u)(?:a.b|[.]c)[-]{1,3}(?:xy){2}").as_deref(),
            Some("(?:a[\\x00-\\x09\\x0b-\\xff]b|\\.c)\\-+(?:xy)+")
        );
        // Matches the empty string: left to run always.
        assert_eq!(translate("(?-u)a*"), None);
        // Leading items that can match empty go (a superset needs only the rest); a line anchor stays.
        assert_eq!(translate(r"(?-u)\b_*ab\b").as_deref(), Some("ab\\b"));
        assert_eq!(
            translate(r"(?-u)(?:\b|\s)[_\W]{0,3}x[_\W]{0,3}y").as_deref(),
            translate(r"(?-u)x[_\W]{0,3}y").as_deref()
        );
        assert_eq!(
            translate(r"(?m-u)^\s*ab").as_deref(),
            Some("^[\\x09-\\x0d\\x20]*ab")
        );
        // SpamAssassin's look-alike tag for "A" (25_replace.cf). Alone it is printed in full; a rule
        // spelling a phrase with such tags passes Hyperscan's length limit, and then each tag becomes
        // one byte class per position and length, which still matches every look-alike and little else.
        let tag = r"(?:[aA\@\xc0\xc1\xc2\xc3\xc4\xc5\xc6\xe4\xe3\xe2\xe0\xe1\xe2\xe3\xe4\xe5\xe6]|[\xb6\xc1\xc4\xcb]|[\xc3][\x80\x81\x82\x83\x84\x85\xa0\xa1\xa2\xa3\xa4\xa5]|[\xc4][\x80\x81\x82\x83\x84\x85]|[\xc9][\x91]|[\xce][\x86\x91\x94\x9b\xac\xb1]|[\xd0][\x90\xb0]|[\xd1][\xa6\xa7]|[\xd3][\x90\x91\x92\x93]|[\xe1](?:[\x8e][\xaa]|[\xb8][\x80\x81]|[\xba][\x9a\xa0-\xb7]|[\xbc][\x80-\x8f]|[\xbd][\xb0\xb1]|[\xbe][\x80-\x8f\xb0-\xbc])|[\xf0][\x9d](?:[\x90][\x80\x9a\xb4]|[\x91][\x8e\xa8]|[\x92][\x82\x9c\xb6]|[\x93][\x90\xaa]|[\x94][\xb8\x92]|[\x95][\x92]|[\x96][\xa0\xba]|[\x97][\x94\xae]|[\x98][\x88\xa2\xbc]|[\x99][\x96\xb0]|[\x9a][\x8a\xa8]|[\x9b][\x82\xa2\xbc]|[\x9c][\x9c\xb6]|[\x9d][\x96\xb0]|[\x9e][\x90\xaa]))";
        let alone = translate(&format!("(?-u)x{tag}y")).expect("translated");
        assert!(
            alone.len() > MAX_ALTERNATION && alone.len() < MAX_PATTERN,
            "{alone}"
        );
        let many = format!("(?-u)x{tag}y{}", format!("(?:q{tag})?").repeat(40));
        let out = translate(&many).expect("translated");
        assert!(out.len() < MAX_PATTERN, "{}", out.len());
        let sup = regex::bytes::Regex::new(&format!("(?-u)^{out}$")).expect("valid");
        let exact = regex::bytes::Regex::new(&format!("(?-u)^x{tag}y$")).expect("valid");
        let whole = regex::bytes::Regex::new(&format!("(?-u)^{alone}$")).expect("valid");
        for m in [
            &b"xay"[..],
            b"xAy",
            b"x@y",
            b"x\xce\x91y",
            b"x\xe1\xbe\xb5y",
            b"x\xf0\x9d\x9e\xaay",
        ] {
            assert!(
                exact.is_match(m) && sup.is_match(m) && whole.is_match(m),
                "{m:?} {out}"
            );
        }
        assert!(!sup.is_match(b"xby") && !sup.is_match(b"x y"), "{out}");
        assert!(
            !whole.is_match(b"xby") && !whole.is_match(b"x\xce\x92y"),
            "{alone}"
        );
    }
}
