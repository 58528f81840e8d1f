//! The Hyperscan header filter: the header rules that test the same header spec (`ALL`, `From:addr`,
//! `X-Spam-Relays-External` ...) in one set of Hyperscan databases per spec, compiled in prefilter mode,
//! so one scan of that header's value tells which of them may match. Only those run their regex.
//!
//! Why: a message runs some 220 header rules, most of them on a few specs (43 on the relay line, ~30 on
//! `ALL`, ~40 on `From`), each a separate regex over the same short text. Each such call costs about a
//! microsecond or more in a full rule run (lazy-DFA state tables of a thousand regexes do not stay in the
//! CPU's caches), and the literal prefilter gates them weakly: it reads all header text at once, so a
//! relay-line rule whose literal is `rdns=` is a candidate on every message.
//!
//! Invariant: for every rule this filter gates, a match of the rule's regex on a header value implies a
//! Hyperscan report for the rule on that same value. It holds for the reasons `hsfilter` gives (patterns
//! printed from the regex crate's own parse of the rule's regex, or of the widened regex a fallback rule
//! already requires; `^`/`$` widened to line anchors; HS_FLAG_PREFILTER only widens), and because the
//! value scanned is the very value the rule's regex is given. A rule whose header is absent (its text is
//! then the `[if-unset: ...]` default) is not gated. A negated rule (`!~`) the scan rules out hits.
//!
//! A message scans a spec's database only when more than `FEW_RULES` of its rules are still to settle
//! (`worth_scanning`); for fewer, they run their regexes, which cost about what one cold scan does.
//!
//! A fast-engine rule whose regex Hyperscan says exactly (`hsfilter::translate_exact`: counts kept, text
//! anchors as `\A`/`\z`) is compiled without prefilter mode: on a present header its report is the
//! regex's answer, so the regex never runs.

use super::hsfilter::{
    chunked, compile_jobs_or_loose, par_map, parse, translate, translate_exact,
    translate_exact_up_to, Jobs,
};
use super::hyperscan::{self, Databases, Engine, Pattern};
use super::rules::{Rule, Test};
use regex_syntax::hir::Hir;
use std::ffi::c_uint;

/// Patterns per database. Larger than `hsfilter`'s: a header value is short, so a scan costs mostly its
/// fixed start-up, paid once per database, and 32 a database split the specs with many rules into several.
/// One database per spec took the sample from 26.5 header scans a message to 19 and their time by about a
/// quarter (in process, first pass), and a fresh start did not take longer (14.7 s either way).
const CHUNK: usize = 256;

/// Largest count of a repeated byte or class kept in a backreference rule's PRE pattern (`pre_db`):
/// the stock ones go to 200 (`[^\n]{0,200}`).
const PRE_REPEAT: u32 = 256;

/// A backreference rule's PRE goes to Hyperscan only when it can read this far past its lead: the
/// DFA jumps from one lead (`\nFrom: `) to the next and reads on only while PRE can still match, so a
/// PRE that ends within a few dozen bytes costs it little, while each pattern added to the spec's
/// database costs every scan. Measured over 600 messages (warm, per message): with all 14 stock PREs
/// in the `ALL` database its scan took 12 us more and the rules 24 us less; with only
/// `\nReceived:[^\n]{0,200} for <?`, 4 us more and 19.5 us less.
const PRE_LONG: u32 = 100;

/// The most bytes one counted or open repeat in `h` can take (u32::MAX when unbounded); 0 without one.
fn longest_run(h: &Hir) -> u32 {
    use regex_syntax::hir::HirKind;
    match h.kind() {
        HirKind::Repetition(r) => r.max.unwrap_or(u32::MAX).max(longest_run(&r.sub)),
        HirKind::Capture(c) => longest_run(&c.sub),
        HirKind::Concat(subs) | HirKind::Alternation(subs) => {
            subs.iter().map(longest_run).max().unwrap_or(0)
        }
        _ => 0,
    }
}

/// A spec is worth a scan when at least this many of its rules can be gated: a Hyperscan call costs
/// about what one short regex call costs.
const MIN_RULES: usize = 3;

/// A database whose scan can spare at most this many regex runs is not scanned: its rules run their
/// regexes instead. The scan costs 2-8 us on a cold cache even for a 20-byte value, about what a few
/// short regex calls cost. Over 200 sample messages, 10 of the 25 stock databases were scanned
/// with 4 or fewer of their rules left to settle on nearly every message (`EnvelopeFrom` with 1,
/// `Return-Path` 2, `To`, `Date`, `Message-Id` and `X-Spam-Relays-Untrusted` 3), the big ones
/// (`Subject`, `From`, `ALL`, the relay line) with 6 to 46. Per-rule profile, first pass over the
/// sample, header rules: 223 us a message scanning every time, 202-211 with this at 2 to 8.
const FEW_RULES: usize = if cfg!(test) { 0 } else { 4 };

/// The compiled databases and which rules they gate.
#[derive(Debug, Default)]
pub struct HeaderFilter {
    dbs: Option<Databases>,
    /// The specs that have databases.
    specs: Vec<String>,
    /// Per rule: the database (index in `dbs`) holding its pattern, whose scan gates it. A message scans a database only
    /// when one of its rules is asked for: with sub-rules run on demand, some chunks of a spec never
    /// are, and a scan costs 1-3 us even on a 40-byte header.
    pub db_of: Vec<Option<usize>>,
    /// Per rule: its database holds its exact pattern (`hsfilter::translate_exact`), so the scan's
    /// report is the regex's answer on the value and the regex need not run.
    pub exact: Vec<bool>,
    /// Per backreference rule (`backref::Split`) whose PRE reads far (`PRE_LONG`): the database, the
    /// same as its own, that also holds that PRE said exactly and reports every place a match of it
    /// ends, so that the rule starts from those instead of a DFA scan of the value
    /// (`Split::is_match_from`). Why: PRE is what reads the whole value, half of the backreference
    /// rules' time (26 of 50 us a message warm over 600 messages, 48 of 89 on the first pass), most
    /// of it `__SUBJ_HAS_TO_2`'s `\nReceived:[^\n]{0,200} for <?` over every Received line, and the
    /// database scans the value anyway: that rule went from 29 to 9.7 us a message, the scan from
    /// 22.6 to 26.5.
    pub pre_db: Vec<Option<usize>>,
    /// Pattern ids from here on are PRE patterns: id - pre_base is the rule.
    pre_base: u32,
    /// Per database: the rules it gates.
    rules_in: Vec<Vec<usize>>,
    /// A message scans a database only when more than this many of its rules are still to settle
    /// (`worth_scanning`). FEW_RULES; 0 in unit tests, whose small rule sets would else never scan.
    pub few: usize,
    /// Scans made (unit tests).
    #[cfg(test)]
    pub scans: std::sync::atomic::AtomicUsize,
}

impl HeaderFilter {
    /// Compiles a database set for each spec with enough translatable rules; empty without an engine.
    pub fn build(rules: &[Rule], order: &[usize], engine: Option<&'static Engine>) -> HeaderFilter {
        let mut f = HeaderFilter {
            db_of: vec![None; rules.len()],
            exact: vec![false; rules.len()],
            pre_db: vec![None; rules.len()],
            pre_base: u32::try_from(rules.len()).unwrap_or(u32::MAX),
            few: FEW_RULES,
            ..HeaderFilter::default()
        };
        let Some(engine) = engine else {
            return f;
        };
        let flags = hyperscan::HS_FLAG_PREFILTER
            | hyperscan::HS_FLAG_SINGLEMATCH
            | hyperscan::HS_FLAG_MULTILINE;
        // A header value is one text: the rule's own regex (not a fallback's superset) said exactly,
        // text anchors as `\A`/`\z`, is the rule.
        let exact_flags = hyperscan::HS_FLAG_SINGLEMATCH | hyperscan::HS_FLAG_MULTILINE;
        // Per rule: its pattern, the flags, and for an exact one the superset pattern to fall back on.
        let mut cands: Vec<(usize, &str, String, c_uint, Option<String>)> = Vec::new();
        for &i in order {
            let Test::Header { spec, re, .. } = &rules[i].test else {
                continue;
            };
            let loose = re.fast_source().and_then(translate);
            let exact = match re {
                super::perlre::Re::Fast(r) => parse(r.as_str()).as_ref().and_then(translate_exact),
                _ => None,
            };
            match (exact, loose) {
                (Some(x), l) => cands.push((i, spec.as_str(), x, exact_flags, l)),
                (None, Some(l)) => cands.push((i, spec.as_str(), l, flags, None)),
                (None, None) => {}
            }
        }
        let verdicts = par_map(&cands, |(_, _, expr, fl, _)| engine.accepts(expr, *fl));
        let mut per_spec: Vec<(String, Vec<Pattern>)> = Vec::new();
        // The superset patterns of the rules given exact ones, for when the compiler refuses those.
        let mut loose_of: std::collections::HashMap<usize, String> = Default::default();
        for ((i, spec, mut expr, mut fl, loose), ok) in cands.into_iter().zip(verdicts) {
            if !matches!(ok, Some(Ok(()))) {
                // An exact pattern Hyperscan does not parse may still gate as a superset.
                match loose.filter(|e| fl == exact_flags && engine.accepts(e, flags).is_ok()) {
                    Some(e) => (expr, fl) = (e, flags),
                    None => continue,
                }
            } else if let Some(l) = loose.filter(|_| fl == exact_flags) {
                loose_of.insert(i, l);
            }
            let k = match per_spec.iter().position(|(s, _)| s == spec) {
                Some(k) => k,
                None => {
                    per_spec.push((spec.to_string(), Vec::new()));
                    per_spec.len() - 1
                }
            };
            per_spec[k].1.push(Pattern {
                expr,
                flags: fl,
                id: i as u32,
            });
        }
        per_spec.retain(|(_, p)| p.len() >= MIN_RULES);
        // PRE of each backreference rule gated here, exact and without HS_FLAG_SINGLEMATCH (every end
        // reported), beside the rule's own pattern in its spec's list.
        let all_ends = hyperscan::HS_FLAG_MULTILINE;
        for (_, pats) in per_spec.iter_mut() {
            let mut pres = Vec::new();
            for p in pats.iter() {
                let Test::Header { re, .. } = &rules[p.id as usize].test else {
                    continue;
                };
                let Some(expr) = re
                    .split()
                    .and_then(|sp| parse(sp.pre_source()))
                    .filter(|h| longest_run(h) >= PRE_LONG)
                    .and_then(|h| translate_exact_up_to(&h, PRE_REPEAT))
                else {
                    continue;
                };
                if engine.accepts(&expr, all_ends).is_ok() {
                    pres.push(Pattern {
                        expr,
                        flags: all_ends,
                        id: f.pre_base.saturating_add(p.id),
                    });
                }
            }
            pats.extend(pres);
        }
        let mut jobs: Jobs<usize> = Vec::new();
        for (k, (_, pats)) in per_spec.iter_mut().enumerate() {
            chunked(k, std::mem::take(pats), CHUNK, &mut jobs);
        }
        // Exact patterns the compiler refuses go again as supersets.
        let (compiled, _) =
            compile_jobs_or_loose(engine, &mut jobs, &mut loose_of, exact_flags, flags, CHUNK);
        f.specs = per_spec.into_iter().map(|(s, _)| s).collect();
        let mut dbs = Vec::new();
        let mut gated = Vec::new();
        for done in compiled {
            let Some((ids, Some(db), rejected)) = done else {
                continue;
            };
            let dropped: Vec<usize> = rejected.iter().map(|r| r.0.id as usize).collect();
            let d = dbs.len();
            gated.extend(
                ids.into_iter()
                    .filter(|id| !dropped.contains(id))
                    .map(|id| (id, d)),
            );
            dbs.push(db);
        }
        if let Some(d) = Databases::new(dbs) {
            f.dbs = Some(d);
            let mut pre_in: Vec<(usize, usize)> = Vec::new();
            for (id, d) in gated {
                if let Some(r) = id.checked_sub(f.pre_base as usize) {
                    pre_in.push((r, d));
                    continue;
                }
                f.db_of[id] = Some(d);
                // Still in `loose_of`: compiled from its exact pattern (the retries took theirs out).
                f.exact[id] = loose_of.contains_key(&id);
            }
            // Only where PRE landed in the rule's own database: that scan is the one the rule waits for.
            for (r, d) in pre_in {
                if f.db_of.get(r).copied().flatten() == Some(d) {
                    f.pre_db[r] = Some(d);
                }
            }
            f.rules_in = vec![Vec::new(); f.db_count()];
            for (id, d) in f.db_of.iter().enumerate() {
                if let Some(d) = d {
                    f.rules_in[*d].push(id);
                }
            }
        }
        f
    }

    /// How many specs have databases.
    pub fn spec_count(&self) -> usize {
        self.specs.len()
    }

    /// How many databases there are (all specs).
    pub fn db_count(&self) -> usize {
        self.dbs.as_ref().map_or(0, Databases::count)
    }

    /// Whether database `d` is worth a scan for the rule asking (already marked settled): more than
    /// `few` of its rules are not yet settled.
    pub fn worth_scanning(&self, d: usize, settled: &[bool]) -> bool {
        let left = self.rules_in.get(d).map_or(0, |r| {
            r.iter()
                .filter(|&&j| !settled.get(j).copied().unwrap_or(true))
                .count()
        });
        left + 1 > self.few
    }

    /// Marks in `hits` the rules of database `d` that may match `value` (the value of the spec `d`
    /// is for). False when the scan failed: then `hits` says nothing and the rules must run.
    /// Pushes onto `pre_ends` (rule, offset) for every place a backreference rule's PRE ends in `value`
    /// (`pre_db`), in the order Hyperscan reports them.
    pub fn scan_db(
        &self,
        d: usize,
        value: &[u8],
        hits: &mut [bool],
        pre_ends: &mut Vec<(usize, usize)>,
    ) -> bool {
        let Some(dbs) = &self.dbs else {
            return false;
        };
        #[cfg(test)]
        self.scans
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let base = self.pre_base;
        dbs.scan_ends(d, value, &mut |id, to| {
            if id >= base {
                pre_ends.push(((id - base) as usize, to as usize));
            } else if let Some(c) = hits.get_mut(id as usize) {
                *c = true;
            }
        })
    }

    /// Where rule `i`'s PRE ends in the value its database `d` scanned, increasing and each once, when
    /// that database reports them (`pre_db`) and its scan `ok`; None otherwise.
    pub fn pre_ends_of(
        &self,
        i: usize,
        d: usize,
        ok: bool,
        all: &[(usize, usize)],
    ) -> Option<Vec<usize>> {
        if !ok || self.pre_db.get(i).copied().flatten() != Some(d) {
            return None;
        }
        let mut e: Vec<usize> = all
            .iter()
            .filter(|&&(r, _)| r == i)
            .map(|&(_, x)| x)
            .collect();
        e.sort_unstable();
        e.dedup();
        Some(e)
    }

    /// How many rules the filter gates.
    pub fn gated(&self) -> usize {
        self.db_of.iter().filter(|d| d.is_some()).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A backreference rule whose PRE reads a long way gets PRE's ends from the spec's scan, and
    /// answers as it does when its own DFA finds them: the same hits with and without the filter, on
    /// texts where it hits and where it misses (several `for` clauses, the address in either case, a
    /// longer word holding it, one that starts a byte later, one past the Subject's 100-byte reach, a
    /// Received line too long for PRE).
    #[test]
    fn backreference_rules_start_from_the_scans_ends() {
        use crate::spam::load::load_text;
        if !hyperscan::for_tests() {
            return;
        }
        let cf = "header B_RCVD ALL =~ /\\nReceived:[^\\n]{0,200} for <?([^\\n\\s>;]+)>?;(?:[^\\n]+\\n+)*Subject: [^\\n]{0,100}\\1[^a-z0-9]/ism\n\
                  header B_FROM ALL =~ /\\nFrom: (?:[^\\n<]{0,80}<)?([^\\n\\s>]+)>?\\n+(?:[^\\n]{1,100}\\n+)*To: (?:[^\\n]{0,80}<)?\\1[>,\\s\\n]/ism\n\
                  header A_ONE ALL =~ /^X-Mailer: mutt/im\nheader A_TWO ALL =~ /^Date: /m\n";
        let mut rs = crate::spam::rules::compile(load_text(cf));
        let at = |name: &str| rs.rules.iter().position(|r| r.name == name).expect(name);
        let (rcvd, from) = (at("B_RCVD"), at("B_FROM"));
        assert!(
            rs.hdr_filter.pre_db[rcvd].is_some(),
            "no PRE ends for B_RCVD"
        );
        // A PRE that ends within 80 bytes of its lead stays with the DFA.
        assert!(rs.hdr_filter.pre_db[from].is_none());
        let pad = "x".repeat(150);
        let far = "y".repeat(120);
        let msgs: Vec<String> = vec![
            "Return-Path: <z@q>\nReceived: from a by b for <joe@x.org>; now\nReceived: from c by d for <ann@x.org>; now\nFrom: z@q\nSubject: hi ann@x.org!\n\nb\n".into(),
            "Return-Path: <z@q>\nReceived: from a by b for <joe@x.org>; now\nSubject: hi JOE@X.ORG.\n\nb\n".into(),
            "Return-Path: <z@q>\nReceived: from a by b for <joe@x.org>; now\nSubject: hi joe@x.orgs\n\nb\n".into(),
            "Return-Path: <z@q>\nReceived: from a by b for <joe@x.org>; now\nSubject: hi moe@x.org!\n\nb\n".into(),
            format!("Return-Path: <z@q>\nReceived: from a {pad} by b for <joe@x.org>; now\nSubject: joe@x.org!\n\nb\n"),
            format!("Return-Path: <z@q>\nReceived: from a {pad}{pad} by b for <joe@x.org>; now\nSubject: joe@x.org!\n\nb\n"),
            format!("Return-Path: <z@q>\nReceived: from a by b for joe@x.org; now\nSubject: {far} joe@x.org!\n\nb\n"),
            "Return-Path: <z@q>\nX-Mailer: mutt\nReceived: from a by b\n\tfor <joe@x.org>; now\nSubject: joe@x.org!\n\nb\n".into(),
        ];
        let hits = |rs: &crate::spam::rules::RuleSet| {
            msgs.iter()
                .map(|m| rs.check(m.as_bytes()).1.hit_names(&rs.rules))
                .collect::<Vec<_>>()
        };
        let with = hits(&rs);
        rs.hdr_filter = HeaderFilter::default();
        rs.hdr_filter.db_of = vec![None; rs.rules.len()];
        rs.hdr_filter.pre_db = vec![None; rs.rules.len()];
        let without = hits(&rs);
        assert_eq!(with, without);
        let n = with
            .iter()
            .filter(|h| h.iter().any(|x| x == "B_RCVD"))
            .count();
        assert!(0 < n && n < msgs.len(), "B_RCVD hit {n}: {with:?}");
    }

    /// The filter must never change a header rule's verdict: anchored, negated, case-folded, `:addr`,
    /// unset and fallback-engine rules score the same with the per-spec scans as without them.
    #[test]
    fn same_hits_with_and_without_the_header_filter() {
        use crate::spam::load::load_text;
        if !hyperscan::for_tests() {
            return;
        }
        let cf = "header S_START Subject =~ /^hello/i\nheader S_END Subject =~ /world\\s*$/\n\
                  header S_NOT Subject !~ /^re:/i\nheader S_WORD Subject =~ /\\bcash\\b/i\n\
                  header S_LOOK Subject =~ /free(?!dom)/i\nheader S_UNSET X-None =~ /^$/ [if-unset: ]\n\
                  header F_ADDR From:addr =~ /^[a-z]+\\@example\\.org$/\n\
                  header F_NAME From:name =~ /smith/i\nheader F_NOT From !~ /\\@/\n\
                  header A_LINE ALL =~ /^X-Mailer: mutt/im\nheader A_TWO ALL =~ /\\nTo: .*\\nSubject:/\n\
                  header A_NEG ALL !~ /^Date: /m\nheader A_BACK ALL =~ /^From: (\\w+)\\@.*\\n(?:.*\\n)*To: \\1\\@/m\n";
        let mut rs = crate::spam::rules::compile(load_text(cf));
        assert!(
            rs.hdr_filter.gated() >= 9,
            "gated {}",
            rs.hdr_filter.gated()
        );
        let msgs: [&[u8]; 4] = [
            b"From: joe@example.org\nTo: joe@example.net\nSubject: Hello world\nDate: now\n\nbody\n",
            b"From: Ann Smith <ann@example.com>\nTo: bob@x\nSubject: Re: cash for freedom\nX-Mailer: Mutt\n\nb\n",
            b"From: nobody\nSubject: FREE cash world  \n\nb\n",
            b"Subject: re: hello\nFrom: \"x\" <x@example.org>\nTo: x@y\n\nb\n",
        ];
        let hits = |rs: &crate::spam::rules::RuleSet| {
            msgs.iter()
                .map(|m| rs.check(m).1.hit_names(&rs.rules))
                .collect::<Vec<_>>()
        };
        // The fast-engine rules' reports are their answers (on the specs with a database: three
        // rules or more); the fallback-engine ones' are not.
        let exact = |name: &str| {
            let i = rs.rules.iter().position(|r| r.name == name).expect(name);
            rs.hdr_filter.exact[i]
        };
        for name in ["S_START", "S_END", "S_NOT", "S_WORD", "A_LINE", "A_TWO"] {
            assert!(exact(name), "{name} not exact");
        }
        assert!(!exact("S_LOOK") && !exact("A_BACK"));
        let with = hits(&rs);
        // With every database too small to be worth a scan, the rules run their regexes and answer
        // the same.
        let scans = || {
            rs.hdr_filter
                .scans
                .load(std::sync::atomic::Ordering::Relaxed)
        };
        let before = scans();
        assert!(before > 0);
        rs.hdr_filter.few = 100;
        assert_eq!(with, hits(&rs));
        assert_eq!(scans(), before, "scanned a database not worth it");
        rs.hdr_filter = HeaderFilter::default();
        rs.hdr_filter.db_of = vec![None; rs.rules.len()];
        let without = hits(&rs);
        assert_eq!(with, without);
        // Each rule both hits somewhere and misses somewhere, so the comparison covers both ways.
        for name in [
            "S_START", "S_END", "S_NOT", "S_WORD", "S_LOOK", "F_ADDR", "F_NAME", "F_NOT", "A_LINE",
            "A_TWO", "A_NEG", "A_BACK",
        ] {
            let n = with.iter().filter(|h| h.iter().any(|x| x == name)).count();
            assert!(
                0 < n && n < msgs.len(),
                "{name} hit {n} of {}: {with:?}",
                msgs.len()
            );
        }
    }

    /// A header rule this filter gates is not gated by its literals as well (its spec's database says
    /// all they would, `rules::compile`), while one on a spec without a database still is; and each
    /// still hits exactly where its regex matches.
    #[test]
    fn gated_header_rules_leave_the_literal_prefilter() {
        use crate::spam::load::load_text;
        if !hyperscan::for_tests() {
            return;
        }
        let cf = "header S_PILLS Subject =~ /viagra/i\nheader S_CASINO Subject =~ /casino/i\n\
                  header S_LOTTO Subject =~ /lottery win/i\nheader S_MONEY Subject =~ /free money/i\n\
                  header X_MUTT X-Mailer =~ /mutt/i\n";
        let rs = crate::spam::rules::compile(load_text(cf));
        let at = |name: &str| rs.rules.iter().position(|r| r.name == name).expect(name);
        for name in ["S_PILLS", "S_CASINO", "S_LOTTO", "S_MONEY"] {
            let i = at(name);
            assert!(rs.hdr_filter.db_of[i].is_some(), "{name}: no database");
            assert!(!rs.prefilter.lit_gated[i], "{name}: literal-gated too");
            assert!(rs.prefilter.gated[i].is_none(), "{name}: prefilter-gated");
        }
        let mutt = at("X_MUTT");
        assert!(rs.hdr_filter.db_of[mutt].is_none());
        assert!(rs.prefilter.lit_gated[mutt], "X_MUTT lost its literal gate");
        let hits = |subject: &str, mailer: &str| {
            let m = format!(
                "From: a@example.org\nSubject: {subject}\nX-Mailer: {mailer}\nMessage-Id: <1@example.org>\n\nbody\n"
            );
            rs.check(m.as_bytes()).1.hit_names(&rs.rules)
        };
        assert_eq!(hits("Casino night", "Outlook"), vec!["S_CASINO"]);
        assert_eq!(
            hits("your LOTTERY WIN", "Mutt/2.2"),
            vec!["S_LOTTO", "X_MUTT"]
        );
        assert!(hits("hello", "Outlook").is_empty());
    }
}
