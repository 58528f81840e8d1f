//! Perl regular expressions as SpamAssassin rules write them (`/re/flags`, `m{re}flags`), translated for
//! Rust's `regex` crate, with PCRE2 as the fallback engine only for the rules that need look-around,
//! backreferences, atomic groups or possessive quantifiers.
//!
//! Matching is on bytes with Unicode off, as Perl matches SpamAssassin's octet strings: `.` is one byte,
//! `\w` is ASCII, `\xA0` is the byte 0xA0. The fallback gets the pattern as Perl wrote it and reads the
//! same bytes (PCRE2 without UTF mode), so both engines see one text.

use std::borrow::Cow;

/// A compiled rule pattern.
#[derive(Debug, Clone)]
pub enum Re {
    Fast(regex::bytes::Regex),
    /// The fallback engine, with a fast regex that matches a superset (look-arounds dropped, backreferences
    /// widened): when the superset does not match, the real pattern cannot either.
    Fancy(Box<Fallback>, Option<regex::bytes::Regex>),
    /// A fallback pattern of the shape `PRE (CAP) MID \1 POST`, answered by `backref::Split` without
    /// backtracking; the fallback engine stays for counting (`tflags multiple`) and for texts a piece's
    /// DFA cannot read.
    Backref(
        Box<super::backref::Split>,
        Box<Fallback>,
        Option<regex::bytes::Regex>,
    ),
}

/// Most steps PCRE2 may take for one match attempt before it gives up and the rule says no: a rule
/// that backtracks without end on some text costs a bounded time (~1 ms with the JIT), not a stuck
/// scoring thread. Perl has no such bound; no stock rule comes near it on real mail.
const MATCH_LIMIT: u32 = 1_000_000;

/// The fallback engine: PCRE2 with its JIT, on the pattern as Perl wrote it.
///
/// Why PCRE2 rather than a Rust backtracker (fancy-regex, before): it is Perl's own dialect (look-behind,
/// `\Z`, `$` before a final newline, backreferences that fold case under `/i`), it reads bytes as Perl
/// reads SpamAssassin's octet strings (fancy-regex needed the text decoded to UTF-8, lossily), it anchors
/// `^` patterns and skips to a pattern's first bytes by itself, and its JIT runs the stock fallback rules
/// several times faster (bench/RESULTS.md, stop 15).
#[derive(Debug, Clone)]
pub struct Fallback(pcre2::bytes::Regex);

impl Fallback {
    /// `pat` as Perl reads it with flags `flags` (`i`, `m`, `s`, `x`). Patterns PCRE2 refuses in that
    /// form (a `\x{...}` above 0xFF, which Perl matches only in decoded text) get a second try in
    /// `alt`, the regex-crate translation, whose code points are spelled as their UTF-8 bytes.
    pub fn new(pat: &str, flags: &str, alt: Option<&str>) -> Result<Fallback, ReError> {
        let build = |p: &str| {
            pcre2::bytes::RegexBuilder::new()
                .caseless(flags.contains('i'))
                .multi_line(flags.contains('m'))
                .dotall(flags.contains('s'))
                .extended(flags.contains('x'))
                .jit_if_available(true)
                .max_jit_stack_size(Some(1 << 20))
                .build(&format!("(*LIMIT_MATCH={MATCH_LIMIT}){p}"))
        };
        match build(pat) {
            Ok(r) => Ok(Fallback(r)),
            Err(e) => match alt.map(build) {
                Some(Ok(r)) => Ok(Fallback(r)),
                _ => Err(ReError(e.to_string())),
            },
        }
    }

    /// Whether a match starts at or after `start` (the text before it still counts for look-behind);
    /// over the match limit counts as no, as for a rule that never finishes.
    pub fn is_match_at(&self, hay: &[u8], start: usize) -> bool {
        self.0.is_match_at(hay, start).unwrap_or(false)
    }

    /// Non-overlapping matches, at most `limit`.
    fn count(&self, hay: &[u8], limit: usize) -> usize {
        self.0
            .find_iter(hay)
            .take(limit)
            .take_while(Result::is_ok)
            .count()
    }
}

impl Re {
    pub fn is_match(&self, hay: &[u8]) -> bool {
        self.is_match_pre(hay, false)
    }

    /// `is_match`; with `pre`, a Hyperscan superset of the rule already matched the message's text
    /// (its gate let it through), so a fallback rule goes straight to its engine: its superset regex
    /// would mostly repeat what Hyperscan found, and on a fresh daemon that regex's lazy DFA builds
    /// its states as it reads (stop 30: the first pass over the sample 5% faster, same hits).
    pub fn is_match_pre(&self, hay: &[u8], pre: bool) -> bool {
        match self {
            Re::Fast(r) => r.is_match(hay),
            Re::Backref(split, r, _) => {
                // No superset search first: the split matcher's own PRE scan jumps between the
                // literals PRE starts with, which costs less than a search for the whole superset
                // (which, on headers, nearly always matches anyway).
                split.is_match(hay).unwrap_or_else(|| r.is_match_at(hay, 0))
            }
            Re::Fancy(r, _) if pre => r.is_match_at(hay, 0),
            Re::Fancy(r, approx) => {
                // A real match is also a match of the superset over the same bytes, so none can start
                // before the superset's leftmost match: the fallback starts there instead of trying
                // every earlier position.
                let start = match approx.as_ref().map(|a| a.find(hay)) {
                    Some(None) => return false,
                    Some(Some(m)) => m.start(),
                    None => 0,
                };
                r.is_match_at(hay, start)
            }
        }
    }

    /// `is_match` for a backreference rule whose PRE ends in `hay` are known (`Split::is_match_from`);
    /// any other regex ignores them.
    pub fn is_match_with_pre(&self, hay: &[u8], pre_ends: &[usize]) -> bool {
        match self {
            Re::Backref(split, r, _) => split
                .is_match_from(hay, Some(pre_ends))
                .unwrap_or_else(|| r.is_match_at(hay, 0)),
            _ => self.is_match(hay),
        }
    }

    /// The backreference matcher, for a rule that has one.
    pub fn split(&self) -> Option<&super::backref::Split> {
        match self {
            Re::Backref(split, ..) => Some(split),
            _ => None,
        }
    }

    /// Number of non-overlapping matches, for `tflags multiple`; stops at `max` (0 = no limit).
    pub fn count(&self, hay: &[u8], max: usize) -> usize {
        self.count_pre(hay, max, false)
    }

    /// `count`, with `pre` as for `is_match_pre`.
    pub fn count_pre(&self, hay: &[u8], max: usize, pre: bool) -> usize {
        let limit = if max == 0 { usize::MAX } else { max };
        match self {
            Re::Fast(r) => r.find_iter(hay).take(limit).count(),
            Re::Fancy(r, approx) | Re::Backref(_, r, approx) => {
                if !pre && approx.as_ref().is_some_and(|a| !a.is_match(hay)) {
                    return 0;
                }
                r.count(hay, limit)
            }
        }
    }

    pub fn is_fancy(&self) -> bool {
        matches!(self, Re::Fancy(..) | Re::Backref(..))
    }

    /// The Rust-syntax source, for the literal prefilter.
    pub fn fast_source(&self) -> Option<&str> {
        match self {
            Re::Fast(r) => Some(r.as_str()),
            Re::Fancy(_, approx) | Re::Backref(_, _, approx) => approx.as_ref().map(|a| a.as_str()),
        }
    }
}

/// Splits `/re/flags` or `m{re}flags` at the start of `s`; returns (pattern, flags, rest after flags).
pub fn split_delimited(s: &str) -> Option<(&str, &str, &str)> {
    let s = s.trim_start();
    let (open, body_start) = if let Some(rest) = s.strip_prefix('m') {
        let c = rest.chars().next()?;
        if c.is_alphanumeric() || c.is_whitespace() {
            return None;
        }
        (c, 1 + c.len_utf8())
    } else if s.starts_with('/') {
        ('/', 1)
    } else {
        return None;
    };
    let close = match open {
        '{' => '}',
        '(' => ')',
        '[' => ']',
        '<' => '>',
        c => c,
    };
    let body = &s[body_start..];
    let mut depth = 0usize;
    let mut escaped = false;
    for (i, c) in body.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        if c == '\\' {
            escaped = true;
        } else if c == open && open != close {
            depth += 1;
        } else if c == close {
            if depth == 0 {
                let pat = &body[..i];
                let after = &body[i + c.len_utf8()..];
                let flen = after
                    .find(|c: char| !c.is_ascii_alphabetic())
                    .unwrap_or(after.len());
                return Some((pat, &after[..flen], &after[flen..]));
            }
            depth -= 1;
        }
    }
    None
}

/// Lazy DFA cache per regex and thread. The regex crate's default (2 MB) is too small for the stock rules'
/// biggest patterns (`__FILL_THIS_FORM_*` expand to thousands of alternatives): their cache filled and was
/// cleared over and over on every message, or the search fell back to the much slower NFA simulation. A
/// cache only grows as far as a pattern needs, so the small patterns (almost all) stay small.
pub(crate) const DFA_CACHE: usize = 32 << 20;

/// Why a pattern could not be compiled at all.
#[derive(Debug, Clone, PartialEq)]
pub struct ReError(pub String);

/// Compiles a Perl pattern with its flags (`i`, `m`, `s`, `x`; `g` and `o` are accepted and ignored).
pub fn compile(pat: &str, flags: &str) -> Result<Re, ReError> {
    let mut f = String::new();
    for c in flags.chars() {
        match c {
            'i' | 'm' | 's' | 'x' => {
                if !f.contains(c) {
                    f.push(c)
                }
            }
            'g' | 'o' | 'p' | 'a' | 'l' | 'u' | 'd' => {}
            other => return Err(ReError(format!("unknown regex flag {other}"))),
        }
    }
    let multiline = f.contains('m');
    let t = translate(pat, multiline);
    if !t.fancy {
        let src = if f.is_empty() {
            format!("(?-u){}", t.out)
        } else {
            format!("(?{f}-u){}", t.out)
        };
        match regex::bytes::RegexBuilder::new(&src)
            .size_limit(1 << 24)
            .dfa_size_limit(DFA_CACHE)
            .build()
        {
            Ok(r) => return Ok(Re::Fast(r)),
            Err(_) => {
                // A pattern with non-ASCII literals may need Unicode mode; try that before the fallback.
                let src = if f.is_empty() {
                    t.out.clone()
                } else {
                    format!("(?{f}){}", t.out)
                };
                if let Ok(r) = regex::bytes::RegexBuilder::new(&src)
                    .size_limit(1 << 24)
                    .dfa_size_limit(DFA_CACHE)
                    .build()
                {
                    return Ok(Re::Fast(r));
                }
            }
        }
    }
    let approx = widen(&t.out).and_then(|w| {
        let build = |w: &str| {
            let src = if f.is_empty() {
                format!("(?-u){w}")
            } else {
                format!("(?{f}-u){w}")
            };
            regex::bytes::RegexBuilder::new(&src)
                .size_limit(1 << 24)
                .dfa_size_limit(DFA_CACHE)
                .build()
                .ok()
        };
        // Nested counted repeats (`(?:[^<]{0,1024}<[^>]{1,1024}>){0,99}` in `__SPOOFED_URL`) can make the
        // superset too big to compile; without an upper bound on each count it is smaller and still a
        // superset. Without any superset the fallback engine searched every line from its first byte.
        build(&w).or_else(|| unbound_counts(&w).and_then(|u| build(&u)))
    });
    let split = super::backref::Split::new(&t.out, &f);
    let r = Box::new(Fallback::new(pat, &f, Some(&t.out))?);
    Ok(match split {
        Some(sp) => Re::Backref(Box::new(sp), r, approx),
        None => Re::Fancy(r, approx),
    })
}

/// A pattern matching a superset of `pat`: look-around groups removed (dropping a condition only widens),
/// atomic groups and possessive quantifiers made ordinary, backreferences replaced by `.*?`. None when
/// the pattern uses something else only the fallback knows.
fn widen(pat: &str) -> Option<String> {
    let c: Vec<char> = pat.chars().collect();
    let mut out = String::with_capacity(pat.len());
    let mut i = 0;
    let mut in_class = false;
    while i < c.len() {
        let ch = c[i];
        if ch == '\\' {
            let n = *c.get(i + 1)?;
            if !in_class && n.is_ascii_digit() && n != '0' {
                out.push_str("(?s:.*?)");
                i += 2;
                while c.get(i).is_some_and(char::is_ascii_digit) {
                    i += 1;
                }
                continue;
            }
            if !in_class && "KGQERXNCgkLUlu".contains(n) {
                return None;
            }
            out.push(ch);
            out.push(n);
            i += 2;
            continue;
        }
        if in_class {
            if ch == ']' {
                in_class = false;
            }
            out.push(ch);
            i += 1;
            continue;
        }
        match ch {
            '[' => {
                in_class = true;
                out.push(ch);
                i += 1;
                if c.get(i) == Some(&'^') {
                    out.push('^');
                    i += 1;
                }
                if c.get(i) == Some(&']') {
                    out.push_str("\\]");
                    i += 1;
                }
            }
            '(' if c.get(i + 1) == Some(&'?') => {
                let a = c.get(i + 2).copied();
                let b = c.get(i + 3).copied();
                let look = matches!(
                    (a, b),
                    (Some('='), _)
                        | (Some('!'), _)
                        | (Some('<'), Some('='))
                        | (Some('<'), Some('!'))
                );
                if look {
                    // Skip to the matching ')', then any quantifier that applied to the group.
                    let mut depth = 0usize;
                    let mut cls = false;
                    while i < c.len() {
                        let x = c[i];
                        if x == '\\' {
                            i += 2;
                            continue;
                        }
                        if cls {
                            if x == ']' {
                                cls = false;
                            }
                        } else if x == '[' {
                            cls = true;
                        } else if x == '(' {
                            depth += 1;
                        } else if x == ')' {
                            depth = depth.saturating_sub(1);
                            if depth == 0 {
                                i += 1;
                                break;
                            }
                        }
                        i += 1;
                    }
                    while c.get(i).is_some_and(|x| matches!(x, '?' | '*' | '+')) {
                        i += 1;
                    }
                    continue;
                }
                if a == Some('>') {
                    out.push_str("(?:");
                    i += 3;
                    continue;
                }
                if matches!(a, Some('|') | Some('^')) {
                    return None;
                }
                out.push(ch);
                i += 1;
            }
            '+' | '*' | '?' | '}' => {
                out.push(ch);
                i += 1;
                if c.get(i) == Some(&'+') {
                    i += 1;
                }
            }
            _ => {
                out.push(ch);
                i += 1;
            }
        }
    }
    Some(out)
}

/// `pat` with every counted repeat's upper bound dropped (`{n,m}` and `{n}` become `{n,}`): a superset.
/// `pat` is translated (regex crate) syntax, so regex-syntax's own parser and printer do the work; None
/// when it does not parse.
fn unbound_counts(pat: &str) -> Option<String> {
    use regex_syntax::ast::{Ast, RepetitionKind, RepetitionRange};
    fn unbound(a: &mut Ast) {
        match a {
            Ast::Repetition(r) => {
                if let RepetitionKind::Range(
                    RepetitionRange::Exactly(m) | RepetitionRange::Bounded(m, _),
                ) = r.op.kind
                {
                    r.op.kind = RepetitionKind::Range(RepetitionRange::AtLeast(m));
                }
                unbound(&mut r.ast);
            }
            Ast::Group(g) => unbound(&mut g.ast),
            Ast::Alternation(x) => x.asts.iter_mut().for_each(unbound),
            Ast::Concat(x) => x.asts.iter_mut().for_each(unbound),
            _ => {}
        }
    }
    let mut ast = regex_syntax::ast::parse::Parser::new().parse(pat).ok()?;
    unbound(&mut ast);
    let mut out = String::with_capacity(pat.len());
    regex_syntax::ast::print::Printer::new()
        .print(&ast, &mut out)
        .ok()?;
    Some(out)
}

struct Translated {
    out: String,
    fancy: bool,
}

/// Rewrites the Perl-only bits of a pattern into Rust syntax, and notes when only the fallback can run it.
fn translate(pat: &str, multiline: bool) -> Translated {
    let chars: Vec<char> = pat.chars().collect();
    let mut out = String::with_capacity(pat.len() + 8);
    let mut fancy = false;
    let mut i = 0;
    let mut in_class = false;
    let mut class_start = 0usize;
    while i < chars.len() {
        let c = chars[i];
        if c == '\\' {
            let Some(&n) = chars.get(i + 1) else {
                out.push_str("\\\\");
                break;
            };
            i += 2;
            match n {
                '1'..='9' if !in_class => {
                    fancy = true;
                    out.push('\\');
                    out.push(n);
                }
                '0'..='7' => {
                    // Octal escape: up to three digits.
                    let mut v = n.to_digit(8).unwrap_or(0);
                    let mut k = 0;
                    while k < 2 {
                        match chars.get(i).and_then(|c| c.to_digit(8)) {
                            Some(d) => {
                                v = v * 8 + d;
                                i += 1;
                                k += 1;
                            }
                            None => break,
                        }
                    }
                    out.push_str(&format!("\\x{{{:x}}}", v & 0xff));
                }
                'Z' if !in_class => out.push_str("(?:\\n?\\z)"),
                'h' => out.push_str(if in_class { " \\t" } else { "[ \\t]" }),
                'H' if !in_class => out.push_str("[^ \\t]"),
                'e' => out.push_str("\\x1b"),
                'K' | 'G' | 'Q' | 'E' | 'R' | 'X' | 'N' | 'C' | 'g' | 'k' | 'L' | 'U' | 'l'
                | 'u' => {
                    fancy = true;
                    out.push('\\');
                    out.push(n);
                }
                'x' => {
                    // \xNN or \x{NNNN}; code points past 0xFF become their UTF-8 bytes, as Perl sees them
                    // in an octet string.
                    if chars.get(i) == Some(&'{') {
                        let end = chars[i..].iter().position(|&c| c == '}').map(|p| p + i);
                        if let Some(end) = end {
                            let hex: String = chars[i + 1..end].iter().collect();
                            i = end + 1;
                            let v = u32::from_str_radix(hex.trim(), 16).unwrap_or(0);
                            push_code_point(&mut out, v);
                        } else {
                            out.push_str("\\x");
                        }
                    } else {
                        let mut hex = String::new();
                        while hex.len() < 2 {
                            match chars.get(i) {
                                Some(c) if c.is_ascii_hexdigit() => {
                                    hex.push(*c);
                                    i += 1;
                                }
                                _ => break,
                            }
                        }
                        let v = u32::from_str_radix(&hex, 16).unwrap_or(0);
                        out.push_str(&format!("\\x{v:02x}"));
                    }
                }
                'p' | 'P' => {
                    out.push_str("(?u:\\");
                    out.push(n);
                    if chars.get(i) == Some(&'{') {
                        while i < chars.len() {
                            out.push(chars[i]);
                            i += 1;
                            if chars[i - 1] == '}' {
                                break;
                            }
                        }
                    } else if let Some(&c) = chars.get(i) {
                        out.push(c);
                        i += 1;
                    }
                    out.push(')');
                }
                'd' | 'D' | 'w' | 'W' | 's' | 'S' | 'n' | 't' | 'r' | 'f' | 'v' | 'a' => {
                    out.push('\\');
                    out.push(n);
                }
                'b' | 'B' | 'A' | 'z' if !in_class => {
                    out.push('\\');
                    out.push(n);
                }
                'b' => out.push_str("\\x08"),
                c if c.is_ascii_alphanumeric() => out.push(c),
                c if c.is_ascii() => {
                    // Perl: an escaped punctuation character is itself. Rust escapes only its meta characters.
                    if is_meta(c) {
                        out.push('\\');
                    }
                    out.push(c);
                }
                c => out.push(c),
            }
            continue;
        }
        if in_class {
            match c {
                ']' if i > class_start => {
                    in_class = false;
                    out.push(']');
                }
                ']' => out.push_str("\\]"),
                '[' if chars.get(i + 1) == Some(&':') => {
                    // POSIX class: copy through to the closing ":]".
                    let rest: String = chars[i..].iter().collect();
                    if let Some(end) = rest.find(":]") {
                        out.push_str(&rest[..end + 2]);
                        i += rest[..end + 2].chars().count();
                        continue;
                    }
                    out.push_str("\\[");
                }
                '[' => out.push_str("\\["),
                '&' | '~' => {
                    out.push('\\');
                    out.push(c);
                }
                '-' if chars.get(i + 1) == Some(&'-') => out.push_str("\\-"),
                c => out.push(c),
            }
            i += 1;
            continue;
        }
        match c {
            '[' => {
                in_class = true;
                out.push('[');
                i += 1;
                if chars.get(i) == Some(&'^') {
                    out.push('^');
                    i += 1;
                }
                class_start = i;
                continue;
            }
            '(' if chars.get(i + 1) == Some(&'?') => {
                let n2 = chars.get(i + 2).copied();
                let n3 = chars.get(i + 3).copied();
                match (n2, n3) {
                    (Some('='), _)
                    | (Some('!'), _)
                    | (Some('<'), Some('='))
                    | (Some('<'), Some('!'))
                    | (Some('>'), _) => {
                        fancy = true;
                        out.push('(');
                    }
                    (Some('#'), _) => {
                        // Comment group: drop it.
                        while i < chars.len() && chars[i] != ')' {
                            i += 1;
                        }
                        i += 1;
                        continue;
                    }
                    (Some('|'), _) | (Some('^'), _) => {
                        fancy = true;
                        out.push('(');
                    }
                    _ => out.push('('),
                }
            }
            '$' => {
                // Perl `$` without /m also matches before a final newline.
                if multiline {
                    out.push('$');
                } else {
                    out.push_str("(?:\\n?\\z)");
                }
            }
            '{' => {
                // Perl treats a `{` that does not open a valid quantifier as a literal.
                let rest: String = chars[i + 1..].iter().take(24).collect();
                let valid = rest.find('}').is_some_and(|end| {
                    let q = &rest[..end];
                    let mut parts = q.splitn(2, ',');
                    let a = parts.next().unwrap_or("");
                    let b = parts.next();
                    !a.is_empty()
                        && a.bytes().all(|b| b.is_ascii_digit())
                        && b.is_none_or(|b| b.bytes().all(|x| x.is_ascii_digit()))
                });
                if valid && i > 0 {
                    out.push('{');
                } else {
                    out.push_str("\\{");
                }
            }
            '}' => {
                out.push('}');
                // Possessive `{n,m}+`.
                if chars.get(i + 1) == Some(&'+') {
                    fancy = true;
                }
            }
            '+' | '*' | '?' => {
                out.push(c);
                if chars.get(i + 1) == Some(&'+') && (i == 0 || chars[i - 1] != '\\') {
                    fancy = true;
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    if in_class {
        out.push(']');
    }
    Translated { out, fancy }
}

fn is_meta(c: char) -> bool {
    matches!(
        c,
        '\\' | '.'
            | '+'
            | '*'
            | '?'
            | '('
            | ')'
            | '|'
            | '['
            | ']'
            | '{'
            | '}'
            | '^'
            | '$'
            | '#'
            | '&'
            | '-'
            | '~'
            | ' '
    )
}

fn push_code_point(out: &mut String, v: u32) {
    if v <= 0xff {
        out.push_str(&format!("\\x{v:02x}"));
        return;
    }
    let ch = char::from_u32(v).unwrap_or('\u{fffd}');
    let mut buf = [0u8; 4];
    out.push_str("(?:");
    for b in ch.encode_utf8(&mut buf).bytes() {
        out.push_str(&format!("\\x{b:02x}"));
    }
    out.push(')');
}

/// Lossless view of bytes as text for messages and lint.
pub fn show(b: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, f: &str, s: &str) -> bool {
        compile(p, f).unwrap().is_match(s.as_bytes())
    }

    #[test]
    fn delimiters() {
        assert_eq!(
            split_delimited("/a\\/b/i rest"),
            Some(("a\\/b", "i", " rest"))
        );
        assert_eq!(split_delimited("m{a{1,2}}x"), Some(("a{1,2}", "x", "")));
        assert_eq!(split_delimited("m!x!"), Some(("x", "", "")));
        assert_eq!(split_delimited("foo"), None);
    }

    #[test]
    fn perl_semantics() {
        assert!(m("^$", "", "\n"));
        assert!(m("a{,2}", "", "a{,2}"));
        assert!(m("\\<b\\>", "", "<b>"));
        assert!(m("[]a]", "", "]"));
        assert!(m("[a[]", "", "["));
        assert!(m("\\x{263a}", "", "\u{263a}"));
        assert!(m("\\xa0", "", "\u{a0}") || m("\\xc2\\xa0", "", "\u{a0}"));
        assert!(m("foo(?!bar)", "i", "FOObaz"));
        assert!(!m("foo(?!bar)", "i", "FOObar"));
        assert!(m("(a)\\1", "", "aa"));
        assert!(compile("(?!x)", "").unwrap().is_fancy());
        assert!(!compile("a+b", "").unwrap().is_fancy());
        assert!(m("\\Z", "", "x"));
        assert!(m("\\012", "", "\n"));
        assert!(m("(?<!x)abc(?=d)", "", "abcd"));
        assert!(!m("(?<!x)abc(?=d)", "", "xabcd"));
        assert_eq!(widen("a(?!b)c(?<=x)+d\\1"), Some("acd(?s:.*?)".into()));
        assert!(matches!(
            compile("(?!b)zz", "").unwrap(),
            Re::Fancy(_, Some(_))
        ));
        assert_eq!(
            unbound_counts("a{2,5}[x{1,2}](?:b{3}){0,99}\\{c\\p{L}[[:alpha:]{1,2}]").as_deref(),
            Some("a{2,}[x{1,2}](?:b{3,}){0,}\\{c\\p{L}[[:alpha:]{1,2}]")
        );
        // `__SPOOFED_URL`: too big a superset with its counts, so it gets one without them.
        let spoof = r#"<a\s[^>]{0,2048}\bhref=(?:3D)?.?(https?:[^>"'\# ]{8,29}[^>"'\# :\/?&=])[^>]{0,2048}>(?:[^<]{0,1024}<(?!\/a)[^>]{1,1024}>){0,99}\s{0,10}(?!\1)https?[^\w<]{1,3}[^<]{5}"#;
        let re = compile(spoof, "i").unwrap();
        assert!(matches!(re, Re::Fancy(_, Some(_))));
        let html = b"<a href=\"http://www.example.com/x\"> https://evil.example.net/login</a>";
        assert!(re.is_match(html));
        assert!(!re.is_match(b"<a href=\"http://www.example.com/x\">http://www.example.com/x</a>"));
        assert!(!re.is_match(b"plain text, no link"));
    }
}

#[cfg(test)]
mod fallback_tests {
    use super::*;

    /// The fallback answers what Perl answers for SpamAssassin's octet strings. The expected rows were
    /// printed by perl 5.36 (`$text =~ qr/$pat/$flags` for every text, as 1 or 0): look-around,
    /// backreferences (caseless under /i), `$` before a final newline, `\Z`, and bytes above 0x7F that
    /// `\w`, `\s` and /i leave alone.
    #[test]
    fn fallback_answers_as_perl_does() {
        let texts: [&[u8]; 29] = [
            b"abababab@x",
            b"mailxxxx",
            b"bbbbb",
            b"[ ip=1.2 helo=2.1 ]",
            b"[ ip=1.2 helo=1.2 ]",
            b" [ ip=1.2 helo=2.1 ]",
            b"foofoo",
            b"barbar",
            b"foobar",
            b"xy",
            b"zy",
            b"azy",
            b"a\nb",
            b"a\nbbbb",
            b"\nabababab",
            b"ab@c",
            b"abc@",
            b"",
            b"ABAB@",
            b"Abc abc",
            b"abc abd",
            b"foo\n",
            b"foo\n\n",
            b"\xe9",
            b"\xc3\xa9",
            b"\xa0",
            b"\xc9",
            b"1x\n",
            b"1x\n\n",
        ];
        let cases: [(&str, &str, &str); 12] = [
            (
                r"^(?!mail)[^@]*(?:[bcdfg]{3}|([a-z]{1,2})(?:\1){3})",
                "mi",
                "10100000000001100000000000000",
            ),
            (
                r"^\[ ip=(\d+)\.(\d+) (?:[^\]]* )?helo=\S*(?:\1\D\2|\2\D\1)",
                "",
                "00011000000000000000000000000",
            ),
            (
                r"^(?=\S+@)(?:a|b)+(?!c)",
                "i",
                "10000000000000011010000000000",
            ),
            (
                r"\A(?=foo|bar)(\w)\w*(?!o)",
                "",
                "00000011100000000000011000000",
            ),
            (r"^x(?=y)|z(?=y)", "", "00000000011100000000000000000"),
            (r"(?<=a)^b", "m", "00000000000000000000000000000"),
            (r"(\w+) \1(?!x)", "i", "00000000000000000001000000000"),
            (r"foo(?!x)$", "", "00000010000000000000010000000"),
            (r"\w(?!x)", "", "11111111111111111011111000011"),
            (r"\s(?!x)", "", "00011100000011100001111000011"),
            (r"\xc9(?!x)", "i", "00000000000000000000000000100"),
            (r"(?<=\d)x\Z", "", "00000000000000000000000000010"),
        ];
        for (pat, flags, want) in cases {
            let re = compile(pat, flags).expect(pat);
            assert!(re.is_fancy(), "{pat} needs the fallback");
            let got: String = texts
                .iter()
                .map(|t| if re.is_match(t) { '1' } else { '0' })
                .collect();
            assert_eq!(got, want, "{pat} /{flags}");
        }
    }

    /// A pattern that backtracks without end gives up at the match limit and says no, in bounded time.
    #[test]
    fn runaway_backtracking_says_no() {
        let (pat, flags) = (r"^(?:a|aa)+(?<!x)$", "");
        let mut text = vec![b'a'; 60];
        text.push(b'b');
        let f = Fallback::new(pat, flags, None).expect("compiles");
        // The limit is what stops it (a match would take ~fib(60) steps to rule out).
        assert!(f.0.is_match(&text).is_err());
        let t = std::time::Instant::now();
        let re = compile(pat, flags).expect("compiles");
        assert!(!re.is_match(&text));
        assert!(t.elapsed() < std::time::Duration::from_secs(5));
        assert!(re.is_match(b"aaa"));
    }

    /// Skipping the superset search changes no answer, only where the fallback starts.
    #[test]
    fn fallback_answers_the_same_without_the_superset_first() {
        let cases = [
            (
                r"\bc(?!ialis(?:t|\xe9))[\sc]{0,2}i[\si]{0,2}a[\sa]{0,2}l[\sl]{0,2}i[\si]{0,2}s{1,3}\b",
                "i",
            ),
            (r"(?<!\d)\$\d+(?:,\d{3})+", ""),
            (r"^(?>\s{0,5})your (?:name|address)", "im"),
            (r"(\w+)@\1\.com", "i"),
        ];
        let texts: [&[u8]; 6] = [
            b"buy c i a l i s now",
            b"cialist and cialis",
            b"win $1,000,000 today, 5$1,000",
            b"  Your name:\n   your address",
            b"mail bob@bob.com or bob@alice.com",
            b"",
        ];
        let mut hits = 0;
        for (p, f) in cases {
            let re = compile(p, f).unwrap();
            assert!(re.is_fancy(), "{p}");
            for t in texts {
                let want = re.is_match(t);
                assert_eq!(re.is_match_pre(t, true), want, "{p} on {t:?}");
                assert_eq!(re.count_pre(t, 0, true), re.count(t, 0), "{p} on {t:?}");
                hits += usize::from(want);
            }
        }
        assert!(hits >= 4, "{hits}");
    }
}
