//! The literal prefilter: for every regex rule whose matches must start with one of a few literals
//! (found by regex-syntax's extractor), those literals go into one Aho-Corasick automaton per text kind.
//! A message's text is scanned once per kind; only rules whose literals occurred run their regex. Rules
//! without usable literals (and negated header rules) always run. The filter can only skip rules that
//! cannot match, so results never change; only the cost per rule shrinks.

use super::rules::{Rule, Test};
use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use regex_syntax::hir::literal::{ExtractKind, Extractor};

/// (literal, rule index) pairs for one area.
type Literals = Vec<(Vec<u8>, usize)>;

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
    ac: Option<AhoCorasick>,
    /// For each automaton pattern, the rules it vouches for.
    pat_rules: Vec<Vec<usize>>,
}

#[derive(Debug, Default)]
pub struct Prefilter {
    /// Per rule: the area whose scan gates it, or None to always run.
    pub gated: Vec<Option<Area>>,
    areas: Vec<(Area, AreaFilter)>,
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

/// Lower-cased literals every match must start with, or None when there is no short, finite set.
fn literals(src: &str) -> Option<Vec<Vec<u8>>> {
    let hir = regex_syntax::ParserBuilder::new()
        .utf8(false)
        .build()
        .parse(src)
        .ok()?;
    let mut ex = Extractor::new();
    ex.kind(ExtractKind::Prefix)
        .limit_total(250)
        .limit_class(10)
        .limit_repeat(10)
        .limit_literal_len(12);
    let seq = ex.extract(&hir);
    let lits = seq.literals()?;
    if lits.is_empty() {
        return None;
    }
    let mut out: Vec<Vec<u8>> = lits
        .iter()
        .map(|l| l.as_bytes().to_ascii_lowercase())
        .collect();
    // Very short literals match almost everywhere: not worth gating on.
    if out.iter().any(|l| l.len() < 3) {
        return None;
    }
    out.sort();
    out.dedup();
    Some(out)
}

impl Prefilter {
    pub fn build(rules: &[Rule], order: &[usize]) -> Prefilter {
        let mut pf = Prefilter {
            gated: vec![None; rules.len()],
            areas: Vec::new(),
        };
        let mut per_area: Vec<(Area, Literals)> = Vec::new();
        for &i in order {
            let Some((area, re)) = area_of(&rules[i].test) else {
                continue;
            };
            let Some(src) = re.fast_source() else {
                continue;
            };
            let Some(lits) = literals(src) else { continue };
            pf.gated[i] = Some(area);
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
            let ac = AhoCorasickBuilder::new()
                .ascii_case_insensitive(true)
                .match_kind(MatchKind::Standard)
                .build(&pats)
                .ok();
            if ac.is_none() {
                // Could not build: ungate this area's rules rather than risk skipping a match.
                for g in pf.gated.iter_mut() {
                    if *g == Some(area) {
                        *g = None;
                    }
                }
                continue;
            }
            pf.areas.push((area, AreaFilter { ac, pat_rules }));
        }
        pf
    }

    /// Marks in `cand` the rules of `area` whose literals occur in `texts`.
    pub fn scan<'a>(&self, area: Area, texts: impl Iterator<Item = &'a [u8]>, cand: &mut [bool]) {
        let Some((_, f)) = self.areas.iter().find(|(a, _)| *a == area) else {
            return;
        };
        let Some(ac) = &f.ac else { return };
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
