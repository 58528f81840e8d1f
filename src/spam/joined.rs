//! One search over all of a message's body (or rawbody) lines before a rule tries them one by one.
//!
//! SpamAssassin runs a body rule on each line separately, and so does `check`. On a big message that
//! is hundreds of regex calls per rule (the 100 KB benchmark message has 469 body lines of ~100 bytes),
//! each with a fixed cost (cache from the pool, start state, strategy dispatch). So each body and
//! rawbody rule first searches the lines joined with `\n`, with a pattern that matches wherever the
//! rule matches in some line; when it does not match, no line can, and when it does, lines before the
//! one its leftmost match starts in cannot match either. The rule itself then runs per line from
//! there, exactly as before, so results cannot change. A modest gain (bench/RESULTS.md, issue 5,
//! 100 KB message: 3-5% of its CPU time); the bytes scanned, not the calls, are most of the cost.
//!
//! Why the joined search finds every per-line match: within a line the bytes are the same, and the
//! byte beside a line in the joined text is `\n` or the text's edge. `\n` is a non-word byte like the
//! edge of a line's own text (`\b`, `\B` agree, Unicode ones too: `\n` ends any UTF-8 sequence) and
//! multi-line `^`/`$` hold next to it as they hold at an edge. Only the text anchors (`^`, `$`, `\A`,
//! `\z` without `/m`, and the CRLF-mode ones) read the edge differently, so rules with them keep trying
//! every line (35 stock rules: a pattern with those anchors made line anchors is a superset too, but
//! compiling it for the big ReplaceTags rules took 0.3 s, for ~0.4 ms a 100 KB message). The others
//! search with their own regex, or, for the fallback-engine rules, with the superset regex that already
//! gates them line by line. A regex of the rule's own that cannot match a `\n` (no class or literal
//! holding one; 303 of the 560 stock body rules) cannot match across lines either, so for a rule that
//! counts one hit the joined search answers alone (`Joined::Inline`).

use super::perlre::Re;
use regex_syntax::hir::{Hir, Look};

/// A message's lines of one kind, joined with `\n`, and where each starts.
#[derive(Debug, Default)]
pub struct Lines {
    pub text: Vec<u8>,
    starts: Vec<usize>,
}

impl Lines {
    pub fn new(lines: &[Vec<u8>]) -> Lines {
        let mut l = Lines {
            text: Vec::with_capacity(lines.iter().map(|x| x.len() + 1).sum()),
            starts: Vec::with_capacity(lines.len()),
        };
        for (i, x) in lines.iter().enumerate() {
            if i > 0 {
                l.text.push(b'\n');
            }
            l.starts.push(l.text.len());
            l.text.extend_from_slice(x);
        }
        l
    }

    /// The line a byte offset of `text` falls in (a separator counts with the line before it).
    fn line_of(&self, pos: usize) -> usize {
        self.starts.partition_point(|&s| s <= pos).saturating_sub(1)
    }
}

/// How a rule searches the joined lines.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum Joined {
    /// No search: every line is tried (no regex crate source, or text anchors).
    #[default]
    Every,
    /// The rule's own regex (or its superset regex) reads the joined text as it reads a line.
    Same,
    /// `Same`, and the regex the joined search runs (a fallback rule's superset) can match no `\n`:
    /// every match lies within one line, so the line where the earliest one ends is the first line
    /// with a match (`first_line` then needs no search back for where a match starts).
    Within,
    /// `Same`, and the rule's own regex can match no `\n`: every match in the joined text lies within
    /// one line and is a match there, so for a rule that counts at most one hit the joined search is
    /// the answer (`decides`), with no search back for where the match starts and no second search in
    /// that line.
    Inline,
}

/// Whether some match of the pattern can contain the byte `\n`.
fn can_match_newline(h: &Hir) -> bool {
    use regex_syntax::hir::{Class, HirKind};
    match h.kind() {
        HirKind::Empty | HirKind::Look(_) => false,
        HirKind::Literal(l) => l.0.contains(&b'\n'),
        HirKind::Class(Class::Bytes(c)) => c
            .ranges()
            .iter()
            .any(|r| r.start() <= b'\n' && b'\n' <= r.end()),
        HirKind::Class(Class::Unicode(c)) => c
            .ranges()
            .iter()
            .any(|r| r.start() <= '\n' && '\n' <= r.end()),
        HirKind::Repetition(r) => can_match_newline(&r.sub),
        HirKind::Capture(c) => can_match_newline(&c.sub),
        HirKind::Concat(s) | HirKind::Alternation(s) => s.iter().any(can_match_newline),
    }
}

/// Whether the pattern has a look-around that reads a line's edge differently from a `\n`.
fn has_text_anchor(h: &Hir) -> bool {
    let ls = h.properties().look_set();
    [Look::Start, Look::End, Look::StartCRLF, Look::EndCRLF]
        .into_iter()
        .any(|l| ls.contains(l))
}

impl Joined {
    /// How `re`, a body or rawbody rule's regex, searches joined lines.
    pub fn of(re: &Re) -> Joined {
        let Some(src) = re.fast_source() else {
            return Joined::Every;
        };
        let hir = regex_syntax::ParserBuilder::new()
            .utf8(false)
            .build()
            .parse(src);
        match hir {
            Ok(h) if !has_text_anchor(&h) => match (re, can_match_newline(&h)) {
                (_, true) => Joined::Same,
                (Re::Fast(_), false) => Joined::Inline,
                (_, false) => Joined::Within,
            },
            _ => Joined::Every,
        }
    }

    /// Whether `re` matches in one of the lines, when one search of the joined text tells (`Inline`);
    /// None otherwise.
    pub fn decides(self, re: &Re, lines: &Lines) -> Option<bool> {
        match (self, re) {
            (Joined::Inline, Re::Fast(r)) => {
                Some(!lines.starts.is_empty() && r.is_match(&lines.text))
            }
            _ => None,
        }
    }

    /// The first line a match of `re` can be in: None when no line can match.
    pub fn first_line(self, re: &Re, lines: &Lines) -> Option<usize> {
        if lines.starts.is_empty() {
            return None;
        }
        if self == Joined::Every {
            return Some(0);
        }
        let r = match re {
            Re::Fast(r) => r,
            Re::Fancy(_, Some(a)) | Re::Backref(_, _, Some(a)) => a,
            _ => return Some(0),
        };
        // A leftmost match's start needs a forward search to its end and a reverse one back (the
        // reverse DFA building its own states on every new text); where no match spans lines, the
        // earliest end found by the forward search alone names the same line.
        let at = match self {
            Joined::Same => r.find(&lines.text)?.start(),
            _ => r.shortest_match(&lines.text)?,
        };
        Some(lines.line_of(at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spam::perlre::compile;

    fn per_line(re: &Re, lines: &[Vec<u8>]) -> Option<usize> {
        lines.iter().position(|l| re.is_match(l))
    }

    /// Whatever line matches first one by one, the joined search never starts after it.
    #[test]
    fn joined_search_never_skips_a_matching_line() {
        let lines: Vec<Vec<u8>> = [
            "Subject: hello\n",
            "first line of text\n",
            "Second Line, with CAPS and a price: $100\n",
            "no newline at the end, cut here",
            "\r\n",
            "caf\u{e9} \u{a0}na\u{ef}ve word\n",
            "last line\n",
        ]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect();
        let joined = Lines::new(&lines);
        let pats = [
            ("^first", ""),
            ("^Second", ""),
            ("text$", ""),
            ("here$", ""),
            ("cut here\\z", ""),
            ("\\Acut", ""),
            ("^no newline", ""),
            ("^\\r?$", ""),
            ("^$", "m"),
            ("^last line$", ""),
            ("line\\b", ""),
            ("\\bSubject", ""),
            ("\\$\\d+$", ""),
            ("caps", "i"),
            ("na.ve", ""),
            ("\\xa0", ""),
            ("of text\\s+second", "i"),
            ("zzz", ""),
            ("^(?!first)\\w+ line", ""),
            ("(\\w+) line of \\1", ""),
            ("[a-z]+(?=,)", ""),
            ("(?<!S)econd", "i"),
            ("\\bhere\\b", ""),
            ("x*", ""),
        ];
        let mut decided = 0;
        for (p, f) in pats {
            let re = compile(p, f).unwrap();
            let j = Joined::of(&re);
            let first = j.first_line(&re, &joined);
            if let Some(k) = per_line(&re, &lines) {
                assert!(
                    first.is_some_and(|f| f <= k),
                    "{p}: first match on line {k}, joined search says {first:?}"
                );
                // Where no match spans lines, the earliest end is in the first matching line itself.
                if j == Joined::Inline {
                    assert_eq!(first, Some(k), "{p}");
                }
            }
            // Either way, counting from the joined search's line gives the per-line answer.
            let from = first.unwrap_or(lines.len());
            assert_eq!(
                lines[from..].iter().any(|l| re.is_match(l)),
                per_line(&re, &lines).is_some(),
                "{p}"
            );
            // Where one joined search decides, it answers what the lines answer one by one.
            if let Some(yes) = j.decides(&re, &joined) {
                decided += 1;
                assert_eq!(yes, per_line(&re, &lines).is_some(), "{p}");
            }
        }
        // Every pattern above that cannot match a newline, is no fallback rule and has no text anchor.
        assert_eq!(decided, 9);
        assert_eq!(Joined::of(&compile("^x", "").unwrap()), Joined::Every);
        assert_eq!(Joined::of(&compile("^x", "m").unwrap()), Joined::Inline);
        assert_eq!(Joined::of(&compile("a\\s+b", "").unwrap()), Joined::Same);
        assert_eq!(Joined::of(&compile("[^x]y", "").unwrap()), Joined::Same);
        assert_eq!(Joined::of(&compile("x$", "").unwrap()), Joined::Every);
        assert_eq!(Joined::of(&compile("\\bx", "i").unwrap()), Joined::Inline);
        assert_eq!(Joined::of(&compile("(?!b)a", "").unwrap()), Joined::Within);
        assert_eq!(Joined::of(&compile("(?!b)a\\s", "").unwrap()), Joined::Same);
        assert_eq!(
            Joined::Same.first_line(&compile("x", "").unwrap(), &Lines::new(&[])),
            None
        );
    }
}
