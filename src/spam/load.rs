//! Loading rule files: reads `.cf` files in name order from each directory, follows `include`, evaluates
//! `ifplugin`/`if`/`else`/`endif`, and folds directives into rule definitions and settings. A bad line is
//! recorded for lint and skipped; a load never aborts on rule content, only on an unreadable directory.

use super::cf::{self, Directive, RuleKind, Which};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The SpamAssassin version whose rule language we speak; `if (version >= X)` compares against it.
pub const SA_VERSION: f64 = 4.000001;

/// Plugins Debian's default `.pre` files load: `ifplugin` blocks for them are read. Rules whose evals we
/// do not implement still load and are reported by lint.
const DEFAULT_PLUGINS: &[&str] = &[
    "URIDNSBL",
    "SPF",
    "Rule2XSBody",
    "Pyzor",
    "Razor2",
    "SpamCop",
    "AutoLearnThreshold",
    "WelcomeListSubject",
    "WhiteListSubject",
    "MIMEHeader",
    "ReplaceTags",
    "DKIM",
    "Check",
    "HTTPSMismatch",
    "URIDetail",
    "Bayes",
    "BodyEval",
    "DNSEval",
    "HTMLEval",
    "HeaderEval",
    "MIMEEval",
    "RelayEval",
    "URIEval",
    "WLBLEval",
    "VBounce",
    "ImageInfo",
    "FreeMail",
    "AskDNS",
    "HashBL",
    "DMARC",
];

/// A rule as the files define it, before compilation.
#[derive(Debug, Clone)]
pub struct RuleDef {
    pub kind: RuleKind,
    pub name: String,
    pub def: String,
    pub origin: String,
}

/// Everything the files said, in a form the compiler and the header writer read.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub rules: Vec<RuleDef>,
    pub scores: HashMap<String, Vec<f64>>,
    pub describe: HashMap<String, String>,
    pub tflags: HashMap<String, Vec<String>>,
    pub priority: HashMap<String, i32>,
    pub settings: Settings,
    pub lint: Vec<String>,
    pub files: Vec<PathBuf>,
    /// Lines kept but not acted on (network lists, Bayes tuning, ...), by keyword.
    pub ignored: HashMap<String, usize>,
    /// ReplaceTags: (kind, name) → value, and the rules it applies to.
    pub replace: HashMap<(String, String), String>,
    pub replace_rules: std::collections::HashSet<String>,
}

impl Loaded {
    /// The ReplaceTags plugin: in rules named by `replace_rules`, `<pre P>`, `<post P>` and `<inter P>`
    /// choose decorations, and each `<TAG>` becomes its `replace_tag` value (up to 5 nested passes).
    pub fn replace_tags(&self, name: &str, def: &str) -> String {
        if !self.replace_rules.contains(name) || !def.contains('<') {
            return def.to_string();
        }
        let get = |k: &str, n: &str| self.replace.get(&(k.to_string(), n.to_string())).cloned();
        let mut re = def.to_string();
        for _ in 0..6 {
            let mut take = |word: &str| -> Option<String> {
                let open = format!("<{word} ");
                let p = re.find(&open)?;
                let e = re[p..].find('>')? + p;
                let n = re[p + open.len()..e].to_string();
                re.replace_range(p..=e, "");
                Some(n)
            };
            let pre = take("pre").and_then(|n| get("replace_pre", &n));
            let post = take("post").and_then(|n| get("replace_post", &n));
            let inter = take("inter").and_then(|n| get("replace_inter", &n));
            // split(/(<[^<>]+>)/): text pieces and tags alternate; empty pieces sit between adjacent tags.
            let mut pieces: Vec<(bool, String)> = Vec::new();
            let mut rest = re.as_str();
            loop {
                let tag = rest.find('<').and_then(|s| {
                    let e = rest[s + 1..].find(['<', '>']).map(|x| x + s + 1)?;
                    (rest.as_bytes()[e] == b'>' && e > s + 1).then_some((s, e))
                });
                match tag {
                    Some((s, e)) => {
                        pieces.push((false, rest[..s].to_string()));
                        pieces.push((true, rest[s..=e].to_string()));
                        rest = &rest[e + 1..];
                    }
                    None => {
                        pieces.push((false, rest.to_string()));
                        break;
                    }
                }
            }
            let mut again = false;
            let mut out = String::new();
            let n = pieces.len();
            for (i, (is_tag, p)) in pieces.into_iter().enumerate() {
                if is_tag {
                    let tname = &p[1..p.len() - 1];
                    let body = match get("replace_tag", tname) {
                        Some(v) => {
                            again |= v.contains('<');
                            v
                        }
                        None => p.clone(),
                    };
                    if let Some(pre) = &pre {
                        out.push_str(pre);
                    }
                    out.push_str(&body);
                    if let Some(post) = &post {
                        out.push_str(post);
                    }
                } else if p.is_empty() && i > 0 && i + 1 < n {
                    if let Some(inter) = &inter {
                        out.push_str(inter);
                    }
                } else {
                    out.push_str(&p);
                }
            }
            re = out;
            if !again {
                break;
            }
        }
        re
    }
}

/// Message-marking settings: the header templates, report template and thresholds.
#[derive(Debug, Clone)]
pub struct Settings {
    pub required_score: f64,
    pub rewrite_header: Vec<(String, String)>,
    pub headers_spam: Vec<(String, String)>,
    pub headers_ham: Vec<(String, String)>,
    pub report_safe: u8,
    pub report: Vec<String>,
    pub unsafe_report: Vec<String>,
    pub report_contact: String,
    pub freemail: std::collections::HashSet<String>,
    /// Wildcard entries (`*.example.com`, `mail.*`), matched against the whole domain.
    pub freemail_globs: Vec<String>,
    /// `util_rb_tld`: the top-level domains RegistryBoundaries calls valid (`domain_valid`).
    pub tlds: std::collections::HashSet<String>,
    /// `util_rb_2tld` and `util_rb_3tld` (co.uk, demon.co.uk): see `registry_domain`.
    pub two_level_domains: std::collections::HashSet<String>,
    pub three_level_domains: std::collections::HashSet<String>,
    /// `token_model_weight`: the token model's weight (in score points) per token hash; empty when
    /// no model is loaded. See `bayes::token_margin`.
    pub token_model: HashMap<i64, f64>,
}

impl Settings {
    /// The FreeMail plugin's `_is_freemail`: an address at a listed free-mail provider, unless it is a
    /// role or system address (abuse@, postmaster@, bounce and message-id shaped users ...).
    pub fn is_freemail(&self, email: &str) -> bool {
        static ROLE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
        let Some((_, domain)) = email.rsplit_once('@') else {
            return false;
        };
        let domain = domain.to_ascii_lowercase();
        let listed = self.freemail.contains(&domain)
            || self
                .freemail_globs
                .iter()
                .any(|g| glob(g.as_bytes(), domain.as_bytes()));
        listed
            && !ROLE
                .get_or_init(|| {
                    regex::Regex::new(
                        r"(?i)^(?:abuse|support|sales|info|helpdesk|contact|kontakt|(?:post|host|domain)master|undisclosed.*|request-[a-f0-9]{16}|bounced?-|[a-f0-9]{8}(?:\.[a-f0-9]{8}|-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{12})|.+=.+=.+)@",
                    )
                    .expect("static regex")
                })
                .is_match(email)
    }
}

/// RegistryBoundaries' state codes: `X.<state>.us` and `ci|co.X.<state>.us`, `pvt.k12.<state>.us`
/// are registries of their own.
const US_STATES: &[&str] = &[
    "ak", "al", "ar", "az", "ca", "co", "ct", "dc", "de", "fl", "ga", "gu", "hi", "ia", "id", "il",
    "in", "ks", "ky", "la", "ma", "md", "me", "mi", "mn", "mo", "ms", "mt", "nc", "nd", "ne", "nh",
    "nj", "nm", "nv", "ny", "oh", "ok", "or", "pa", "pr", "ri", "sc", "sd", "tn", "tx", "ut", "va",
    "vi", "vt", "wa", "wi", "wv", "wy",
];

impl Settings {
    /// RegistryBoundaries' is_domain_valid: no whitespace, at least one dot, and a last label that
    /// `util_rb_tld` lists.
    pub fn domain_valid(&self, dom: &str) -> bool {
        let d = dom.to_ascii_lowercase();
        if d.contains(char::is_whitespace) {
            return false;
        }
        match d.rsplit_once('.') {
            Some((_, tld)) => !tld.is_empty() && self.tlds.contains(tld),
            None => false,
        }
    }

    /// RegistryBoundaries::split_domain's domain part: the registered domain of a host name, one
    /// label below the registry (`util_rb_2tld`/`util_rb_3tld`, the US state zones, else the TLD).
    /// `mail.example.co.uk` gives `example.co.uk`; a bare TLD gives itself.
    pub fn registry_domain(&self, host: &str) -> String {
        let d = host.to_ascii_lowercase();
        let parts: Vec<&str> = d.split('.').filter(|p| !p.is_empty()).collect();
        let mut start = 0;
        while parts.len() - start > 1 {
            let rest = &parts[start..];
            let stop = match rest.len() {
                2 => self.two_level_domains.contains(&rest.join(".")),
                3 if rest[2] == "us" => US_STATES.contains(&rest[1]),
                3 => self.three_level_domains.contains(&rest.join(".")),
                4 => {
                    rest[3] == "us"
                        && ((rest[0] == "pvt" && rest[1] == "k12")
                            || rest[0] == "ci"
                            || rest[0] == "co")
                        && US_STATES.contains(&rest[2])
                }
                _ => false,
            };
            if stop {
                break;
            }
            start += 1;
        }
        parts[start.saturating_sub(1)..].join(".")
    }
}

/// `*` and `?` matching for freemail entries, as FreeMail.pm turns them into a regex: `*` is
/// `[^.]*` (it stays within one label, so `yahoo.*` is not `yahoo.evil.example`), `?` is `.` (any
/// one character, a dot too, whatever its documentation says).
fn glob(p: &[u8], s: &[u8]) -> bool {
    match (p.first(), s.first()) {
        (None, None) => true,
        (Some(b'*'), _) => {
            glob(&p[1..], s) || (s.first().is_some_and(|&c| c != b'.') && glob(p, &s[1..]))
        }
        (Some(b'?'), Some(_)) => glob(&p[1..], &s[1..]),
        (Some(a), Some(b)) if a == b => glob(&p[1..], &s[1..]),
        _ => false,
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            required_score: 5.0,
            rewrite_header: Vec::new(),
            headers_spam: Vec::new(),
            headers_ham: Vec::new(),
            report_safe: 1,
            report: Vec::new(),
            unsafe_report: Vec::new(),
            report_contact: "the administrator of that system".into(),
            freemail: Default::default(),
            freemail_globs: Vec::new(),
            tlds: Default::default(),
            two_level_domains: Default::default(),
            three_level_domains: Default::default(),
            token_model: HashMap::new(),
        }
    }
}

struct Loader {
    out: Loaded,
    index: HashMap<String, usize>,
    plugins: Vec<String>,
    depth: usize,
}

/// Loads every `*.cf` in each directory (sorted by name, as SpamAssassin does), or a single file.
pub fn load(paths: &[PathBuf]) -> std::io::Result<Loaded> {
    let mut l = Loader {
        out: Loaded {
            rules: Vec::new(),
            scores: HashMap::new(),
            describe: HashMap::new(),
            tflags: HashMap::new(),
            priority: HashMap::new(),
            settings: Settings::default(),
            lint: Vec::new(),
            files: Vec::new(),
            ignored: HashMap::new(),
            replace: HashMap::new(),
            replace_rules: Default::default(),
        },
        index: HashMap::new(),
        plugins: DEFAULT_PLUGINS.iter().map(|s| s.to_string()).collect(),
        depth: 0,
    };
    for p in paths {
        if p.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(p)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.extension().is_some_and(|x| x == "cf" || x == "pre"))
                .collect();
            // SpamAssassin reads .pre files first, then .cf files, each in name order.
            files.sort_by_key(|f| {
                (
                    f.extension().is_some_and(|x| x == "cf"),
                    f.file_name().map(|n| n.to_owned()),
                )
            });
            for f in files {
                l.file(&f);
            }
        } else {
            l.file(p);
        }
    }
    Ok(l.out)
}

/// Parses rule text given directly (tests, fuzzing): no includes are followed.
pub fn load_text(text: &str) -> Loaded {
    let mut l = Loader {
        out: Loaded {
            rules: Vec::new(),
            scores: HashMap::new(),
            describe: HashMap::new(),
            tflags: HashMap::new(),
            priority: HashMap::new(),
            settings: Settings::default(),
            lint: Vec::new(),
            files: Vec::new(),
            ignored: HashMap::new(),
            replace: HashMap::new(),
            replace_rules: Default::default(),
        },
        index: HashMap::new(),
        plugins: DEFAULT_PLUGINS.iter().map(|s| s.to_string()).collect(),
        depth: 100,
    };
    l.text(text, "<text>", None);
    l.out
}

impl Loader {
    fn file(&mut self, path: &Path) {
        if self.depth > 20 {
            self.out
                .lint
                .push(format!("{}: include nested too deeply", path.display()));
            return;
        }
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) => {
                self.out
                    .lint
                    .push(format!("{}: cannot read: {e}", path.display()));
                return;
            }
        };
        // Rule files are mostly ASCII; a few carry Latin-1 or UTF-8 in comments and lang lines.
        let text = match String::from_utf8(bytes) {
            Ok(s) => s,
            Err(e) => e.into_bytes().iter().map(|&b| b as char).collect(),
        };
        self.out.files.push(path.to_path_buf());
        self.depth += 1;
        let name = path.display().to_string();
        self.text(&text, &name, path.parent());
        self.depth -= 1;
    }

    fn text(&mut self, text: &str, name: &str, dir: Option<&Path>) {
        // Conditional stack: (this block is active, some branch already taken).
        let mut stack: Vec<(bool, bool)> = Vec::new();
        let active = |s: &Vec<(bool, bool)>| s.iter().all(|(a, _)| *a);
        for line in cf::parse(text) {
            let origin = format!("{name}:{}", line.lineno);
            match &line.directive {
                Directive::IfPlugin(p) => {
                    let v = self.has_plugin(p);
                    stack.push((v, v));
                    continue;
                }
                Directive::If(e) => {
                    let v = self.eval_if(e);
                    stack.push((v, v));
                    continue;
                }
                Directive::Else => {
                    match stack.last_mut() {
                        Some(top) => {
                            top.0 = !top.1;
                            top.1 = true;
                        }
                        None => self.out.lint.push(format!("{origin}: else without if")),
                    }
                    continue;
                }
                Directive::EndIf => {
                    if stack.pop().is_none() {
                        self.out.lint.push(format!("{origin}: endif without if"));
                    }
                    continue;
                }
                _ => {}
            }
            if !active(&stack) {
                continue;
            }
            self.apply(line.directive, &origin, dir);
        }
        if !stack.is_empty() {
            self.out
                .lint
                .push(format!("{name}: {} unclosed if/ifplugin", stack.len()));
        }
    }

    fn has_plugin(&self, p: &str) -> bool {
        let p = p.trim();
        let short = p.rsplit("::").next().unwrap_or(p);
        self.plugins.iter().any(|x| x == short)
    }

    /// `if` expressions in the stock rules: `(version >= 3.004000)`, `can(...)`, `plugin(...)`, `!`,
    /// `&&`, `||`. Features SpamAssassin 4.0 has are all present; unknown words read as false.
    fn eval_if(&self, e: &str) -> bool {
        let mut s = e.to_string();
        // Replace plugin(X) and can(X) calls by 1/0 before handing the rest to the meta evaluator.
        for func in ["plugin", "can", "has"] {
            while let Some(p) = s.find(&format!("{func}(")) {
                let start = p + func.len() + 1;
                let end = s[start..].find(')').map(|x| x + start).unwrap_or(s.len());
                let arg = s[start..end].trim().to_string();
                let v = match func {
                    "plugin" => self.has_plugin(&arg),
                    _ => {
                        arg.starts_with("Mail::SpamAssassin::Conf::feature_")
                            || self.has_plugin(arg.rsplit_once("::").map(|x| x.0).unwrap_or(""))
                    }
                };
                s.replace_range(p..(end + 1).min(s.len()), if v { "1" } else { "0" });
            }
        }
        let s = s.replace("version", &format!("{SA_VERSION:.6}"));
        match super::meta::parse(&s) {
            Ok(x) => x.eval(&|_| 0.0) != 0.0,
            Err(_) => false,
        }
    }

    fn apply(&mut self, d: Directive, origin: &str, dir: Option<&Path>) {
        let st = &mut self.out.settings;
        match d {
            Directive::Rule { kind, name, def } => {
                let rd = RuleDef {
                    kind,
                    name: name.clone(),
                    def,
                    origin: origin.to_string(),
                };
                // A later definition replaces an earlier one, as in SpamAssassin.
                match self.index.get(&name) {
                    Some(&i) => self.out.rules[i] = rd,
                    None => {
                        self.index.insert(name, self.out.rules.len());
                        self.out.rules.push(rd);
                    }
                }
            }
            Directive::Score { name, scores } => {
                self.out.scores.insert(name, scores);
            }
            Directive::Describe { name, text } => {
                self.out.describe.insert(name, text);
            }
            Directive::Tflags { name, flags } => {
                self.out.tflags.insert(name, flags);
            }
            Directive::Priority { name, priority } => {
                self.out.priority.insert(name, priority);
            }
            Directive::RequiredScore(v) => st.required_score = v,
            Directive::RewriteHeader { header, text } => {
                st.rewrite_header.retain(|(h, _)| *h != header);
                st.rewrite_header.push((header, text));
            }
            Directive::AddHeader { which, name, text } => {
                let set =
                    |v: &mut Vec<(String, String)>| match v.iter_mut().find(|(n, _)| *n == name) {
                        Some(e) => e.1 = text.clone(),
                        None => v.push((name.clone(), text.clone())),
                    };
                if matches!(which, Which::Spam | Which::All) {
                    set(&mut st.headers_spam);
                }
                if matches!(which, Which::Ham | Which::All) {
                    set(&mut st.headers_ham);
                }
            }
            Directive::RemoveHeader { which, name } => {
                if matches!(which, Which::Spam | Which::All) {
                    st.headers_spam.retain(|(n, _)| *n != name);
                }
                if matches!(which, Which::Ham | Which::All) {
                    st.headers_ham.retain(|(n, _)| *n != name);
                }
            }
            Directive::ClearHeaders => {
                st.headers_spam.clear();
                st.headers_ham.clear();
            }
            Directive::ReportSafe(v) => {
                st.report_safe = v;
                // SpamAssassin adds X-Spam-Report to spam when report_safe is 0.
                if v == 0
                    && !st
                        .headers_spam
                        .iter()
                        .any(|(n, _)| n.eq_ignore_ascii_case("report"))
                {
                    st.headers_spam.push(("Report".into(), "_REPORT_".into()));
                }
            }
            Directive::Report(t) => st.report.push(t),
            Directive::ClearReportTemplate => st.report.clear(),
            Directive::UnsafeReport(t) => st.unsafe_report.push(t),
            Directive::ClearUnsafeReportTemplate => st.unsafe_report.clear(),
            Directive::ReportContact(t) => st.report_contact = t,
            Directive::ReplaceTag { kind, name, value } => {
                self.out.replace.insert((kind, name), value);
            }
            Directive::ReplaceRules(rs) => self.out.replace_rules.extend(rs),
            Directive::FreemailDomains(ds) => {
                for d in ds {
                    if d.contains('*') || d.contains('?') {
                        st.freemail_globs.push(d);
                    } else {
                        st.freemail.insert(d);
                    }
                }
            }
            Directive::RbTld { labels, domains } => {
                let set = match labels {
                    1 => &mut st.tlds,
                    2 => &mut st.two_level_domains,
                    _ => &mut st.three_level_domains,
                };
                set.extend(domains);
            }
            Directive::TokenWeight(h, w) => {
                st.token_model.insert(h, w);
            }
            Directive::Include(p) => {
                let path = match dir {
                    Some(d) if !Path::new(&p).is_absolute() => d.join(&p),
                    _ => PathBuf::from(&p),
                };
                self.file(&path);
            }
            Directive::LoadPlugin(p) => {
                let short = p.rsplit("::").next().unwrap_or(&p).to_string();
                if !self.plugins.contains(&short) {
                    self.plugins.push(short);
                }
            }
            Directive::Lang { .. } => *self.out.ignored.entry("lang".into()).or_insert(0) += 1,
            Directive::Ignored { key } => *self.out.ignored.entry(key).or_insert(0) += 1,
            Directive::Bad { key, why } => self.out.lint.push(format!("{origin}: {key}: {why}")),
            Directive::Unknown { key } => self
                .out
                .lint
                .push(format!("{origin}: unknown keyword {key}")),
            Directive::IfPlugin(_) | Directive::If(_) | Directive::Else | Directive::EndIf => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Freemail wildcards read as FreeMail.pm's regex reads them: `*` within one label, `?` any one
    /// character.
    #[test]
    fn freemail_wildcards_stay_within_a_label() {
        let st =
            load_text("freemail_domains yahoo.* yahoo.co*.* hotmail.co.?? gmail.com\n").settings;
        let free = |e: &str| st.is_freemail(e);
        assert!(free("joe@yahoo.com") && free("joe@yahoo.co.uk") && free("joe@YAHOO.DE"));
        assert!(free("joe@hotmail.co.uk") && free("joe@gmail.com"));
        assert!(!free("joe@yahoo.evil.example"));
        assert!(!free("joe@mail.yahoo.com") && !free("joe@hotmail.co.ukx"));
        // `?` is any character: FreeMail.pm makes it `.`.
        assert!(free("joe@hotmail.co..k"));
    }

    #[test]
    fn conditionals() {
        let l = load_text(
            "ifplugin Mail::SpamAssassin::Plugin::Nope\nbody A /a/\nendif\n\
             if (version >= 3.004000)\nbody B /b/\nelse\nbody C /c/\nendif\n\
             if can(Mail::SpamAssassin::Conf::feature_yesno_takes_args)\nbody D /d/\nendif\n\
             ifplugin Mail::SpamAssassin::Plugin::HeaderEval\nbody E /e/\nendif\n",
        );
        let names: Vec<_> = l.rules.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, vec!["B", "D", "E"]);
    }

    /// RegistryBoundaries::split_domain: one label below the registry, which is a listed two- or
    /// three-level domain, a US state zone, or else the TLD.
    #[test]
    fn registry_domains() {
        let st =
            load_text("util_rb_tld com uk\nutil_rb_2tld co.uk com.au\nutil_rb_3tld demon.co.uk\n")
                .settings;
        assert!(st.domain_valid("mail.example.co.uk"));
        assert!(st.domain_valid("Example.COM"));
        assert!(!st.domain_valid("example.invalidtld"));
        assert!(!st.domain_valid("localhost"));
        for (host, want) in [
            ("mail.example.com", "example.com"),
            ("Example.COM", "example.com"),
            ("a.b.example.co.uk", "example.co.uk"),
            ("x.y.demon.co.uk", "y.demon.co.uk"),
            // city.ny.us is itself a registry (a locality under a state zone).
            ("www.example.city.ny.us", "example.city.ny.us"),
            ("com", "com"),
            ("co.uk", "co.uk"),
        ] {
            assert_eq!(st.registry_domain(host), want, "{host}");
        }
    }
}
