//! Perl regular expressions as SpamAssassin rules write them (`/re/flags`, `m{re}flags`), translated for
//! Rust's `regex` crate, with `fancy-regex` only for the rules that need look-around, backreferences,
//! atomic groups or possessive quantifiers.
//!
//! Matching is on bytes with Unicode off, as Perl matches SpamAssassin's octet strings: `.` is one byte,
//! `\w` is ASCII, `\xA0` is the byte 0xA0. The fallback engine only matches `&str`, so those few rules see
//! the text lossily decoded as UTF-8; lint names them.

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
        Box<fancy_regex::Regex>,
        Option<regex::bytes::Regex>,
    ),
}

/// A fallback-engine pattern, and for one whose every match starts at the start of the text (`^`, or
/// `\A`, first at the top level) a second form that answers yes/no at the first position.
///
/// Why: fancy-regex searches by wrapping the pattern in a lazy `.*?`, so after failing at position 0
/// an anchored pattern is tried again at every later position, each failing at once: on a 270-byte relay
/// line `__IP_IN_RELAY` took 15 us, nearly all of it that walk. `\A(?:PAT()|)` ends the search at
/// position 0 either way: PAT's alternatives are all tried there first (the backtracker finds a match of
/// PAT at 0 if there is one), and the empty branch stops it otherwise; the empty group `()`, numbered
/// after all of PAT's groups so PAT's backreferences keep their numbers, says which branch matched.
#[derive(Debug, Clone)]
pub struct Fallback {
    re: fancy_regex::Regex,
    /// The anchored form and its marker group's index; `lines`: the anchor is `^` under `/m`, which
    /// holds only at the start of a text without a newline.
    at0: Option<(fancy_regex::Regex, usize, bool)>,
}

impl std::ops::Deref for Fallback {
    type Target = fancy_regex::Regex;
    fn deref(&self) -> &fancy_regex::Regex {
        &self.re
    }
}

impl Fallback {
    /// Whether the pattern matches in `text`, when the anchored form can tell.
    fn is_match_at0(&self, text: &str) -> Option<bool> {
        let (a, g, lines) = self.at0.as_ref()?;
        if *lines && text.as_bytes().contains(&b'\n') {
            return None;
        }
        match a.captures(text) {
            Ok(c) => Some(c.is_some_and(|c| c.get(*g).is_some())),
            // Over the backtrack limit: say no, as the plain search does.
            Err(_) => Some(false),
        }
    }
}

/// Whether every match of `pat` (Rust syntax, flags apart) starts at the start of the text: it opens with
/// `^` or `\A` and has no `|` outside a group or class. Also true for `^` under `/m` (the caller
/// remembers that this holds only on one-line texts).
fn anchored_start(pat: &str) -> bool {
    (pat.starts_with('^') || pat.starts_with("\\A")) && !super::backref::has_top_level_bar(pat)
}

impl Re {
    pub fn is_match(&self, hay: &[u8]) -> bool {
        match self {
            Re::Fast(r) => r.is_match(hay),
            Re::Backref(split, r, _) => {
                // No superset search first: the split matcher's own PRE scan jumps between the
                // literals PRE starts with, which costs less than a search for the whole superset
                // (which, on headers, nearly always matches anyway).
                let text = lossy(hay);
                split.is_match(&text).unwrap_or_else(|| {
                    r.find_from_pos(&text, 0)
                        .map(|m| m.is_some())
                        .unwrap_or(false)
                })
            }
            Re::Fancy(r, approx) => {
                // A real match is also a match of the superset over the same bytes, so none can start
                // before the superset's leftmost match: the backtracking engine starts there instead of
                // trying every earlier position.
                let start = match approx.as_ref().map(|a| a.find(hay)) {
                    Some(None) => return false,
                    Some(Some(m)) => m.start(),
                    None => 0,
                };
                // Only on ASCII text, where the superset (bytes, ASCII classes) and the fallback (chars,
                // Unicode classes) read every byte alike. On other text they can disagree on where a
                // match starts (`\xa3` is a byte to one and a char to the other; `\s` takes U+00A0 in
                // one only), so the fallback searches it all, as before.
                let start = if hay.is_ascii() { start } else { 0 };
                let text = lossy(hay);
                if let Some(yes) = r.is_match_at0(&text) {
                    return yes;
                }
                r.find_from_pos(&text, start)
                    .map(|m| m.is_some())
                    .unwrap_or(false)
            }
        }
    }

    /// Number of non-overlapping matches, for `tflags multiple`; stops at `max` (0 = no limit).
    pub fn count(&self, hay: &[u8], max: usize) -> usize {
        let limit = if max == 0 { usize::MAX } else { max };
        match self {
            Re::Fast(r) => r.find_iter(hay).take(limit).count(),
            Re::Fancy(r, approx) => count_fallback(&r.re, approx.as_ref(), hay, limit),
            Re::Backref(_, r, approx) => count_fallback(r, approx.as_ref(), hay, limit),
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
    let anchored = anchored_start(&t.out) && !f.contains('x');
    let plain = t.out.clone();
    let src = if f.is_empty() {
        t.out
    } else {
        format!("(?{f}){}", t.out)
    };
    let build = |src: &str| {
        fancy_regex::RegexBuilder::new(src)
            .backtrack_limit(100_000)
            .build()
            .map_err(|e| ReError(e.to_string()))
    };
    let r = build(&src)?;
    Ok(match split {
        Some(sp) => Re::Backref(Box::new(sp), Box::new(r), approx),
        None => {
            let at0 = anchored
                .then(|| {
                    let pre = if f.is_empty() {
                        String::new()
                    } else {
                        format!("(?{f})")
                    };
                    build(&format!("{pre}\\A(?:{plain}()|)")).ok()
                })
                .flatten()
                .map(|a| {
                    let g = a.captures_len() - 1;
                    (a, g, multiline)
                });
            Re::Fancy(Box::new(Fallback { re: r, at0 }), approx)
        }
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

/// Non-overlapping matches of a fallback pattern, at most `limit`.
fn count_fallback(
    r: &fancy_regex::Regex,
    approx: Option<&regex::bytes::Regex>,
    hay: &[u8],
    limit: usize,
) -> usize {
    if approx.is_some_and(|a| !a.is_match(hay)) {
        return 0;
    }
    let s = lossy(hay);
    r.find_iter(&s).take(limit).filter(|m| m.is_ok()).count()
}

/// `hay` as text for the fallback engine, as `String::from_utf8_lossy` gives it, checked with the
/// faster `from_utf8` first: mail is nearly always valid UTF-8, and the lossy walk showed in profiles.
fn lossy(hay: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(hay) {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => String::from_utf8_lossy(hay),
    }
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
mod anchored_tests {
    use super::*;

    /// The anchored form answers what the plain fallback search answers, on one-line and many-line
    /// texts, and is only made for patterns whose matches all start at the text's start.
    #[test]
    fn anchored_fallback_agrees_with_the_plain_search() {
        let cases: [(&str, &str); 6] = [
            (r"^(?!mail)[^@]*(?:[bcdfg]{3}|([a-z]{1,2})(?:\1){3})", "mi"),
            (
                r"^\[ ip=(\d+)\.(\d+) (?:[^\]]* )?helo=\S*(?:\1\D\2|\2\D\1)",
                "",
            ),
            (r"^(?=\S+@)(?:a|b)+(?!c)", "i"),
            (r"\A(?=foo|bar)(\w)\w*(?!o)", ""),
            (r"^x(?=y)|z(?=y)", ""),
            (r"(?<=a)^b", "m"),
        ];
        let texts = [
            "abababab@x",
            "mailxxxx",
            "bbbbb",
            "[ ip=1.2 helo=2.1 ]",
            "[ ip=1.2 helo=1.2 ]",
            " [ ip=1.2 helo=2.1 ]",
            "foofoo",
            "barbar",
            "foobar",
            "xy",
            "zy",
            "azy",
            "a\nb",
            "a\nbbbb",
            "\nabababab",
            "ab@c",
            "abc@",
            "",
            "ABAB@",
        ];
        let mut anchored = 0;
        for (pat, flags) in cases {
            let re = compile(pat, flags).expect(pat);
            let src = if flags.is_empty() {
                pat.to_string()
            } else {
                format!("(?{flags}){pat}")
            };
            let plain = fancy_regex::Regex::new(&src).expect("fancy");
            if let Re::Fancy(f, _) = &re {
                anchored += usize::from(f.at0.is_some());
            }
            for t in texts {
                let want = plain.is_match(t).expect("no backtrack limit");
                assert_eq!(re.is_match(t.as_bytes()), want, "{pat} on {t:?}");
            }
        }
        // The first four; not the top-level alternation, nor a pattern not opening with the anchor.
        assert_eq!(anchored, 4);
        assert!(!anchored_start(r"^x|z") && anchored_start(r"^(?:x|z)") && !anchored_start("a^"));
        assert!(
            anchored_start(r"^[|]a") && anchored_start(r"^[]|]a") && !anchored_start(r"^[]]|a")
        );
    }
}
