//! Reading one condition line into its typed form: weight `w^x`, `!`, `$` (expand, then reread), `?`
//! program, `<`/`>` size, `VAR ??` and the plain regular expression. Parsing apart from evaluating: the
//! executor evaluates, `--explain` prints.

/// procmailsc(5): both numbers lie within ±2147483647.
pub const MAX_SCORE: f64 = 2147483647.0;

#[derive(Debug, Clone, PartialEq)]
pub enum Test {
    Regex(String),
    /// `VAR ?? regex`; `B`, `H`, `HB`, `BH` pick the search area instead.
    Var(String, String),
    Program(String),
    Less(u64),
    Greater(u64),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    pub weight: Option<(f64, f64)>,
    pub negate: bool,
    /// True when a `$` asked for sh substitution of the remainder (done by the caller, then reparsed).
    pub expand: bool,
    pub test: Test,
}

/// Splits a leading `w^x` weight off the condition text.
fn weight(s: &str) -> Option<((f64, f64), &str)> {
    let num = |t: &str| -> Option<(f64, usize)> {
        let b = t.as_bytes();
        let mut i = 0;
        if i < b.len() && (b[i] == b'-' || b[i] == b'+') {
            i += 1;
        }
        let ds = i;
        while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'.') {
            i += 1;
        }
        if i == ds {
            return None;
        }
        t[..i]
            .parse::<f64>()
            .ok()
            .map(|v| (v.clamp(-MAX_SCORE, MAX_SCORE), i))
    };
    let (w, n) = num(s)?;
    let rest = s[n..].strip_prefix('^')?;
    let (x, m) = num(rest)?;
    let after = &rest[m..];
    if !(after.is_empty() || after.starts_with([' ', '\t'])) {
        return None;
    }
    Some(((w, x), after.trim_start()))
}

/// Parses the modifiers of a condition. When `expand` comes back true, the caller must substitute
/// variables in the returned test's text and call `reparse` on it.
pub fn parse(text: &str) -> Parsed {
    let (weight, rest) = match weight(text) {
        Some((w, r)) => (Some(w), r),
        None => (None, text),
    };
    let mut p = modifiers(rest);
    p.weight = weight;
    p
}

/// Reads `!`, `$` and the test kind (used again after `$` expansion).
pub fn modifiers(s: &str) -> Parsed {
    let mut negate = false;
    let mut s = s.trim_start();
    loop {
        if let Some(r) = s.strip_prefix('!') {
            negate = !negate;
            s = r.trim_start();
            continue;
        }
        if let Some(r) = s.strip_prefix('$') {
            return Parsed {
                weight: None,
                negate,
                expand: true,
                test: Test::Regex(r.trim_start().to_string()),
            };
        }
        break;
    }
    Parsed {
        weight: None,
        negate,
        expand: false,
        test: kind(s),
    }
}

fn kind(s: &str) -> Test {
    if let Some(r) = s.strip_prefix('?') {
        return Test::Program(r.trim().to_string());
    }
    if let Some(r) = s.strip_prefix('<') {
        return Test::Less(size(r));
    }
    if let Some(r) = s.strip_prefix('>') {
        return Test::Greater(size(r));
    }
    if let Some(r) = s.strip_prefix('\\') {
        return Test::Regex(r.to_string());
    }
    let n = s
        .bytes()
        .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
        .count();
    if n > 0 {
        let after = s[n..].trim_start();
        if let Some(re) = after.strip_prefix("??") {
            return Test::Var(s[..n].to_string(), re.trim_start().to_string());
        }
    }
    Test::Regex(s.to_string())
}

fn size(s: &str) -> u64 {
    let d: String = s
        .trim()
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    d.parse().unwrap_or(0)
}

/// procmailsc(5): the score added by a regex (or negated program) condition with `n` matches.
pub fn regex_score(w: f64, x: f64, n: u64) -> f64 {
    if n == 0 {
        return 0.0;
    }
    if x == 1.0 {
        return w * n as f64;
    }
    if x == 0.0 {
        return w;
    }
    // w * (x^n - 1) / (x - 1), summed stepwise so large n stops once the sum settles.
    let mut total = 0.0;
    let mut term = w;
    for _ in 0..n.min(100_000) {
        total += term;
        term *= x;
        if total.abs() >= MAX_SCORE || term == 0.0 {
            break;
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        assert_eq!(parse("^Subject: x").test, Test::Regex("^Subject: x".into()));
        let p = parse("-150^0");
        assert_eq!(p.weight, Some((-150.0, 0.0)));
        assert_eq!(p.test, Test::Regex("".into()));
        let p = parse("1000^.75 elvis|presley");
        assert_eq!(p.weight, Some((1000.0, 0.75)));
        assert!(parse("! ^From: joe").negate);
        assert_eq!(parse("< 256000").test, Test::Less(256000));
        assert_eq!(
            parse("? formail -x To").test,
            Test::Program("formail -x To".into())
        );
        assert_eq!(
            parse("SUBJ ?? ^hello").test,
            Test::Var("SUBJ".into(), "^hello".into())
        );
        assert_eq!(parse("\\?literal").test, Test::Regex("?literal".into()));
        assert!(parse("$ ^From: $ADDR").expand);
        assert_eq!(parse("2^1x").weight, None);
    }

    #[test]
    fn scores() {
        assert_eq!(regex_score(2.0, 1.0, 3), 6.0);
        assert_eq!(regex_score(2.0, 0.0, 3), 2.0);
        assert_eq!(regex_score(1.0, 2.0, 3), 7.0);
    }
}
