//! Exact matching, without backtracking, of the one backreference shape the stock header rules use most:
//! `PRE (CAP) MID \1 POST`, one capture group and one `\1` after it, both at the top level (or the `\1`
//! inside a positive look-ahead that ends the pattern, which for a yes/no answer is the same as plain
//! concatenation). The invariant: `Split::is_match` answers what the fallback engine (PCRE2, Perl's
//! dialect) answers for the same pattern on the same bytes, apart from the fallback's match limit (where
//! it gives up and says no, this says whether a match exists).
//!
//! Why: `__SUBJ_HAS_TO_*`, `__TO_EQ_FROM_*` and friends were a third of all rule time in a backtracker,
//! which tries every start and backtracks through `(?:[^\n]{1,100}\n+)*` for each. Here every piece is a
//! DFA or the regex crate, run once over the text: a match exists iff there are positions a <= b <= c
//! with PRE ending at a, CAP matching exactly [a, b), MID matching exactly [b, c), the text at c starting
//! with the captured text (byte for byte; under `/i` ASCII letters in either case, as Perl compares a
//! backreference in an octet string), and POST matching at c plus its length. The DFAs report every
//! position where a match can end (`MatchKind::All`), so no choice the backtracker could make is missed.
//! The pieces match bytes with Unicode off, as the fallback does.

// Lazy DFA cache per piece and thread: the rule regexes' limit (`.{1,2048}` needs a few thousand states).
use super::perlre::DFA_CACHE;
use regex_automata::hybrid::dfa::{Cache, DFA};
use regex_automata::meta;
use regex_automata::util::pool::Pool;
use regex_automata::util::prefilter::Prefilter;
use regex_automata::{Anchored, Input, MatchKind};

type CachePool = Pool<[Cache; 3], Box<dyn Fn() -> [Cache; 3] + Send + Sync>>;

/// Compiled pieces of a `PRE (CAP) MID \1 POST` pattern. Lazy DFAs, not full ones: determinizing
/// `\s+(?:[^\n<]{0,80}<)?` or `.{1,2048}` ahead of time takes seconds and megabytes per rule, while a
/// message only ever visits a few of those states.
pub struct Split {
    /// PRE, unanchored: every position where some match of it ends.
    pre: DFA,
    /// Literals every match of PRE starts with (`\nFrom: ` in any case, say), when there are such:
    /// the scan for PRE jumps from one to the next instead of stepping the DFA over every byte of
    /// the headers (or, for a `full` rule, of the whole message).
    lead: Option<Prefilter>,
    /// CAP and MID, anchored: every end of a match from a given start.
    cap: DFA,
    mid: DFA,
    post: meta::Regex,
    /// One cache per DFA, per thread, as the regex crate keeps its own.
    caches: CachePool,
    /// PRE as the DFA was built from it (regex crate syntax, flags applied), for the header filter,
    /// which can report PRE's ends from the scan it makes anyway (`is_match_from`).
    pre_src: String,
    /// `/i`: the captured text recurs in either case.
    caseless: bool,
}

impl Clone for Split {
    fn clone(&self) -> Split {
        let mut s = Split::of(
            self.pre.clone(),
            self.cap.clone(),
            self.mid.clone(),
            self.post.clone(),
        );
        s.lead = self.lead.clone();
        s.caseless = self.caseless;
        s.pre_src = self.pre_src.clone();
        s
    }
}

impl std::fmt::Debug for Split {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Split").finish_non_exhaustive()
    }
}

/// The pattern's text cut into the four pieces (Rust regex syntax, flags not yet applied).
#[derive(Debug, PartialEq)]
struct Pieces<'a> {
    pre: &'a str,
    cap: &'a str,
    mid: String,
    post: &'a str,
}

impl Split {
    /// The matcher for `pat` (Rust syntax, as `perlre` gives it to the fallback) with Perl flags
    /// `flags`; None when the pattern has another shape or a piece needs the fallback itself.
    pub fn new(pat: &str, flags: &str) -> Option<Split> {
        if flags.contains('x') {
            return None;
        }
        let p = cut(pat)?;
        let fl = format!("(?{flags}-u)");
        let syntax = regex_automata::util::syntax::Config::new().utf8(false);
        let dfa = |piece: &str| {
            DFA::builder()
                .syntax(syntax)
                .configure(
                    DFA::config()
                        .match_kind(MatchKind::All)
                        .cache_capacity(DFA_CACHE)
                        // Start states tagged, so the PRE scan sees when no match is under way.
                        .specialize_start_states(true),
                )
                .build(&format!("{fl}(?:{piece})"))
                .ok()
        };
        let post = meta::Regex::builder()
            .syntax(syntax)
            .configure(meta::Config::new().utf8_empty(false))
            .build(&format!("{fl}(?:{})", p.post))
            .ok()?;
        let lead = regex_syntax::ParserBuilder::new()
            .utf8(false)
            .build()
            .parse(&format!("{fl}(?:{})", p.pre))
            .ok()
            .and_then(|h| Prefilter::from_hir_prefix(MatchKind::All, &h));
        let mut s = Split::of(dfa(p.pre)?, dfa(p.cap)?, dfa(&p.mid)?, post);
        s.lead = lead;
        s.caseless = flags.contains('i');
        s.pre_src = format!("{fl}(?:{})", p.pre);
        Some(s)
    }

    fn of(pre: DFA, cap: DFA, mid: DFA, post: meta::Regex) -> Split {
        let (a, b, c) = (pre.clone(), cap.clone(), mid.clone());
        let make: Box<dyn Fn() -> [Cache; 3] + Send + Sync> =
            Box::new(move || [a.create_cache(), b.create_cache(), c.create_cache()]);
        Split {
            pre,
            lead: None,
            cap,
            mid,
            post,
            caches: Pool::new(make),
            caseless: false,
            pre_src: String::new(),
        }
    }

    /// PRE's source (regex crate syntax, flags applied): a match of the whole pattern starts with a
    /// match of PRE, whose end is where the capture starts.
    pub fn pre_source(&self) -> &str {
        &self.pre_src
    }

    /// Whether the whole pattern matches somewhere in `h`; None when a DFA quits (with Unicode off and
    /// no cache-clear limit none does today; the caller then asks the fallback).
    pub fn is_match(&self, h: &[u8]) -> Option<bool> {
        self.is_match_from(h, None)
    }

    /// `is_match` when the caller knows where PRE's matches end in `h`: `pre_ends`, increasing, every
    /// place some match of PRE ends (what the PRE scan below would find). The header filter's
    /// Hyperscan scan of the value reports them along with its other patterns, so the DFA need not
    /// read the header a second time (`hsheader`).
    pub fn is_match_from(&self, h: &[u8], pre_ends: Option<&[usize]>) -> Option<bool> {
        let mut guard = self.caches.get();
        let [pc, cc, mc] = &mut *guard;
        let mut a_ends = Vec::new();
        match pre_ends {
            Some(e) => a_ends.extend(e.iter().copied().filter(|&a| a <= h.len())),
            None => ends(
                &self.pre,
                pc,
                h,
                (0, h.len()),
                Anchored::No,
                self.lead.as_ref(),
                &mut a_ends,
            )?,
        }
        // Under /i the captured text is looked for in a lower-cased copy (same offsets: ASCII only).
        let lower: Option<Vec<u8>> =
            (self.caseless && !a_ends.is_empty()).then(|| h.to_ascii_lowercase());
        let same = lower.as_deref().unwrap_or(h);
        // MID's ends from each b, computed once per b (several captures can end at the same place),
        // up to the bound they were computed for.
        let mut mids: Vec<(usize, usize, Vec<usize>)> = Vec::new();
        let mut b_ends = Vec::new();
        for &a in &a_ends {
            b_ends.clear();
            ends(
                &self.cap,
                cc,
                h,
                (a, h.len()),
                Anchored::Yes,
                None,
                &mut b_ends,
            )?;
            for &b in &b_ends {
                // Most of CAP's ends are inside the captured word (`[^\s>]+` ends after every
                // byte of an address), where MID, which starts with what follows the word, dies on
                // its first byte: one step tells, before any search for the word.
                if !starts_alive(&self.mid, mc, h, b)? {
                    continue;
                }
                let x = &same[a..b];
                // MID must end where the captured text appears again: with no such place after b
                // there is nothing to scan for, and no MID end after the last one can count. For
                // most mail (the From address is not in the To line) this ends it here.
                let Some(last) = memchr::memmem::rfind(&same[b..], x) else {
                    continue;
                };
                let bound = b + last;
                let k = match mids.iter().position(|(x, _, _)| *x == b) {
                    Some(k) if mids[k].1 >= bound => k,
                    found => {
                        let mut cs = Vec::new();
                        ends(&self.mid, mc, h, (b, bound), Anchored::Yes, None, &mut cs)?;
                        match found {
                            Some(k) => {
                                mids[k] = (b, bound, cs);
                                k
                            }
                            None => {
                                mids.push((b, bound, cs));
                                mids.len() - 1
                            }
                        }
                    }
                };
                let cs = &mids[k].2;
                for &c in cs {
                    if same[c..].starts_with(x)
                        && self.post.is_match(
                            Input::new(h)
                                .span(c + x.len()..h.len())
                                .anchored(Anchored::Yes),
                        )
                    {
                        return Some(true);
                    }
                }
            }
        }
        Some(false)
    }
}

/// Pushes onto `out` every position in `from..=to` where a match of `dfa` started at `from` ends (any
/// start at or after `from` when unanchored), in increasing order. None when the DFA quits. `lead`, for
/// an unanchored scan: literals every match starts with, so that whenever no match is under way the
/// scan jumps to the next place one can begin, as the regex crate's own searches do.
pub(crate) fn ends(
    dfa: &DFA,
    cache: &mut Cache,
    h: &[u8],
    (from, to): (usize, usize),
    anchored: Anchored,
    lead: Option<&Prefilter>,
    out: &mut Vec<usize>,
) -> Option<()> {
    let to = to.min(h.len());
    if from > to {
        return Some(());
    }
    let mut input = Input::new(h).span(from..h.len()).anchored(anchored);
    let mut s = dfa.start_state_forward(cache, &input).ok()?;
    // A DFA reports a match one byte late: being in a match state after reading h[j] means a match
    // ended just before h[j].
    let mut j = from;
    while j < to {
        if s.is_start() {
            if let Some(p) = lead {
                // The start state: nothing under way, so no match can end before the next lead.
                match p.find(h, regex_automata::Span::from(j..h.len())) {
                    None => return Some(()),
                    Some(sp) if sp.start > j => {
                        if sp.start >= to {
                            return Some(());
                        }
                        j = sp.start;
                        input.set_start(j);
                        s = dfa.start_state_forward(cache, &input).ok()?;
                    }
                    Some(_) => {}
                }
            }
        }
        s = dfa.next_state(cache, s, h[j]).ok()?;
        if s.is_tagged() {
            if s.is_dead() {
                return Some(());
            }
            if s.is_quit() || s.is_unknown() {
                return None;
            }
            if s.is_match() {
                out.push(j);
            }
        }
        j += 1;
    }
    if to < h.len() {
        // One more byte tells whether a match ends at `to`.
        s = dfa.next_state(cache, s, h[to]).ok()?;
        if s.is_quit() || s.is_unknown() {
            return None;
        }
        if s.is_match() {
            out.push(to);
        }
        return Some(());
    }
    s = dfa.next_eoi_state(cache, s).ok()?;
    if s.is_quit() {
        return None;
    }
    if s.is_match() {
        out.push(h.len());
    }
    Some(())
}

/// Whether a match of `dfa` anchored at `at` can exist after one byte: false only when the DFA is
/// dead after reading `h[at]` without a match ending at `at`. None when the DFA quits.
fn starts_alive(dfa: &DFA, cache: &mut Cache, h: &[u8], at: usize) -> Option<bool> {
    let Some(&byte) = h.get(at) else {
        return Some(true);
    };
    let input = Input::new(h).span(at..h.len()).anchored(Anchored::Yes);
    let s = dfa.start_state_forward(cache, &input).ok()?;
    let s = dfa.next_state(cache, s, byte).ok()?;
    if s.is_quit() || s.is_unknown() {
        return None;
    }
    Some(s.is_match() || !s.is_dead())
}

/// Cuts `pat` into PRE, CAP, MID and POST, or None for any other shape: more than one capture group or
/// backreference, a named group, an alternation at the top level, a quantified capture group, inline
/// flags (they would not carry over from one piece to the next), `\1` nested anywhere but in a final
/// look-ahead.
fn cut(pat: &str) -> Option<Pieces<'_>> {
    let b = pat.as_bytes();
    let mut depth = 0usize;
    let mut in_class = false;
    // (open, close) of the capture group; (depth, position) of `\1`; open of each group by depth.
    let mut cap: Option<(usize, usize)> = None;
    let mut cap_open_at_depth: Option<usize> = None;
    let mut backref: Option<(usize, usize)> = None;
    let mut opens: Vec<(usize, bool)> = Vec::new(); // (position, is the capture group)
    let mut last_lookahead: Option<(usize, usize)> = None; // top-level `(?=` open and close
    let mut lookahead_open: Option<usize> = None;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'\\' {
            let n = *b.get(i + 1)?;
            if !in_class {
                if n.is_ascii_digit() && n != b'0' {
                    if n != b'1'
                        || b.get(i + 2).is_some_and(u8::is_ascii_digit)
                        || backref.is_some()
                    {
                        return None;
                    }
                    backref = Some((depth, i));
                } else if b"gkK".contains(&n) {
                    return None;
                }
            }
            i += 2;
            continue;
        }
        if in_class {
            if c == b']' {
                in_class = false;
            }
            i += 1;
            continue;
        }
        match c {
            b'[' => {
                in_class = true;
                i += 1;
                if b.get(i) == Some(&b'^') {
                    i += 1;
                }
                if b.get(i) == Some(&b']') {
                    i += 1;
                }
                continue;
            }
            b'(' => {
                let q = b.get(i + 1) == Some(&b'?');
                if q {
                    match b.get(i + 2) {
                        Some(b':') => {}
                        Some(b'=') => {
                            if depth == 0 {
                                lookahead_open = Some(i);
                            }
                        }
                        Some(b'!') => {}
                        Some(b'<') if matches!(b.get(i + 3), Some(b'=') | Some(b'!')) => {}
                        _ => return None, // named group, inline flags, atomic group ...
                    }
                } else {
                    if cap.is_some() || cap_open_at_depth.is_some() || depth != 0 {
                        return None;
                    }
                    cap_open_at_depth = Some(i);
                }
                opens.push((i, !q));
                depth += 1;
            }
            b')' => {
                let (open, is_cap) = opens.pop()?;
                depth -= 1;
                if is_cap {
                    cap = Some((open, i));
                }
                if depth == 0 && lookahead_open == Some(open) {
                    last_lookahead = Some((open, i));
                    lookahead_open = None;
                }
            }
            b'|' if depth == 0 => return None,
            _ => {}
        }
        i += 1;
    }
    if depth != 0 || in_class {
        return None;
    }
    let (open, close) = cap?;
    let (bdepth, bpos) = backref?;
    if bpos < close {
        return None;
    }
    if matches!(b.get(close + 1), Some(b'?' | b'*' | b'+' | b'{')) {
        return None;
    }
    let pre = &pat[..open];
    let cap_s = &pat[open + 1..close];
    let post = &pat[bpos + 2..];
    if bdepth == 0 {
        return Some(Pieces {
            pre,
            cap: cap_s,
            mid: pat[close + 1..bpos].to_string(),
            post,
        });
    }
    // `\1` inside a look-ahead: only a final, unquantified `(?=...)` at the top level, with `\1` directly
    // in it, and nothing after it.
    let (lo, lc) = last_lookahead?;
    if bdepth != 1 || !(lo < bpos && bpos < lc) || lc + 1 != b.len() || lo < close {
        return None;
    }
    if has_top_level_bar(&pat[lo + 3..lc]) {
        return None;
    }
    Some(Pieces {
        pre,
        cap: cap_s,
        mid: format!("{}{}", &pat[close + 1..lo], &pat[lo + 3..bpos]),
        post: &pat[bpos + 2..lc],
    })
}

/// Whether `s` (a group's inside, or a whole pattern) has a `|` outside any nested group or class.
fn has_top_level_bar(s: &str) -> bool {
    let b = s.as_bytes();
    let (mut depth, mut in_class, mut i) = (0usize, false, 0);
    while i < b.len() {
        match b[i] {
            b'\\' => i += 1,
            b']' if in_class => in_class = false,
            _ if in_class => {}
            b'[' => {
                in_class = true;
                // `[]...]` and `[^]...]`: a leading `]` is a member, not the end.
                if b.get(i + 1) == Some(&b'^') {
                    i += 1;
                }
                if b.get(i + 1) == Some(&b']') {
                    i += 1;
                }
            }
            b'(' => depth += 1,
            b')' => depth = depth.saturating_sub(1),
            b'|' if depth == 0 => return true,
            _ => {}
        }
        i += 1;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fallback engine on the same pattern: what the split matcher must answer.
    fn fallback(pat: &str, flags: &str) -> crate::spam::perlre::Fallback {
        crate::spam::perlre::Fallback::new(pat, flags, None).expect("PCRE2 takes it")
    }

    /// Compares the split matcher with the fallback engine (the one it stands in for) on every input.
    fn same(pat: &str, flags: &str, inputs: &[&str]) {
        let m = Split::new(pat, flags).unwrap_or_else(|| panic!("no split for {pat}"));
        let f = fallback(pat, flags);
        for s in inputs {
            let want = f.is_match_at(s.as_bytes(), 0);
            assert_eq!(m.is_match(s.as_bytes()), Some(want), "{pat} on {s:?}");
        }
    }

    pub(super) const TO_EQ_FROM: &str = r"\nFrom: (?:[^\n<]{0,80}<)?([^\n\s>]+)>?\n+(?:[^\n]{1,100}\n+)*To: (?:[^\n]{0,80}<)?\1[>,\s\n]";

    pub(super) const NN: &str = r"\nFrom:\s+(?:[^\n<]{0,80}<)?([^\n\s\@>]{4,80}?)\d*\@[^\n\s]+>?\n+(?:[^\n]{1,100}\n+)*To:\s+(?:[^\n]{0,80}<)?\1\d*[\@>,\s\n]";

    /// Random texts built from the pieces these rules look for (header names, brackets, addresses that
    /// differ in case or by a suffix, long lines, non-ASCII), each pattern against the fallback engine.
    #[test]
    fn random_headers_agree_with_the_fallback() {
        let names = [
            "From: ",
            "To: ",
            "Subject: ",
            "Received: from x by y for ",
            "Cc: ",
            "From:  ",
            "To:\t",
            "",
        ];
        let values = [
            "a@b.c", "A@b.c", "a@b.cd", "<a@b.c>", "<a@b.c>;", "John Smith", "John Smith <j@s>",
            "john12@x.org", "john7@y.org", "<john@X.org>", "joe@paypal.com", "paypal", "PayPal", "\"paypal\"",
            "é@ü.de", " ", ",", ";", "!", "\r", "7",
            "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        ];
        let pats = [
            (TO_EQ_FROM, "ism"),
            (NN, "ism"),
            (
                r"\nReceived:[^\n]{0,200} for <?([^\n\s>;]+)>?;(?:[^\n]+\n+)*Subject: [^\n]{0,100}\1[^a-z0-9]",
                "ism",
            ),
            (
                r#"^To:\s+<?[^\@]+\@([^\.]+)\.(?:[^\n]+\n+)*^Subject: \"?\1\b"#,
                "ism",
            ),
            (r"^From:\s+([^<]\S+\s\S+)\s(?=.{1,2048}^\1\r?$)", "sm"),
        ];
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut hits = 0;
        for (pat, flags) in pats {
            let m = Split::new(pat, flags).expect("split");
            let f = fallback(pat, flags);
            let before = hits;
            for _ in 0..10_000 {
                let mut s = String::from("\n");
                for _ in 0..1 + next() % 6 {
                    s.push_str(names[(next() % names.len() as u64) as usize]);
                    for _ in 0..1 + next() % 3 {
                        s.push_str(values[(next() % values.len() as u64) as usize]);
                    }
                    s.push('\n');
                }
                let want = f.is_match_at(s.as_bytes(), 0);
                hits += usize::from(want);
                assert_eq!(m.is_match(s.as_bytes()), Some(want), "{pat} on {s:?}");
            }
            assert!(hits > before, "no text matched {pat}");
        }
        // The texts must exercise both answers, or the comparison proves little (124 of 50,000 match).
        assert!(hits > 100, "only {hits} matches");
    }

    #[test]
    fn cuts_the_stock_shapes() {
        let p = cut(r"a(b+)c\1d").expect("simple");
        assert_eq!(
            p,
            Pieces {
                pre: "a",
                cap: "b+",
                mid: "c".into(),
                post: "d"
            }
        );
        let p = cut(r"^From:\s+([^<]\S+\s\S+)\s(?=.{1,2048}^\1\r?$)").expect("final look-ahead");
        assert_eq!((p.mid.as_str(), p.post), (r"\s.{1,2048}^", r"\r?$"));
        // Shapes left to the fallback.
        for pat in [
            r"(a)(b)\1",
            r"(a)\1\1",
            r"(a)|\1",
            r"(a)+\1",
            r"\1(a)",
            r"(?i)(a)\1",
            r"(?<n>a)\k<n>",
            r"(a)(?!\1)b",
            r"(a)(?=\1)b",
            r"(a)(?:x\1)",
            r"x(?=(a))\1",
        ] {
            assert!(cut(pat).is_none(), "{pat}");
        }
    }

    #[test]
    fn from_equals_to() {
        same(
            TO_EQ_FROM,
            "ism",
            &[
                "\nFrom: a@b.c\nTo: a@b.c\n",
                "\nFrom: Joe <a@b.c>\nX: y\nTo: Someone <a@b.c>\n",
                // Case differs: under /i the backreference matches either case, as in Perl.
                "\nFrom: A@B.C\nTo: a@b.c\n",
                "\nfrom: a@b.c\nto: a@b.c\n",
                // The captured text is a prefix of a longer address: the next char must end it.
                "\nFrom: a@b.c\nTo: a@b.cd\n",
                "\nFrom: a@b.cd\nTo: a@b.c\n",
                // A header line over 100 chars between them breaks the chain.
                &format!("\nFrom: a@b.c\nX: {}\nTo: a@b.c\n", "x".repeat(120)),
                // Two From lines: only the second matches a To.
                "\nFrom: x@y.z\nFrom: a@b.c\nTo: a@b.c,\n",
                // Overlapping candidates: `<` inside the display name.
                "\nFrom: a <b <c@d>\nTo: c@d>\n",
                "\nFrom: a <b <c@d>\nTo: b <c@d>\n",
                "\nTo: a@b.c\nFrom: a@b.c\n",
                "",
                "\nFrom: \nTo: \n",
                "\nFrom: é@ü.de\nTo: é@ü.de\n",
                "\nFrom: É@ü.de\nTo: é@ü.de\n",
            ],
        );
    }

    #[test]
    fn several_captures_and_lazy_counts() {
        let nn = NN;

        same(
            nn,
            "ism",
            &[
                "\nFrom: john123@x.org\nTo: john7@y.org\n",
                "\nFrom: john123@x.org\nTo: jo@y.org\n",
                "\nFrom: jo@x.org\nTo: jo@y.org\n",
                "\nFrom: <abcd1@x>\nSubject: s\nTo: Bob <abcd@z>\n",
                "\nFrom: <abcd1@x>\nSubject: s\nTo: Bob <abce@z>\n",
            ],
        );
        let subj = r"\nReceived:[^\n]{0,200} for <?([^\n\s>;]+)>?;(?:[^\n]+\n+)*Subject: [^\n]{0,100}\1[^a-z0-9]";
        same(
            subj,
            "ism",
            &[
                "\nReceived: from x by y for <u@v.w>; now\nSubject: hello u@v.w!\n",
                "\nReceived: from x by y for <u@v.w>; now\nSubject: hello u@v.wx\n",
                "\nReceived: from x for a@b; t\nReceived: from y for c@d; t\nSubject: re c@d.\n",
                "\nReceived: from x for a@b; t\nSubject: re A@B.\n",
                "\nSubject: u@v.w\nReceived: by y for <u@v.w>; now\n",
            ],
        );
    }

    #[test]
    fn word_boundary_and_line_start_pieces() {
        same(
            r#"^To:\s+<?[^\@]+\@([^\.]+)\.(?:[^\n]+\n+)*^Subject: \"?\1\b"#,
            "ism",
            &[
                "To: joe@paypal.com\nSubject: paypal alert\n",
                "To: joe@paypal.com\nSubject: paypalalert\n",
                "To: joe@paypal.com\nSubject: \"paypal\" alert\n",
                "To: joe@pay\npal.com\nSubject: pay\npal x\n",
                "X-To: joe@paypal.com\nSubject: paypal\n",
                "To: joe@paypal.com\nSubject: PayPal alert\n",
            ],
        );
        same(
            r"^From:\s+([^<]\S+\s\S+)\s(?=.{1,2048}^\1\r?$)",
            "sm",
            &[
                "From: John Smith <j@s>\n\nHi\n\nJohn Smith\n",
                "From: John Smith <j@s>\n\nHi\n\nJohn Smith\r\n",
                "From: John Smith <j@s>\n\nHi\n\nJohn Smithers\n",
                "From: John Smith <j@s>\n\nHi\n\n John Smith\n",
                "From:  John Smith <j@s>\n\nJohn Smith\n",
                "From: John Smith\n",
                &format!("From: John Smith <j@s>\n{}\nJohn Smith\n", "x".repeat(3000)),
            ],
        );
    }
}
