//! procmail's egrep dialect, translated to `regex::bytes` syntax. This module owns the translation only:
//! it never fails on any input (anything procmail would read literally is escaped), so a user's odd
//! condition line degrades to a literal match instead of a crash or a refused rcfile.
//!
//! The dialect (procmailrc(5), "Extended regular expressions" and "MISCELLANEOUS"):
//! - case-insensitive unless the recipe has `D`; `.` and `[^...]` never match a newline;
//! - `^` and `$` match at a newline (`$` consumes it, which is what makes `^FROM_DAEMON`'s `$([^>]|$)` work);
//! - `^^` anchors at the very start (leading) or very end (trailing) of the search area;
//! - `\<` and `\>` match the non-word character before or after a word (or the edge of the area);
//! - `\/` splits the expression: what the right part matches becomes `$MATCH`;
//! - `^TO_`, `^TO`, `^FROM_DAEMON`, `^FROM_MAILER` expand to the documented macros;
//! - no `{n,m}` intervals and no named classes: braces are literal.

use regex_automata::meta::{self, Regex};
use regex_automata::util::syntax;
use regex_automata::Input;

/// procmailrc(5), MISCELLANEOUS: the expansions, verbatim.
const TO_: &str = "(^((Original-)?(Resent-)?(To|Cc|Bcc)|(X-Envelope|Apparently(-Resent)?)-To):(.*[^-a-zA-Z0-9_.])?)";
const TO: &str =
    "(^((Original-)?(Resent-)?(To|Cc|Bcc)|(X-Envelope|Apparently(-Resent)?)-To):(.*[^a-zA-Z])?)";
const FROM_DAEMON: &str = "(^(Mailing-List:|Precedence:.*(junk|bulk|list)|To: Multiple recipients of |(((Resent-)?(From|Sender)|X-Envelope-From):|>?From )([^>]*[^(.%@a-z0-9])?(Post(ma?(st(e?r)?|n)|office)|(send)?Mail(er)?|daemon|m(mdf|ajordomo)|n?uucp|LIST(SERV|proc)|NETSERV|o(wner|ps)|r(e(quest|sponse)|oot)|b(ounce|bs\\.smtp)|echo|mirror|s(erv(ices?|er)|mtp(error)?|ystem)|A(dmin(istrator)?|MMGR|utoanswer))(([^).!:a-z0-9][-_a-z0-9]*)?[%@>\t ][^<)]*(\\(.*\\).*)?)?$([^>]|$)))";
const FROM_MAILER: &str = "(^(((Resent-)?(From|Sender)|X-Envelope-From):|>?From )([^>]*[^(.%@a-z0-9])?(Post(ma(st(er)?|n)|office)|(send)?Mail(er)?|daemon|mmdf|n?uucp|ops|r(esponse|oot)|(bbs\\.)?smtp(error)?|s(erv(ices?|er)|ystem)|A(dmin(istrator)?|MMGR))(([^).!:a-z0-9][-_a-z0-9]*)?[%@>\t ][^<)]*(\\(.*\\).*)?)?$([^>]|$))";

/// A compiled procmail expression. `split` is true when the source had `\/`; then capture group 1 holds
/// the text for `$MATCH`.
#[derive(Debug, Clone)]
pub struct Pattern {
    re: Regex,
    pub split: bool,
    /// The Rust syntax we compiled, kept for `--explain` and for tests.
    pub translated: String,
}

impl Pattern {
    pub fn is_match(&self, hay: &[u8]) -> bool {
        self.re.is_match(hay)
    }
    /// The first match starting at or after `pos`, seeing the text before `pos` for `^` and `\A`.
    pub fn find_at(&self, hay: &[u8], pos: usize) -> Option<(usize, usize)> {
        if pos > hay.len() {
            return None;
        }
        self.re
            .find(Input::new(hay).range(pos..))
            .map(|m| (m.start(), m.end()))
    }
    /// The whole match and, for a `\/` expression, the part `$MATCH` gets.
    pub fn captures<'h>(&self, hay: &'h [u8]) -> Option<(&'h [u8], Option<&'h [u8]>)> {
        let mut caps = self.re.create_captures();
        self.re.captures(hay, &mut caps);
        let whole = caps.get_match()?;
        let group = caps.get_group(1).map(|s| &hay[s.start..s.end]);
        Some((&hay[whole.start()..whole.end()], group))
    }
}

/// Expands the four macros. procmail substitutes them textually before compiling, so we do too.
pub fn expand_macros(src: &str) -> String {
    let mut out = String::with_capacity(src.len());
    let mut rest = src;
    while let Some(pos) = rest.find("^TO").or_else(|| rest.find("^FROM_")) {
        // find the earliest of the candidates
        let cands = [
            ("^TO_", TO_),
            ("^TO", TO),
            ("^FROM_DAEMON", FROM_DAEMON),
            ("^FROM_MAILER", FROM_MAILER),
        ];
        let mut best: Option<(usize, &str, &str)> = None;
        for (k, v) in cands {
            if let Some(p) = rest.find(k) {
                let better = match best {
                    None => true,
                    Some((bp, bk, _)) => p < bp || (p == bp && k.len() > bk.len()),
                };
                if better {
                    best = Some((p, k, v));
                }
            }
        }
        let Some((p, k, v)) = best else {
            out.push_str(&rest[..pos + 1]);
            rest = &rest[pos + 1..];
            continue;
        };
        out.push_str(&rest[..p]);
        out.push_str(v);
        rest = &rest[p + k.len()..];
    }
    out.push_str(rest);
    out
}

/// Translates procmail syntax into `regex` syntax (bytes mode, Unicode off).
pub fn translate(src: &str) -> (String, bool) {
    let src = expand_macros(src);
    let b = src.as_bytes();
    // procmail matches the part left of `\/` as short as possible (procmailrc(5), BUGS: "removing
    // unneeded '*' ... on the left-hand side"), so quantifiers there are made lazy.
    let has_split = src.contains("\\/");
    let mut out = String::with_capacity(b.len() * 2);
    let mut split = false;
    let mut depth = 0usize;
    // True when the previous token can take a quantifier.
    let mut atom = false;
    // True when the previous token was a quantifier (procmail allows `a*?`, meaning `(a*)?`).
    let mut quant: Option<usize> = None;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match c {
            b'^' if b.get(i + 1) == Some(&b'^') => {
                // Leading `^^` anchors at the start, anywhere else at the end of the search area.
                out.push_str(
                    if out.is_empty() || out.ends_with("(?:") || out.ends_with('(') {
                        r"\A"
                    } else {
                        r"\z"
                    },
                );
                i += 2;
                atom = false;
                quant = None;
                continue;
            }
            b'^' => {
                out.push_str("(?m:^)");
                atom = false;
            }
            b'$' => {
                out.push_str(r"(?:\n|\z)");
                atom = true;
            }
            b'.' => {
                out.push_str(r"[^\n]");
                atom = true;
            }
            b'*' | b'+' | b'?' => {
                if let Some(qpos) = quant {
                    // Merge consecutive quantifiers: `+` stays only if all are `+`, `?` only if all `?`.
                    let prev = out.as_bytes()[qpos];
                    let merged = if prev == c { c } else { b'*' };
                    out.truncate(qpos);
                    out.push(merged as char);
                    if has_split && !split {
                        out.push('?');
                    }
                } else if atom {
                    quant = Some(out.len());
                    out.push(c as char);
                    if has_split && !split {
                        out.push('?');
                    }
                    i += 1;
                    continue;
                } else {
                    // Nothing to repeat: procmail reads it literally.
                    push_literal(&mut out, c);
                    atom = true;
                }
                i += 1;
                continue;
            }
            b'(' => {
                // Non-capturing: only the `\/` group is read back, and every capture group costs slots
                // in the NFA's per-state tables (`^FROM_DAEMON` has over thirty groups).
                out.push_str("(?:");
                depth += 1;
                atom = false;
            }
            b')' => {
                if depth == 0 {
                    push_literal(&mut out, c);
                } else {
                    depth -= 1;
                    out.push(')');
                }
                atom = true;
            }
            b'|' => {
                out.push('|');
                atom = false;
            }
            b'[' => {
                match class(b, i) {
                    Some((cls, next)) => {
                        out.push_str(&cls);
                        i = next;
                    }
                    None => {
                        push_literal(&mut out, c);
                        i += 1;
                    }
                }
                atom = true;
                quant = None;
                continue;
            }
            b'\\' => {
                match b.get(i + 1) {
                    Some(b'<') => {
                        out.push_str(r"(?:\A|[^a-zA-Z0-9_])");
                        atom = true;
                    }
                    Some(b'>') => {
                        out.push_str(r"(?:[^a-zA-Z0-9_]|\z)");
                        atom = true;
                    }
                    Some(b'/') if !split && depth == 0 => {
                        split = true;
                        out.push('(');
                        atom = false;
                    }
                    Some(b'/') => {
                        atom = false;
                    }
                    Some(&n) => {
                        push_literal(&mut out, n);
                        atom = true;
                    }
                    None => {
                        push_literal(&mut out, b'\\');
                        atom = true;
                    }
                }
                i += 2;
                quant = None;
                continue;
            }
            _ => {
                push_literal(&mut out, c);
                atom = true;
            }
        }
        quant = None;
        i += 1;
    }
    for _ in 0..depth {
        out.push(')');
    }
    if split {
        out.push(')');
    }
    (out, split)
}

fn push_literal(out: &mut String, c: u8) {
    if c.is_ascii_alphanumeric()
        || c == b' '
        || c == b'_'
        || c == b'-'
        || c == b':'
        || c == b'@'
        || c == b'='
    {
        out.push(c as char);
    } else {
        out.push_str(&format!(r"\x{c:02x}"));
    }
}

/// A bracket expression starting at `b[start] == b'['`; returns its translation and the index after `]`.
/// `]` first (or after `^`) is literal, as in POSIX; negated classes never match a newline.
fn class(b: &[u8], start: usize) -> Option<(String, usize)> {
    let mut i = start + 1;
    let mut neg = false;
    if b.get(i) == Some(&b'^') {
        neg = true;
        i += 1;
    }
    let mut items: Vec<u8> = Vec::new();
    let first = i;
    loop {
        let c = *b.get(i)?;
        if c == b']' && i > first {
            break;
        }
        items.push(c);
        i += 1;
    }
    let mut out = String::from(if neg { r"[^\n" } else { "[" });
    let mut j = 0;
    while j < items.len() {
        let c = items[j];
        if j + 2 < items.len() && items[j + 1] == b'-' {
            let hi = items[j + 2];
            let (lo, hi) = if c <= hi { (c, hi) } else { (hi, c) };
            out.push_str(&format!(r"\x{lo:02x}-\x{hi:02x}"));
            j += 3;
        } else {
            out.push_str(&format!(r"\x{c:02x}"));
            j += 1;
        }
    }
    if items.is_empty() && !neg {
        // `[]` cannot happen (the `]` would be literal); keep the compiler happy anyway.
        out.push_str(r"\x00");
    }
    out.push(']');
    Some((out, i + 1))
}

/// What every match must contain, read off the top level of the expression: each `All` literal, and
/// at least one literal of each `AnyOf` (a top-level group that is an alternation of plain words).
/// None of it applies when the expression has a top-level `|`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Needle {
    All(Vec<u8>),
    AnyOf(Vec<Vec<u8>>),
}

/// The literals a match needs (see `Needle`). The executor checks them with a plain byte search first and
/// skips compiling a condition that cannot match: most conditions of an rcfile do not match a given mail,
/// and compiling them was most of the work of a one-process-per-mail delivery.
pub fn required_literals(src: &str) -> Vec<Needle> {
    let src = expand_macros(src);
    let b = src.as_bytes();
    let mut needles: Vec<Needle> = Vec::new();
    let mut run: Vec<u8> = Vec::new();
    let end_run = |run: &mut Vec<u8>, needles: &mut Vec<Needle>| {
        if run.len() >= 2 {
            needles.push(Needle::All(std::mem::take(run)));
        }
        run.clear();
    };
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match c {
            b'|' => return Vec::new(),
            b'(' => {
                end_run(&mut run, &mut needles);
                let start = i;
                let mut depth = 0usize;
                while i < b.len() {
                    match b[i] {
                        b'\\' => i += 1,
                        b'[' => {
                            if let Some((_, next)) = class(b, i) {
                                i = next;
                                continue;
                            }
                        }
                        b'(' => depth += 1,
                        b')' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                    i += 1;
                }
                // `(word|word|...)` that is not optional: one of the words must be there.
                let inner = &b[(start + 1).min(b.len())..i.min(b.len())];
                let optional = matches!(b.get(i + 1), Some(b'*' | b'?'));
                let plain = !inner.is_empty()
                    && inner.iter().all(|&x| {
                        x == b'|'
                            || x.is_ascii_alphanumeric()
                            || x == b' '
                            || x == b'-'
                            || x == b'_'
                            || x == b'@'
                            || x == b':'
                    });
                if i < b.len() && plain && !optional {
                    let words: Vec<Vec<u8>> =
                        inner.split(|&x| x == b'|').map(|w| w.to_vec()).collect();
                    if words.iter().all(|w| !w.is_empty()) {
                        needles.push(Needle::AnyOf(words));
                    }
                }
            }
            b'[' => {
                end_run(&mut run, &mut needles);
                match class(b, i) {
                    Some((_, next)) => {
                        i = next;
                        continue;
                    }
                    None => run.push(c),
                }
            }
            b'*' | b'?' => {
                run.pop();
                end_run(&mut run, &mut needles);
            }
            b'+' => end_run(&mut run, &mut needles),
            b'.' | b'^' | b'$' | b')' => end_run(&mut run, &mut needles),
            b'\\' => {
                match b.get(i + 1) {
                    Some(b'<' | b'>' | b'/') | None => end_run(&mut run, &mut needles),
                    Some(&n) => run.push(n),
                }
                i += 2;
                continue;
            }
            _ => run.push(c),
        }
        i += 1;
    }
    end_run(&mut run, &mut needles);
    needles
}

/// True when the area lacks something every match needs.
pub fn cannot_match(needles: &[Needle], hay: &[u8], case: bool) -> bool {
    needles.iter().any(|n| match n {
        Needle::All(l) => !contains(hay, l, case),
        Needle::AnyOf(ws) => !ws.iter().any(|w| contains(hay, w, case)),
    })
}

/// A necessary condition for a condition that is exactly `^FROM_DAEMON` or `^FROM_MAILER` (the two
/// most common lines of a procmailrc, and the only ones the literal check above cannot rule out, since
/// their expansions are alternations at the top level). Read off the expansions above: every branch
/// starts at the beginning of a line with a fixed header name, and nothing in it can cross a newline
/// before the daemon word (`.`, `[^>]` and `[^(.%@a-z0-9]` never match one in procmail's dialect), so a
/// match needs one line that starts with such a name and, for the sender branches, contains one of the
/// daemon words. Returns true when no line qualifies; then the expression is neither compiled nor run,
/// which was most of a delivery's own CPU time (bench/RESULTS.md). Words are searched case-folded even
/// under the `D` flag: a wider test is still a necessary one.
pub fn macro_cannot_match(src: &str, hay: &[u8]) -> bool {
    // Each word is a substring every spelling of an alternative contains (`serv` covers `services`,
    // `server`, `LISTSERV` and `NETSERV`; `smtp` covers `bbs.smtp` and `smtperror`).
    const DAEMON_WORDS: &[&[u8]] = &[
        b"post",
        b"mail",
        b"daemon",
        b"mmdf",
        b"majordomo",
        b"uucp",
        b"serv",
        b"listproc",
        b"owner",
        b"ops",
        b"request",
        b"response",
        b"root",
        b"bounce",
        b"smtp",
        b"echo",
        b"mirror",
        b"system",
        b"admin",
        b"ammgr",
        b"autoanswer",
    ];
    const MAILER_WORDS: &[&[u8]] = &[
        b"post",
        b"mail",
        b"daemon",
        b"mmdf",
        b"uucp",
        b"ops",
        b"response",
        b"root",
        b"smtp",
        b"serv",
        b"system",
        b"admin",
        b"ammgr",
    ];
    const SENDERS: &[&[u8]] = &[
        b"From:",
        b"Sender:",
        b"Resent-From:",
        b"Resent-Sender:",
        b"X-Envelope-From:",
        b"From ",
        b">From ",
    ];
    let daemon = match src {
        "^FROM_DAEMON" => true,
        "^FROM_MAILER" => false,
        _ => return false,
    };
    let starts =
        |line: &[u8], p: &[u8]| line.len() >= p.len() && line[..p.len()].eq_ignore_ascii_case(p);
    let any_word = |line: &[u8], words: &[&[u8]]| words.iter().any(|w| contains(line, w, false));
    !hay.split(|&c| c == b'\n').any(|line| {
        if daemon
            && (starts(line, b"Mailing-List:")
                || starts(line, b"To: Multiple recipients of ")
                || (starts(line, b"Precedence:") && any_word(line, &[b"junk", b"bulk", b"list"])))
        {
            return true;
        }
        SENDERS.iter().any(|p| starts(line, p))
            && any_word(line, if daemon { DAEMON_WORDS } else { MAILER_WORDS })
    })
}

/// Whether `needle` occurs in `hay`, ASCII case folded unless `case`. Not `memchr`: its first call
/// probes the CPU (`cpuid`, which traps to the hypervisor on a VM), and a one-process-per-mail delivery
/// searches only a few kilobytes, so the probe cost more than the searches (perf, bench/RESULTS.md).
pub fn contains(hay: &[u8], needle: &[u8], case: bool) -> bool {
    let Some(&first) = needle.first() else {
        return true;
    };
    let (lo, up) = if case {
        (first, first)
    } else {
        (first.to_ascii_lowercase(), first.to_ascii_uppercase())
    };
    let mut pos = 0;
    while pos + needle.len() <= hay.len() {
        let Some(at) = find2(hay, pos, lo, up) else {
            return false;
        };
        if at + needle.len() > hay.len() {
            return false;
        }
        let cand = &hay[at..at + needle.len()];
        if if case {
            cand == needle
        } else {
            cand.eq_ignore_ascii_case(needle)
        } {
            return true;
        }
        pos = at + 1;
    }
    false
}

/// The first index at or after `from` holding `a` or `b`, eight bytes per step: a byte of `x ^ [a; 8]`
/// is zero where `a` is, and `(v - 0x01..01) & !v & 0x80..80` is non-zero when some byte of `v` is zero.
fn find2(hay: &[u8], from: usize, a: u8, b: u8) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let has_zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGH != 0;
    let (ra, rb) = (ONES * a as u64, ONES * b as u64);
    let mut i = from;
    while i + 8 <= hay.len() {
        let mut w = [0u8; 8];
        w.copy_from_slice(&hay[i..i + 8]);
        let x = u64::from_le_bytes(w);
        if has_zero(x ^ ra) || has_zero(x ^ rb) {
            break;
        }
        i += 8;
    }
    hay[i..]
        .iter()
        .position(|&c| c == a || c == b)
        .map(|p| i + p)
}

/// Compiles a procmail expression; `case` is true for the `D` flag.
pub fn compile(src: &str, case: bool) -> Result<Pattern, String> {
    let (translated, split) = translate(src);
    // One process per mail compiles every condition once and runs it over a few kilobytes: building a
    // full DFA or literal prefilters (aho-corasick over case-folded literals) cost ten times the search
    // itself (measured with perf), so only the lazy DFA and the NFA engines are kept.
    let config = meta::Config::new()
        .dfa(false)
        .hybrid(false)
        .onepass(false)
        .auto_prefilter(false)
        .nfa_size_limit(Some(1 << 24));
    let re = meta::Builder::new()
        .configure(config)
        .syntax(
            syntax::Config::new()
                .unicode(false)
                .utf8(false)
                .case_insensitive(!case),
        )
        .build(&translated)
        .map_err(|e| format!("bad regular expression '{src}': {e}"))?;
    Ok(Pattern {
        re,
        split,
        translated,
    })
}

/// Quotes every character that is special to procmail's egrep (the `$\VAR` substitution).
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\^$.[]|()*+?{}/<>".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(re: &str, text: &str) -> bool {
        compile(re, false).unwrap().is_match(text.as_bytes())
    }

    #[test]
    fn case_and_lines() {
        assert!(m("^subject: hello", "From: a\nSubject: Hello\n"));
        assert!(!compile("^subject: hello", true)
            .unwrap()
            .re
            .is_match(b"Subject: Hello\n"));
        assert!(!m("a.b", "a\nb"));
        assert!(m("a$^b", "a\nb"));
        assert!(!m("a[^x]b", "a\nb"));
    }

    #[test]
    fn macros() {
        assert!(m("^TO_joe@x\\.org", "To: Joe <joe@x.org>\n"));
        assert!(!m("^TO_joe@x\\.org", "To: bjoe@x.org\n"));
        assert!(m("^FROM_DAEMON", "From: MAILER-DAEMON@x.org\n"));
        assert!(m(
            "^FROM_MAILER",
            "From: Mail Delivery Subsystem <postmaster@x.org>\n"
        ));
        assert!(!m("^FROM_DAEMON", "From: Joe <joe@x.org>\n"));
    }

    #[test]
    fn anchors_words_and_match() {
        assert!(m("^^From", "From x\n"));
        assert!(!m("^^Subject", "From x\nSubject: y\n"));
        assert!(m("\\<cat\\>", "a cat here"));
        assert!(!m("\\<cat\\>", "concatenate"));
        let p = compile("^Subject: \\/.*", false).unwrap();
        let c = p.captures(b"X: 1\nSubject: hi there\n").unwrap();
        assert_eq!(c.1.unwrap(), b"hi there");
        let p = compile("^From:.*<?\\/[a-z]+@[a-z.]+", false).unwrap();
        let c = p.captures(b"From: Ana Perez <ana@example.org>\n").unwrap();
        assert_eq!(c.1.unwrap(), b"ana@example.org");
    }

    #[test]
    fn counts_lines_like_procmail() {
        // The executor counts with find_at, which sees the empty line at the end (procmail does too).
        let p = compile("^.*$", false).unwrap();
        let (mut n, mut pos, hay) = (0, 0, b"a\nb\n");
        while let Some((s, e)) = p.find_at(hay, pos) {
            n += 1;
            pos = if e > s { e } else { e + 1 };
            if pos > hay.len() {
                break;
            }
        }
        assert_eq!(n, 3);
    }

    #[test]
    fn needles_from_the_top_level() {
        let all = |w: &str| Needle::All(w.as_bytes().to_vec());
        let any = |ws: &[&str]| Needle::AnyOf(ws.iter().map(|w| w.as_bytes().to_vec()).collect());
        assert_eq!(
            required_literals("^From:.*(boss|jefe)@example\\.com"),
            vec![all("From:"), any(&["boss", "jefe"]), all("@example.com")]
        );
        assert_eq!(
            required_literals("^Subject:.*\\[cvs\\]"),
            vec![all("Subject:"), all("[cvs]")]
        );
        assert_eq!(required_literals("colou?r"), vec![all("colo")]);
        assert_eq!(required_literals("(a|b)?x"), vec![]);
        assert_eq!(required_literals("a|b"), vec![]);
        assert!(cannot_match(
            &required_literals("^Subject:.*(viagra|casino)"),
            b"Subject: hola\n",
            false
        ));
        assert!(!cannot_match(
            &required_literals("^Subject:.*(viagra|casino)"),
            b"SUBJECT: CASINO\n",
            false
        ));
        assert!(contains(b"xx SUBJECT: y", b"Subject:", false));
        assert!(!contains(b"xx SUBJECT: y", b"Subject:", true));
        assert!(!contains(b"Subj", b"Subject:", false));
    }

    #[test]
    fn macro_prefilter_is_only_a_necessary_condition() {
        // Whenever the prefilter rules a header out, the real expression must not match it either.
        let headers = [
            "From: MAILER-DAEMON@x.org\n",
            "From: Mail Delivery Subsystem <postmaster@x.org>\n",
            "From: Joe <joe@x.org>\nTo: a@b\n",
            "From root  Mon Jan  1 10:00:00 2024\nSubject: x\n",
            "From pm  Mon Jan  1 10:00:00 2024\nFrom: Ana <ana@example.net>\n",
            "Precedence: bulk\n",
            "Precedence: first-class\nX-List: bulk\n",
            "Mailing-List: contact x\n",
            "To: Multiple recipients of list FOO\n",
            ">From owner-dev@lists.x.org Mon\n",
            "Resent-Sender: listserv@x.org\n",
            "X-Envelope-From: <bbs.smtp@x>\n",
            "Sender: ana\nReceived: from mail.example.org\n",
            "Subject: mail from root\n",
            "From: \"System Administrator\" <sysadmin@x.org>\n",
        ];
        for src in ["^FROM_DAEMON", "^FROM_MAILER"] {
            let p = compile(src, false).unwrap();
            for h in headers {
                if macro_cannot_match(src, h.as_bytes()) {
                    assert!(!p.is_match(h.as_bytes()), "{src} on {h:?}");
                }
            }
            assert!(!macro_cannot_match(src, b"From: MAILER-DAEMON@x.org\n"));
            assert!(macro_cannot_match(
                src,
                b"From: Joe <joe@x.org>\nSubject: mail\n"
            ));
        }
        assert!(!macro_cannot_match("^FROM_DAEMONx", b"To: x\n"));
        assert!(!macro_cannot_match("^TO_x", b"To: y\n"));
    }

    #[test]
    fn contains_agrees_with_a_plain_search() {
        let hay = b"Received: from mx1.example.net\nSubject: [dev] Re: parche\nX-Spam: No\n";
        for start in 0..hay.len() {
            for len in 1..12.min(hay.len() - start + 1) {
                let needle = &hay[start..start + len];
                assert!(contains(hay, needle, true));
                assert!(contains(hay, &needle.to_ascii_uppercase(), false));
            }
        }
        for n in [&b"xyz"[..], b"subject:", b"No\n\n", b"\nReceivedx"] {
            let plain = hay.windows(n.len()).any(|w| w == n);
            assert_eq!(contains(hay, n, true), plain, "{n:?}");
        }
        assert!(!contains(b"Subject:", b"subject:", true));
        assert!(contains(b"Subject:", b"subject:", false));
        assert_eq!(find2(b"abcdefghijklmnopq", 0, b'q', b'Q'), Some(16));
        assert_eq!(find2(b"abcdefghijklmnopq", 3, b'a', b'd'), Some(3));
    }

    #[test]
    fn never_fails_on_junk() {
        for s in [
            "*", "a**?", "(", ")", "[", "[]", "[^]", "a{2}", "\\", "x|*", "[z-a]", "((a)", "+?*",
        ] {
            assert!(compile(s, false).is_ok(), "{s}");
        }
    }
}
