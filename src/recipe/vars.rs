//! Variables and sh-style substitution as procmail does it: `$VAR`, `${VAR}`, `${VAR:-x}`, `${VAR-x}`,
//! `${VAR:+x}`, `${VAR+x}`, the pseudo variables (`$$`, `$?`, `$#`, `$=`, `$_`, `$-`, `$@`, `$1`...),
//! `$\VAR` (regex-quoted), single and double quotes, backslashes and backquotes.
//!
//! This module owns the variable table and the expander; it never runs anything itself: backquotes are
//! handed to a callback so the executor decides how (with the mail on stdin, in `$SHELL`).

use std::collections::BTreeMap;

#[derive(Debug, Clone, Default)]
pub struct Vars {
    map: BTreeMap<String, String>,
    /// `$1`, `$2`...: `-a` arguments and the arguments after the rcfile in `-m` mode.
    pub args: Vec<String>,
    /// `$?`: exit code of the last program.
    pub last_exit: i32,
    /// `$=`: the score of the last recipe.
    pub score: i64,
    /// `$_`: the rcfile being read.
    pub rcfile: String,
}

/// How quotes are read: in assignments and folder names quotes group and vanish; in a `$` condition
/// the whole line is read as if between double quotes (quotes stay, as literal characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Word,
    DoubleQuoted,
    /// A program line: variables expand, quotes stay for the shell or for our own word splitter.
    Program,
}

impl Vars {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.map.get(name).map(|s| s.as_str())
    }
    pub fn set(&mut self, name: &str, value: &str) {
        self.map.insert(name.to_string(), value.to_string());
    }
    pub fn unset(&mut self, name: &str) {
        self.map.remove(name);
    }
    pub fn iter(&self) -> impl Iterator<Item = (&String, &String)> {
        self.map.iter()
    }
    /// procmail's boolean reading (procmailrc(5), MISCELLANEOUS): a non-zero number, `on`, `y`, `t`, `e`.
    pub fn truthy(v: &str) -> bool {
        let v = v.trim();
        if let Some(c) = v.bytes().next() {
            if c.is_ascii_digit() {
                return v
                    .bytes()
                    .take_while(|b| b.is_ascii_digit())
                    .any(|b| b != b'0');
            }
        }
        let l = v.to_ascii_lowercase();
        l.starts_with("on") || l.starts_with('y') || l.starts_with('t') || l.starts_with('e')
    }
    /// A number the way procmail's `renvint` reads it: leading digits, else the default.
    pub fn int(&self, name: &str, default: i64) -> i64 {
        match self.get(name) {
            Some(v) => parse_leading_int(v).unwrap_or(default),
            None => default,
        }
    }

    /// Value of a (possibly pseudo) variable at expansion time.
    fn lookup(&self, name: &str) -> Option<String> {
        match name {
            "$" => Some(std::process::id().to_string()),
            "?" => Some(self.last_exit.to_string()),
            "#" => Some(self.args.len().to_string()),
            "=" => Some(self.score.to_string()),
            "_" => Some(self.rcfile.clone()),
            "-" => self.get("LASTFOLDER").map(str::to_string),
            "@" | "*" => Some(self.args.join(" ")),
            n if n.bytes().all(|b| b.is_ascii_digit()) => {
                let k: usize = n.parse().ok()?;
                if k == 0 {
                    Some("procmail".to_string())
                } else {
                    self.args.get(k - 1).cloned()
                }
            }
            n => self.get(n).map(str::to_string),
        }
    }

    /// Expands `s`. `backquote` runs a command and returns its output (trailing newlines already removed).
    pub fn expand(&self, s: &str, mode: Mode, backquote: &mut dyn FnMut(&str) -> String) -> String {
        let b = s.as_bytes();
        let mut out: Vec<u8> = Vec::with_capacity(b.len());
        let mut i = 0;
        let mut dq = mode == Mode::DoubleQuoted;
        let mut in_dq_word = false;
        while i < b.len() {
            let c = b[i];
            match c {
                b'\'' if mode != Mode::DoubleQuoted && !in_dq_word => {
                    let end = b[i + 1..]
                        .iter()
                        .position(|&x| x == b'\'')
                        .map(|p| i + 1 + p)
                        .unwrap_or(b.len());
                    if mode == Mode::Program {
                        out.extend_from_slice(&b[i..(end + 1).min(b.len())]);
                    } else {
                        out.extend_from_slice(&b[i + 1..end]);
                    }
                    i = end + 1;
                    continue;
                }
                b'"' if mode != Mode::DoubleQuoted => {
                    in_dq_word = !in_dq_word;
                    dq = in_dq_word;
                    if mode == Mode::Program {
                        out.push(c);
                    }
                }
                b'\\' => {
                    let n = b.get(i + 1).copied();
                    match n {
                        None => out.push(b'\\'),
                        Some(n) => {
                            let special = matches!(n, b'$' | b'`' | b'"' | b'\\' | b'\n');
                            if mode == Mode::Program || (dq && !special) {
                                out.push(b'\\');
                            }
                            if !(n == b'\n' && mode != Mode::Program) {
                                out.push(n);
                            }
                        }
                    }
                    i += 2;
                    continue;
                }
                b'`' => {
                    let end = b[i + 1..]
                        .iter()
                        .position(|&x| x == b'`')
                        .map(|p| i + 1 + p)
                        .unwrap_or(b.len());
                    // Raw: the executor decides, as for any program line, whether a shell expands it.
                    let cmd = String::from_utf8_lossy(&b[i + 1..end]).into_owned();
                    let res = backquote(&cmd);
                    out.extend_from_slice(res.as_bytes());
                    i = end + 1;
                    continue;
                }
                b'$' => {
                    let (text, used) = self.dollar(&b[i + 1..], backquote);
                    match text {
                        Some(t) => {
                            out.extend_from_slice(t.as_bytes());
                            i += 1 + used;
                        }
                        None => {
                            out.push(b'$');
                            i += 1;
                        }
                    }
                    continue;
                }
                _ => out.push(c),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    /// Reads what follows a `$`; returns the substitution and how many bytes it used, or None when the
    /// `$` is literal (as sh leaves a `$` before a non-name).
    fn dollar(
        &self,
        b: &[u8],
        backquote: &mut dyn FnMut(&str) -> String,
    ) -> (Option<String>, usize) {
        let Some(&c) = b.first() else {
            return (None, 0);
        };
        if c == b'{' {
            let Some(close) = matching_brace(b) else {
                return (None, 0);
            };
            let inner = String::from_utf8_lossy(&b[1..close]).into_owned();
            let name_len = inner
                .bytes()
                .take_while(|&x| x.is_ascii_alphanumeric() || x == b'_')
                .count();
            let name_len =
                if name_len == 0 && !inner.is_empty() && b"$?#=_-@*".contains(&inner.as_bytes()[0])
                {
                    1
                } else {
                    name_len
                };
            let name = &inner[..name_len];
            let op = &inner[name_len..];
            let val = self.lookup(name);
            let sub = |w: &str, bq: &mut dyn FnMut(&str) -> String| {
                self.expand(w, Mode::DoubleQuoted, bq)
            };
            let r = if let Some(w) = op.strip_prefix(":-") {
                match val {
                    Some(v) if !v.is_empty() => v,
                    _ => sub(w, backquote),
                }
            } else if let Some(w) = op.strip_prefix(":+") {
                match val {
                    Some(v) if !v.is_empty() => sub(w, backquote),
                    _ => String::new(),
                }
            } else if let Some(w) = op.strip_prefix('-') {
                match val {
                    Some(v) => v,
                    None => sub(w, backquote),
                }
            } else if let Some(w) = op.strip_prefix('+') {
                match val {
                    Some(_) => sub(w, backquote),
                    None => String::new(),
                }
            } else {
                val.unwrap_or_default()
            };
            return (Some(r), close + 1);
        }
        if c == b'\\' {
            // `$\VAR`: the value with every regex metacharacter quoted (procmailrc(5), "$\").
            let n = b[1..]
                .iter()
                .take_while(|&&x| x.is_ascii_alphanumeric() || x == b'_')
                .count();
            if n == 0 {
                return (None, 0);
            }
            let name = String::from_utf8_lossy(&b[1..1 + n]);
            let v = self.lookup(&name).unwrap_or_default();
            return (Some(super::regex::quote(&v)), 1 + n);
        }
        if c.is_ascii_alphabetic() || c == b'_' {
            let n = b
                .iter()
                .take_while(|&&x| x.is_ascii_alphanumeric() || x == b'_')
                .count();
            let name = String::from_utf8_lossy(&b[..n]);
            return (Some(self.lookup(&name).unwrap_or_default()), n);
        }
        if c.is_ascii_digit() {
            return (
                Some(self.lookup(&(c as char).to_string()).unwrap_or_default()),
                1,
            );
        }
        if b"$?#=_-@*".contains(&c) {
            return (
                Some(self.lookup(&(c as char).to_string()).unwrap_or_default()),
                1,
            );
        }
        (None, 0)
    }
}

fn matching_brace(b: &[u8]) -> Option<usize> {
    let mut depth = 0;
    for (i, &c) in b.iter().enumerate() {
        match c {
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

pub fn parse_leading_int(v: &str) -> Option<i64> {
    let v = v.trim();
    let (neg, digits) = match v.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, v.strip_prefix('+').unwrap_or(v)),
    };
    let d: String = digits.chars().take_while(|c| c.is_ascii_digit()).collect();
    if d.is_empty() {
        return None;
    }
    let n: i64 = d.parse().ok()?;
    Some(if neg { -n } else { n })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v() -> Vars {
        let mut v = Vars::default();
        v.set("HOME", "/home/pm");
        v.set("EMPTY", "");
        v.args = vec!["one".into(), "two".into()];
        v
    }
    fn x(s: &str, m: Mode) -> String {
        v().expand(s, m, &mut |c| format!("<{c}>"))
    }

    #[test]
    fn sh_rules() {
        assert_eq!(x("$HOME/Mail", Mode::Word), "/home/pm/Mail");
        assert_eq!(x("'$HOME'", Mode::Word), "$HOME");
        assert_eq!(x("\"$HOME x\"", Mode::Word), "/home/pm x");
        assert_eq!(
            x("${EMPTY:-d}${NONE-e}${EMPTY-f}${HOME:+g}", Mode::Word),
            "deg"
        );
        assert_eq!(x("$1-$2-$#", Mode::Word), "one-two-2");
        assert_eq!(x("`date`", Mode::Word), "<date>");
        assert_eq!(x("a\\$b", Mode::Word), "a$b");
        assert_eq!(x("cost $ 5", Mode::Word), "cost $ 5");
        assert_eq!(x("'a b' $HOME", Mode::Program), "'a b' /home/pm");
        // Multibyte text after `${` must not split a character (a fuzz-style regression).
        assert_eq!(x("${ñ}x${", Mode::Word), "x${");
    }

    #[test]
    fn booleans() {
        assert!(Vars::truthy("yes") && Vars::truthy("on") && Vars::truthy("1"));
        assert!(!Vars::truthy("no") && !Vars::truthy("off") && !Vars::truthy("0"));
    }
}
