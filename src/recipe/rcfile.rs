//! The procmailrc(5) parser: bytes in, a typed list of items out. It never acts and never fails: like
//! procmail, it skips what it cannot read (and says so in `warnings`) so one typo cannot stop delivery.
//!
//! Text stays raw (quotes, `$VAR`, backquotes intact): procmail expands each line at the moment it reaches
//! it, with the variables of that moment, so expansion belongs to the executor.

/// Recipe flags, procmailrc(5) "Flags". `H`/`B` and `h`/`b` are already resolved to their defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Flags {
    pub head: bool,
    pub body: bool,
    pub case: bool,
    pub chain_a_upper: bool,
    pub chain_a_lower: bool,
    pub else_e_upper: bool,
    pub error_e_lower: bool,
    pub pass_head: bool,
    pub pass_body: bool,
    pub filter: bool,
    pub copy: bool,
    pub wait: bool,
    pub wait_quiet: bool,
    pub ignore_write: bool,
    pub raw: bool,
}

impl Flags {
    /// Reads the flag letters after `:0`; unknown letters are reported, as procmail does.
    pub fn parse(s: &str, warnings: &mut Vec<String>, line: usize) -> Flags {
        let mut f = Flags::default();
        let (mut h, mut b, mut ph, mut pb) = (false, false, false, false);
        for c in s.chars() {
            match c {
                'H' => h = true,
                'B' => b = true,
                'D' => f.case = true,
                'A' => f.chain_a_upper = true,
                'a' => f.chain_a_lower = true,
                'E' => f.else_e_upper = true,
                'e' => f.error_e_lower = true,
                'h' => ph = true,
                'b' => pb = true,
                'f' => f.filter = true,
                'c' => f.copy = true,
                'w' => f.wait = true,
                'W' => {
                    f.wait = true;
                    f.wait_quiet = true
                }
                'i' => f.ignore_write = true,
                'r' => f.raw = true,
                ' ' | '\t' => {}
                other => warnings.push(format!("line {line}: unknown flag '{other}'")),
            }
        }
        // procmailrc(5): H is the default search area; h and b are both the default for the action.
        f.head = h || !b;
        f.body = b;
        f.pass_head = ph || !pb;
        f.pass_body = pb || !ph;
        f
    }

    /// The letters back, for --explain and the verbose log.
    pub fn letters(&self) -> String {
        let mut s = String::new();
        for (on, c) in [
            (self.head, 'H'),
            (self.body, 'B'),
            (self.case, 'D'),
            (self.chain_a_upper, 'A'),
            (self.chain_a_lower, 'a'),
            (self.else_e_upper, 'E'),
            (self.error_e_lower, 'e'),
            (self.pass_head, 'h'),
            (self.pass_body, 'b'),
            (self.filter, 'f'),
            (self.copy, 'c'),
            (self.wait && !self.wait_quiet, 'w'),
            (self.wait_quiet, 'W'),
            (self.ignore_write, 'i'),
            (self.raw, 'r'),
        ] {
            if on {
                s.push(c);
            }
        }
        s
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Cond {
    pub line: usize,
    /// Everything after `*`, leading and trailing blanks removed; continuation lines joined.
    pub text: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// One or more folders (mbox files, `dir/` Maildirs, `dir/.` MH folders, plain directories), raw words.
    Folders(Vec<String>),
    /// `| cmd`, or `VAR=| cmd` when `capture` is set; an empty command means "to stdout".
    Pipe {
        capture: Option<String>,
        cmd: String,
    },
    /// `! addr...`, raw.
    Forward(String),
    Block(Vec<Item>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Recipe {
    pub line: usize,
    pub flags: Flags,
    /// `None`: no lock. `Some("")`: the second `:` with no name, derive it from the folder.
    pub lock: Option<String>,
    pub conds: Vec<Cond>,
    pub action: Action,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// `NAME=value` (value raw, still quoted); `NAME` alone (value `None`) unsets it.
    Assign {
        line: usize,
        name: String,
        value: Option<String>,
    },
    Recipe(Recipe),
}

#[derive(Debug, Default)]
pub struct Rcfile {
    pub items: Vec<Item>,
    pub warnings: Vec<String>,
}

/// Parses a whole rcfile. Never fails.
pub fn parse(src: &[u8]) -> Rcfile {
    let text = String::from_utf8_lossy(src);
    let mut p = Parser {
        s: text.as_bytes(),
        i: 0,
        line: 1,
        warnings: Vec::new(),
        depth: 0,
    };
    let items = p.items(false);
    Rcfile {
        items,
        warnings: p.warnings,
    }
}

/// Deep nesting is bounded so a hostile rcfile cannot overflow our stack.
const MAX_DEPTH: usize = 64;

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
    line: usize,
    warnings: Vec<String>,
    depth: usize,
}

fn is_name_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_'
}
fn is_name(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn bump(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        if c == b'\n' {
            self.line += 1;
        }
        Some(c)
    }
    fn skip_blanks(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\r')) {
            self.i += 1;
        }
    }
    /// Skips whitespace, newlines and `#` comments, as procmail does between items.
    fn skip_space_and_comments(&mut self) {
        loop {
            match self.peek() {
                Some(b' ' | b'\t' | b'\r' | b'\n') => {
                    self.bump();
                }
                Some(b'#') => self.skip_line(),
                _ => break,
            }
        }
    }
    fn skip_line(&mut self) {
        while let Some(c) = self.bump() {
            if c == b'\n' {
                break;
            }
        }
    }
    /// The rest of the physical line, joining lines that end in a backslash (the backslash-newline pair
    /// is dropped). Leaves the position after the newline.
    fn logical_line(&mut self) -> String {
        let mut out = Vec::new();
        while let Some(c) = self.bump() {
            match c {
                b'\n' => {
                    if out.last() == Some(&b'\\') {
                        out.pop();
                        continue;
                    }
                    break;
                }
                _ => out.push(c),
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    fn items(&mut self, in_block: bool) -> Vec<Item> {
        let mut items = Vec::new();
        loop {
            self.skip_space_and_comments();
            let Some(c) = self.peek() else {
                if in_block {
                    self.warnings
                        .push(format!("line {}: missing closing brace", self.line));
                }
                return items;
            };
            match c {
                b'}' => {
                    self.bump();
                    if in_block {
                        return items;
                    }
                    self.warnings
                        .push(format!("line {}: closing brace unexpected", self.line));
                }
                b':' => {
                    if let Some(r) = self.recipe() {
                        items.push(Item::Recipe(r));
                    }
                }
                c if is_name_start(c) => items.push(self.assignment()),
                _ => {
                    let line = self.line;
                    let junk = self.logical_line();
                    self.warnings
                        .push(format!("line {line}: skipped \"{}\"", junk.trim()));
                }
            }
        }
    }

    fn name(&mut self) -> String {
        let start = self.i;
        while self.peek().is_some_and(is_name) {
            self.i += 1;
        }
        String::from_utf8_lossy(&self.s[start..self.i]).into_owned()
    }

    fn assignment(&mut self) -> Item {
        let line = self.line;
        let name = self.name();
        self.skip_blanks();
        if self.peek() != Some(b'=') {
            return Item::Assign {
                line,
                name,
                value: None,
            };
        }
        self.bump();
        self.skip_blanks();
        let value = self.word();
        Item::Assign {
            line,
            name,
            value: Some(value),
        }
    }

    /// One sh-like word (an assignment value): quotes and backquotes kept raw, ends at unquoted blank or
    /// newline; backslash-newline continues it.
    fn word(&mut self) -> String {
        let mut out = Vec::new();
        let mut quote: Option<u8> = None;
        while let Some(c) = self.peek() {
            match (quote, c) {
                (None, b' ' | b'\t' | b'\r' | b'\n') => break,
                (None, b'\'' | b'"' | b'`') => quote = Some(c),
                (Some(q), c) if c == q => quote = None,
                (Some(b'\''), _) => {}
                (_, b'\\') => {
                    self.bump();
                    match self.peek() {
                        Some(b'\n') => {
                            self.bump();
                            continue;
                        }
                        Some(n) => {
                            out.push(b'\\');
                            out.push(n);
                            self.bump();
                            continue;
                        }
                        None => {
                            out.push(b'\\');
                            continue;
                        }
                    }
                }
                _ => {}
            }
            out.push(c);
            self.bump();
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    fn recipe(&mut self) -> Option<Recipe> {
        let line = self.line;
        self.bump(); // ':'
        let head = self.logical_line();
        // `:0` (or the old `:N`), flags, then an optional `:lockfile`; a `#` word starts a comment.
        let head = strip_comment(&head);
        let rest = head.trim_start_matches(|c: char| c.is_ascii_digit());
        // The old `:N` form: N condition lines follow, without leading `*`.
        let old_n: usize = head[..head.len() - rest.len()].parse().unwrap_or(0);
        let (flags_s, lock) = match rest.find(':') {
            Some(p) => (&rest[..p], Some(rest[p + 1..].trim().to_string())),
            None => (rest, None),
        };
        let flags = Flags::parse(flags_s, &mut self.warnings, line);
        let mut conds = Vec::new();
        for _ in 0..old_n.min(1000) {
            self.skip_space_and_comments();
            if self.peek().is_none() || self.peek() == Some(b'*') {
                break;
            }
            let cline = self.line;
            let t = self.logical_line();
            conds.push(Cond {
                line: cline,
                text: t.trim().to_string(),
            });
        }
        loop {
            self.skip_space_and_comments();
            if self.peek() != Some(b'*') {
                break;
            }
            let cline = self.line;
            self.bump();
            let t = self.logical_line();
            conds.push(Cond {
                line: cline,
                text: t.trim().to_string(),
            });
        }
        let aline = self.line;
        let action = match self.peek() {
            None => {
                self.warnings
                    .push(format!("line {line}: recipe without an action"));
                return None;
            }
            Some(b'{') => {
                self.bump();
                if self.depth >= MAX_DEPTH {
                    self.warnings
                        .push(format!("line {aline}: blocks nested too deeply"));
                    let _ = self.items(true);
                    return None;
                }
                self.depth += 1;
                let inner = self.items(true);
                self.depth -= 1;
                Action::Block(inner)
            }
            Some(b'!') => {
                self.bump();
                Action::Forward(self.logical_line().trim().to_string())
            }
            Some(b'|') => {
                self.bump();
                Action::Pipe {
                    capture: None,
                    cmd: self.program_line(),
                }
            }
            Some(c) if is_name_start(c) && self.capture_ahead() => {
                let name = self.name();
                self.skip_blanks();
                self.bump(); // '='
                self.skip_blanks();
                self.bump(); // '|'
                Action::Pipe {
                    capture: Some(name),
                    cmd: self.program_line(),
                }
            }
            Some(_) => {
                let l = self.logical_line();
                let words = split_folder_words(&l);
                if words.is_empty() {
                    self.warnings.push(format!("line {aline}: empty action"));
                    return None;
                }
                Action::Folders(words)
            }
        };
        Some(Recipe {
            line,
            flags,
            lock,
            conds,
            action,
        })
    }

    /// A program action: the rest of the line with continuations; per procmailrc(5) a lone `\` on an
    /// otherwise empty continued line becomes a newline.
    fn program_line(&mut self) -> String {
        // Leading blanks kept: procmail logs a shell command exactly as written after the `|`.
        self.logical_line().trim_end().to_string()
    }

    /// True when the action line reads `NAME=|` (blanks allowed around `=`).
    fn capture_ahead(&self) -> bool {
        let mut j = self.i;
        while j < self.s.len() && is_name(self.s[j]) {
            j += 1;
        }
        while j < self.s.len() && matches!(self.s[j], b' ' | b'\t') {
            j += 1;
        }
        if self.s.get(j) != Some(&b'=') {
            return false;
        }
        j += 1;
        while j < self.s.len() && matches!(self.s[j], b' ' | b'\t') {
            j += 1;
        }
        self.s.get(j) == Some(&b'|')
    }
}

/// Drops a `#` comment that begins a word (not inside quotes).
pub fn strip_comment(s: &str) -> String {
    let b = s.as_bytes();
    let mut quote: Option<u8> = None;
    let mut prev_blank = true;
    for (i, &c) in b.iter().enumerate() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == b'\'' || c == b'"' => quote = Some(c),
            None if c == b'#' && prev_blank => return s[..i].trim_end().to_string(),
            None => {}
        }
        prev_blank = c == b' ' || c == b'\t';
    }
    s.to_string()
}

/// Splits a folder action into raw words (sh-like: quotes group, `#` word starts a comment).
pub fn split_folder_words(s: &str) -> Vec<String> {
    let s = strip_comment(s);
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut esc = false;
    for c in s.chars() {
        if esc {
            cur.push(c);
            esc = false;
            continue;
        }
        match (quote, c) {
            (_, '\\') if quote != Some('\'') => {
                cur.push(c);
                esc = true;
            }
            (None, ' ' | '\t') => {
                if !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                }
            }
            (None, '\'' | '"' | '`') => {
                quote = Some(c);
                cur.push(c);
            }
            (Some(q), c) if c == q => {
                quote = None;
                cur.push(c);
            }
            _ => cur.push(c),
        }
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_spam_recipes() {
        let rc = parse(
            b":0fw: spamassassin.lock\n* < 512000\n| spamc\n\n:0e\n{\n\tEXITCODE=$?\n}\n\n:0:\n* ^X-Spam-Status: Yes\nspamagarrado # spam box\n",
        );
        assert!(rc.warnings.is_empty(), "{:?}", rc.warnings);
        assert_eq!(rc.items.len(), 3);
        let Item::Recipe(r) = &rc.items[0] else {
            panic!()
        };
        assert!(r.flags.filter && r.flags.wait && r.flags.head && !r.flags.body);
        assert_eq!(r.lock.as_deref(), Some("spamassassin.lock"));
        assert_eq!(r.conds[0].text, "< 512000");
        assert_eq!(
            r.action,
            Action::Pipe {
                capture: None,
                cmd: " spamc".into()
            }
        );
        let Item::Recipe(r) = &rc.items[1] else {
            panic!()
        };
        assert!(r.flags.error_e_lower);
        assert_eq!(
            r.action,
            Action::Block(vec![Item::Assign {
                line: 7,
                name: "EXITCODE".into(),
                value: Some("$?".into())
            }])
        );
        let Item::Recipe(r) = &rc.items[2] else {
            panic!()
        };
        assert_eq!(r.lock.as_deref(), Some(""));
        assert_eq!(r.action, Action::Folders(vec!["spamagarrado".into()]));
    }

    #[test]
    fn one_line_block_capture_and_continuation() {
        let rc = parse(
            b":0\n* ^Subject: \\/.*\n{ S=$MATCH }\n:0\nX=| formail -x To \\\n -z\nA = \"b c\" D\n",
        );
        assert_eq!(rc.items.len(), 4, "{:?}", rc.items);
        let Item::Recipe(r) = &rc.items[1] else {
            panic!()
        };
        assert_eq!(
            r.action,
            Action::Pipe {
                capture: Some("X".into()),
                cmd: " formail -x To  -z".into()
            }
        );
        assert_eq!(
            rc.items[2],
            Item::Assign {
                line: 7,
                name: "A".into(),
                value: Some("\"b c\"".into())
            }
        );
        assert_eq!(
            rc.items[3],
            Item::Assign {
                line: 7,
                name: "D".into(),
                value: None
            }
        );
    }

    #[test]
    fn junk_never_panics() {
        for s in [
            &b":"[..],
            b":0",
            b"{",
            b"}",
            b":0\n{",
            b"\\",
            b"A=\"",
            b"A=`",
            b":0:\n*",
            b"\xff\xfe:0\n*\xff\nx",
        ] {
            let _ = parse(s);
        }
    }
}
