//! Scoring one message: build the view, run the prefilter, run each rule in order, then the metas, and
//! sum the scores. The result is a `Verdict`; writing headers is `markup.rs`'s job.

use super::joined::Lines;
use super::prefilter::Area;
use super::rules::{Rule, RuleSet, ScoreSet, Test};
use super::view::View;

/// What the engine decided about one message.
#[derive(Debug, Clone)]
pub struct Verdict {
    pub score: f64,
    pub required: f64,
    pub is_spam: bool,
    /// Scored rules that hit, in the order they ran.
    pub hits: Vec<usize>,
    /// Sub-rules (`__X`) and zero-scored rules that hit, for debugging.
    pub subhits: Vec<usize>,
    /// The score set the hits were scored in (2 when Bayes gave a probability).
    pub set: ScoreSet,
    /// What auto-learn did, once `bayes::check` has run it (None: scored without the learner).
    pub autolearn: Option<crate::spam::bayes::AutoLearn>,
}

impl Verdict {
    /// What rule `r` added to this message's score (reports list it with this value).
    pub fn score_of(&self, r: &Rule) -> f64 {
        r.score(self.set)
    }

    /// The names of every rule that hit, sub-rules included, sorted: what tests compare between two
    /// ways of running the same rules.
    #[cfg(test)]
    pub(crate) fn hit_names(&self, rules: &[Rule]) -> Vec<String> {
        let mut h: Vec<String> = self
            .hits
            .iter()
            .chain(&self.subhits)
            .map(|&i| rules[i].name.clone())
            .collect();
        h.sort();
        h
    }
}

impl RuleSet {
    /// Scores a message without Bayes (score set 0).
    pub fn check(&self, msg: &[u8]) -> (View, Verdict) {
        let t0 = std::time::Instant::now();
        let view = View::new(msg);
        let t1 = t0.elapsed();
        let v = self.check_view(&view, None);
        if std::env::var_os("CORREO_SPAM_PROFILE").is_some() {
            eprintln!("view {:?}, rules {:?}", t1, t0.elapsed() - t1);
        }
        (view, v)
    }

    /// Scores a view. `bayes` is the Bayes probability when the database can classify (enough spam and
    /// ham learned), None otherwise; it picks the score set as SpamAssassin does, and BAYES_xx read it.
    pub fn check_view(&self, view: &View, bayes: Option<f64>) -> Verdict {
        self.check_view_bayes(view, bayes.is_some(), bayes)
    }

    /// Scores a view when Bayes is `available` (enough learned: score set 2) but may have no verdict
    /// for this message (`p` None: no token was significant, so no BAYES_xx fires, as in SpamAssassin,
    /// while the other rules keep their Bayes-set scores).
    pub fn check_view_bayes(&self, view: &View, available: bool, p: Option<f64>) -> Verdict {
        self.check_view_hashed(view, available, p, None)
    }

    /// `check_view_bayes` with the message's Bayes token hashes when the caller has them already
    /// (Bayes classified it), so the token model does not tokenize the message a second time.
    pub fn check_view_hashed(
        &self,
        view: &View,
        available: bool,
        p: Option<f64>,
        hashes: Option<&[i64]>,
    ) -> Verdict {
        let set = ScoreSet::new(available, false);
        // The token model `rescore` may have fitted counts where Bayes does: in the Bayes score sets.
        let m = (available && !self.settings.token_model.is_empty()).then(|| {
            let model = &self.settings.token_model;
            match hashes {
                Some(h) => crate::spam::bayes::token_margin(model, h),
                None => crate::spam::bayes::token_margin(
                    model,
                    &crate::spam::bayes::tokenizer::token_hashes(view),
                ),
            }
        });
        crate::spam::bayes::with_probability(p, || {
            crate::spam::bayes::with_token_margin(m, || self.check_view_in(view, set, false))
        })
    }

    /// Scores a view without Bayes running every rule, the sub-rules and the rules this score set
    /// gives 0 included, so `subhits` is complete (for fitting scores: a rule scored 0 here may be
    /// scored in another set).
    pub fn check_view_every_rule(&self, view: &View) -> Verdict {
        let set = ScoreSet::new(false, false);
        crate::spam::bayes::with_probability(None, || {
            crate::spam::bayes::with_token_margin(None, || self.check_view_in(view, set, true))
        })
    }

    fn check_view_in(&self, view: &View, set: ScoreSet, every: bool) -> Verdict {
        let n = self.rules.len();
        let mut cand = vec![false; n];
        let mut sure = vec![false; n];
        let pf = &self.prefilter;
        let tp = std::time::Instant::now();
        // Header text for the prefilter: everything a header rule can test must contain its literals,
        // so scan the raw header block, the decoded `Name: value` lines (what ALL sees), the unfolded
        // raw values and the relay pseudo-headers.
        let mut decoded_all: Vec<u8> = Vec::new();
        let mut unfolded: Vec<u8> = Vec::new();
        for (f, d) in view.fields.iter().zip(view.decoded_fields()) {
            decoded_all.extend_from_slice(f.name.as_bytes());
            decoded_all.extend_from_slice(b": ");
            decoded_all.extend_from_slice(d);
            // A field that is not folded is its own unfolded value, and the header block holds it
            // already: only folded ones add text to scan (the literal scan of the stock header rules
            // read ~5.6 KB a message, a third of it these values again).
            if f.raw.contains(&b'\n') {
                unfolded.extend_from_slice(&super::view::unfold_raw(&f.raw));
                unfolded.push(b'\n');
            }
        }
        let relays = [view.relays.trusted_str(), view.relays.untrusted_str()];
        let header_block = &view.full[..view.body_start.min(view.full.len())];
        let hdr_texts = [
            header_block,
            decoded_all.as_slice(),
            unfolded.as_slice(),
            relays[0].as_bytes(),
            relays[1].as_bytes(),
        ];
        // Per rule with a repeat gate: the only lines it may match in.
        let mut lines = super::hsfilter::RepeatLines::new();
        pf.scan(
            Area::Header,
            hdr_texts.into_iter(),
            &mut cand,
            &mut sure,
            &mut lines,
        );
        pf.scan(
            Area::Body,
            view.body.iter().map(Vec::as_slice),
            &mut cand,
            &mut sure,
            &mut lines,
        );
        pf.scan(
            Area::Rawbody,
            view.rawbody.iter().map(Vec::as_slice),
            &mut cand,
            &mut sure,
            &mut lines,
        );
        pf.scan(
            Area::Full,
            std::iter::once(view.full.as_slice()),
            &mut cand,
            &mut sure,
            &mut lines,
        );
        pf.scan(
            Area::Uri,
            view.uris.iter().map(String::as_bytes),
            &mut cand,
            &mut sure,
            &mut lines,
        );
        lines.sort_unstable_by_key(|l| l.0);
        let profile = std::env::var_os("CORREO_SPAM_PROFILE");
        if profile.is_some() {
            eprintln!("prefilter {:?}", tp.elapsed());
        }

        // Rules known to be 0 without running are settled from the start: their prefilter gate did
        // not pass them, or they are Bayes rules (`tflags learn`) outside the Bayes score sets
        // (Plugin::Check runs those only there).
        let mut settled: Vec<bool> = (0..n)
            .map(|i| sure[i] || (pf.gated[i].is_some() && !cand[i]))
            .collect();
        // Rules an exact Hyperscan pattern reported match (`HsFilter::exact`).
        let val: Vec<f64> = sure.iter().map(|&s| if s { 1.0 } else { 0.0 }).collect();
        if !set.bayes() {
            for &i in &self.learn {
                settled[i] = true;
            }
        }
        let mut pass = Pass {
            rs: self,
            view,
            lines,
            val,
            settled,
            body_lines: None,
            raw_lines: None,
            headers: vec![None; self.spec_slots],
            hscanned: vec![None; self.hdr_filter.db_count()],
            hcand: vec![false; n],
            pre_ends: Vec::new(),
            times: Vec::new(),
            skipped: vec![false; if profile.is_some() { n } else { 0 }],
            profile: profile.is_some(),
        };
        // The rules whose hits show run, in priority order; the metas that show are evaluated, and each
        // runs the sub-rules it reaches (`meta::Metas`). Everything runs when the sub-rules' own hits
        // are asked for (`_SUBTESTS_` in a template) or CORREO_SPAM_EAGER=1 (for comparing).
        let eager = every || self.every_rule || eager_env();
        let (first, metas) = if eager {
            (&self.order, &self.metas)
        } else {
            let (f, m) = &self.shown[set.index()];
            (f, m)
        };
        for &i in first {
            pass.rule(i);
        }
        for &i in metas {
            self.meta_code.value(i, &mut pass);
        }
        // CORREO_SPAM_PROFILE=all: every rule's time, one `PROF name us kind gated|open|skip value` line each
        // (skip: a header rule its header's filter scan ruled out),
        // to sum over a corpus by rule or by kind and to see which rules no prefilter gates.
        let Pass {
            val,
            times,
            skipped,
            ..
        } = pass;
        if profile.as_ref().is_some_and(|v| v == "all") {
            for (us, i) in &times {
                let r = &self.rules[*i];
                let kind = match &r.test {
                    Test::Header { .. } => "header",
                    Test::Exists(_) => "exists",
                    Test::Eval(_) => "eval",
                    Test::Body(_) => "body",
                    Test::Rawbody(_) => "rawbody",
                    Test::Full(_) => "full",
                    Test::Uri(_) => "uri",
                    Test::Mimeheader { .. } => "mimeheader",
                    Test::Meta(_) => "meta",
                };
                let gate = if skipped[*i] {
                    "skip"
                } else if pf.gated[*i].is_some()
                    || self.hdr_filter.db_of.get(*i).is_some_and(|d| d.is_some())
                {
                    "gated"
                } else {
                    "open"
                };
                eprintln!("PROF {} {us} {kind} {gate} {}", r.name, val[*i]);
            }
        }
        if profile.is_some() {
            let mut times = times;
            times.sort_unstable_by(|a, b| b.cmp(a));
            let total: u128 = times.iter().map(|t| t.0).sum();
            eprintln!("rules run: {}, total {total} us", times.len());
            for (us, i) in times.iter().take(15) {
                eprintln!(
                    "{us:>8} us  {}  fancy={}",
                    self.rules[*i].name,
                    matches!(&self.rules[*i].test, Test::Body(re) | Test::Rawbody(re) | Test::Full(re) | Test::Uri(re) | Test::Header { re, .. } if re.is_fancy())
                );
            }
        }
        let mut score = 0.0;
        let mut hits = Vec::new();
        let mut subhits = Vec::new();
        for &i in self.order.iter().chain(self.metas.iter()) {
            if val[i] == 0.0 {
                continue;
            }
            let r = &self.rules[i];
            if r.shows(set) {
                score += r.score(set);
                hits.push(i);
            } else {
                subhits.push(i);
            }
        }
        // SpamAssassin rounds the total to 3 decimals before comparing.
        let score = (score * 1000.0).round() / 1000.0;
        let required = self.settings.required_score;
        Verdict {
            score,
            required,
            is_spam: score >= required,
            hits,
            subhits,
            set,
            autolearn: None,
        }
    }
}

/// CORREO_SPAM_EAGER=1: run every rule, as before sub-rules ran on demand (to compare the two); and
/// every rule inside `every_rule` on this thread.
fn eager_env() -> bool {
    static EAGER: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    EVERY.with(std::cell::Cell::get)
        || *EAGER.get_or_init(|| std::env::var_os("CORREO_SPAM_EAGER").is_some_and(|v| v == "1"))
}

thread_local! {
    static EVERY: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` with every rule run on this thread, sub-rules no meta asks for included: for the daemon's
/// warm-up, whose point is to build the automata states of as many rules as it can before mail comes.
pub fn every_rule<R>(f: impl FnOnce() -> R) -> R {
    let was = EVERY.with(|e| e.replace(true));
    let r = f();
    EVERY.with(|e| e.set(was));
    r
}

/// One message's rule run: the prefilter's verdicts, the texts built so far, and each rule's value once
/// settled. Rules run through `rule`, in whatever order the checker and the metas ask.
struct Pass<'a> {
    rs: &'a RuleSet,
    view: &'a View,
    /// Per rule with a repeat gate: the only lines it may match in, with where its repeated part may
    /// end in each (sorted by rule).
    lines: super::hsfilter::RepeatLines,
    val: Vec<f64>,
    settled: Vec<bool>,
    /// The body and rawbody lines joined, built when the first such rule runs.
    body_lines: Option<Lines>,
    raw_lines: Option<Lines>,
    /// Each header spec's value, read once: many rules test the same few (`ALL`, `Subject`, `From:addr`).
    /// (Slots: `RuleSet::spec_slot`; the outer None: not read yet.)
    headers: Vec<Option<Option<Vec<u8>>>>,
    /// The header filter's verdicts: per database whether it was scanned (and the scan worked), per rule
    /// whether its spec's scan reported it.
    hscanned: Vec<Option<bool>>,
    hcand: Vec<bool>,
    /// (rule, offset): where backreference rules' PRE ends in the values scanned so far
    /// (`HeaderFilter::pre_db`).
    pre_ends: Vec<(usize, usize)>,
    /// CORREO_SPAM_PROFILE: per-rule time, and the header rules the header filter let skip a regex.
    profile: bool,
    times: Vec<(u128, usize)>,
    skipped: Vec<bool>,
}

impl Pass<'_> {
    /// Runs non-meta rule `i` unless it is settled, and settles it.
    fn rule(&mut self, i: usize) -> f64 {
        if !self.settled[i] {
            self.settled[i] = true;
            let t0 = self.profile.then(std::time::Instant::now);
            self.val[i] = self.test(i);
            if let Some(t0) = t0 {
                self.times.push((t0.elapsed().as_micros(), i));
            }
        }
        self.val[i]
    }

    /// Rule `i`'s value (not a meta).
    fn test(&mut self, i: usize) -> f64 {
        let rs = self.rs;
        let view = self.view;
        let r = &rs.rules[i];
        let max = if r.tflags.multiple {
            r.tflags.maxhits
        } else {
            1
        };
        // A body-side rule Hyperscan gates got here only because its superset reported
        // (`Re::is_match_pre`).
        let hs = rs.prefilter.hs.gated.get(i).copied().unwrap_or(false);
        match &r.test {
            Test::Header {
                spec,
                re,
                negate,
                unset,
            } => {
                let value = self.headers[rs.spec_slot[i] as usize]
                    .get_or_insert_with(|| view.header_for_rule_uncached(spec));
                // Where a backreference rule's PRE ends in the value, when its database said.
                let mut pre = None;
                // Its database's scan let it through (`Re::is_match_pre`).
                let mut scanned = false;
                let value = match value {
                    Some(v) => {
                        // The header filter: one scan of this spec's value for all its rules.
                        if let Some(d) = rs.hdr_filter.db_of.get(i).copied().flatten() {
                            let (hcand, pre_ends) = (&mut self.hcand, &mut self.pre_ends);
                            let settled = &self.settled;
                            // Not worth a scan: as if it failed, every rule of it runs its regex.
                            let ok = *self.hscanned[d].get_or_insert_with(|| {
                                rs.hdr_filter.worth_scanning(d, settled)
                                    && rs.hdr_filter.scan_db(d, v, hcand, pre_ends)
                            });
                            if ok && !self.hcand[i] {
                                if self.profile {
                                    self.skipped[i] = true;
                                }
                                return if *negate { 1.0 } else { 0.0 };
                            }
                            // An exact pattern's report is the regex's answer on this value.
                            if ok && rs.hdr_filter.exact.get(i).copied().unwrap_or(false) {
                                return if *negate { 0.0 } else { 1.0 };
                            }
                            pre = rs.hdr_filter.pre_ends_of(i, d, ok, &self.pre_ends);
                            scanned = ok;
                        }
                        v.as_slice()
                    }
                    None => unset.as_deref().unwrap_or_default(),
                };
                let hit = match &pre {
                    Some(e) => re.is_match_with_pre(value, e),
                    None => re.is_match_pre(value, scanned),
                };
                if hit != *negate {
                    1.0
                } else {
                    0.0
                }
            }
            Test::Exists(h) => {
                // Pseudo-headers (ToCc, MESSAGEID, ...) exist when their value does.
                if self.headers[rs.spec_slot[i] as usize]
                    .get_or_insert_with(|| view.header_for_rule_uncached(h))
                    .is_some()
                {
                    1.0
                } else {
                    0.0
                }
            }
            Test::Eval(call) => super::eval::run(call, view, &rs.settings),
            // Without the Subject (the first body line): a rule this rare runs its regex line by line.
            Test::Body(re) if r.tflags.nosubject => {
                count_in(re, view.body.iter().skip(1), r.tflags.multiple, max, hs)
            }
            Test::Body(re) | Test::Rawbody(re) => {
                let (texts, joined) = match &r.test {
                    Test::Body(_) => (&view.body, &mut self.body_lines),
                    _ => (&view.rawbody, &mut self.raw_lines),
                };
                let multiple = r.tflags.multiple;
                let gated = self
                    .lines
                    .binary_search_by_key(&i, |l| l.0)
                    .ok()
                    .map(|k| self.lines[k].1.as_slice());
                // One long part repeated: its own matcher, line by line (`repeat.rs`).
                if let Some(rp) = &rs.repeats[i] {
                    let one = |l: &Vec<u8>, e: Option<&[usize]>| {
                        rp.is_match(l, e).unwrap_or_else(|| re.is_match(l))
                    };
                    let hit = match gated {
                        Some(at) => at
                            .iter()
                            .any(|(k, e)| texts.get(*k).is_some_and(|l| one(l, Some(e)))),
                        None => texts.iter().any(|l| one(l, None)),
                    };
                    return if hit { 1.0 } else { 0.0 };
                }
                match gated {
                    // The repeat gate named the only lines that can match.
                    Some(at) => count_in(
                        re,
                        at.iter().filter_map(|(k, _)| texts.get(*k)),
                        multiple,
                        max,
                        hs,
                    ),
                    // The joined search says which line is the first that can.
                    None => {
                        let lines = joined.get_or_insert_with(|| Lines::new(texts));
                        if !multiple {
                            if let Some(yes) = rs.joined[i].decides(re, lines) {
                                return if yes { 1.0 } else { 0.0 };
                            }
                        }
                        match rs.joined[i].first_line(re, lines) {
                            Some(from) => {
                                let rest = texts[from.min(texts.len())..].iter();
                                count_in(re, rest, multiple, max, hs)
                            }
                            None => 0.0,
                        }
                    }
                }
            }
            Test::Full(re) => {
                if r.tflags.multiple {
                    re.count_pre(&view.full, max, hs) as f64
                } else if re.is_match_pre(&view.full, hs) {
                    1.0
                } else {
                    0.0
                }
            }
            Test::Uri(re) => {
                let mut c = 0.0;
                for u in &view.uris {
                    if re.is_match_pre(u.as_bytes(), hs) {
                        c += 1.0;
                        if !r.tflags.multiple || (max > 0 && c as usize >= max) {
                            break;
                        }
                    }
                }
                c
            }
            Test::Mimeheader {
                name, re, negate, ..
            } => {
                let hit = view.mime_headers.iter().any(|(n, v)| {
                    n.eq_ignore_ascii_case(name) && re.is_match(v.as_bytes()) != *negate
                });
                if hit {
                    1.0
                } else {
                    0.0
                }
            }
            Test::Meta(_) => 0.0,
        }
    }
}

impl super::meta::Leaves for Pass<'_> {
    fn settled(&self, i: usize) -> Option<f64> {
        self.settled[i].then(|| self.val[i])
    }

    fn run(&mut self, i: usize) -> f64 {
        self.rule(i)
    }

    fn settle(&mut self, i: usize, v: f64) {
        self.settled[i] = true;
        self.val[i] = v;
    }
}

/// Matches of `re` in `lines` (1 or 0 unless `multiple`, then at most `max` when it is not 0).
/// `pre`: a Hyperscan superset of the rule matched the message (`Re::is_match_pre`).
fn count_in<'a>(
    re: &super::perlre::Re,
    mut lines: impl Iterator<Item = &'a Vec<u8>>,
    multiple: bool,
    max: usize,
    pre: bool,
) -> f64 {
    if !multiple {
        return if lines.any(|l| re.is_match_pre(l, pre)) {
            1.0
        } else {
            0.0
        };
    }
    let mut c = 0usize;
    for l in lines {
        c += re.count_pre(l, if max == 0 { 0 } else { max - c }, pre);
        if max > 0 && c >= max {
            break;
        }
    }
    c as f64
}
