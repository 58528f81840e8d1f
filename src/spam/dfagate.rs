//! Dense-DFA gates: the ASCII body patterns that Hyperscan scans slowly, determinized ahead of time.
//!
//! Why: the stock obfuscation rules (`__DRUGS_*` in 25_drugs.cf: each letter a small class such as
//! `[i1!|l]`, up to three non-word bytes between letters) have no literal for Hyperscan to anchor on,
//! so it runs each as an automaton over every byte. The 54 of them in one body twin database cost
//! ~100 us a 1.2 KB body (Python over libhs, the 552 ASCII sample bodies), most of that database's
//! time, and Hyperscan does not merge them. A few dense DFAs of `GROUP` patterns each (regex-automata)
//! scan the same text in ~2.7 us each, and a dense DFA has no state to build per message: a lazy DFA
//! over the same union took 117 us a body on a first pass and 10 once warm, and a fresh daemon's
//! clients pay the first pass.
//!
//! The gates stand in for Hyperscan's superset patterns only: a report makes the rule a candidate
//! and its own regex still decides, so each gate need only be a superset on the joined text. They
//! are built from the superset patterns printed for the rules' ASCII twins (`hsfilter::ascii_only`)
//! and only ever see ASCII text.

use super::hsfilter::{map_looks, par_map};
use regex_automata::dfa::{dense, Automaton, OverlappingState};
use regex_automata::{nfa::thompson, Input, MatchKind};
use regex_syntax::hir::{Hir, Look};

/// Patterns per DFA: bigger groups grow the DFA faster than they save scans (21 of the drug patterns
/// made a 6.3 MB DFA in 1.5 s; ten make 0.06 to 1 MB in 4 to 140 ms, and scan at the same speed).
/// With 8, the stock rules' 57 take 12 DFAs, 7 MB and 0.9 s of CPU to build, two groups split once.
const GROUP: usize = 8;

/// Most bytes one DFA may take; a group over it is split, and a pattern alone over it stays with
/// Hyperscan.
const MAX_BYTES: usize = 2 << 20;

/// A DFA and the rule ids of its patterns, in pattern order.
type Group = (dense::DFA<Vec<u32>>, Vec<u32>);

#[derive(Debug, Default)]
pub struct DfaGates {
    groups: Vec<Group>,
}

/// `h` with `^` and `$` made line anchors: the joined text holds each line after a `\n`, and
/// Hyperscan's patterns are compiled multi-line for the same reason.
fn line_anchors(h: &Hir) -> Hir {
    map_looks(h, &|l| {
        Hir::look(match l {
            Look::Start => Look::StartLF,
            Look::End => Look::EndLF,
            l => l,
        })
    })
}

fn dfa_of(hirs: &[Hir]) -> Option<dense::DFA<Vec<u32>>> {
    let nfa = thompson::Compiler::new()
        .configure(thompson::Config::new().utf8(false))
        .build_many_from_hir(hirs)
        .ok()?;
    dense::Builder::new()
        .configure(
            dense::Config::new()
                .match_kind(MatchKind::All)
                // Text is ASCII here; a non-ASCII byte would make the search fail, not lie.
                .unicode_word_boundary(true)
                .dfa_size_limit(Some(MAX_BYTES))
                .determinize_size_limit(Some(2 * MAX_BYTES)),
        )
        .build_from_nfa(&nfa)
        .ok()
}

/// Builds `pats` into DFAs, halving a group that grows too big; returns the DFAs with their ids, and
/// the ids left out (a pattern too big alone).
fn build_groups(pats: &[(u32, Hir)]) -> (Vec<Group>, Vec<u32>) {
    let chunks: Vec<&[(u32, Hir)]> = pats.chunks(GROUP).collect();
    let built = par_map(&chunks, |c| {
        let hirs: Vec<Hir> = c.iter().map(|(_, h)| line_anchors(h)).collect();
        dfa_of(&hirs)
    });
    let (mut groups, mut left) = (Vec::new(), Vec::new());
    for (c, dfa) in chunks.into_iter().zip(built) {
        match dfa.flatten() {
            Some(d) => groups.push((d, c.iter().map(|(id, _)| *id).collect())),
            None if c.len() == 1 => left.push(c[0].0),
            None => {
                let (a, b) = c.split_at(c.len() / 2);
                for half in [a, b] {
                    let (g, l) = build_groups(half);
                    groups.extend(g);
                    left.extend(l);
                }
            }
        }
    }
    (groups, left)
}

impl DfaGates {
    /// Gates for `pats` (rule id, ASCII twin); also returns the ids that got none.
    pub fn build(pats: &[(u32, Hir)]) -> (DfaGates, Vec<u32>) {
        let (groups, left) = build_groups(pats);
        (DfaGates { groups }, left)
    }

    /// How many rules the gates hold.
    pub fn rules(&self) -> usize {
        self.groups.iter().map(|(_, ids)| ids.len()).sum()
    }

    /// Marks in `hits` every rule whose pattern matches somewhere in `text` (ASCII). A search that
    /// fails marks every rule of its DFA.
    pub fn scan(&self, text: &[u8], hits: &mut [bool]) {
        let input = Input::new(text);
        for (dfa, ids) in &self.groups {
            let mut state = OverlappingState::start();
            loop {
                if dfa.try_search_overlapping_fwd(&input, &mut state).is_err() {
                    for &id in ids {
                        if let Some(h) = hits.get_mut(id as usize) {
                            *h = true;
                        }
                    }
                    break;
                }
                let Some(m) = state.get_match() else {
                    break;
                };
                if let Some(h) = ids
                    .get(m.pattern().as_usize())
                    .and_then(|&id| hits.get_mut(id as usize))
                {
                    *h = true;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hir(src: &str) -> Hir {
        super::super::hsfilter::parse(src).expect("parses")
    }

    #[test]
    fn gates_report_each_pattern_that_matches() {
        let pats = vec![
            (
                3,
                hir(r"(?i-u)(?:\b|\s)[_\W]{0,3}v[_\W]{0,3}[i1!|l][_\W]{0,3}a"),
            ),
            (7, hir(r"(?-u)^xyz")),
            (9, hir(r"(?-u)q[_\W]?r$")),
        ];
        let (g, left) = DfaGates::build(&pats);
        assert!(left.is_empty());
        assert_eq!(g.rules(), 3);
        let mut hits = vec![false; 10];
        g.scan(b"buy V.!.A now\nxyz\nq-r", &mut hits);
        assert!(hits[3] && hits[7] && hits[9], "{hits:?}");
        let mut hits = vec![false; 10];
        // `^` and `$` at line ends of the joined text, not only at its ends; no match in between.
        g.scan(b"axyz\nq-r!\nvia", &mut hits);
        assert_eq!(hits.iter().filter(|&&h| h).count(), 1, "{hits:?}");
        assert!(hits[3]);
    }
}
