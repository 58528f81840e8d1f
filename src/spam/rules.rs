//! Compiling loaded rule definitions into runnable tests: regexes translated and built once, metas
//! resolved to rule indexes, the four score sets kept per rule, and a literal prefilter over all body
//! rules so one Aho-Corasick pass over the text picks the few regexes worth running.

use super::cf::RuleKind;
use super::eval::{self, Call};
use super::load::{Loaded, Settings};
use super::meta::{self, Expr};
use super::perlre::{self, Re};
use std::collections::HashMap;

#[derive(Debug, Clone)]
pub enum Test {
    Header {
        spec: String,
        re: Re,
        negate: bool,
        unset: Option<Vec<u8>>,
    },
    Exists(String),
    Eval(Call),
    Body(Re),
    Rawbody(Re),
    Full(Re),
    Uri(Re),
    Mimeheader {
        name: String,
        raw: bool,
        re: Re,
        negate: bool,
    },
    Meta(Expr),
}

#[derive(Debug, Clone, Default)]
pub struct Tflags {
    pub net: bool,
    pub nice: bool,
    pub learn: bool,
    pub noautolearn: bool,
    pub multiple: bool,
    pub maxhits: usize,
    pub userconf: bool,
    /// A body rule that reads the body without the Subject line SpamAssassin puts first
    /// (`__NONEMPTY_BODY`, so that a subject alone is not a body).
    pub nosubject: bool,
}

#[derive(Debug, Clone)]
pub struct Rule {
    pub name: String,
    pub kind: RuleKind,
    pub test: Test,
    /// The rule's score in each of SpamAssassin's four score sets (see `ScoreSet`).
    pub scores: [f64; 4],
    pub describe: String,
    pub tflags: Tflags,
    pub priority: i32,
}

impl Rule {
    /// What a hit on this rule adds in score set `set`.
    pub fn score(&self, set: ScoreSet) -> f64 {
        self.scores[set.index()]
    }
    /// Whether some score set gives the rule a score (a rule scored 0 everywhere is switched off).
    pub fn scored_anywhere(&self) -> bool {
        self.scores.iter().any(|&s| s != 0.0)
    }
    /// The area prefix SpamAssassin puts before the description in reports.
    pub fn area(&self) -> &'static str {
        match (&self.kind, &self.test) {
            (RuleKind::Body, _) => "BODY: ",
            (RuleKind::Rawbody, _) => "RAW: ",
            (RuleKind::Uri, _) => "URI: ",
            (RuleKind::Full, _) => "FULL: ",
            _ => "",
        }
    }
    /// Sub-rules (`__NAME`) only feed metas: never scored, never shown.
    pub fn is_sub(&self) -> bool {
        self.name.starts_with("__")
    }

    /// Whether a hit on this rule shows in score set `set` (in the score, the tests list, reports); the
    /// others matter only to the metas that read them, and run when one does (`meta::Metas`).
    pub fn shows(&self, set: ScoreSet) -> bool {
        !self.is_sub() && self.score(set) != 0.0
    }

    /// A rough static guess at what running the rule costs, in units of a header regex, for choosing
    /// which operand of a meta's `&&` to run first (`meta::Metas`). Only the order of work depends on
    /// it, never a result. Text rules read much more than a header, a long pattern (the phrase lists)
    /// builds a bigger automaton, and the fallback engine backtracks.
    pub fn cost(&self) -> u32 {
        let re_cost = |re: &perlre::Re, base: u32| {
            let len = re.fast_source().map_or(2000, str::len) as u32;
            let c = base + len / 100;
            if re.is_fancy() {
                c * 4
            } else {
                c
            }
        };
        let c = match &self.test {
            Test::Exists(_) => 1,
            Test::Header { re, .. } | Test::Mimeheader { re, .. } => re_cost(re, 3),
            Test::Eval(_) => 5,
            Test::Uri(re) => re_cost(re, 5),
            Test::Body(re) | Test::Rawbody(re) => re_cost(re, 10),
            Test::Full(re) => re_cost(re, 20),
            Test::Meta(_) => 0,
        };
        if self.tflags.multiple {
            c * 2
        } else {
            c
        }
    }
}

/// A rule the engine cannot run, and why (lint output).
#[derive(Debug, Clone)]
pub struct Skipped {
    pub name: String,
    pub why: String,
}

/// The compiled rule set: what the daemon holds and swaps on SIGHUP.
#[derive(Debug)]
pub struct RuleSet {
    pub rules: Vec<Rule>,
    pub by_name: HashMap<String, usize>,
    /// Rule indexes in run order: by priority, non-metas first, metas in dependency order.
    pub order: Vec<usize>,
    pub metas: Vec<usize>,
    /// The metas compiled for evaluation on demand.
    pub meta_code: super::meta::Metas,
    pub skipped: Vec<Skipped>,
    pub settings: Settings,
    pub lint: Vec<String>,
    pub fancy: Vec<String>,
    pub ignored: HashMap<String, usize>,
    pub prefilter: super::prefilter::Prefilter,
    /// Hyperscan databases per header spec (`hsheader.rs`).
    pub hdr_filter: super::hsheader::HeaderFilter,
    /// Per rule: how a body or rawbody rule searches the joined lines first (`joined.rs`).
    pub joined: Vec<super::joined::Joined>,
    /// Per rule: for header and `exists:` rules, an index shared by every rule reading the same header
    /// spec, so a message reads each spec once into a slot instead of hashing the name per rule.
    pub spec_slot: Vec<u32>,
    /// How many distinct specs `spec_slot` numbers.
    pub spec_slots: usize,
    /// Whether every rule runs for every message, sub-rules no scored meta asks for included: when a
    /// template shows the sub-rules' hits (`_SUBTESTS_`), which only running them all tells.
    pub every_rule: bool,
    /// Per rule: for a body or rawbody rule that is one long part repeated (and counts no more than
    /// one hit), the small-automaton matcher that answers for its regex (`repeat.rs`).
    pub repeats: Vec<Option<Box<super::repeat::Repeat>>>,
    /// Per score set: the non-meta rules of `order`, then the metas of `metas`, that show in it
    /// (`Rule::shows`): what a message runs first. Listed once here because walking every rule's
    /// struct per message to ask showed in profiles (~3% of the daemon: cache misses).
    pub shown: [(Vec<usize>, Vec<usize>); 4],
    /// Rules tagged `tflags learn`: known zeros outside the Bayes score sets.
    pub learn: Vec<usize>,
}

/// Default scores: 1.0, but 0.01 for `T_` testing rules and 0 for sub-rules; negative for `tflags nice`
/// (Mail::SpamAssassin::Conf::Parser::fix_tests).
fn default_score(name: &str, nice: bool) -> f64 {
    let s = if name.starts_with("__") {
        0.0
    } else if name.starts_with("T_") {
        0.01
    } else {
        1.0
    };
    if nice {
        -s
    } else {
        s
    }
}

/// Which of a rule's four scores counts: SpamAssassin's score set, 2 when Bayes can classify plus 1 when
/// network tests run (`Mail::SpamAssassin::init`, and `PerMsgStatus::check`, which moves a running
/// daemon to set 2 or 3 once Bayes has learned enough). The stock rules give Bayes-era scores to the
/// other rules in sets 2 and 3 (lower, since BAYES_xx carries part of the weight), so scoring with
/// set 0 while BAYES_xx fires double-counts. correo runs no network tests: it uses set 0 or set 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScoreSet(usize);

impl ScoreSet {
    /// No Bayes verdict, no network tests.
    pub const LOCAL: ScoreSet = ScoreSet(0);
    /// Bayes usable, no network tests.
    pub const LOCAL_BAYES: ScoreSet = ScoreSet(2);

    pub fn new(bayes: bool, net: bool) -> ScoreSet {
        ScoreSet(usize::from(bayes) * 2 + usize::from(net))
    }
    pub fn index(self) -> usize {
        self.0
    }
    /// Rules tagged `tflags learn` (BAYES_xx) only run in the Bayes sets (Plugin::Check).
    pub fn bayes(self) -> bool {
        self.0 & 2 != 0
    }
}

pub fn compile(l: Loaded) -> RuleSet {
    let mut rules: Vec<Rule> = Vec::new();
    let mut skipped = Vec::new();
    let mut fancy = Vec::new();
    for d in &l.rules {
        let flags = l.tflags.get(&d.name).cloned().unwrap_or_default();
        let mut tf = Tflags::default();
        for f in &flags {
            match f.as_str() {
                "net" => tf.net = true,
                "nice" => tf.nice = true,
                "learn" => tf.learn = true,
                "noautolearn" => tf.noautolearn = true,
                "multiple" => tf.multiple = true,
                "userconf" => tf.userconf = true,
                "nosubject" => tf.nosubject = true,
                f => {
                    if let Some(n) = f.strip_prefix("maxhits=") {
                        tf.maxhits = n.parse().unwrap_or(0);
                        tf.multiple = true;
                    }
                }
            }
        }
        // `score NAME s` gives all four sets the same value; `score NAME s0 s1 s2 s3` one each.
        let scores = match l.scores.get(&d.name) {
            Some(s) if s.len() == 4 => [s[0], s[1], s[2], s[3]],
            Some(s) => [s.first().copied().unwrap_or(0.0); 4],
            None => [default_score(&d.name, tf.nice); 4],
        };
        let def = l.replace_tags(&d.name, &d.def);
        let test = match compile_test(d.kind, &def) {
            Ok(t) => t,
            Err(why) => {
                skipped.push(Skipped {
                    name: d.name.clone(),
                    why: format!("{}: {why}", d.origin),
                });
                continue;
            }
        };
        // `tflags net` alone does not stop a rule: SpamAssassin -L still runs net-flagged metas and
        // local tests; the network evals themselves are the ones we do not implement.
        let uses_fancy = match &test {
            Test::Header { re, .. }
            | Test::Body(re)
            | Test::Rawbody(re)
            | Test::Full(re)
            | Test::Uri(re) => re.is_fancy(),
            Test::Mimeheader { re, .. } => re.is_fancy(),
            _ => false,
        };
        if uses_fancy {
            fancy.push(d.name.clone());
        }
        rules.push(Rule {
            name: d.name.clone(),
            kind: d.kind,
            test,
            scores,
            describe: l.describe.get(&d.name).cloned().unwrap_or_default(),
            tflags: tf,
            priority: l.priority.get(&d.name).copied().unwrap_or(0),
        });
    }
    let by_name: HashMap<String, usize> = rules
        .iter()
        .enumerate()
        .map(|(i, r)| (r.name.clone(), i))
        .collect();
    for r in rules.iter_mut() {
        if let Test::Meta(e) = &mut r.test {
            e.resolve(&|n| by_name.get(n).copied());
        }
    }
    // Which rules some meta reads: those run even with score 0.
    let mut needed = vec![false; rules.len()];
    for r in &rules {
        if let Test::Meta(e) = &r.test {
            let mut deps = Vec::new();
            e.deps(&mut deps);
            for d in deps {
                if let Some(&i) = by_name.get(&d) {
                    needed[i] = true;
                }
            }
        }
    }
    let mut order: Vec<usize> = (0..rules.len())
        .filter(|&i| {
            !matches!(rules[i].test, Test::Meta(_)) && (rules[i].scored_anywhere() || needed[i])
        })
        .collect();
    order.sort_by_key(|&i| rules[i].priority);
    let metas = meta_order(&rules, &by_name, &needed);
    let meta_code = super::meta::Metas::new(
        &rules
            .iter()
            .map(|r| match &r.test {
                Test::Meta(e) => (Some(e), 0),
                _ => (None, r.cost()),
            })
            .collect::<Vec<_>>(),
    );
    let gated = live_order(&rules, &by_name, &order);
    let hdr_filter =
        super::hsheader::HeaderFilter::build(&rules, &gated, super::hyperscan::Engine::get());
    // A header rule the header filter gates stays out of the literal prefilter: its spec's database
    // already says all its literals would (the pattern is the rule's whole regex, literals included),
    // and scanning every header's text for the literals cost more than it saved. Without them the
    // stock rules' header literal database keeps only the 26 rules that have no spec database (its
    // scan of ~5 KB of header text: ~27 -> ~9.5 us a message); the spec databases are scanned ~5 more
    // times a message, and scoring takes 2-3% less CPU a message (bench/RESULTS.md, stop 36).
    let lit_order: Vec<usize> = gated
        .iter()
        .copied()
        .filter(|&i| hdr_filter.db_of.get(i).copied().flatten().is_none())
        .collect();
    let prefilter = super::prefilter::Prefilter::build(&rules, &lit_order);
    let joined = rules
        .iter()
        .map(|r| match &r.test {
            Test::Body(re) | Test::Rawbody(re) => super::joined::Joined::of(re),
            _ => super::joined::Joined::Every,
        })
        .collect();
    let mut specs: HashMap<&str, u32> = HashMap::new();
    let spec_slot: Vec<u32> = rules
        .iter()
        .map(|r| match &r.test {
            Test::Header { spec, .. } | Test::Exists(spec) => {
                let n = specs.len() as u32;
                *specs.entry(spec.as_str()).or_insert(n)
            }
            _ => u32::MAX,
        })
        .collect();
    let spec_slots = specs.len();
    let repeats = rules
        .iter()
        .map(|r| match &r.test {
            Test::Body(re) | Test::Rawbody(re) if !r.tflags.multiple => re
                .fast_source()
                .filter(|_| !re.is_fancy())
                .and_then(super::repeat::Repeat::of)
                .map(Box::new),
            _ => None,
        })
        .collect();
    let st = &l.settings;
    let every_rule = st
        .headers_spam
        .iter()
        .chain(&st.headers_ham)
        .chain(&st.rewrite_header)
        .any(|(_, t)| t.contains("_SUBTESTS"))
        || st
            .report
            .iter()
            .chain(&st.unsafe_report)
            .any(|t| t.contains("_SUBTESTS"));
    let shown = [0, 1, 2, 3].map(|k| {
        let set = ScoreSet(k);
        let pick = |ids: &[usize]| -> Vec<usize> {
            ids.iter()
                .copied()
                .filter(|&i| rules[i].shows(set))
                .collect()
        };
        (pick(&order), pick(&metas))
    });
    let learn = (0..rules.len())
        .filter(|&i| rules[i].tflags.learn)
        .collect();
    RuleSet {
        shown,
        learn,
        rules,
        by_name,
        order,
        metas,
        meta_code,
        skipped,
        settings: l.settings,
        lint: l.lint,
        fancy,
        ignored: l.ignored,
        prefilter,
        hdr_filter,
        joined,
        spec_slot,
        spec_slots,
        every_rule,
        repeats,
    }
}

/// The rules of `order` that a scored verdict can ask for: those shown in a score set the scorer uses
/// (no network tests: sets 0 and 2), and what the metas among them read, through any depth. Only these
/// go into the prefilter's and the header filter's databases. The others (the stock rules have ~60:
/// sub-rules only dead metas read, rules scored only with network tests) still run when every rule
/// does (`_SUBTESTS_`, `CORREO_SPAM_EAGER`), ungated, so their hits are right there too; on demand,
/// nothing asks for them, and each pattern fewer makes every scan of its database cheaper.
fn live_order(rules: &[Rule], by_name: &HashMap<String, usize>, order: &[usize]) -> Vec<usize> {
    let sets = [ScoreSet::LOCAL, ScoreSet::LOCAL_BAYES];
    let mut live = vec![false; rules.len()];
    let mut stack: Vec<usize> = (0..rules.len())
        .filter(|&i| sets.iter().any(|&s| rules[i].shows(s)))
        .collect();
    for &i in &stack {
        live[i] = true;
    }
    while let Some(i) = stack.pop() {
        if let Test::Meta(e) = &rules[i].test {
            let mut deps = Vec::new();
            e.deps(&mut deps);
            for d in deps {
                if let Some(&j) = by_name.get(&d) {
                    if !live[j] {
                        live[j] = true;
                        stack.push(j);
                    }
                }
            }
        }
    }
    order.iter().copied().filter(|&i| live[i]).collect()
}

/// Metas sorted so each runs after the metas it reads (depth-first; cycles are broken and read as 0).
fn meta_order(rules: &[Rule], by_name: &HashMap<String, usize>, needed: &[bool]) -> Vec<usize> {
    let mut state = vec![0u8; rules.len()];
    let mut out = Vec::new();
    fn visit(
        i: usize,
        rules: &[Rule],
        by_name: &HashMap<String, usize>,
        state: &mut [u8],
        out: &mut Vec<usize>,
    ) {
        if state[i] != 0 {
            return;
        }
        state[i] = 1;
        if let Test::Meta(e) = &rules[i].test {
            let mut deps = Vec::new();
            e.deps(&mut deps);
            for d in deps {
                if let Some(&j) = by_name.get(&d) {
                    if matches!(rules[j].test, Test::Meta(_)) {
                        visit(j, rules, by_name, state, out);
                    }
                }
            }
            out.push(i);
        }
        state[i] = 2;
    }
    let mut idx: Vec<usize> = (0..rules.len())
        .filter(|&i| {
            matches!(rules[i].test, Test::Meta(_)) && (rules[i].scored_anywhere() || needed[i])
        })
        .collect();
    idx.sort_by_key(|&i| rules[i].priority);
    for i in idx {
        visit(i, rules, by_name, &mut state, &mut out);
    }
    out
}

fn regex_from(def: &str) -> Result<(Re, &str), String> {
    let (pat, flags, rest) = perlre::split_delimited(def).ok_or("no /regex/ in definition")?;
    let re = perlre::compile(pat, flags).map_err(|e| format!("regex: {}", e.0))?;
    Ok((re, rest))
}

fn eval_test(def: &str) -> Result<Test, String> {
    let call = eval::parse_call(def).ok_or("bad eval: call")?;
    if !eval::implemented(&call.func) {
        return Err(format!("eval:{} not implemented", call.func));
    }
    Ok(Test::Eval(call))
}

pub fn compile_test(kind: RuleKind, def: &str) -> Result<Test, String> {
    let def = def.trim();
    match kind {
        RuleKind::Meta => meta::parse(def).map(Test::Meta),
        RuleKind::Header => {
            if def.starts_with("eval:") {
                return eval_test(def);
            }
            if let Some(h) = def.strip_prefix("exists:") {
                return Ok(Test::Exists(h.trim().to_string()));
            }
            let (spec, rest) = def
                .split_once(char::is_whitespace)
                .ok_or("header rule needs NAME =~ /re/")?;
            let rest = rest.trim_start();
            let (negate, rest) = if let Some(r) = rest.strip_prefix("=~") {
                (false, r)
            } else if let Some(r) = rest.strip_prefix("!~") {
                (true, r)
            } else {
                return Err("header rule needs =~ or !~".into());
            };
            let (re, rest) = regex_from(rest)?;
            let unset = rest
                .trim()
                .strip_prefix("[if-unset:")
                .and_then(|x| x.strip_suffix(']'))
                .map(|x| x.trim().as_bytes().to_vec());
            Ok(Test::Header {
                spec: spec.to_string(),
                re,
                negate,
                unset,
            })
        }
        RuleKind::Mimeheader => {
            let (spec, rest) = def
                .split_once(char::is_whitespace)
                .ok_or("mimeheader needs NAME =~ /re/")?;
            let rest = rest.trim_start();
            let (negate, rest) = if let Some(r) = rest.strip_prefix("=~") {
                (false, r)
            } else if let Some(r) = rest.strip_prefix("!~") {
                (true, r)
            } else {
                return Err("mimeheader needs =~ or !~".into());
            };
            let (re, _) = regex_from(rest)?;
            let (name, raw) = match spec.strip_suffix(":raw") {
                Some(n) => (n.to_string(), true),
                None => (spec.to_string(), false),
            };
            Ok(Test::Mimeheader {
                name,
                raw,
                re,
                negate,
            })
        }
        RuleKind::Body | RuleKind::Rawbody | RuleKind::Full | RuleKind::Uri => {
            if def.starts_with("eval:") {
                if kind == RuleKind::Uri {
                    return Err("uri eval not supported".into());
                }
                return eval_test(def);
            }
            let (re, _) = regex_from(def)?;
            Ok(match kind {
                RuleKind::Body => Test::Body(re),
                RuleKind::Rawbody => Test::Rawbody(re),
                RuleKind::Full => Test::Full(re),
                _ => Test::Uri(re),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spam::load::load_text;

    /// `tflags nosubject`: the Subject SpamAssassin puts first in the body text is not body.
    #[test]
    fn nosubject_body_rules_skip_the_subject() {
        let rs = compile(load_text(
            "body __NONEMPTY /\\S/\ntflags __NONEMPTY nosubject\n\
             meta EMPTY !__NONEMPTY\nscore EMPTY 1.0\n\
             body WITH_SUBJECT /hello/\nscore WITH_SUBJECT 0.5\n",
        ));
        let empty = crate::spam::view::View::new(b"Subject: hello\n\n");
        assert_eq!(
            rs.check_view(&empty, None).score,
            1.5,
            "subject only: empty"
        );
        let full = crate::spam::view::View::new(b"Subject: hello\n\nsome text\n");
        assert_eq!(rs.check_view(&full, None).score, 0.5);
    }

    /// Only rules a verdict can ask for are gated (`live_order`); the others still hit when every
    /// rule runs.
    #[test]
    fn rules_no_verdict_reads_are_left_out_of_the_filters() {
        let rs = compile(load_text(
            "body __READ /foo/
meta SHOWN __READ
score SHOWN 1
             body __UNREAD /bar/
meta __DEAD __UNREAD
             body NET_ONLY /baz/
score NET_ONLY 0 1 0 1
             body LOCAL /qux/
score LOCAL 1
",
        ));
        let id = |n: &str| rs.by_name[n];
        let gated = |n: &str| rs.prefilter.gated[id(n)].is_some();
        assert!(gated("__READ") && gated("LOCAL"));
        assert!(!gated("__UNREAD") && !gated("NET_ONLY"));
        let view = crate::spam::view::View::new(b"Subject: s\n\nfoo bar baz qux\n");
        let mut all = rs.check_view_every_rule(&view).hit_names(&rs.rules);
        all.sort();
        assert_eq!(all, ["LOCAL", "NET_ONLY", "SHOWN", "__READ", "__UNREAD"]);
        assert_eq!(rs.check_view(&view, None).score, 2.0);
    }

    /// The bug: every rule took its set-0 score, so with Bayes on the stock rules counted both their
    /// no-Bayes weight and BAYES_xx, and BAYES_xx (0 in set 0) never scored at all.
    #[test]
    fn score_set_follows_bayes_availability() {
        let rs = compile(load_text(
            "body WORD /xyzzy/\nscore WORD 2.0 2.1 0.5 0.6\n\
             body NICE_WORD /plugh/\ntflags NICE_WORD nice\n\
             header BAYES_99 eval:check_bayes('0.99', '1.00')\ntflags BAYES_99 learn\n\
             score BAYES_99 0 0 3.5 3.5\n",
        ));
        let view = crate::spam::view::View::new(b"Subject: hi\n\nxyzzy plugh\n");
        let none = rs.check_view(&view, None);
        assert_eq!(none.set, ScoreSet::LOCAL);
        // WORD in set 0 plus NICE_WORD's default -1.0 (tflags nice).
        assert_eq!(none.score, 1.0);
        let sure = rs.check_view(&view, Some(0.999));
        assert_eq!(sure.set, ScoreSet::LOCAL_BAYES);
        assert_eq!(sure.score, 0.5 - 1.0 + 3.5);
        let names: Vec<&str> = sure
            .hits
            .iter()
            .map(|&i| rs.rules[i].name.as_str())
            .collect();
        assert!(names.contains(&"BAYES_99"), "{names:?}");
        // Bayes usable but unsure: still set 2 (availability decides, not the verdict).
        assert_eq!(rs.check_view(&view, Some(0.5)).score, -0.5);
        // Bayes usable, but no token of this message was significant: set 2, and no BAYES_xx.
        let no_tokens = rs.check_view_bayes(&view, true, None);
        assert_eq!(no_tokens.set, ScoreSet::LOCAL_BAYES);
        assert_eq!(no_tokens.score, -0.5);
    }

    #[test]
    fn one_score_applies_to_all_four_sets() {
        let rs = compile(load_text("body A /a/\nscore A 1.5\n"));
        let i = rs.by_name["A"];
        assert_eq!(rs.rules[i].scores, [1.5; 4]);
    }
}
