//! Exact matching, with one small automaton, of a pattern that is one long part repeated:
//! `(?:X){n}` (`__FILL_THIS_FORM_SHORT2` and `LONG2`, X a 6,000-character list of form-field names).
//!
//! Why: the regex crate builds one lazy DFA for the whole `X{n}`, n copies of X's automaton, and on a
//! fresh daemon each line it reads builds new states out of those thousands of NFA states: ~0.45 ms a
//! run, 0.2 ms a message over the sample, for rules that hit on 10 of 200 messages.
//!
//! How: `X{n}` (also `X{n,m}`, which matches where `X{n}` does) matches a text iff there are positions
//! p0 < p1 < ... < pn with X matching exactly each [p_k, p_k+1). One unanchored scan of X's DFA, which
//! reports every place a match of X ends (`MatchKind::All`, as in `backref.rs`), gives the p1; from
//! each p_k an anchored scan gives every possible p_k+1. X's DFA is an nth of the size, and its
//! anchored runs die within a few bytes of most starts. When the Hyperscan gate has named the places
//! where X may end (a superset of the p1), the runs go forward from those first, and a reverse run
//! confirms p1 only at a place where n - 1 parts follow.
//!
//! The invariant: `Repeat::is_match` answers what the rule's regex answers on the same text, or None
//! when the DFA gives up (a Unicode word boundary beside non-ASCII text), and the caller asks the regex.

use super::backref::ends;
use super::perlre::DFA_CACHE;
use regex_automata::hybrid::dfa::{Cache, DFA};
use regex_automata::nfa::thompson;
use regex_automata::util::pool::Pool;
use regex_automata::{Anchored, Input, MatchKind};
use regex_syntax::hir::{Hir, HirKind, Repetition};

type CachePool = Pool<[Cache; 2], Box<dyn Fn() -> [Cache; 2] + Send + Sync>>;

/// Shortest rule source worth it: short patterns build small automata anyway. (Unit tests use short
/// patterns.)
const MIN_SOURCE: usize = if cfg!(test) { 1 } else { 1000 };

pub struct Repeat {
    /// X forward, every end reported (unanchored: from any start; anchored: from one).
    x: DFA,
    /// X reversed: whether some match of X ends at a given place.
    rev: DFA,
    n: u32,
    caches: CachePool,
}

impl std::fmt::Debug for Repeat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repeat")
            .field("n", &self.n)
            .finish_non_exhaustive()
    }
}

/// The repetition `hir` (the parse of a rule's source `src`) is, through its capture groups, when
/// `Repeat` takes it: long enough, a part repeated at least twice, the part never empty.
fn whole_repeat<'h>(src: &str, hir: &'h Hir) -> Option<&'h Repetition> {
    if src.len() < MIN_SOURCE {
        return None;
    }
    let mut h = hir;
    while let HirKind::Capture(c) = h.kind() {
        h = &c.sub;
    }
    let HirKind::Repetition(r) = h.kind() else {
        return None;
    };
    (r.min >= 2 && r.sub.properties().minimum_len().is_some_and(|n| n > 0)).then_some(r)
}

/// Whether `Repeat::of` would take `src` (parsed as `hir`, bytes mode), without building its automata.
pub fn takes(src: &str, hir: &Hir) -> bool {
    whole_repeat(src, hir).is_some()
}

impl Repeat {
    /// The matcher for a rule's regex source (`Re::fast_source`, regex crate syntax) when the whole
    /// pattern is a part repeated at least twice, the part never empty; None otherwise.
    pub fn of(src: &str) -> Option<Repeat> {
        let hir = regex_syntax::ParserBuilder::new()
            .utf8(false)
            .build()
            .parse(src)
            .ok()?;
        let r = whole_repeat(src, &hir)?;
        let dfa = |reverse: bool| {
            let nfa = thompson::Compiler::new()
                .configure(
                    thompson::Config::new()
                        .utf8(false)
                        .reverse(reverse)
                        .which_captures(thompson::WhichCaptures::None),
                )
                .build_from_hir(&r.sub)
                .ok()?;
            DFA::builder()
                .configure(
                    DFA::config()
                        .match_kind(MatchKind::All)
                        .cache_capacity(DFA_CACHE),
                )
                .build_from_nfa(nfa)
                .ok()
        };
        let (x, rev) = (dfa(false)?, dfa(true)?);
        let (a, b) = (x.clone(), rev.clone());
        Some(Repeat {
            x,
            rev,
            n: r.min,
            caches: Pool::new(Box::new(move || [a.create_cache(), b.create_cache()])),
        })
    }

    /// Whether the pattern matches somewhere in `h`; None when a DFA gave up. `part_ends`, when the
    /// caller knows them (the Hyperscan repeat gate reports them): places including every one where a
    /// match of the part ends in `h`. Then no scan over all of `h` is needed: the first part of a
    /// match ends at one of them, so the pattern matches iff at some given place n - 1 more parts
    /// follow (forward runs) and a part really ends there (a reverse run, which may stop at the first
    /// match it sees). The reverse run comes last because it is the costly one: the part's reverse
    /// DFA builds many lazy states on new text, where the forward runs die within a few bytes of most
    /// places, and from most places given no run of parts follows.
    pub fn is_match(&self, h: &[u8], part_ends: Option<&[usize]>) -> Option<bool> {
        let mut guard = self.caches.get();
        let [cache, rev_cache] = &mut *guard;
        // Every end of a part starting at p, per p met so far (a place can be reached by runs of
        // different lengths).
        let mut from: std::collections::HashMap<usize, Vec<usize>> = Default::default();
        let Some(e) = part_ends else {
            // Where a run of k parts can end, for k = 1, 2, ... n.
            let mut reach = Vec::new();
            ends(
                &self.x,
                cache,
                h,
                (0, h.len()),
                Anchored::No,
                None,
                &mut reach,
            )?;
            for _ in 1..self.n {
                let mut next = Vec::new();
                for &p in &reach {
                    next.extend_from_slice(self.ends_from(p, h, cache, &mut from)?);
                }
                next.sort_unstable();
                next.dedup();
                reach = next;
                if reach.is_empty() {
                    break;
                }
            }
            return Some(!reach.is_empty());
        };
        // Per (place, parts still to come): whether they can follow.
        let mut can: std::collections::HashMap<(usize, u32), bool> = Default::default();
        for &p in e.iter().filter(|&&p| p <= h.len()) {
            if self.follows(p, self.n - 1, h, cache, &mut from, &mut can)? {
                let input = Input::new(h)
                    .span(0..p)
                    .anchored(Anchored::Yes)
                    .earliest(true);
                if self.rev.try_search_rev(rev_cache, &input).ok()?.is_some() {
                    return Some(true);
                }
            }
        }
        Some(false)
    }

    /// Every place a match of the part starting at `p` ends (memoized in `from`).
    fn ends_from<'m>(
        &self,
        p: usize,
        h: &[u8],
        cache: &mut Cache,
        from: &'m mut std::collections::HashMap<usize, Vec<usize>>,
    ) -> Option<&'m [usize]> {
        Some(match from.entry(p) {
            std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => {
                let mut e = Vec::new();
                ends(&self.x, cache, h, (p, h.len()), Anchored::Yes, None, &mut e)?;
                v.insert(e)
            }
        })
    }

    /// Whether `k` parts in a row can start at `p`.
    fn follows(
        &self,
        p: usize,
        k: u32,
        h: &[u8],
        cache: &mut Cache,
        from: &mut std::collections::HashMap<usize, Vec<usize>>,
        can: &mut std::collections::HashMap<(usize, u32), bool>,
    ) -> Option<bool> {
        if k == 0 {
            return Some(true);
        }
        if let Some(&c) = can.get(&(p, k)) {
            return Some(c);
        }
        let next = self.ends_from(p, h, cache, from)?.to_vec();
        let mut ok = false;
        for q in next {
            if self.follows(q, k - 1, h, cache, from, can)? {
                ok = true;
                break;
            }
        }
        can.insert((p, k), ok);
        Some(ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On every short text over a small alphabet, the matcher answers what the regex crate answers for
    /// the whole pattern: parts of different lengths, parts that are prefixes of others, word
    /// boundaries inside the part, `{n,m}`, case folding.
    #[test]
    fn agrees_with_the_regex_crate() {
        let pats = [
            r"(?-u)(?:ab|a){3}",
            r"(?-u)(?:(?:ab|a|ba)[, ]?){3}",
            r"(?-u)(?:\ba[b ]{0,2}){2}",
            r"(?-u)(?i:(?:AB?\b ?){2,4})",
            r"(?-u)((?:b+a){3})",
        ];
        let alphabet = [b'a', b'b', b' ', b','];
        for pat in pats {
            let want = regex::bytes::Regex::new(pat).unwrap();
            let rp = Repeat::of(pat).unwrap_or_else(|| panic!("{pat}: no matcher"));
            let mut texts = 0;
            for len in 0..=7u32 {
                for code in 0..4usize.pow(len) {
                    let t: Vec<u8> = (0..len)
                        .map(|k| alphabet[(code / 4usize.pow(k)) % 4])
                        .collect();
                    let want = Some(want.is_match(&t));
                    let show = String::from_utf8_lossy(&t);
                    assert_eq!(rp.is_match(&t, None), want, "{pat} on {show:?}");
                    // Given places to start from: every place (a superset of the part's ends), and
                    // the exact ends from the scan `None` starts with.
                    let every: Vec<usize> = (0..=t.len()).collect();
                    assert_eq!(rp.is_match(&t, Some(&every)), want, "{pat} on {show:?}");
                    let mut exact = Vec::new();
                    let mut c = rp.x.create_cache();
                    ends(
                        &rp.x,
                        &mut c,
                        &t,
                        (0, t.len()),
                        Anchored::No,
                        None,
                        &mut exact,
                    );
                    assert_eq!(rp.is_match(&t, Some(&exact)), want, "{pat} on {show:?}");
                    texts += 1;
                }
            }
            assert!(texts > 20_000);
        }
    }

    #[test]
    fn only_whole_repeats() {
        assert!(Repeat::of(r"(?:ab){3}").is_some());
        assert!(Repeat::of(r"x(?:ab){3}").is_none());
        assert!(Repeat::of(r"(?:ab){1,3}").is_none());
        assert!(Repeat::of(r"(?:a?){3}").is_none());
    }
}
