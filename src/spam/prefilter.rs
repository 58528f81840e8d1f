//! The literal prefilter: for every regex rule whose matches must contain one of a few literals
//! (found by regex-syntax's extractor), those literals go into one set per text kind. A message's text
//! is scanned once per kind; only rules whose literals occurred run their regex. Rules without usable
//! literals (and negated header rules) always run. The filter can only skip rules that cannot match, so
//! results never change; only the cost per rule shrinks.
//!
//! Without Hyperscan each set is an Aho-Corasick automaton run over each text. With it, each set is a
//! Hyperscan literal database (several times faster than the automaton's overlapping walk), scanned
//! over the kind's texts joined with '\n' in the same pass-preparation as `hsfilter`'s rule databases;
//! joining only adds occurrences, and a failed scan lets every rule of the set run. `hsfilter` also
//! gates body, rawbody, full and uri rules by their whole pattern, and a rule runs only if every filter
//! that gates it lets it.

use super::rules::{Rule, Test};
use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};

/// (literal, rule index) pairs for one area.
type Literals = Vec<(Vec<u8>, usize)>;
/// For each literal of an area, the rules it vouches for.
type PatRules = Vec<Vec<usize>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Area {
    Header,
    Body,
    Rawbody,
    Full,
    Uri,
}

#[derive(Debug, Default)]
pub struct AreaFilter {
    /// None when Hyperscan holds this area's literals (or the automaton could not be built).
    ac: Option<AhoCorasick>,
    /// For each literal, the rules it vouches for.
    pat_rules: PatRules,
}

#[derive(Debug, Default)]
pub struct Prefilter {
    /// Per rule: the area whose scan gates it, or None to always run.
    pub gated: Vec<Option<Area>>,
    /// Per rule: whether its literals gate it (Hyperscan may gate it too).
    pub lit_gated: Vec<bool>,
    areas: Vec<(Area, AreaFilter)>,
    /// The rules each area gates (`gated`), so a scan visits its own rules rather than every rule of
    /// the set: the walk over all of them, once per area, was 4% of a message's time.
    by_area: Vec<(Area, Vec<usize>)>,
    /// Hyperscan, when loaded: gates the rules of its areas instead of their literals.
    pub hs: super::hsfilter::HsFilter,
}

fn area_of(t: &Test) -> Option<(Area, &super::perlre::Re)> {
    match t {
        Test::Header {
            re,
            negate: false,
            unset: None,
            ..
        } => Some((Area::Header, re)),
        Test::Body(re) => Some((Area::Body, re)),
        Test::Rawbody(re) => Some((Area::Rawbody, re)),
        Test::Full(re) => Some((Area::Full, re)),
        Test::Uri(re) => Some((Area::Uri, re)),
        _ => None,
    }
}

/// Lower-cased literals of which every match must contain at least one, or None when the pattern has no
/// usable set (every literal at least `MIN_LIT` bytes). Found anywhere in the pattern, not only at its start:
/// `\bth(?:is|at) [a@]dvert` is gated on "dvert" rather than on the common word prefix "th".
fn literals(src: &str) -> Option<Vec<Vec<u8>>> {
    let hir = regex_syntax::ParserBuilder::new()
        .utf8(false)
        .build()
        .parse(src)
        .ok()?;
    let lits = required(&hir).best()?;
    let mut out: Vec<Vec<u8>> = lits.into_iter().collect();
    out.sort();
    out.dedup();
    Some(out)
}

/// Whether `hir` has no set of required literals (`literals`): nothing a literal scan could anchor on.
pub(crate) fn literal_free(hir: &regex_syntax::hir::Hir) -> bool {
    required(hir).best().is_none()
}

/// Shorter literals match almost everywhere: not worth gating on.
const MIN_LIT: usize = 3;
/// Longest literal kept: a required literal's prefix is still required, and short ones keep the automaton small.
const MAX_LIT: usize = 16;
/// Most strings in one literal set (alternations and classes multiply).
const MAX_SET: usize = 64;
/// Biggest class expanded into single-character literals.
const MAX_CLASS: usize = 8;

type Set = std::collections::BTreeSet<Vec<u8>>;

/// What a sub-pattern tells the filter: `exact`, every string it can match (when few, lower-cased); `req`,
/// literals of which each match contains one.
#[derive(Default)]
struct Req {
    exact: Option<Set>,
    req: Option<Set>,
}

/// Shortest literal in a set; sets are ranked by it.
fn min_len(s: &Set) -> usize {
    s.iter().map(Vec::len).min().unwrap_or(0)
}

/// The better of two literal sets: longer shortest literal, then fewer literals.
fn better(a: Option<Set>, b: Option<Set>) -> Option<Set> {
    match (a, b) {
        (Some(a), Some(b)) => {
            let (la, lb) = (min_len(&a).min(MAX_LIT), min_len(&b).min(MAX_LIT));
            if la > lb || (la == lb && a.len() <= b.len()) {
                Some(a)
            } else {
                Some(b)
            }
        }
        (a, b) => a.or(b),
    }
}

impl Req {
    fn exact(set: Set) -> Req {
        Req {
            exact: Some(set),
            req: None,
        }
    }
    /// The literal set to gate on, if it is selective enough.
    fn best(self) -> Option<Set> {
        better(self.exact, self.req).filter(|s| !s.is_empty() && min_len(s) >= MIN_LIT)
    }
}

/// Every concatenation of a string of `a` with one of `b`, cut to `MAX_LIT` bytes; None when too many.
fn product(a: &Set, b: &Set) -> Option<Set> {
    if a.len() * b.len() > MAX_SET {
        return None;
    }
    let mut out = Set::new();
    for x in a {
        for y in b {
            let mut s = x.clone();
            s.extend_from_slice(y);
            s.truncate(MAX_LIT);
            out.insert(s);
        }
    }
    Some(out)
}

/// Lower-cases ASCII, as the automaton matches ASCII case-insensitively.
fn lower(s: &[u8]) -> Vec<u8> {
    s.to_ascii_lowercase()
}

fn required(h: &regex_syntax::hir::Hir) -> Req {
    use regex_syntax::hir::{Class, HirKind};
    match h.kind() {
        HirKind::Empty | HirKind::Look(_) => Req::exact(Set::from([Vec::new()])),
        HirKind::Literal(l) => Req::exact(Set::from([lower(&l.0)])),
        HirKind::Class(Class::Bytes(c)) => {
            let mut set = Set::new();
            for r in c.ranges() {
                for b in r.start()..=r.end() {
                    set.insert(lower(&[b]));
                    if set.len() > MAX_CLASS {
                        return Req::default();
                    }
                }
            }
            Req::exact(set)
        }
        HirKind::Class(Class::Unicode(c)) => {
            let mut set = Set::new();
            for r in c.ranges() {
                for cp in u32::from(r.start())..=u32::from(r.end()) {
                    let Some(ch) = char::from_u32(cp) else {
                        continue;
                    };
                    let mut buf = [0u8; 4];
                    set.insert(lower(ch.encode_utf8(&mut buf).as_bytes()));
                    if set.len() > MAX_CLASS {
                        return Req::default();
                    }
                }
            }
            Req::exact(set)
        }
        HirKind::Capture(c) => required(&c.sub),
        HirKind::Repetition(r) => {
            if r.min == 0 {
                return Req::default();
            }
            let sub = required(&r.sub);
            // One copy is required; the exact set of the whole repetition is not tracked.
            Req {
                exact: None,
                req: better(sub.exact, sub.req),
            }
        }
        HirKind::Concat(subs) => {
            let mut best: Option<Set> = None;
            // The running product of consecutive exact parts.
            let mut run: Option<Set> = Some(Set::from([Vec::new()]));
            let mut all_exact = true;
            for s in subs {
                let r = required(s);
                best = better(best, r.req);
                match r.exact {
                    Some(e) => {
                        let next = run.as_ref().and_then(|cur| product(cur, &e));
                        match next {
                            Some(n) => run = Some(n),
                            None => {
                                // Too many combinations: keep what the run had, start again here.
                                all_exact = false;
                                best = better(best, run.take());
                                run = Some(e);
                            }
                        }
                    }
                    None => {
                        all_exact = false;
                        best = better(best, run.take());
                        run = Some(Set::from([Vec::new()]));
                    }
                }
            }
            if all_exact {
                Req {
                    exact: run,
                    req: best,
                }
            } else {
                Req {
                    exact: None,
                    req: better(best, run),
                }
            }
        }
        HirKind::Alternation(subs) => {
            let mut exact = Some(Set::new());
            let mut req = Some(Set::new());
            for s in subs {
                let r = required(s);
                let lits = better(r.exact.clone(), r.req);
                exact = match (exact, r.exact) {
                    (Some(mut a), Some(b)) if a.len() + b.len() <= MAX_SET => {
                        a.extend(b);
                        Some(a)
                    }
                    _ => None,
                };
                req = match (req, lits) {
                    (Some(mut a), Some(b)) if a.len() + b.len() <= MAX_SET => {
                        a.extend(b);
                        Some(a)
                    }
                    _ => None,
                };
            }
            Req { exact, req }
        }
    }
}

impl Prefilter {
    /// Literals, plus Hyperscan when it is loaded.
    pub fn build(rules: &[Rule], order: &[usize]) -> Prefilter {
        Prefilter::with_engine(rules, order, super::hyperscan::Engine::get())
    }

    /// `engine` None: literals only (what runs without libhs, and the reference the tests compare to).
    pub fn with_engine(
        rules: &[Rule],
        order: &[usize],
        engine: Option<&'static super::hyperscan::Engine>,
    ) -> Prefilter {
        let mut gated: Vec<Option<Area>> = vec![None; rules.len()];
        let mut lit_gated = vec![false; rules.len()];
        let mut per_area: Vec<(Area, Literals)> = Vec::new();
        for &i in order {
            let Some((area, re)) = area_of(&rules[i].test) else {
                continue;
            };
            let Some(src) = re.fast_source() else {
                continue;
            };
            let Some(lits) = literals(src) else { continue };
            gated[i] = Some(area);
            lit_gated[i] = true;
            let slot = match per_area.iter().position(|(a, _)| *a == area) {
                Some(p) => p,
                None => {
                    per_area.push((area, Vec::new()));
                    per_area.len() - 1
                }
            };
            for l in lits {
                per_area[slot].1.push((l, i));
            }
        }
        // Per area: the distinct literals, and for each the rules it vouches for.
        let mut tables: Vec<(Area, Vec<Vec<u8>>, PatRules)> = Vec::new();
        for (area, pairs) in per_area {
            let mut pats: Vec<Vec<u8>> = Vec::new();
            let mut pat_rules: Vec<Vec<usize>> = Vec::new();
            let mut index = std::collections::HashMap::new();
            for (lit, rule) in pairs {
                let id = *index.entry(lit.clone()).or_insert_with(|| {
                    pats.push(lit);
                    pat_rules.push(Vec::new());
                    pats.len() - 1
                });
                pat_rules[id].push(rule);
            }
            tables.push((area, pats, pat_rules));
        }
        let lit_sets: Vec<(Area, &[Vec<u8>])> = tables
            .iter()
            .map(|(a, pats, _)| (*a, pats.as_slice()))
            .collect();
        let hs = super::hsfilter::HsFilter::build(rules, order, &lit_sets, engine);
        let mut pf = Prefilter {
            gated,
            lit_gated,
            areas: Vec::new(),
            by_area: Vec::new(),
            hs,
        };
        for &i in order {
            if pf.hs.gated[i] {
                if let Some((area, _)) = area_of(&rules[i].test) {
                    pf.gated[i] = Some(area);
                }
            }
        }
        for (area, pats, pat_rules) in tables {
            if pf.hs.has_literals(area) {
                pf.areas.push((
                    area,
                    AreaFilter {
                        ac: None,
                        pat_rules,
                    },
                ));
                continue;
            }
            let ac = AhoCorasickBuilder::new()
                .ascii_case_insensitive(true)
                .match_kind(MatchKind::Standard)
                .build(&pats)
                .ok();
            if ac.is_none() {
                // Could not build: ungate this area's rules rather than risk skipping a match.
                for i in 0..pf.gated.len() {
                    if pf.gated[i] == Some(area) {
                        pf.lit_gated[i] = false;
                        if !pf.hs.gated[i] {
                            pf.gated[i] = None;
                        }
                    }
                }
                continue;
            }
            pf.areas.push((area, AreaFilter { ac, pat_rules }));
        }
        // Where Hyperscan gates every rule the literals gate, it says all they would: its pattern is
        // the rule's whole regex, literals included. Scanning the literals too cost ~40 us a message
        // (mostly the body's) and, over the 200-message sample, never ruled out a rule Hyperscan had
        // let through. If a Hyperscan scan fails, those rules then run ungated.
        for area in super::hsfilter::AREAS {
            let mut rules_of = (0..pf.gated.len()).filter(|&i| pf.gated[i] == Some(area));
            if pf.hs.covers(area) && rules_of.all(|i| !pf.lit_gated[i] || pf.hs.gated[i]) {
                pf.areas.retain(|(a, _)| *a != area);
                for i in 0..pf.gated.len() {
                    if pf.gated[i] == Some(area) {
                        pf.lit_gated[i] = false;
                    }
                }
            }
        }
        for (i, area) in pf.gated.iter().enumerate() {
            let Some(area) = *area else { continue };
            match pf.by_area.iter_mut().find(|(a, _)| *a == area) {
                Some((_, rules)) => rules.push(i),
                None => pf.by_area.push((area, vec![i])),
            }
        }
        pf
    }

    /// Marks in `cand` the rules of `area` that may match in `texts`: those Hyperscan reports, and
    /// those whose literals occur; and in `sure` those of them whose Hyperscan pattern is exact
    /// (`HsFilter::exact`), which do match.
    pub fn scan<'a>(
        &self,
        area: Area,
        texts: impl Iterator<Item = &'a [u8]> + Clone,
        cand: &mut [bool],
        sure: &mut [bool],
        lines: &mut super::hsfilter::RepeatLines,
    ) {
        let n = cand.len();
        let mut hs = vec![false; n];
        let mut lits = vec![false; n];
        let mut hs_ok = false;
        let mut lits_done = false;
        if self.hs.covers(area) {
            thread_local! {
                // The joined texts and where each starts in them.
                static JOINED: std::cell::RefCell<(Vec<u8>, Vec<usize>)> =
                    const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
            }
            JOINED.with(|j| {
                let Ok(mut j) = j.try_borrow_mut() else {
                    return;
                };
                let (joined, starts) = &mut *j;
                joined.clear();
                starts.clear();
                for (k, t) in texts.clone().enumerate() {
                    if k > 0 {
                        joined.push(b'\n');
                    }
                    starts.push(joined.len());
                    joined.extend_from_slice(t);
                }
                hs_ok = self.hs.scan(area, joined, starts, &mut hs, lines);
                if let Some((_, f)) = self.areas.iter().find(|(a, _)| *a == area) {
                    let mut seen = vec![false; f.pat_rules.len()];
                    if self.hs.scan_literals(area, joined, &mut seen).is_some() {
                        lits_done = true;
                        for (p, _) in seen.iter().enumerate().filter(|(_, &s)| s) {
                            for &r in &f.pat_rules[p] {
                                lits[r] = true;
                            }
                        }
                    }
                }
            });
        }
        if !lits_done {
            self.scan_literals(area, texts, &mut lits);
        }
        let gated = self.by_area.iter().find(|(a, _)| *a == area);
        for &i in gated.map_or(&[][..], |(_, r)| r.as_slice()) {
            // Each filter reports a superset of the rule's matches: a rule both gate runs only if both
            // let it. A failed scan lets every rule it gates through.
            let by_hs = !self.hs.gated[i] || !hs_ok || hs[i];
            let by_lits = !self.lit_gated[i] || lits[i];
            cand[i] |= by_hs && by_lits;
            if hs_ok && hs[i] && by_lits && self.hs.exact.get(i).copied().unwrap_or(false) {
                sure[i] = true;
            }
        }
    }

    /// Marks in `cand` the rules of `area` whose literals occur in `texts`.
    fn scan_literals<'a>(
        &self,
        area: Area,
        texts: impl Iterator<Item = &'a [u8]>,
        cand: &mut [bool],
    ) {
        let Some((_, f)) = self.areas.iter().find(|(a, _)| *a == area) else {
            return;
        };
        let Some(ac) = &f.ac else {
            // Hyperscan holds these literals but its scan failed: every rule they gate may match.
            for rules in &f.pat_rules {
                for &r in rules {
                    cand[r] = true;
                }
            }
            return;
        };
        let mut seen = vec![false; f.pat_rules.len()];
        for t in texts {
            for m in ac.find_overlapping_iter(t) {
                let p = m.pattern().as_usize();
                if !seen[p] {
                    seen[p] = true;
                    for &r in &f.pat_rules[p] {
                        cand[r] = true;
                    }
                }
            }
        }
    }
}
