//! `eval:` tests: the functions SpamAssassin's plugins provide that the stock rules use most, done
//! locally (no network). `implemented` tells the compiler which names run; every other eval scores 0
//! and is named by `correo spam lint`.

use super::load::Settings;
use super::view::View;

/// A regex compiled once, where it is used.
macro_rules! re {
    ($pat:expr) => {{
        static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
        RE.get_or_init(|| regex::Regex::new($pat).expect("static regex"))
    }};
}
pub(crate) use re;

use super::forgery;

/// A parsed `eval:name(args)` call.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub func: String,
    pub args: Vec<String>,
    /// The pattern argument of the evals that take one (html_text_match, check_freemail_*), compiled
    /// on first use and kept with the rule: compiling it per message cost more than running it.
    pub re: ArgRe,
}

/// A lazily compiled regex argument (None inside when it does not compile: the eval then answers as
/// it did before, per function). Equal to any other: it is derived from `args`.
#[derive(Clone, Default)]
pub struct ArgRe(std::sync::OnceLock<Option<super::perlre::Re>>);

impl ArgRe {
    fn get(&self, pat: Option<&String>) -> Option<&super::perlre::Re> {
        self.0
            .get_or_init(|| pat.and_then(|r| super::perlre::compile(r, "").ok()))
            .as_ref()
    }
}

impl PartialEq for ArgRe {
    fn eq(&self, _: &ArgRe) -> bool {
        true
    }
}

impl std::fmt::Debug for ArgRe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ArgRe")
    }
}

/// Parses `eval:func('a', 1, "b")`.
pub fn parse_call(def: &str) -> Option<Call> {
    let s = def.trim().strip_prefix("eval:")?.trim();
    let open = s.find('(')?;
    let close = s.rfind(')')?;
    if close < open {
        return None;
    }
    let func = s[..open].trim().to_string();
    if func.is_empty() || !func.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return None;
    }
    let inner = &s[open + 1..close];
    let mut args = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    for c in inner.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => cur.push(c),
            None if c == '\'' || c == '"' => quote = Some(c),
            None if c == ',' => args.push(std::mem::take(&mut cur).trim().to_string()),
            None => cur.push(c),
        }
    }
    if !cur.trim().is_empty() || !args.is_empty() {
        args.push(cur.trim().to_string());
    }
    Some(Call {
        func,
        args,
        re: ArgRe::default(),
    })
}

const IMPLEMENTED: &[&str] = &[
    "check_for_missing_to_header",
    "subject_is_all_caps",
    "check_illegal_chars",
    "check_header_count_range",
    "check_for_to_in_subject",
    "check_for_shifted_date",
    "check_for_uppercase",
    "check_body_length",
    "html_test",
    "html_range",
    "html_eval",
    "html_tag_balance",
    "html_image_ratio",
    "html_text_match",
    "html_text_not_match",
    "html_charset_faraway",
    "check_iframe_src",
    "check_for_mime",
    "check_for_mime_html",
    "check_for_mime_html_only",
    "html_tag_exists",
    "html_image_only",
    "image_count",
    "check_for_faraway_charset_in_headers",
    "check_no_relays",
    "check_messageid_not_usable",
    "check_for_forged_hotmail_received_headers",
    "check_for_no_hotmail_received_headers",
    "check_for_forged_yahoo_received_headers",
    "check_for_forged_eudoramail_received_headers",
    "gated_through_received_hdr_remover",
    "check_outlook_message_id",
    "check_equal_from_domains",
    "check_for_matching_env_and_hdr_from",
    "check_fromname_equals_to",
    "check_mailfrom_matches_rcvd",
    "check_stock_info",
    "check_base64_length",
    "check_mime_multipart_ratio",
    "check_ma_non_text",
    "check_msg_parse_flags",
    "check_bayes",
    "check_token_model",
    "check_for_ascii_text_illegal",
    "check_blank_line_ratio",
    "html_title_subject_ratio",
    "check_relays_unparseable",
    "check_all_trusted",
    "helo_ip_mismatch",
    "check_for_no_rdns_dotcom_helo",
    "check_freemail_from",
    "check_freemail_header",
    "check_freemail_replyto",
    "multipart_alternative_difference",
    "multipart_alternative_difference_count",
    "similar_recipients",
    "sorted_recipients",
    "tvd_vertical_words",
    "check_unresolved_template",
    "check_ratware_name_id",
    "check_for_forged_gmail_received_headers",
    "check_for_faraway_charset",
    "check_for_forged_received_trail",
    "check_for_fake_aol_relay_in_rcvd",
    "check_abundant_unicode_ratio",
    "check_for_forged_juno_received_headers",
    "check_ratware_envelope_from",
];

pub fn implemented(func: &str) -> bool {
    IMPLEMENTED.contains(&func)
}

pub(crate) fn arg_f(args: &[String], i: usize, def: f64) -> f64 {
    args.get(i)
        .and_then(|a| a.trim().parse().ok())
        .unwrap_or(def)
}

/// An optional bound (`'undef'`, missing or not a number: none), as HeaderEval and BodyEval take them.
fn bound(args: &[String], i: usize) -> Option<f64> {
    args.get(i).and_then(|a| a.trim().parse().ok())
}

pub(crate) fn get(v: &View, spec: &str) -> String {
    // The value is ours already: valid UTF-8 (nearly always) becomes the String without a copy.
    v.header_for_rule(spec)
        .map(|b| {
            String::from_utf8(b)
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
        })
        .unwrap_or_default()
}

/// `$pms->get(SPEC)` in scalar context for an `:addr` (or `:name`, `EnvelopeFrom`) spec: SpamAssassin 4
/// returns only the first value there, without its newline.
pub(crate) fn first_value(v: &View, spec: &str) -> String {
    let all = get(v, spec);
    all.lines().next().unwrap_or("").to_string()
}

/// SpamAssassin's IP_PRIVATE for IPv4: 10/8, 127/8, 169.254/16, 172.16/12, 192.168/16, 100.64/10.
fn ipv4_private(ip: &str) -> bool {
    let o: Vec<u32> = ip.split('.').filter_map(|x| x.parse().ok()).collect();
    match o.as_slice() {
        [10, ..] | [127, ..] | [169, 254, ..] | [192, 168, ..] => true,
        [172, b, ..] => (16..=31).contains(b),
        [100, b, ..] => (64..=127).contains(b),
        _ => false,
    }
}

/// `/\@([^@]*)\z/` then `s/^.+\.([^\.]+\.[^\.]+)$/$1/`, lower-cased: the "2nd level domain"
/// check_equal_from_domains compares (with several addresses, the last one's).
fn second_level(addr: &str) -> String {
    let Some(p) = addr.rfind('@') else {
        return String::new();
    };
    let d = addr[p + 1..].trim_end_matches('\n');
    let labels: Vec<&str> = d.rsplitn(3, '.').collect();
    let d = if labels.len() == 3 && !labels[2].is_empty() && !d.contains('\n') {
        format!("{}.{}", labels[1], labels[0])
    } else {
        d.to_string()
    };
    d.to_ascii_lowercase()
}

/// Parses an RFC 5322 date leniently; None when it cannot be read.
pub fn parse_date(s: &str) -> Option<i64> {
    let s = s.trim();
    // Drop a trailing comment like "(PST)" and collapse spaces.
    let s = match s.find('(') {
        Some(p) => s[..p].trim(),
        None => s,
    };
    let s: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if let Ok(d) = chrono::DateTime::parse_from_rfc2822(&s) {
        return Some(d.timestamp());
    }
    // Without the weekday, or with a zone name.
    let s2 = s.split_once(", ").map(|x| x.1).unwrap_or(&s);
    for f in [
        "%d %b %Y %H:%M:%S %z",
        "%d %b %Y %H:%M %z",
        "%d %b %y %H:%M:%S %z",
    ] {
        if let Ok(d) = chrono::DateTime::parse_from_str(s2, f) {
            return Some(d.timestamp());
        }
    }
    let (head, zone) = s2.rsplit_once(' ')?;
    let off = match zone.to_ascii_uppercase().as_str() {
        "GMT" | "UT" | "UTC" | "Z" => 0,
        "EST" => -5,
        "EDT" => -4,
        "CST" => -6,
        "CDT" => -5,
        "MST" => -7,
        "MDT" => -6,
        "PST" => -8,
        "PDT" => -7,
        _ => return None,
    };
    let nd = chrono::NaiveDateTime::parse_from_str(head, "%d %b %Y %H:%M:%S").ok()?;
    Some(nd.and_utc().timestamp() - off * 3600)
}

/// Times in the Received headers, top first, found the way SpamAssassin's _get_received_header_times does
/// (`\s.?\d+ \S\S\S \d+ \d+:\d+:\d+ \S+` anywhere in the field, fetchmail's fields left out).
fn received_times(v: &View) -> Vec<i64> {
    use std::sync::OnceLock;
    static RE: OnceLock<regex::Regex> = OnceLock::new();
    let re = RE.get_or_init(|| {
        regex::Regex::new(r"\s.?\d+ \S\S\S \d+ \d+:\d+:\d+ \S+").expect("static regex")
    });
    static LOCAL: OnceLock<(regex::Regex, regex::Regex)> = OnceLock::new();
    let (local, fetchmail) = LOCAL.get_or_init(|| {
        (
            regex::Regex::new(
                r"\bfrom (?:localhost\s|(?:\S+ ){1,2}\S*\b127\.0\.0\.1\b)|qmail \d+ invoked by uid \d+",
            )
            .expect("static regex"),
            regex::Regex::new(r"\bby localhost with \w+ \(fetchmail-[\d.]+").expect("static regex"),
        )
    });
    let mut rcvd: Vec<String> = v
        .decoded_values("Received")
        .iter()
        .map(|r| String::from_utf8_lossy(r).into_owned())
        .filter(|r| r.contains(|c: char| !c.is_whitespace()))
        .collect();
    // A local hand-over followed by fetchmail's own field (or fetchmail's alone) says when the mail was
    // fetched, not when it was sent: SpamAssassin leaves both out of the Received times.
    let first_local = rcvd.first().is_some_and(|r| local.is_match(r));
    let skip = match (first_local, rcvd.get(usize::from(first_local))) {
        (_, Some(r)) if fetchmail.is_match(r) => usize::from(first_local) + 1,
        _ => 0,
    };
    rcvd.drain(..skip);
    rcvd.iter()
        .filter_map(|s| re.find(s).and_then(|m| parse_date(m.as_str())))
        .collect()
}

/// Upper-case letters as a percentage of letters and digits over the body's lines that hold a space
/// (the Subject line left out), as BodyEval's check_for_uppercase counts them; None under 200 bytes.
fn uppercase_pct(v: &View) -> Option<f64> {
    let (mut len, mut lower, mut upper) = (0usize, 0usize, 0usize);
    for line in v.body.iter().skip(1) {
        let s = String::from_utf8_lossy(line);
        let t = s.trim();
        if !t.contains(char::is_whitespace) {
            continue;
        }
        len += s.len();
        lower += s
            .bytes()
            .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            .count();
        upper += s.bytes().filter(u8::is_ascii_uppercase).count();
    }
    if len < 200 || lower + upper == 0 {
        return None;
    }
    Some(upper as f64 / (lower + upper) as f64 * 100.0)
}

fn received_time(v: &View) -> Option<i64> {
    received_times(v).first().copied()
}

/// SpamAssassin's _check_date_diff: Date minus each Received time, the smallest by magnitude (a final 0
/// from the last hop is dropped); 0 when either side is missing.
fn date_diff(v: &View) -> i64 {
    let Some(date) = v
        .decoded_values("Date")
        .pop()
        .and_then(|d| parse_date(&String::from_utf8_lossy(&d)))
    else {
        return 0;
    };
    let mut diffs: Vec<i64> = received_times(v).iter().map(|t| date - t).collect();
    if diffs.len() > 1 && diffs.last() == Some(&0) {
        diffs.pop();
    }
    diffs.sort_by_key(|d| d.abs());
    diffs.first().copied().unwrap_or(0)
}

/// Runs one eval; returns its value (0 = no hit). `body` is the rule's text array for body evals.
pub fn run(call: &Call, v: &View, st: &Settings) -> f64 {
    let a = &call.args;
    let b = |x: bool| if x { 1.0 } else { 0.0 };
    match call.func.as_str() {
        "check_freemail_from" | "check_freemail_header" => {
            let (specs, re_arg): (Vec<String>, Option<&String>) =
                if call.func == "check_freemail_from" {
                    (
                        vec![
                            "From:addr".into(),
                            "EnvelopeFrom:addr".into(),
                            "Resent-From:addr".into(),
                        ],
                        a.first(),
                    )
                } else {
                    (
                        vec![format!(
                            "{}:addr",
                            a.first().map(String::as_str).unwrap_or("")
                        )],
                        a.get(1),
                    )
                };
            // Compiled only once a freemail address turns up: most messages have none.
            let re = || call.re.get(re_arg);
            for spec in specs {
                for email in get(v, &spec).split('\n') {
                    let email = email.trim().to_ascii_lowercase();
                    if !email.is_empty()
                        && st.is_freemail(&email)
                        && re().is_none_or(|r| r.is_match(email.as_bytes()))
                    {
                        return 1.0;
                    }
                }
            }
            0.0
        }
        "check_for_missing_to_header" => {
            b(get(v, "To").trim().is_empty() && get(v, "Apparently-To").trim().is_empty())
        }
        "subject_is_all_caps" => {
            let s = get(v, "Subject");
            let mut s = s.trim().to_string();
            loop {
                let l = s.to_ascii_lowercase();
                let p = [
                    "re:", "fwd:", "fw:", "aw:", "antwort:", "wg:", "sv:", "vb:", "vs:", "vl:",
                ]
                .iter()
                .find(|p| l.starts_with(**p));
                match p {
                    Some(p) => s = s[p.len()..].trim_start().to_string(),
                    None => break,
                }
            }
            if !s.contains(char::is_whitespace) || s.len() < 10 {
                return 0.0;
            }
            let raw = get(v, "Subject:raw").to_ascii_lowercase();
            if [
                "=?iso-2022-jp",
                "=?euc-kr",
                "=?big5",
                "=?gb2312",
                "=?koi8-r",
                "=?shift_jis",
                "=?euc-jp",
                "=?ks_c_5601",
            ]
            .iter()
            .any(|c| raw.contains(c))
            {
                return 0.0;
            }
            let letters: String = s.chars().filter(char::is_ascii_alphabetic).collect();
            b(!letters.is_empty() && letters == letters.to_ascii_uppercase())
        }
        "check_illegal_chars" => {
            let h = a.first().map(String::as_str).unwrap_or("Subject");
            let spec = if h.ends_with(":raw") {
                h.to_string()
            } else {
                format!("{h}:raw")
            };
            let s = match v.header_for_rule(&spec) {
                Some(s) => s,
                None => return 0.0,
            };
            if !s.iter().any(|c| !c.is_ascii_whitespace()) {
                return 0.0;
            }
            if !s.is_ascii()
                && std::str::from_utf8(&s).is_ok()
                && !s
                    .iter()
                    .any(|&c| matches!(c, 0..=8 | 0x0b | 0x0c | 0x0e..=0x1f))
            {
                return 0.0;
            }
            let mut illegal = s
                .iter()
                .filter(|&&c| matches!(c, 0..=8 | 0x0b | 0x0c | 0x0e..=0x1f | 0x7f..=0xff))
                .count();
            if illegal > 0
                && spec.eq_ignore_ascii_case("subject:raw")
                && s.iter()
                    .filter(|&&c| matches!(c, 0xa2 | 0xa3 | 0xae))
                    .count()
                    == 1
            {
                illegal -= 1;
            }
            b(illegal as f64 / s.len() as f64 >= arg_f(a, 1, 0.0)
                && illegal as f64 >= arg_f(a, 2, 0.0))
        }
        "check_header_count_range" => {
            let h = a.first().map(String::as_str).unwrap_or("");
            let mut vals = v.decoded_values(h);
            vals.sort();
            vals.dedup();
            let n = vals.len() as f64;
            b(n >= arg_f(a, 1, 0.0) && n <= arg_f(a, 2, f64::MAX))
        }
        "check_for_to_in_subject" => {
            let to = get(v, "To:addr");
            if to.is_empty() || to.contains('\n') {
                return 0.0;
            }
            let subj = get(v, "Subject").to_ascii_lowercase();
            let to_l = to.to_ascii_lowercase();
            match a.first().map(String::as_str) {
                Some("address") => b(subj.contains(&to_l)),
                Some("user") => {
                    let user = to_l.split('@').next().unwrap_or("");
                    let s = subj.trim();
                    b(!user.is_empty()
                        && (s.ends_with(user)
                            && (s.len() == user.len()
                                || !s.as_bytes()[s.len() - user.len() - 1]
                                    .is_ascii_alphanumeric())))
                }
                _ => 0.0,
            }
        }
        "check_for_shifted_date" => {
            let diff = *v.date_diff.get_or_init(|| date_diff(v)) as f64;
            let min = a.first().and_then(|x| x.parse::<f64>().ok());
            let max = a.get(1).and_then(|x| x.parse::<f64>().ok());
            b(min.is_none_or(|m| diff >= 3600.0 * m) && max.is_none_or(|m| diff < 3600.0 * m))
        }
        "check_for_uppercase" => match *v.uppercase.get_or_init(|| uppercase_pct(v)) {
            Some(pct) => b(pct > arg_f(a, 1, 0.0) && pct <= arg_f(a, 2, 100.0)),
            None => 0.0,
        },
        "check_body_length" => {
            b(((v.full.len() - v.body_start.min(v.full.len())) as f64) <= arg_f(a, 0, 0.0))
        }
        // The HTML evals (Plugin::HTMLEval) hit when any text/html part satisfies them.
        "html_test" => {
            let t = a.first().map(String::as_str).unwrap_or("");
            b(v.html.iter().any(|h| h.test(t)))
        }
        "html_tag_exists" => {
            let t = a.first().map(String::as_str).unwrap_or("");
            b(v.html.iter().any(|h| h.has_tag(t)))
        }
        "html_image_only" => {
            let (min, max) = (arg_f(a, 0, 0.0), arg_f(a, 1, f64::MAX));
            b(v.html.iter().any(|h| {
                let len = h.length as f64;
                h.has_tag("img") && len > min && len <= max
            }))
        }
        "html_image_ratio" => {
            let (min, max) = (arg_f(a, 0, 0.0), arg_f(a, 1, f64::MAX));
            b(v.html.iter().any(|h| {
                h.image_area > 0 && {
                    let r = h.non_space_len as f64 / h.image_area as f64;
                    r > min && r <= max
                }
            }))
        }
        "html_range" => {
            let test = a.first().map(String::as_str).unwrap_or("");
            let min = arg_f(a, 1, 0.0);
            // "inf" (or no maximum) means no upper bound; "inf" parses as f64 infinity.
            let max = arg_f(a, 2, f64::INFINITY);
            b(v.html.iter().any(|h| {
                h.value(test)
                    .is_some_and(|x| x > min && (max.is_infinite() || x <= max))
            }))
        }
        "html_eval" => {
            let test = a.first().map(String::as_str).unwrap_or("");
            let Some(cmp) = a.get(1).and_then(|e| Comparison::parse(e)) else {
                return 0.0;
            };
            b(v.html
                .iter()
                .any(|h| h.value(test).is_some_and(|x| cmp.holds(x))))
        }
        "html_tag_balance" => {
            let tag = a.first().map(String::as_str).unwrap_or("");
            if tag.is_empty() || !tag.bytes().all(|c| c.is_ascii_alphanumeric()) {
                return 0.0;
            }
            let Some(cmp) = a.get(1).and_then(|e| Comparison::parse(e)) else {
                return 0.0;
            };
            b(v.html
                .iter()
                .any(|h| h.inside.get(tag).is_some_and(|&n| cmp.holds(n as f64))))
        }
        "html_text_match" | "html_text_not_match" => {
            let what = a.first().map(String::as_str).unwrap_or("");
            let Some(re) = call.re.get(a.get(1)) else {
                return 0.0;
            };
            let want = call.func == "html_text_match";
            b(v.html.iter().any(|h| {
                h.texts(what)
                    .iter()
                    .any(|s| re.is_match(s.as_bytes()) == want)
            }))
        }
        "html_title_subject_ratio" => {
            let subject = get(v, "Subject");
            let subject = subject.strip_suffix('\n').unwrap_or(&subject);
            let slen = subject.chars().count();
            if slen == 0 {
                return 0.0;
            }
            let ratio = arg_f(a, 0, f64::MAX);
            b(v.html.iter().any(|h| {
                let max = h
                    .titles
                    .iter()
                    .map(|t| t.chars().count() as f64 / slen as f64)
                    .fold(0.0, f64::max);
                max > ratio
            }))
        }
        // ok_locales defaults to "all": a charset is never far away.
        "html_charset_faraway" => 0.0,
        "check_iframe_src" => b(v.html.iter().any(|h| h.iframe_src)),
        "image_count" => {
            let kind = a
                .first()
                .map(|s| s.to_ascii_lowercase())
                .unwrap_or_default();
            let n = v
                .parts
                .iter()
                .filter(|p| {
                    p.ctype.starts_with("image/") && (kind == "all" || p.ctype.ends_with(&kind))
                })
                .count() as f64;
            b(n >= arg_f(a, 1, 1.0) && n <= arg_f(a, 2, f64::MAX))
        }
        "check_for_mime" | "check_for_mime_html" | "check_for_mime_html_only" => {
            let test = if call.func == "check_for_mime" {
                a.first().map(String::as_str).unwrap_or("")
            } else {
                call.func.trim_start_matches("check_for_mime_")
            };
            let html = v.parts.iter().filter(|p| p.ctype == "text/html").count();
            let plain = v.parts.iter().filter(|p| p.ctype == "text/plain").count();
            match test {
                "mime_html_only" | "html_only" => b(html > 0 && plain == 0),
                "mime_html" | "html" => b(html > 0),
                "mime_base64_encoded_text" => b(v.mime.base64_encoded_text),
                "mime_base64_count" => b(v.mime.base64_parts > 0),
                "mime_qp_count" => b(v.mime.qp_parts > 0),
                "mime_attachment" => b(v.mime.attachments > 0),
                "mime_bad_iso_charset" => b(v.mime.bad_iso_charset),
                "mime_qp_long_line" => b(v.mime.qp_long_line),
                "mimepart_limit_exceeded" => b(v.mime.parts_seen >= 1000),
                // Only with `ok_locales` other than its default `all`, which correo does not read.
                "mime_faraway_charset" => 0.0,
                // The tests MIMEEval keeps but never sets any more (zero-hitters upstream).
                _ => 0.0,
            }
        }
        "check_for_faraway_charset_in_headers" => 0.0, // ok_locales defaults to "all": never fires.
        "check_no_relays" => b(v.relays.trusted.is_empty() && v.relays.untrusted.is_empty()),
        "check_relays_unparseable" => b(v.relays.unparseable > 0),
        // RelayEval.
        "check_all_trusted" => b(!v.relays.trusted.is_empty()
            && v.relays.untrusted.is_empty()
            && v.relays.unparseable == 0),
        "helo_ip_mismatch" => b(v.relays.untrusted.iter().any(|r| {
            let public_v4 = |s: &str| s.parse::<std::net::Ipv4Addr>().is_ok() && !ipv4_private(s);
            public_v4(&r.helo)
                && public_v4(&r.ip)
                && r.helo != r.ip
                && r.helo
                    .rsplit_once('.')
                    .is_some_and(|(net, _)| !r.ip.starts_with(&format!("{net}.")))
        })),
        // Only the last public untrusted relay decides: RelayEval resets the flag on each one.
        "check_for_no_rdns_dotcom_helo" => {
            let last = v.relays.untrusted.iter().rev().find(|r| !r.private);
            b(last.is_some_and(|r| {
                r.rdns.is_empty()
                    && re!(r"(?i)(?:\.|^)(?:lycos\.com|lycos\.co\.uk|hotmail\.com|localhost\.com|excite\.com|caramail\.com|cs\.com|aol\.com|msn\.com|yahoo\.com|drizzle\.com)$")
                        .is_match(&r.helo)
            }))
        }
        "gated_through_received_hdr_remover" => b(forgery::gated_through_received_hdr_remover(v)),
        "check_messageid_not_usable" => {
            let lu = get(v, "List-Unsubscribe");
            let rcvd = get(v, "Received");
            b(
                re!(r"(?i)<mailto:(?:leave-\S+|\S+-unsubscribe)@\S+>\n?\z").is_match(&lu)
                    || forgery::gated_through_received_hdr_remover(v)
                    || rcvd.contains("/CWT/DCE)")
                    || rcvd.contains("iPlanet Messaging Server"),
            )
        }
        "check_for_forged_hotmail_received_headers" => b(forgery::hotmail(v) == Some(true)),
        "check_for_no_hotmail_received_headers" => b(forgery::hotmail(v) == Some(false)),
        "check_for_forged_yahoo_received_headers" => b(forgery::yahoo(v)),
        "check_for_forged_eudoramail_received_headers" => b(forgery::eudoramail(v)),
        "check_outlook_message_id" => {
            let id = get(v, "MESSAGEID");
            static RE: std::sync::OnceLock<Option<regex::Regex>> = std::sync::OnceLock::new();
            let re = RE.get_or_init(|| {
                regex::Regex::new(r"^<[0-9a-f]{4}([0-9a-f]{8})\$[0-9a-f]{8}\$[0-9a-f]{8}@").ok()
            });
            let Some(c) = re.as_ref().and_then(|r| {
                r.captures(&id)
                    .and_then(|c| c.get(1).map(|m| m.as_str().to_string()))
            }) else {
                return 0.0;
            };
            let token = i64::from_str_radix(&c, 16).unwrap_or(0) as f64;
            let expect = |t: i64| (t as f64 * 0.0023283064365387 + 27111902.8329849).floor();
            let d = parse_date(&get(v, "Date")).unwrap_or(0);
            if (token - expect(d)).abs() < 250.0 {
                return 0.0;
            }
            b((token - expect(received_time(v).unwrap_or(0))).abs() >= 250.0)
        }
        // HeaderEval: the last two labels of each domain, compared without case.
        "check_equal_from_domains" => {
            let from = second_level(&get(v, "From:addr"));
            let env = second_level(&get(v, "EnvelopeFrom:addr"));
            b(!from.is_empty() && !env.is_empty() && from != env)
        }
        "check_for_matching_env_and_hdr_from" => {
            let env = get(v, "EnvelopeFrom:addr").to_ascii_lowercase();
            b(!env.is_empty()
                && get(v, "From:addr")
                    .to_ascii_lowercase()
                    .split('\n')
                    .any(|f| f == env))
        }
        // WLBLEval: the envelope sender's registered domain is that of the relay that handed the
        // message over (the first untrusted one; without untrusted relays, any trusted one).
        "check_mailfrom_matches_rcvd" => {
            let sender = get(v, "EnvelopeFrom:addr");
            let Some((_, dom)) = sender.rsplit_once('@') else {
                return 0.0;
            };
            // `\@ ( [^\@]+ \. [^\@]+ ) \z`: a dot with something on either side.
            if dom.len() < 3 || !dom.as_bytes()[1..dom.len() - 1].contains(&b'.') {
                return 0.0;
            }
            let want = st.registry_domain(dom);
            let relays: &[crate::spam::relays::Relay] = match v.relays.untrusted.first() {
                Some(r) => std::slice::from_ref(r),
                None => &v.relays.trusted,
            };
            b(relays
                .iter()
                .filter(|r| !r.rdns.is_empty())
                .any(|r| st.registry_domain(&r.rdns) == want))
        }
        "check_fromname_equals_to" => {
            let name = get(v, "From:name").to_ascii_lowercase();
            let to = get(v, "To:addr").to_ascii_lowercase();
            b(!name.is_empty()
                && !to.is_empty()
                && name.contains('@')
                && name.trim_matches(['"', '\'']) == to)
        }
        "check_freemail_replyto" => b(super::freemail::replyto(
            v,
            st,
            a.first().map(String::as_str).unwrap_or("replyto"),
        )),
        "multipart_alternative_difference" => {
            let (d, min) = (v.mime.madiff, arg_f(a, 0, 0.0));
            b((min == 0.0 || d > min) && bound(a, 1).is_none_or(|m| d <= m))
        }
        "multipart_alternative_difference_count" => {
            let (ratio, min_html) = (arg_f(a, 0, 0.0), arg_f(a, 1, 0.0));
            let (t, h) = (v.mime.madiff_text as f64, v.mime.madiff_html as f64);
            b(h > min_html && t / h > ratio)
        }
        "similar_recipients" => {
            let (_, similar) = recipients(v);
            b(bound(a, 0).is_none_or(|m| similar >= m) && bound(a, 1).is_none_or(|m| similar < m))
        }
        "sorted_recipients" => b(recipients(v).0),
        "check_ma_non_text" => b(v.mime.alternative_non_text),
        "check_for_ascii_text_illegal" => b(v.mime.ascii_text_illegal),
        "check_base64_length" => {
            let len = v.mime.base64_longest_line as f64;
            b(bound(a, 1).is_none_or(|m| len <= m) && len >= arg_f(a, 0, 0.0))
        }
        "check_mime_multipart_ratio" => {
            let r = v.mime.multipart_ratio();
            b(r >= arg_f(a, 0, 0.0) && r < arg_f(a, 1, 0.0))
        }
        "check_blank_line_ratio" => {
            let (min, max) = (arg_f(a, 0, 0.0), arg_f(a, 1, 0.0));
            let r = blank_line_ratio(v, arg_f(a, 2, 1.0).max(1.0));
            b(r <= max && (min == 0.0 || r > min))
        }
        "check_stock_info" => {
            let min = arg_f(a, 0, 0.0);
            b(min == 0.0 || stock_info(v) as f64 >= min)
        }
        "check_msg_parse_flags" => match a.first().map(String::as_str) {
            Some("missing_head_body_separator") => {
                b(v.body_start >= v.full.len() && !v.full.ends_with(b"\n\n"))
            }
            _ => 0.0,
        },
        // The probability `bayes::check` put in place for this message; none: BAYES_xx never fires.
        "check_bayes" => crate::spam::bayes::eval_check_bayes(a),
        "check_token_model" => crate::spam::bayes::eval_check_token_model(a),
        // BodyEval: the widest share of spaces to other characters in any paragraph over 5 characters
        // (100 when spaces outnumber the rest), in [min, max); a max of 100 or more takes 100 too.
        "tvd_vertical_words" => {
            let (min, mut max) = (arg_f(a, 0, 0.0), arg_f(a, 1, 0.0));
            if max >= 100.0 {
                max = 101.0;
            }
            let pct = vertical_words(v);
            b(pct >= min && pct < max)
        }
        // HeaderEval: a field (other than the ones that may carry such text) with a `%NAME` left over
        // from a mailer's template.
        "check_unresolved_template" => {
            let all = get(v, "ALL");
            let exempt = re!(
                r"(?i)^(?:X-VMS-To|X-UIDL|X-Face|To|Cc|From|Subject|References|In-Reply-To|(?:X-|Resent-|X-Original-)?Message-Id):"
            );
            // One search over all the fields, then the exemption for the line of each match (the
            // pattern holds no newline): not one regex call per line.
            b(re!(r"%[A-Z][A-Z_-]").find_iter(&all).any(|m| {
                let start = all[..m.start()].rfind('\n').map_or(0, |p| p + 1);
                let end = all[m.end()..].find('\n').map_or(all.len(), |p| m.end() + p);
                !exempt.is_match(&all[start..end])
            }))
        }
        // HeaderEval: a Message-Id of 28 capitals, a dot and the address the From display name sits
        // beside.
        "check_ratware_name_id" => {
            let mid = get(v, "MESSAGEID");
            let Some(c) = re!(r"<[A-Z]{28}\.([^>]+?)>").captures(&mid) else {
                return 0.0;
            };
            let from = get(v, "From");
            let addr = format!("<{}>", &c[1]);
            // `"[^"]+"\s*<\Q$1\E>`: a quoted name, spaces, then exactly that address.
            let quoted = re!(r#""[^"]+"\s*<"#);
            b(quoted
                .find_iter(&from)
                .any(|m| from[m.end() - 1..].starts_with(&addr)))
        }
        // HeaderEval: From a gmail.com address, yet none of the traces Gmail's own servers leave.
        "check_for_forged_gmail_received_headers" => {
            if !re!(r"(?i)\bgmail\.com\z").is_match(&first_value(v, "From:addr")) {
                return 0.0;
            }
            let xreceived = get(v, "X-Received");
            if re!(r"by 10\.\S+ with SMTP id \S+").is_match(&xreceived)
                || re!(r"by 2002:a\d\d:\w+:\S+ with SMTP id \S+").is_match(&xreceived)
                || re!(r"by smtp\.googlemail\.com with ESMTPSA id \S+")
                    .is_match(&get(v, "Received"))
            {
                return 0.0;
            }
            // Perl's `length` counts characters.
            let long = |h: &str| get(v, h).chars().count() >= 60;
            b(!(long("X-Gm-Message-State") && long("X-Google-Smtp-Source")))
        }
        // MIMEEval: with `ok_locales all` (the default, and all correo reads) every charset is fine,
        // so the test answers 0 before it looks at anything, as SpamAssassin's does.
        "check_for_faraway_charset" => 0.0,
        "check_for_forged_received_trail" => b(forgery::forged_received_trail(v) > 1),
        "check_for_fake_aol_relay_in_rcvd" => b(forgery::fake_aol_relay(v)),
        "check_for_forged_juno_received_headers" => b(forgery::juno(v)),
        // HeaderEval: the envelope sender spells the recipient's registered domain, one character,
        // then the recipient's user name (`example.com.joe@...` for joe@example.com), as some
        // ratware builds its MAIL FROM.
        "check_ratware_envelope_from" => {
            let (to, from) = (
                first_value(v, "To:addr"),
                first_value(v, "EnvelopeFrom:addr"),
            );
            if to.is_empty() || from.is_empty() || re!(r"(?i)^SRS\d[=+-]").is_match(&from) {
                return 0.0;
            }
            let Some((user, dom)) = to.split_once('@') else {
                return 0.0;
            };
            // `/^([^@]+)\@(.+)$/`: one @ before the domain, which has no newline.
            if user.is_empty() || dom.is_empty() {
                return 0.0;
            }
            let dom = st.registry_domain(dom);
            if !st.domain_valid(&dom) {
                return 0.0;
            }
            b(spells_recipient(&from, &dom, user))
        }
        // MIMEEval: `&#xHHHH;` entities per other byte in the unencoded text/plain parts, at least the
        // ratio given (written as digits, a dot and 1 to 3 digits, or the test answers 0); no such
        // text at all answers 0.
        "check_abundant_unicode_ratio" => {
            let arg = a.first().map(String::as_str).unwrap_or("");
            if !re!(r"^\d{0,3}\.\d{1,3}\z").is_match(arg) || v.mime.unicode_other_bytes == 0 {
                return 0.0;
            }
            let ratio = v.mime.unicode_entities as f64 / v.mime.unicode_other_bytes as f64;
            b(ratio >= arg_f(a, 0, f64::INFINITY))
        }
        _ => 0.0,
    }
}

/// `/\b\Q$dom\E.\Q$user\E@/i` on the envelope sender, without compiling a regex per message: the
/// domain at a word boundary, any one character but a newline, the user, an `@`.
fn spells_recipient(from: &str, dom: &str, user: &str) -> bool {
    let (f, d) = (from.to_lowercase(), dom.to_lowercase());
    let u = format!("{}@", user.to_lowercase());
    let word = |c: char| c.is_alphanumeric() || c == '_';
    let Some(first) = d.chars().next() else {
        return false;
    };
    f.char_indices().any(|(p, _)| {
        let rest = &f[p..];
        if !rest.starts_with(&d) || f[..p].chars().next_back().is_some_and(word) == word(first) {
            return false;
        }
        let mut after = rest[d.len()..].chars();
        after.next().is_some_and(|c| c != '\n') && after.as_str().starts_with(&u)
    })
}

/// BodyEval's `tvd_vertical_words` value: over the body paragraphs (Subject first) longer than 5
/// characters, the highest `int(100 * spaces / other characters)`, 100 when spaces are the majority;
/// -1 with no such paragraph.
fn vertical_words(v: &View) -> f64 {
    let mut best = -1i64;
    for line in &v.body {
        let s = String::from_utf8_lossy(line);
        let len = s.chars().count();
        if len <= 5 {
            continue;
        }
        let spaces = s.bytes().filter(|&c| c == b' ').count();
        let others = len - spaces;
        let pct = if spaces > others || others == 0 {
            100
        } else {
            (100 * spaces / others) as i64
        };
        best = best.max(pct);
    }
    best as f64
}

/// HeaderEval's `_check_recipients`: whether seven or more recipients are in sorted order, and the
/// share of recipient pairs whose first two characters of the user part (or of the domain, when the
/// domains differ) are the same; five recipients at least, from ToCc or else Bcc.
fn recipients(v: &View) -> (bool, f64) {
    let mut inputs: Vec<String> = Vec::new();
    for spec in ["ToCc:addr", "Bcc:addr"] {
        inputs.extend(
            get(v, spec)
                .split('\n')
                .filter(|s| !s.is_empty())
                .map(String::from),
        );
        if inputs.len() >= 5 {
            break;
        }
    }
    // Neighbouring duplicates go; the list stops at an empty or "0" entry, as Perl's `while` does.
    let mut address: Vec<String> = Vec::new();
    let mut previous = String::new();
    for cur in inputs {
        if cur.is_empty() || cur == "0" {
            break;
        }
        if cur.to_lowercase() != previous.to_lowercase() {
            previous = cur.clone();
            address.push(cur);
        }
        if address.len() == 256 {
            break;
        }
    }
    let sorted = address.len() >= 7 && address.windows(2).all(|w| w[0] <= w[1]);
    if address.len() < 5 {
        return (sorted, 0.0);
    }
    // The first two characters (Perl's `substr($_, 0, 2)`).
    fn first2(s: &str) -> &str {
        &s[..s.char_indices().nth(2).map_or(s.len(), |(i, _)| i)]
    }
    let user: Vec<&str> = address.iter().map(|a| first2(a)).collect();
    // Addresses without '@' drop out of the domain list, shifting it, as Perl's `map { m/\@(.*)/ }` does;
    // a missing entry reads as "" (Perl's undef).
    let fqhn: Vec<&str> = address
        .iter()
        .filter_map(|a| a.split_once('@').map(|(_, d)| d))
        .collect();
    let at = |i: usize| fqhn.get(i).copied().unwrap_or("");
    let (mut hits, mut pairs) = (0usize, 0usize);
    for i in 0..address.len() {
        for j in i + 1..address.len() {
            hits += usize::from(user[i] == user[j]);
            hits += usize::from(first2(at(i)) == first2(at(j)) && at(i) != at(j));
            pairs += 1;
        }
    }
    (sorted, hits as f64 / pairs as f64)
}

/// BodyEval's blank-line percentage over the decoded text parts (the rawbody chunks), -1 when the text
/// has fewer lines than `min_lines`.
fn blank_line_ratio(v: &View, min_lines: f64) -> f64 {
    let (mut lines, mut blank) = (0usize, 0usize);
    for chunk in &v.rawbody {
        for line in chunk.split_inclusive(|&c| c == b'\n') {
            lines += 1;
            if line
                .iter()
                .all(|&c| matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c))
            {
                blank += 1;
            }
        }
    }
    if (lines as f64) < min_lines {
        -1.0
    } else {
        100.0 * blank as f64 / lines as f64
    }
}

/// BodyEval's `check_stock_info`: how many distinct stock-tip labels ("Symbol:", "Target price:" ...)
/// start a line of the first text/plain part. Only the first alternative is anchored at the start of
/// the letters, as in BodyEval.pm, so "Companyname" and "Our company" both count as `company`.
fn stock_info(v: &View) -> usize {
    static LABEL: std::sync::OnceLock<(regex::bytes::Regex, regex::bytes::Regex)> =
        std::sync::OnceLock::new();
    let (label, known) = LABEL.get_or_init(|| {
        (
            regex::bytes::Regex::new(r"(?m)^\s*([^:\s][^:\n]{2,29})\s*:\s*\S").expect("static"),
            regex::bytes::Regex::new(
                r"(?:^trad(?:e|ing)date|company(?:name)?|s\w?(?:t\w?o\w?c\w?k|y\w?m(?:\w?b\w?o\w?l)?)|t(?:arget|icker)|(?:opening|current)p(?:rice)?|p(?:rojected|osition)|expectations|weeks?high|marketperformance|(?:year|week|month|day|price)(?:target|estimates?)|sector|r(?:ecommendation|ating))$",
            )
            .expect("static"),
        )
    });
    let Some(text) = &v.mime.first_plain else {
        return 0;
    };
    let mut hits = std::collections::HashSet::new();
    for chunk in super::view::split_paragraph_chunks(text.as_bytes()) {
        for c in label.captures_iter(&chunk) {
            let word: Vec<u8> = c[1]
                .iter()
                .map(u8::to_ascii_lowercase)
                .filter(u8::is_ascii_lowercase)
                .collect();
            if let Some(m) = known.find(&word) {
                hits.insert(m.as_bytes().to_vec());
            }
        }
    }
    hits.len()
}

/// The `'< 384'` / `'!= 0'` argument of html_eval and html_tag_balance: an operator and a number.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Comparison {
    op: &'static str,
    n: f64,
}

impl Comparison {
    fn parse(e: &str) -> Option<Comparison> {
        let e = e.trim();
        let op = ["<=", ">=", "==", "!=", "<", ">"]
            .into_iter()
            .find(|op| e.starts_with(op))?;
        let n = e[op.len()..].trim().parse().ok()?;
        Some(Comparison { op, n })
    }
    fn holds(self, x: f64) -> bool {
        match self.op {
            "<=" => x <= self.n,
            ">=" => x >= self.n,
            "==" => x == self.n,
            "!=" => x != self.n,
            "<" => x < self.n,
            _ => x > self.n,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_calls() {
        assert_eq!(
            parse_call("eval:check_illegal_chars('Subject', '0.02', \"1\")"),
            Some(Call {
                func: "check_illegal_chars".into(),
                args: vec!["Subject".into(), "0.02".into(), "1".into()],
                re: ArgRe::default(),
            })
        );
        assert_eq!(parse_call("eval:check_no_relays()").unwrap().args.len(), 0);
        assert!(parse_call("eval:").is_none());
    }

    fn hits(msg: &str, eval: &str) -> bool {
        let v = View::new(msg.as_bytes());
        run(&parse_call(eval).expect("call"), &v, &Settings::default()) != 0.0
    }

    #[test]
    fn vertical_words_measures_spaced_out_paragraphs() {
        let spaced = "From: a@example.org\nSubject: hi\n\nB u y   n o w   c h e a p\n";
        let plain = "From: a@example.org\nSubject: hi\n\nAn ordinary sentence of words.\n";
        // The body's whitespace runs are one space each, as SpamAssassin squeezes them, the final
        // newline too: 11 spaces against 11 other characters, int(1100 / 11) = 100.
        assert_eq!(vertical_words(&View::new(spaced.as_bytes())), 100.0);
        // 5 spaces, 26 others: int(500 / 26) = 19.
        assert_eq!(vertical_words(&View::new(plain.as_bytes())), 19.0);
        assert!(hits(spaced, "eval:tvd_vertical_words('90','100')"));
        assert!(!hits(spaced, "eval:tvd_vertical_words('0','10')"));
        assert!(hits(plain, "eval:tvd_vertical_words('10','20')"));
        // Paragraphs of 5 characters or fewer do not count (the subject "hi" among them): -1.
        let short = "From: a@example.org\nSubject: hi\n\nok\n";
        assert_eq!(vertical_words(&View::new(short.as_bytes())), -1.0);
        assert!(!hits(short, "eval:tvd_vertical_words('0','10')"));
    }

    #[test]
    fn unresolved_template_ignores_fields_that_may_carry_percent_names() {
        let m = |h: &str| format!("From: a@example.org\n{h}\nSubject: x\n\nbody\n");
        assert!(hits(
            &m("X-Mailer: %MAILER_NAME"),
            "eval:check_unresolved_template()"
        ));
        assert!(hits(
            &m("Reply-To: %FROM_EMAIL"),
            "eval:check_unresolved_template()"
        ));
        assert!(!hits(
            &m("Subject: 50%OFF"),
            "eval:check_unresolved_template()"
        ));
        assert!(!hits(
            &m("X-Message-Id: %RANDOM"),
            "eval:check_unresolved_template()"
        ));
        assert!(!hits(
            &m("X-Note: 100% Sure"),
            "eval:check_unresolved_template()"
        ));
        // An exempt field's template does not hide a later one; the first and last fields count.
        assert!(hits(
            &m("X-Message-Id: %RANDOM\nX-Mailer: %MAILER_NAME"),
            "eval:check_unresolved_template()"
        ));
        assert!(hits(
            "X-Mailer: %MAILER_NAME\nSubject: x\n\nbody\n",
            "eval:check_unresolved_template()"
        ));
        assert!(hits(
            "Subject: x\nX-Mailer: %MAILER_NAME\n\nbody\n",
            "eval:check_unresolved_template()"
        ));
    }

    #[test]
    fn ratware_name_id_ties_message_id_to_the_from_address() {
        let m = |from: &str| {
            format!(
                "From: {from}\nMessage-Id: <ABCDEFGHIJKLMNOPQRSTUVWXYZAB.bob@example.com>\n\
                 Subject: x\n\nbody\n"
            )
        };
        let call = "eval:check_ratware_name_id()";
        assert!(hits(&m("\"Bob\" <bob@example.com>"), call));
        assert!(!hits(&m("\"Bob\" <alice@example.com>"), call));
        assert!(!hits(&m("bob@example.com"), call), "no quoted name");
    }

    #[test]
    fn abundant_unicode_entities_in_plain_text() {
        let m = |cte: &str, body: &str| {
            format!("From: a@example.org\nSubject: s\nContent-Type: text/plain\n{cte}\n{body}\n")
        };
        // 10 entities against 11 other bytes (ten letters and the newline).
        let dense = "&#x0041;&#x0042;&#x0043;&#x0044;&#x0045;abcdefghij&#x0046;&#x0047;&#x0048;&#x0049;&#x004A;";
        assert!(hits(
            &m("", dense),
            "eval:check_abundant_unicode_ratio(0.05)"
        ));
        assert!(hits(
            &m("Content-Transfer-Encoding: 8bit\n", dense),
            "eval:check_abundant_unicode_ratio(0.05)"
        ));
        // Encoded parts and lower-case hex do not count; a malformed ratio answers 0.
        assert!(!hits(
            &m("Content-Transfer-Encoding: quoted-printable\n", dense),
            "eval:check_abundant_unicode_ratio(0.05)"
        ));
        let lower = format!("{}abcdefghij", "&#x00e9;".repeat(10));
        assert!(!hits(
            &m("", &lower),
            "eval:check_abundant_unicode_ratio(0.05)"
        ));
        assert!(!hits(&m("", dense), "eval:check_abundant_unicode_ratio(5)"));
        assert!(!hits(
            &m("", "plain words only"),
            "eval:check_abundant_unicode_ratio(0.02)"
        ));
        assert_eq!(unicode_count(b"&#x00E9;&#x00e9;&#x;&#x12345;&&#x00FF;"), 2);
    }

    fn unicode_count(line: &[u8]) -> usize {
        crate::spam::view::unicode_entities(line)
    }

    #[test]
    fn ratware_envelope_from_spells_the_recipient() {
        let st = crate::spam::load::load_text("util_rb_tld com org\n").settings;
        let run_with = |rp: &str, to: &str| {
            let m =
                format!("Return-Path: <{rp}>\nFrom: a@example.org\nTo: {to}\nSubject: s\n\nbody\n");
            let v = View::new(m.as_bytes());
            run(
                &parse_call("eval:check_ratware_envelope_from()").expect("call"),
                &v,
                &st,
            ) != 0.0
        };
        assert!(run_with(
            "example.com.joe@bulk.example.org",
            "joe@mail.example.com"
        ));
        assert!(!run_with("joe@bulk.example.org", "joe@mail.example.com"));
        assert!(!run_with(
            "SRS0=ab=cd=example.com=joe@example.com",
            "joe@example.com"
        ));
        assert!(run_with(
            "Example.COM-Joe@bulk.example.org",
            "joe@mail.example.com"
        ));
        assert!(!run_with(
            "xexample.com.joe@bulk.example.org",
            "joe@mail.example.com"
        ));
        // The recipient's domain must end in a listed TLD.
        assert!(!run_with(
            "example.zz.joe@bulk.example.org",
            "joe@example.zz"
        ));
    }

    #[test]
    fn forged_gmail_wants_google_traces() {
        let call = "eval:check_for_forged_gmail_received_headers()";
        let long = "x".repeat(70);
        let real = format!(
            "From: a@gmail.com\nX-Gm-Message-State: {long}\nX-Google-Smtp-Source: {long}\n\
             Subject: s\n\nbody\n"
        );
        let bare = "From: a@gmail.com\nSubject: s\n\nbody\n";
        let relayed = "From: a@gmail.com\nX-Received: by 10.1.2.3 with SMTP id abc;\n\
                       Subject: s\n\nbody\n";
        assert!(!hits(&real, call));
        assert!(hits(bare, call));
        assert!(!hits(relayed, call));
        assert!(!hits("From: a@example.com\nSubject: s\n\nbody\n", call));
    }

    const ALT: &str = "From: a@example.org\nSubject: s\nMIME-Version: 1.0\n\
        Content-Type: multipart/alternative; boundary=\"b\"\n\n--b\n\
        Content-Type: text/plain\n\nhi\n--b\nContent-Type: text/html\n\n\
        <html><body><p>a much longer html part than the text one, by far, many bytes here</p></body></html>\n\
        --b\nContent-Type: image/gif\nContent-Transfer-Encoding: base64\n\n\
        R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7R0lGODlhAQABAIAAAAAAAP8=\n--b--\n";

    /// MIMEEval's facts come from the raw parts: the GIF inside the alternative is a non-text child,
    /// its base64 line is 81 bytes with the newline, and the text part is 3 bytes against the HTML's 100.
    #[test]
    fn mime_evals_read_the_raw_parts() {
        assert!(hits(ALT, "eval:check_ma_non_text()"));
        assert!(hits(ALT, "eval:check_base64_length('79')"));
        assert!(!hits(ALT, "eval:check_base64_length('78','79')"));
        assert!(hits(ALT, "eval:check_mime_multipart_ratio('0.00','0.1')"));
        assert!(!hits(ALT, "eval:check_mime_multipart_ratio('0.00','0.01')"));
        let plain = "From: a@example.org\nSubject: s\n\nhello\n";
        assert!(!hits(plain, "eval:check_ma_non_text()"));
        assert!(!hits(plain, "eval:check_base64_length('1')"));
        assert!(hits(plain, "eval:check_mime_multipart_ratio('1','2')"));
        assert!(!hits(plain, "eval:check_for_ascii_text_illegal()"));
        assert!(hits(
            "From: a@example.org\nSubject: s\n\nna\u{ef}ve caf\u{e9}\n",
            "eval:check_for_ascii_text_illegal()"
        ));
        assert!(!hits(
            "From: a@example.org\nSubject: s\nContent-Type: text/plain; charset=utf-8\n\ncaf\u{e9}\n",
            "eval:check_for_ascii_text_illegal()"
        ));
        assert!(hits(ALT, "eval:check_for_mime('mime_base64_count')"));
        assert!(!hits(ALT, "eval:check_for_mime('mime_qp_count')"));
        assert!(!hits(ALT, "eval:check_for_mime('mime_attachment')"));
        let qp = format!(
            "From: a@example.org\nSubject: s\nContent-Type: text/plain; charset=iso-4-2\n\
             Content-Transfer-Encoding: quoted-printable\n\n{}\n",
            "x".repeat(79)
        );
        assert!(hits(&qp, "eval:check_for_mime('mime_qp_long_line')"));
        assert!(hits(&qp, "eval:check_for_mime('mime_qp_count')"));
        assert!(hits(&qp, "eval:check_for_mime('mime_bad_iso_charset')"));
        let b64 = |extra: &str| {
            format!(
                "From: a@example.org\nSubject: s\nContent-Type: text/plain{extra}\n\
                 Content-Transfer-Encoding: base64\n\naGVsbG8K\n"
            )
        };
        assert!(hits(
            &b64(""),
            "eval:check_for_mime('mime_base64_encoded_text')"
        ));
        assert!(!hits(
            &b64("; charset=utf-8"),
            "eval:check_for_mime('mime_base64_encoded_text')"
        ));
        // CRLF line ends are not lone CRs when the message uses them throughout.
        assert!(!hits(
            "From: a@example.org\r\nSubject: s\r\n\r\nhello\r\n",
            "eval:check_for_ascii_text_illegal()"
        ));
    }

    /// BodyEval's comparison of the parts of an alternative: the share of the HTML's distinct words
    /// the text part lacks, and the two distinct-word counts.
    #[test]
    fn alternative_difference() {
        let alt = |plain: &str, html: &str| {
            format!(
                "From: a@example.org\nSubject: s\nContent-Type: multipart/alternative; boundary=b\n\n\
                 --b\nContent-Type: text/plain\n\n{plain}\n--b\nContent-Type: text/html\n\n\
                 <html><body>{html}</body></html>\n--b--\n"
            )
        };
        let same = alt("buy cheap pills now", "<p>buy cheap pills now</p>");
        assert!(!hits(
            &same,
            "eval:multipart_alternative_difference('99', '100')"
        ));
        assert!(hits(
            &same,
            "eval:multipart_alternative_difference('0', '1')"
        ));
        let differ = alt("hello friend", "<p>buy cheap pills now</p>");
        assert!(hits(
            &differ,
            "eval:multipart_alternative_difference('99', '100')"
        ));
        // 2 text words against 4 HTML words: ratio 0.5.
        assert!(hits(
            &differ,
            "eval:multipart_alternative_difference_count('0.4', '3')"
        ));
        assert!(!hits(
            &differ,
            "eval:multipart_alternative_difference_count('0.5', '3')"
        ));
        assert!(!hits(
            &differ,
            "eval:multipart_alternative_difference_count('0.4', '4')"
        ));
        // Half the HTML words missing from the text: 50%.
        let half = alt("buy cheap", "<p>buy cheap pills now</p>");
        assert!(hits(
            &half,
            "eval:multipart_alternative_difference('49', '50')"
        ));
        // No alternative at all: a difference of 0, which only a range starting at 0 takes.
        let plain = "From: a@example.org\nSubject: s\n\nhello\n";
        assert!(!hits(
            plain,
            "eval:multipart_alternative_difference('1', 'undef')"
        ));
        assert!(hits(
            plain,
            "eval:multipart_alternative_difference('0', 'undef')"
        ));
    }

    #[test]
    fn recipient_lists() {
        let to = |list: &str| format!("From: a@example.org\nTo: {list}\nSubject: s\n\nhi\n");
        // Five users all starting "jo" at one domain: every pair is similar by user.
        let alike = to("joe@x.org, john@x.org, jo@x.org, joan@x.org, josh@x.org");
        assert!(hits(&alike, "eval:similar_recipients('0.65','undef')"));
        let mixed = to("al@x.org, bo@y.org, cy@z.org, di@w.org, ed@v.org");
        assert!(!hits(&mixed, "eval:similar_recipients('0.65','undef')"));
        assert!(hits(&mixed, "eval:similar_recipients('undef','0.1')"));
        // Four recipients are too few to judge.
        let few = to("joe@x.org, john@x.org, jo@x.org, joan@x.org");
        assert!(!hits(&few, "eval:similar_recipients('0.65','undef')"));
        let sorted = to("a@x.org, b@x.org, c@x.org, d@x.org, e@x.org, f@x.org, g@x.org");
        assert!(hits(&sorted, "eval:sorted_recipients()"));
        assert!(!hits(&mixed, "eval:sorted_recipients()"));
    }

    #[test]
    fn blank_lines_and_stock_labels() {
        let blank = format!(
            "From: a@example.org\nSubject: s\n\nx\n{}y\n",
            "\n".repeat(8)
        );
        // 10 lines, 8 blank: 80%.
        assert!(hits(&blank, "eval:check_blank_line_ratio('70','80','4')"));
        assert!(!hits(&blank, "eval:check_blank_line_ratio('80','90','4')"));
        assert!(!hits(&blank, "eval:check_blank_line_ratio('0','50','4')"));
        // Fewer lines than asked for give -1, which a range from 0 takes, as in BodyEval.pm.
        assert!(hits(&blank, "eval:check_blank_line_ratio('0','50','11')"));
        let tip = "From: a@example.org\nSubject: s\n\nCompany Name: Foo Corp\nSymbol: FOOC\n\
                   Current Price: $0.10\nTarget: $2\nhello: world\n";
        assert!(hits(tip, "eval:check_stock_info('4')"));
        assert!(!hits(tip, "eval:check_stock_info('5')"));
        assert!(!hits(
            "From: a@example.org\nSubject: s\n\nhello: world\n",
            "eval:check_stock_info('1')"
        ));
    }

    #[test]
    fn fetchmail_fields_are_not_received_times() {
        let msg = "Received: from localhost (localhost [127.0.0.1])\n\tby h.example.org (Postfix) with ESMTP id 1\n\t\
                   for <u@h>; Thu, 22 Aug 2002 18:26:25 +0100 (IST)\n\
                   Received: from imap.example.net [10.0.0.1]\n\tby localhost with IMAP (fetchmail-5.9.0)\n\t\
                   for u@localhost (single-drop); Thu, 22 Aug 2002 18:26:25 +0100 (IST)\n\
                   Received: from mx.example.net by imap.example.net; Wed, 21 Aug 2002 10:00:00 +0000\n\
                   Subject: s\n\nhi\n";
        let v = View::new(msg.as_bytes());
        assert_eq!(
            received_times(&v),
            vec![parse_date("Wed, 21 Aug 2002 10:00:00 +0000").unwrap()]
        );
        // Without fetchmail's field, the local hand-over counts like any other.
        let plain = msg.replacen("fetchmail-5.9.0", "smtpd", 1);
        assert_eq!(received_times(&View::new(plain.as_bytes())).len(), 3);
    }

    #[test]
    fn dates() {
        assert_eq!(
            parse_date("Wed, 23 Jul 2003 23:30:00 +0200"),
            Some(1058995800)
        );
        assert_eq!(parse_date("23 Jul 2003 21:30:00 GMT"), Some(1058995800));
    }

    /// WLBLEval's check_mailfrom_matches_rcvd: the envelope sender's registered domain against the
    /// first untrusted relay's reverse DNS.
    #[test]
    fn mailfrom_matches_rcvd() {
        let msg = |rp: &str| {
            format!(
                "Return-Path: <{rp}>\nReceived: from mail.example.com (mx2.example.com [203.0.113.9])\n\
                 \tby mx.local (Postfix) with ESMTP id 1; Thu, 25 Jul 2002 19:39:06 -0000\n\
                 From: a@example.com\nSubject: s\n\nhi\n"
            )
        };
        let call = "eval:check_mailfrom_matches_rcvd()";
        assert!(hits(&msg("bounce@lists.example.com"), call));
        assert!(!hits(&msg("bounce@example.org"), call));
        assert!(!hits(&msg("nodomain"), call));
    }
}
