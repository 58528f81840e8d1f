//! The executor: runs parsed rcfile items against one mail with procmail 3.22's semantics, keeping the
//! invariant that the process only reports success (exit 0) after a delivering action has made the mail
//! durable (or the rcfile explicitly said `DELIVERED=yes`, or `HOST` told us to drop it).
//!
//! Special variables act the moment they are assigned (procmailrc(5), "Environment"): MAILDIR changes
//! directory, LOGFILE opens the log, LOCKFILE takes the global lock, INCLUDERC/SWITCHRC read rcfiles,
//! UMASK sets the umask, HOST may end the rcfile, SHIFT shifts the arguments, LOG writes to the log.

use super::cond::{self, Test, MAX_SCORE};
use super::folder::{self, Kind, Parts};
use super::lock::{self, DotLock};
use super::mail::{needs_newline, Mail};
use super::program::{self, Run};
use super::rcfile::{self, Action, Item, Recipe};
use super::regex as pregex;
use super::vars::{Mode, Vars};
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::rc::Rc;

/// How processing of an item list ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Flow {
    Continue,
    /// A delivering recipe succeeded (or HOST mismatched): stop everything.
    Stop,
    /// SWITCHRC: abandon the current rcfile for this one (None: just abandon it).
    Switch(Option<String>),
}

/// Per nesting level: what the preceding recipes did, for the `A`, `a`, `E` and `e` flags.
#[derive(Debug, Default, Clone)]
struct Chain {
    /// Conditions of the last recipe without `A`/`a` matched.
    lastcond: bool,
    /// The immediately preceding recipe ran its action (for `E`; an `E` chain keeps it set).
    prev_executed: bool,
    /// The immediately preceding recipe's action was attempted and failed (for `e`).
    prev_failed: bool,
    /// The immediately preceding recipe's action succeeded (for `a`).
    prev_succeeded: bool,
}

/// One line of the `--explain` report.
pub type Explain = Vec<String>;

pub struct Engine {
    pub vars: Vars,
    pub mail: Mail,
    log: Option<File>,
    /// Bytes written by the last delivery (the number in the log abstract).
    lastdump: usize,
    /// A delivering recipe succeeded.
    pub delivered: bool,
    global_lock: Option<DotLock>,
    /// True for `-m` (no default delivery to ORGMAIL unless DEFAULT is set).
    pub filter_mode: bool,
    /// Dry run: evaluate conditions and assignments, do not deliver or run programs.
    pub explain: Option<Explain>,
    /// Set when HOST did not match: exit 0 without delivering (procmail's documented behaviour).
    host_mismatch: bool,
    /// Compiled patterns, keyed by (text, case-sensitive).
    cache: HashMap<(String, bool), Option<pregex::Pattern>>,
    /// The header as last seen by `header_area`, and its unfolded search area.
    header_cache: Option<(Vec<u8>, Rc<Vec<u8>>)>,
    include_depth: usize,
    pub hostname: String,
    /// What the immediately preceding recipe did (global across nesting levels).
    prev: Chain,
}

const MAX_INCLUDE: usize = 32;

/// Outcome of a recipe's action.
enum Done {
    /// Delivered (a delivering action that succeeded).
    Delivered,
    /// A non-delivering action (filter, capture, block, `c` copy) that succeeded.
    Ok,
    Failed,
}

impl Engine {
    pub fn new(vars: Vars, mail: Mail, filter_mode: bool) -> Engine {
        Engine {
            vars,
            mail,
            log: None,
            lastdump: 0,
            delivered: false,
            global_lock: None,
            filter_mode,
            explain: None,
            host_mismatch: false,
            cache: HashMap::new(),
            header_cache: None,
            include_depth: 0,
            hostname: hostname(),
            prev: Chain::default(),
        }
    }

    /// Writes a diagnostic to LOGFILE (or stderr when there is none), as procmail does.
    pub fn diag(&mut self, msg: &str) {
        let line = format!("correo: {msg}\n");
        self.log_raw(line.as_bytes());
    }

    fn log_raw(&mut self, b: &[u8]) {
        match &mut self.log {
            Some(f) => {
                let _ = f.write_all(b);
            }
            None => {
                let _ = std::io::stderr().write_all(b);
            }
        }
    }

    fn note(&mut self, s: String) {
        if let Some(e) = &mut self.explain {
            e.push(s);
        }
    }

    fn verbose(&self) -> bool {
        self.vars.get("VERBOSE").is_some_and(Vars::truthy)
    }

    fn env(&self) -> Vec<(String, String)> {
        self.vars
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    fn expand(&mut self, s: &str, mode: Mode) -> String {
        let vars = self.vars.clone();
        let mut bq = |cmd: &str| self.backquote(cmd);
        vars.expand(s, mode, &mut bq)
    }

    /// A backquoted command: the whole mail on stdin, stdout with trailing newlines removed.
    fn backquote(&mut self, cmd: &str) -> String {
        if self.explain.is_some() {
            self.note(format!(
                "    (would run `{cmd}`; dry run substitutes nothing)"
            ));
            return String::new();
        }
        let (argv, _) = self.command(cmd);
        let data = self.whole_input();
        match self.spawn(argv, &data, true, false) {
            Some(o) => {
                self.vars.last_exit = o.code;
                let mut s = String::from_utf8_lossy(&o.stdout).into_owned();
                while s.ends_with('\n') {
                    s.pop();
                }
                s
            }
            None => String::new(),
        }
    }

    /// How procmail runs a program line: when the raw text holds a `$SHELLMETAS` character it goes to
    /// `$SHELL $SHELLFLAGS` untouched (the shell expands `$VAR` from the environment we pass, so text
    /// from the mail is never re-parsed as shell syntax); otherwise procmail expands the variables itself
    /// and runs the words directly. Returns the argv and the name the log abstract shows.
    fn command(&mut self, raw: &str) -> (Vec<String>, String) {
        let metas = self
            .vars
            .get("SHELLMETAS")
            .unwrap_or("&|<>~;?*[")
            .to_string();
        if raw.chars().any(|c| metas.contains(c)) {
            let shell = self.vars.get("SHELL").unwrap_or("/bin/sh").to_string();
            let flags = self.vars.get("SHELLFLAGS").unwrap_or("-c").to_string();
            return (vec![shell, flags, raw.to_string()], raw.to_string());
        }
        let words = program::split_words(&self.expand(raw.trim_start(), Mode::Program));
        let name = words.join(" ");
        (words, name)
    }

    fn spawn(
        &mut self,
        argv: Vec<String>,
        stdin: &[u8],
        capture: bool,
        to_stderr: bool,
    ) -> Option<program::Outcome> {
        let name = argv.first().cloned().unwrap_or_default();
        let stderr = self.log.as_ref().and_then(|f| f.try_clone().ok());
        let timeout = self.vars.int("TIMEOUT", 960).max(0) as u64;
        let env = self.env();
        match program::run(Run {
            argv,
            env,
            stdin,
            capture,
            stderr,
            timeout,
            stdout_to_stderr: to_stderr,
        }) {
            Ok(o) => Some(o),
            Err(e) => {
                self.diag(&format!("Failed to execute \"{name}\": {e}"));
                None
            }
        }
    }

    // ---- assignments ----

    /// Applies `NAME=value` (value already expanded) with the special-variable side effects.
    pub fn assign(&mut self, name: &str, value: Option<&str>) -> Flow {
        match value {
            Some(v) => self.vars.set(name, v),
            None => self.vars.unset(name),
        }
        if self.verbose() {
            let m = format!("Assigning \"{name}={}\"", value.unwrap_or(""));
            self.diag(&m);
        }
        if self.explain.is_some() {
            self.note(format!(
                "  {name}={}",
                value
                    .map(|v| format!("\"{v}\""))
                    .unwrap_or_else(|| "(unset)".into())
            ));
        }
        let v = value.unwrap_or("");
        match name {
            "MAILDIR" if std::env::set_current_dir(v).is_err() => {
                self.diag(&format!("Couldn't chdir to \"{v}\""));
            }
            // A dry run writes nothing, not even the log.
            "LOGFILE" if self.explain.is_none() => self.open_log(v),
            "LOG" if self.explain.is_none() => self.log_raw(v.as_bytes()),
            "UMASK" => {
                let m = u32::from_str_radix(v.trim(), 8).unwrap_or(0o077) & 0o777;
                // SAFETY: umask(2) cannot fail.
                unsafe {
                    libc::umask(m as libc::mode_t);
                }
            }
            "LOCKFILE" => {
                self.global_lock = None;
                if !v.is_empty() && self.explain.is_none() {
                    let (s, t) = self.lock_params();
                    match lock::dotlock(std::path::Path::new(v), s, t) {
                        Ok(l) => self.global_lock = Some(l),
                        Err(e) => self.diag(&format!("Lock failure on \"{v}\": {e}")),
                    }
                }
            }
            "HOST" if value.is_some() && v != self.hostname => {
                self.host_mismatch = true;
                return Flow::Stop;
            }
            "SHIFT" => {
                let n = super::vars::parse_leading_int(v).unwrap_or(0);
                if n > 0 {
                    let n = (n as usize).min(self.vars.args.len());
                    self.vars.args.drain(..n);
                }
                self.vars.unset("SHIFT");
            }
            "INCLUDERC" if !v.is_empty() => return self.include(v),
            "SWITCHRC" => return Flow::Switch(value.filter(|s| !s.is_empty()).map(str::to_string)),
            _ => {}
        }
        Flow::Continue
    }

    pub fn open_log(&mut self, path: &str) {
        if path.is_empty() {
            self.log = None;
            return;
        }
        match OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o666)
            .open(path)
        {
            Ok(f) => self.log = Some(f),
            Err(e) => {
                self.log = None;
                self.diag(&format!("Couldn't open logfile \"{path}\": {e}"));
            }
        }
    }

    fn lock_params(&self) -> (u64, u64) {
        (
            self.vars.int("LOCKSLEEP", 8).max(1) as u64,
            self.vars.int("LOCKTIMEOUT", 1024).max(0) as u64,
        )
    }

    fn include(&mut self, path: &str) -> Flow {
        if self.include_depth >= MAX_INCLUDE {
            self.diag(&format!("Too deeply nested INCLUDERC \"{path}\""));
            return Flow::Continue;
        }
        let data = match std::fs::read(path) {
            Ok(d) => d,
            Err(_) => {
                self.diag(&format!("Couldn't read \"{path}\""));
                return Flow::Continue;
            }
        };
        let rc = rcfile::parse(&data);
        self.note(format!("  INCLUDERC {path}:"));
        self.include_depth += 1;
        let r = self.run_items(&rc.items);
        self.include_depth -= 1;
        r
    }

    // ---- the rcfile ----

    /// Runs one rcfile and any SWITCHRC chain that follows from it.
    pub fn run_rcfile(&mut self, path: &str, data: &[u8]) -> Flow {
        let mut data = data.to_vec();
        let mut path = path.to_string();
        for _ in 0..MAX_INCLUDE {
            self.vars.rcfile = path.clone();
            let rc = rcfile::parse(&data);
            for w in &rc.warnings {
                let w = format!("{path}: {w}");
                self.diag(&w);
            }
            match self.run_items(&rc.items) {
                Flow::Switch(Some(next)) => match std::fs::read(&next) {
                    Ok(d) => {
                        self.note(format!("SWITCHRC {next}:"));
                        data = d;
                        path = next;
                    }
                    Err(_) => {
                        self.diag(&format!("Couldn't read \"{next}\""));
                        return Flow::Continue;
                    }
                },
                Flow::Switch(None) => return Flow::Continue,
                f => return f,
            }
        }
        Flow::Continue
    }

    pub fn run_items(&mut self, items: &[Item]) -> Flow {
        let mut chain = Chain::default();
        for item in items {
            let flow = match item {
                Item::Assign { name, value, .. } => {
                    let v = value.as_ref().map(|raw| self.expand(raw, Mode::Word));
                    self.assign(name, v.as_deref())
                }
                Item::Recipe(r) => self.recipe(r, &mut chain),
            };
            if flow != Flow::Continue {
                return flow;
            }
        }
        Flow::Continue
    }

    /// One recipe. `lastcond` (for `A`/`a`) is per nesting level; what the immediately preceding
    /// recipe did (for `E`, `e`, `a`) is global, as in procmail: after a block, an `e` recipe sees the
    /// failure of the block's last recipe (measured against procmail 3.22).
    fn recipe(&mut self, r: &Recipe, chain: &mut Chain) -> Flow {
        let f = &r.flags;
        let prev = self.prev.clone();
        let mut eligible = true;
        if f.chain_a_upper {
            eligible &= chain.lastcond;
        }
        if f.chain_a_lower {
            eligible &= chain.lastcond && prev.prev_succeeded;
        }
        if f.else_e_upper {
            eligible &= !prev.prev_executed;
        }
        if f.error_e_lower {
            eligible &= prev.prev_failed;
        }
        self.note(format!("recipe at line {} (:0{}):", r.line, f.letters()));
        let matched = if eligible {
            self.conditions(r)
        } else {
            self.note("  skipped: the A/a/E/e flags rule it out".into());
            false
        };
        if !(f.chain_a_upper || f.chain_a_lower) {
            chain.lastcond = matched;
        }
        if !matched {
            self.prev.prev_executed = f.else_e_upper && prev.prev_executed;
            self.prev.prev_failed = false;
            self.prev.prev_succeeded = false;
            return Flow::Continue;
        }
        self.prev.prev_executed = true;
        self.prev.prev_failed = false;
        self.prev.prev_succeeded = true;
        let is_block = matches!(r.action, Action::Block(_));
        let (done, flow) = self.action(r);
        if !is_block {
            self.prev.prev_executed = true;
            self.prev.prev_failed = matches!(done, Done::Failed);
            self.prev.prev_succeeded = !self.prev.prev_failed;
        }
        match done {
            Done::Delivered if !f.copy => {
                self.delivered = true;
                Flow::Stop
            }
            _ => flow,
        }
    }

    // ---- conditions ----

    fn pattern(&mut self, src: &str, case: bool) -> Option<pregex::Pattern> {
        let key = (src.to_string(), case);
        if let Some(p) = self.cache.get(&key) {
            return p.clone();
        }
        let p = match pregex::compile(src, case) {
            Ok(p) => Some(p),
            Err(e) => {
                self.diag(&e);
                None
            }
        };
        self.cache.insert(key, p.clone());
        p
    }

    /// The search area for the H/B flags. procmail joins continued header lines before matching (a
    /// newline followed by a blank becomes a space), so `.*` runs across a folded header.
    fn area(&mut self, head: bool, body: bool) -> Rc<Vec<u8>> {
        match (head, body) {
            (true, true) => {
                let mut v = unfold(self.mail.header());
                v.extend_from_slice(self.mail.body());
                Rc::new(v)
            }
            (true, false) => self.header_area(),
            (false, true) => Rc::new(self.mail.body().to_vec()),
            (false, false) => Rc::new(Vec::new()),
        }
    }

    /// The unfolded header, made once for all the header conditions of an rcfile. The cache is keyed by
    /// the header itself (compared whole), so a filter that rewrites the mail can never leave a stale one.
    fn header_area(&mut self) -> Rc<Vec<u8>> {
        let h = self.mail.header_area();
        if let Some((src, area)) = &self.header_cache {
            if src.as_slice() == h {
                return Rc::clone(area);
            }
        }
        let area = Rc::new(unfold(h));
        self.header_cache = Some((h.to_vec(), Rc::clone(&area)));
        area
    }

    /// What a backquote, TRAP or `?` program reads: the whole mail, with the trailing-newline rule.
    fn whole_input(&self) -> Vec<u8> {
        let parts = Parts {
            head: true,
            body: true,
            raw: false,
        };
        folder::compose(&self.mail, parts, Kind::Mh)
    }

    /// A `?` program reads the search area's parts, with the trailing-newline rule.
    fn cond_input(&self, head: bool, body: bool) -> Vec<u8> {
        let parts = Parts {
            head,
            body,
            raw: false,
        };
        folder::compose(&self.mail, parts, Kind::Mh)
    }

    fn conditions(&mut self, r: &Recipe) -> bool {
        let mut score = 0.0f64;
        let mut weighted = false;
        let mut ok = true;
        for c in &r.conds {
            let mut p = cond::parse(&c.text);
            if p.expand {
                let Test::Regex(rest) = &p.test else { break };
                let rest = rest.clone();
                let e = self.expand(&rest, Mode::DoubleQuoted);
                // procmail rereads the expanded text whole, so a weight may come from the expansion.
                let mut q = cond::parse(&e);
                q.negate ^= p.negate;
                if q.weight.is_none() {
                    q.weight = p.weight;
                }
                p = q;
            }
            let (hit, n) = self.test(r, &p.test, p.weight.is_some());
            let truth = hit != p.negate;
            match p.weight {
                None => {
                    self.note(format!(
                        "  * {}  -> {}",
                        c.text,
                        if truth { "matched" } else { "no match" }
                    ));
                    if !truth {
                        ok = false;
                        break;
                    }
                }
                Some((w, x)) => {
                    weighted = true;
                    let add = match &p.test {
                        Test::Program(_) if !p.negate => {
                            if hit {
                                w
                            } else {
                                x
                            }
                        }
                        Test::Less(l) | Test::Greater(l) => {
                            let m = self.mail.data.len().max(1) as f64;
                            let l = (*l).max(1) as f64;
                            let ratio = if matches!(p.test, Test::Greater(_)) {
                                m / l
                            } else {
                                l / m
                            };
                            w * ratio.powf(x)
                        }
                        _ if p.negate => {
                            if truth {
                                w
                            } else {
                                0.0
                            }
                        }
                        _ => cond::regex_score(w, x, n),
                    };
                    score = (score + add).clamp(-MAX_SCORE, MAX_SCORE);
                    self.note(format!("  * {}  -> adds {add}, score {score}", c.text));
                    if score >= MAX_SCORE || score <= -MAX_SCORE {
                        break;
                    }
                }
            }
        }
        // procmail truncates the score, but a positive score never reads as 0 (measured against 3.22:
        // 29.9 reads 29, 0.15 and 0.84 read 1).
        let t = score.trunc() as i64;
        self.vars.score = if t == 0 && score > 0.0 { 1 } else { t };
        let m = ok && (!weighted || score > 0.0);
        self.note(format!(
            "  conditions {}",
            if m { "met" } else { "not met" }
        ));
        m
    }

    /// Evaluates one test: (found, number of matches).
    fn test(&mut self, r: &Recipe, t: &Test, count: bool) -> (bool, u64) {
        let f = &r.flags;
        match t {
            Test::Less(n) => ((self.mail.data.len() as u64) < *n, 1),
            Test::Greater(n) => ((self.mail.data.len() as u64) > *n, 1),
            Test::Program(cmd) => {
                if self.explain.is_some() {
                    self.note(format!(
                        "    (would run `{cmd}`; a dry run counts it as failed)"
                    ));
                    return (false, 0);
                }
                let (argv, _) = self.command(cmd);
                let data = self.cond_input(f.head, f.body);
                match self.spawn(argv, &data, false, true) {
                    Some(o) => {
                        self.vars.last_exit = o.code;
                        (o.code == 0, o.code.max(0) as u64)
                    }
                    None => (false, 0),
                }
            }
            Test::Regex(re) => {
                let area = self.area(f.head, f.body);
                self.regex_test(re, &area, f.case, count)
            }
            Test::Var(name, re) => {
                let area = match name.as_str() {
                    "H" => self.area(true, false),
                    "B" => self.area(false, true),
                    "HB" | "BH" => self.area(true, true),
                    n => self.vars.get(n).unwrap_or("").as_bytes().to_vec().into(),
                };
                self.regex_test(re, &area, f.case, count)
            }
        }
    }

    /// Searches `area`; returns (found, number of non-overlapping matches when `count`, else 1).
    fn regex_test(&mut self, re: &str, area: &[u8], case: bool, count: bool) -> (bool, u64) {
        if pregex::macro_cannot_match(re, area)
            || pregex::cannot_match(&pregex::required_literals(re), area, case)
        {
            return (false, 0);
        }
        let Some(p) = self.pattern(re, case) else {
            return (false, 0);
        };
        // Only a `\/` expression or a dry run needs the match text; plain conditions just search.
        if !p.split && self.explain.is_none() && !count {
            return (p.is_match(area), 1);
        }
        let Some((whole, group)) = p.captures(area) else {
            return (false, 0);
        };
        if self.explain.is_some() {
            self.note(format!(
                "    matched text: {:?}",
                String::from_utf8_lossy(whole)
            ));
        }
        if p.split {
            let m = String::from_utf8_lossy(group.unwrap_or_default()).into_owned();
            if self.explain.is_some() {
                self.note(format!("    MATCH={m:?}"));
            }
            self.vars.set("MATCH", &m);
        }
        if !count {
            return (true, 1);
        }
        // Weighted scoring counts the non-overlapping matches (bounded); an empty match steps one byte.
        let mut n = 0u64;
        let mut pos = 0;
        while pos <= area.len() && n < 1_000_000 {
            match p.find_at(area, pos) {
                Some((s, e)) => {
                    n += 1;
                    pos = if e > s { e } else { e + 1 };
                }
                None => break,
            }
        }
        (true, n.max(1))
    }

    // ---- actions ----

    fn parts(&self, r: &Recipe) -> Parts {
        Parts {
            head: r.flags.pass_head,
            body: r.flags.pass_body,
            raw: r.flags.raw,
        }
    }

    /// The data a program receives (pipes, filters, captures): From_ line kept, trailing-newline rule.
    fn program_input(&self, r: &Recipe) -> Vec<u8> {
        folder::compose(&self.mail, self.parts(r), Kind::Mh)
    }

    /// Runs one recipe's action without its conditions (used for `.forward` entries); true on success.
    pub fn run_action(&mut self, r: &Recipe) -> bool {
        !matches!(self.action(r).0, Done::Failed)
    }

    fn action(&mut self, r: &Recipe) -> (Done, Flow) {
        match &r.action {
            Action::Block(items) => {
                if r.flags.copy && self.explain.is_none() {
                    return self.clone_block(items);
                }
                self.note("  -> entering block".into());
                let flow = self.run_items(items);
                (Done::Ok, flow)
            }
            Action::Folders(words) => {
                let names: Vec<String> = words.iter().map(|w| self.expand(w, Mode::Word)).collect();
                (self.deliver_folders(r, &names), Flow::Continue)
            }
            Action::Pipe { capture, cmd } => {
                (self.pipe(r, capture.as_deref(), cmd), Flow::Continue)
            }
            Action::Forward(raw) => (self.forward(r, raw), Flow::Continue),
        }
    }

    /// `c` on a block: procmail clones itself; the clone runs the block and then the rest of the rcfile
    /// as usual, the parent skips the block. We fork too, and the parent waits for the clone so the two
    /// never write the same folder at once and the order of deliveries is fixed.
    fn clone_block(&mut self, items: &[Item]) -> (Done, Flow) {
        let _ = std::io::stdout().flush();
        // SAFETY: single-threaded at this point (helper threads are joined after every program).
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            self.diag("Couldn't fork for a carbon copy");
            return (Done::Failed, Flow::Continue);
        }
        if pid == 0 {
            // procmailrc(5): lockfiles are not inherited by the clone.
            if let Some(l) = self.global_lock.take() {
                std::mem::forget(l);
            }
            self.vars.unset("LOCKFILE");
            let flow = self.run_items(items);
            return (Done::Ok, flow);
        }
        let mut status = 0;
        // SAFETY: waiting for our own child.
        unsafe {
            libc::waitpid(pid, &mut status, 0);
        }
        (Done::Ok, Flow::Continue)
    }

    fn lockfile_for(&mut self, r: &Recipe, default: Option<&str>) -> Option<String> {
        let l = r.lock.as_ref()?;
        if !l.is_empty() {
            return Some(self.expand(l, Mode::Word));
        }
        let base = default?;
        let ext = self.vars.get("LOCKEXT").unwrap_or(".lock").to_string();
        Some(format!("{base}{ext}"))
    }

    fn take_lock(&mut self, name: Option<String>) -> Result<Option<DotLock>, ()> {
        let Some(name) = name else { return Ok(None) };
        if self.explain.is_some() {
            self.note(format!("    (would lock {name})"));
            return Ok(None);
        }
        let (s, t) = self.lock_params();
        match lock::dotlock(std::path::Path::new(&name), s, t) {
            Ok(l) => Ok(Some(l)),
            // procmail is setgid mail to make dotlocks in /var/mail; we are not. When the directory
            // refuses us, the mbox append still holds the kernel lock, which modern readers honour.
            Err(e)
                if e.kind() == std::io::ErrorKind::PermissionDenied
                    && std::path::Path::new(&name)
                        .parent()
                        .is_some_and(|p| p.is_dir()) =>
            {
                self.diag(&format!(
                    "No permission to create lockfile \"{name}\"; using the kernel lock only"
                ));
                Ok(None)
            }
            Err(_) => {
                self.diag(&format!("Lock failure on \"{name}\""));
                Err(())
            }
        }
    }

    fn delivered_to(&mut self, names: &[String], bytes: usize) {
        self.lastdump = bytes;
        let lf = names.join(" ");
        self.vars.set("LASTFOLDER", &lf);
        if self
            .vars
            .get("LOGABSTRACT")
            .is_some_and(|v| v.eq_ignore_ascii_case("all"))
        {
            self.abstract_line(&lf);
        }
    }

    fn deliver_folders(&mut self, r: &Recipe, names: &[String]) -> Done {
        if names.is_empty() {
            return Done::Failed;
        }
        let (kind, _) = folder::classify(&names[0]);
        if let Some(e) = &mut self.explain {
            e.push(format!("  -> would deliver to {}", names.join(" ")));
            self.vars.set("LASTFOLDER", &names.join(" "));
            return if r.flags.copy {
                Done::Ok
            } else {
                Done::Delivered
            };
        }
        let lockname = if kind == Kind::Mbox {
            self.lockfile_for(r, Some(&names[0]))
        } else {
            self.lockfile_for(r, None)
        };
        let Ok(_lock) = self.take_lock(lockname) else {
            return Done::Failed;
        };
        let prefix = self.vars.get("MSGPREFIX").unwrap_or("msg.").to_string();
        match folder::deliver(&self.mail, self.parts(r), names, &prefix) {
            Ok(w) => {
                self.delivered_to(&w.names, w.bytes);
                if r.flags.copy {
                    Done::Ok
                } else {
                    Done::Delivered
                }
            }
            Err(e) => {
                let m = format!("Error while writing to \"{}\": {e}", names.join(" "));
                self.diag(&m);
                Done::Failed
            }
        }
    }

    fn pipe(&mut self, r: &Recipe, capture: Option<&str>, raw: &str) -> Done {
        let f = &r.flags;
        let cmd = raw.trim().to_string();
        let (argv, folder_name) = self.command(raw);
        if self.explain.is_some() {
            let what = match (capture, f.filter) {
                (Some(v), _) => format!("  -> would capture the output of `{cmd}` into {v}"),
                (None, true) => format!("  -> would filter the mail through `{cmd}`"),
                (None, false) => format!("  -> would pipe the mail to `{cmd}`"),
            };
            self.note(what);
            return if capture.is_some() || f.filter || f.copy {
                Done::Ok
            } else {
                Done::Delivered
            };
        }
        if cmd.is_empty() {
            // `|` alone: the mail to our stdout.
            let data = self.program_input(r);
            let ok = std::io::stdout()
                .write_all(&data)
                .and_then(|_| std::io::stdout().flush())
                .is_ok();
            if ok {
                self.delivered_to(&["".to_string()], data.len());
                return if f.copy { Done::Ok } else { Done::Delivered };
            }
            return Done::Failed;
        }
        // procmailrc(5): an implicit lockfile for a program is the file after its first `>>`.
        let target = raw
            .split_once(">>")
            .and_then(|(_, t)| t.split_whitespace().next())
            .map(|t| self.expand(t, Mode::Word));
        let lockname = self.lockfile_for(r, target.as_deref());
        let Ok(_lock) = self.take_lock(lockname) else {
            return Done::Failed;
        };
        let input = self.program_input(r);
        let want_out = capture.is_some() || f.filter;
        let Some(o) = self.spawn(argv, &input, want_out, false) else {
            return Done::Failed;
        };
        self.vars.last_exit = o.code;
        if o.write_error && !f.ignore_write && !want_out {
            self.diag(&format!("Error while writing to \"{cmd}\""));
            return Done::Failed;
        }
        if let Some(var) = capture {
            let mut s = String::from_utf8_lossy(&o.stdout).into_owned();
            while s.ends_with('\n') {
                s.pop();
            }
            self.vars.set(var, &s);
            return if f.wait && o.code != 0 {
                Done::Failed
            } else {
                Done::Ok
            };
        }
        if f.filter {
            if f.wait && o.code != 0 {
                if !f.wait_quiet {
                    self.diag(&format!(
                        "Program failure ({}) of \"{folder_name}\"",
                        o.code
                    ));
                }
                self.diag("Rescue of unfiltered data succeeded");
                return Done::Failed;
            }
            self.mail.replace(f.pass_head, f.pass_body, o.stdout);
            return Done::Ok;
        }
        if f.wait && o.code != 0 {
            if !f.wait_quiet {
                self.diag(&format!(
                    "Program failure ({}) of \"{folder_name}\"",
                    o.code
                ));
            }
            return Done::Failed;
        }
        self.delivered_to(&[folder_name], input.len());
        if f.copy {
            Done::Ok
        } else {
            Done::Delivered
        }
    }

    fn forward(&mut self, r: &Recipe, raw: &str) -> Done {
        let expanded = self.expand(raw, Mode::Program);
        let addrs = program::split_words(&expanded);
        if self.explain.is_some() {
            self.note(format!("  -> would forward to {}", addrs.join(" ")));
            return if r.flags.copy {
                Done::Ok
            } else {
                Done::Delivered
            };
        }
        let sendmail = self
            .vars
            .get("SENDMAIL")
            .unwrap_or("/usr/sbin/sendmail")
            .to_string();
        let flags = self.vars.get("SENDMAILFLAGS").unwrap_or("-oi").to_string();
        let mut argv = vec![sendmail];
        argv.extend(program::split_words(&flags));
        argv.extend(addrs.iter().cloned());
        let mut data = folder::compose(&self.mail, self.parts(r), Kind::Maildir);
        if !r.flags.raw && needs_newline(&data) {
            data.push(b'\n');
        }
        let lockname = self.lockfile_for(r, None);
        let Ok(_lock) = self.take_lock(lockname) else {
            return Done::Failed;
        };
        let name = argv.join(" ");
        let Some(o) = self.spawn(argv, &data, false, false) else {
            return Done::Failed;
        };
        self.vars.last_exit = o.code;
        // As for pipes, $SENDMAIL's exit status counts only with `w`.
        if o.code != 0 && r.flags.wait {
            if !r.flags.wait_quiet {
                self.diag(&format!(
                    "Program failure ({}) of \"{}\"",
                    o.code,
                    self.vars.get("SENDMAIL").unwrap_or("")
                ));
            }
            return Done::Failed;
        }
        // procmail names a forward in the log by the command it ran.
        self.delivered_to(&[name], data.len());
        if r.flags.copy {
            Done::Ok
        } else {
            Done::Delivered
        }
    }

    // ---- the end ----

    /// Falls off the end of the rcfile: DEFAULT (and ORGMAIL as the last resort), with `$DEFAULT$LOCKEXT`.
    pub fn fall_off(&mut self) {
        if self.delivered || self.host_mismatch {
            return;
        }
        let mut tried = Vec::new();
        for var in ["DEFAULT", "ORGMAIL"] {
            let Some(dest) = self.vars.get(var).map(str::to_string) else {
                continue;
            };
            if dest.is_empty() || tried.contains(&dest) {
                continue;
            }
            tried.push(dest.clone());
            if let Some(e) = &mut self.explain {
                e.push(format!("end of rcfile: would deliver to {var} ({dest})"));
                self.vars.set("LASTFOLDER", &dest);
                self.delivered = true;
                return;
            }
            let (kind, _) = folder::classify(&dest);
            let ext = self.vars.get("LOCKEXT").unwrap_or(".lock").to_string();
            let lockname =
                (kind == Kind::Mbox && dest != "/dev/null").then(|| format!("{dest}{ext}"));
            let Ok(_l) = self.take_lock(lockname) else {
                self.diag(&format!("Error while writing to \"{dest}\""));
                continue;
            };
            let parts = Parts {
                head: true,
                body: true,
                raw: false,
            };
            let prefix = self.vars.get("MSGPREFIX").unwrap_or("msg.").to_string();
            match folder::deliver(&self.mail, parts, std::slice::from_ref(&dest), &prefix) {
                Ok(w) => {
                    self.delivered_to(&w.names, w.bytes);
                    self.delivered = true;
                    return;
                }
                Err(e) => self.diag(&format!("Error while writing to \"{dest}\": {e}")),
            }
        }
    }

    /// The log abstract (procmail's `logabstract`): `From_` line, ` Subject:` line, `  Folder:` line
    /// with the byte count right-aligned at column 72.
    pub fn abstract_line(&mut self, folder: &str) {
        let mut out = String::new();
        if self.mail.has_from_line() {
            let end = self
                .mail
                .data
                .iter()
                .position(|&c| c == b'\n')
                .unwrap_or(self.mail.data.len());
            out.push_str(&String::from_utf8_lossy(&self.mail.data[..end]));
            out.push('\n');
        }
        if let Some(s) = subject_raw(self.mail.header_area()) {
            out.push_str(" Subject:");
            // Tabs become spaces so the abstract's columns hold (procmail does the same).
            out.push_str(&s.replace('\t', " "));
            out.push('\n');
        }
        // procmail cuts the folder name at 60 characters (its MAXfoldlen).
        let folder: String = folder.chars().take(60).collect();
        let head = format!("  Folder: {folder}");
        out.push_str(&head);
        let mut i = head.len();
        i -= i % 8;
        loop {
            out.push('\t');
            i += 8;
            if i >= 72 {
                break;
            }
        }
        out.push_str(&format!("{:>7}\n", self.lastdump));
        self.log_raw(out.as_bytes());
    }

    /// Ends the run: abstract, TRAP, EXITCODE. Returns the exit code.
    pub fn finish(&mut self, requeue: bool) -> i32 {
        let pretend = self.vars.get("DELIVERED").is_some_and(Vars::truthy);
        let mut code = if self.delivered || self.host_mismatch || pretend {
            0
        } else if requeue {
            75
        } else {
            73
        };
        if self.explain.is_some() {
            return code;
        }
        let abstract_on = match self.vars.get("LOGABSTRACT") {
            None => true,
            Some(v) => {
                !(v.eq_ignore_ascii_case("no")
                    || v.trim().starts_with('0')
                    || v.eq_ignore_ascii_case("off"))
            }
        };
        if self.log.is_some() && abstract_on {
            // procmail's labels: what happened to a mail no recipe delivered.
            let folder = if self.host_mismatch {
                String::new()
            } else if self.delivered {
                self.vars.get("LASTFOLDER").unwrap_or("").to_string()
            } else if pretend {
                "**Lost**".to_string()
            } else if requeue {
                "**Requeued**".to_string()
            } else {
                "**Bounced**".to_string()
            };
            if !(self.delivered
                && !self.host_mismatch
                && self
                    .vars
                    .get("LOGABSTRACT")
                    .is_some_and(|v| v.eq_ignore_ascii_case("all")))
            {
                self.abstract_line(&folder);
            }
        }
        let exitcode_var = self.vars.get("EXITCODE").map(str::to_string);
        if exitcode_var.is_none() {
            self.vars.set("EXITCODE", &code.to_string());
        }
        if let Some(trap) = self
            .vars
            .get("TRAP")
            .map(str::to_string)
            .filter(|t| !t.is_empty())
        {
            let (argv, _) = self.command(&trap);
            let data = self.whole_input();
            if let Some(o) = self.spawn(argv, &data, false, true) {
                if exitcode_var.as_deref() == Some("") {
                    code = o.code;
                }
            }
        }
        if let Some(v) = exitcode_var.filter(|v| !v.is_empty()) {
            if let Some(n) = super::vars::parse_leading_int(&v) {
                code = n as i32;
            }
        }
        code
    }
}

/// Joins continued header lines: "\n" followed by a space or tab becomes a space.
fn unfold(h: &[u8]) -> Vec<u8> {
    let mut v = h.to_vec();
    for i in 0..v.len().saturating_sub(1) {
        if v[i] == b'\n' && (v[i + 1] == b' ' || v[i + 1] == b'\t') {
            v[i] = b' ';
        }
    }
    v
}

/// The raw text after `Subject:` on the first Subject line of the header.
fn subject_raw(h: &[u8]) -> Option<String> {
    let mut start = 0;
    while start < h.len() {
        let end = h[start..]
            .iter()
            .position(|&c| c == b'\n')
            .map(|p| start + p)
            .unwrap_or(h.len());
        let line = &h[start..end];
        if line.len() >= 8 && line[..8].eq_ignore_ascii_case(b"Subject:") {
            return Some(String::from_utf8_lossy(&line[8..]).into_owned());
        }
        start = end + 1;
    }
    None
}

pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: buffer valid, length passed.
    let r = unsafe { libc::gethostname(buf.as_mut_ptr() as *mut libc::c_char, buf.len()) };
    if r != 0 {
        return "localhost".into();
    }
    let n = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..n]).into_owned()
}
