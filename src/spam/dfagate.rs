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
use super::hugepages::HugeBuf;
use regex_automata::dfa::{dense, Automaton};
use regex_automata::util::primitives::StateID;
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
type Group = (Dfa, Vec<u32>);
/// A group as built, before it moves to the huge-page arena (`in_place`).
type Built = (dense::DFA<Vec<u32>>, Vec<u32>);
/// A DFA read in place from a table in `DfaGates::tables` (the `'static` is that table's lifetime).
type Dfa = dense::DFA<&'static [u32]>;

#[derive(Debug, Default)]
pub struct DfaGates {
    /// Declared before `tables`, so these drop first: they read them.
    groups: Vec<Group>,
    /// The DFAs' tables, on huge pages (`hugepages`: the gates read ~7 MB of them on every body).
    tables: Vec<HugeBuf>,
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
fn build_groups(pats: &[(u32, Hir)]) -> (Vec<Built>, Vec<u32>) {
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
        let (built, mut left) = build_groups(pats);
        let mut gates = DfaGates::default();
        for (d, ids) in built {
            match in_place(&d) {
                Some((dfa, table)) => {
                    gates.groups.push((dfa, ids));
                    gates.tables.push(table);
                }
                // No memory for it: its rules stay with Hyperscan.
                None => left.extend(ids),
            }
        }
        (gates, left)
    }

    /// How many rules the gates hold.
    pub fn rules(&self) -> usize {
        self.groups.iter().map(|(_, ids)| ids.len()).sum()
    }

    /// Marks in `hits` every rule whose pattern matches somewhere in `text` (ASCII). A DFA that cannot
    /// read the text (a quit byte) marks every rule of its group.
    ///
    /// All groups step through the text together, one byte each in turn, rather than one group after
    /// another: a dense DFA's next state is a load that depends on the last one, and with the tables
    /// (0.07-2 MB each) out of the first-level cache each byte waits for it; the groups' loads do not
    /// depend on each other, so the CPU keeps them in flight at once (bench/RESULTS.md, stop 30: 80 -> 40 us a body).
    pub fn scan(&self, text: &[u8], hits: &mut [bool]) {
        let input = Input::new(text);
        // The groups still reading, each with its state.
        let mut live: Vec<(&Dfa, &[u32], StateID)> = Vec::with_capacity(self.groups.len());
        for (dfa, ids) in &self.groups {
            match dfa.start_state_forward(&input) {
                Ok(s) if see(dfa, ids, s, hits) => live.push((dfa, ids, s)),
                Ok(_) => {}
                Err(_) => mark_all(ids, hits),
            }
        }
        for &b in text {
            let mut ended = false;
            for (dfa, ids, s) in live.iter_mut() {
                *s = dfa.next_state(*s, b);
                if dfa.is_special_state(*s) && !see(dfa, ids, *s, hits) {
                    ended = true;
                }
            }
            if ended {
                live.retain(|(dfa, _, s)| !dfa.is_dead_state(*s) && !dfa.is_quit_state(*s));
            }
        }
        for (dfa, ids, s) in live {
            see(dfa, ids, dfa.next_eoi_state(s), hits);
        }
    }
}

fn mark_all(ids: &[u32], hits: &mut [bool]) {
    for &id in ids {
        if let Some(h) = hits.get_mut(id as usize) {
            *h = true;
        }
    }
}

/// `d` written into the huge-page arena and read in place there; None when the arena has no memory.
fn in_place(d: &dense::DFA<Vec<u32>>) -> Option<(Dfa, HugeBuf)> {
    let table = HugeBuf::filled(d.write_to_len(), |b| d.write_to_native_endian(b).is_ok())?;
    let b = table.as_slice();
    // SAFETY: the table's bytes stay at this address, unchanged, until the HugeBuf drops, and
    // `DfaGates` drops its DFAs before their tables (field order); the DFA is never handed out alone.
    let b: &'static [u8] = unsafe { std::slice::from_raw_parts(b.as_ptr(), b.len()) };
    // SAFETY: `b` is what this very library just serialized from `d`, at a 64-byte aligned address;
    // checking it again whole (`from_bytes`) added ~0.1 s to every rule load.
    let (dfa, _) = unsafe { dense::DFA::from_bytes_unchecked(b) }.ok()?;
    Some((dfa, table))
}

/// Marks the patterns that state `s` of `dfa` says matched; false when the group reads no further (a
/// dead state, or a quit byte, which marks every rule of the group).
fn see(dfa: &Dfa, ids: &[u32], s: StateID, hits: &mut [bool]) -> bool {
    if dfa.is_quit_state(s) {
        mark_all(ids, hits);
        return false;
    }
    if dfa.is_match_state(s) {
        for i in 0..dfa.match_len(s) {
            let p = dfa.match_pattern(s, i).as_usize();
            if let Some(h) = ids.get(p).and_then(|&id| hits.get_mut(id as usize)) {
                *h = true;
            }
        }
    }
    !dfa.is_dead_state(s)
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

    /// The lock-step scan reports what each group's own overlapping search reports, on texts where
    /// patterns match at the start, in the middle and at the end, and on one a DFA cannot read.
    #[test]
    fn lock_step_scan_agrees_with_each_search() {
        use regex_automata::dfa::OverlappingState;
        let srcs = [
            r"(?i-u)(?:\b|\s)[_\W]{0,3}v[_\W]{0,3}[i1!|l][_\W]{0,3}a",
            r"(?-u)^xyz",
            r"(?-u)q[_\W]?r$",
            r"(?-u)\bab+c\b",
            r"(?-u)\d{3}-\d{4}",
            r"(?-u)[a-z]{12}",
            r"(?-u)z$",
            r"(?-u)^$",
        ];
        let pats: Vec<(u32, Hir)> = srcs
            .iter()
            .enumerate()
            .map(|(i, p)| (i as u32 * 2 + 1, hir(p)))
            .collect();
        let (g, left) = DfaGates::build(&pats);
        assert!(left.is_empty());
        let texts: [&[u8]; 7] = [
            b"",
            b"xyz abbbc 555-1234 V!A\nq r",
            b"nothing here\n\nlongwordsarehere z",
            b"abc",
            b"caf\xc3\xa9 v-i-a",
            b"\n",
            b"q_r\nxyz\nabbc.",
        ];
        let mut seen = vec![false; 20];
        for text in texts {
            let mut want = vec![false; 20];
            let input = Input::new(text);
            for (dfa, ids) in &g.groups {
                let mut state = OverlappingState::start();
                loop {
                    if dfa.try_search_overlapping_fwd(&input, &mut state).is_err() {
                        mark_all(ids, &mut want);
                        break;
                    }
                    let Some(m) = state.get_match() else { break };
                    want[ids[m.pattern().as_usize()] as usize] = true;
                }
            }
            let mut got = vec![false; 20];
            g.scan(text, &mut got);
            assert_eq!(got, want, "{:?}", String::from_utf8_lossy(text));
            for (s, w) in seen.iter_mut().zip(&want) {
                *s |= *w;
            }
        }
        // Every pattern matched somewhere, so the comparison covered each.
        assert!(pats.iter().all(|(id, _)| seen[*id as usize]), "{seen:?}");
    }
}
