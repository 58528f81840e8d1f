//! The SpamAssassin `.cf` line parser: turns one file's text into typed directives, and does nothing else.
//!
//! Loading (includes, `ifplugin`/`if` evaluation, rule compilation) lives in `load.rs`; this module never
//! touches the file system, so it can be fuzzed on its own. Every line parses to *something*: a keyword we
//! do not know becomes `Directive::Unknown`, so a newer rule file never stops a load.

/// What kind of test a rule definition is. The names are the `.cf` keywords.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RuleKind {
    Header,
    Body,
    Rawbody,
    Full,
    Uri,
    Meta,
    Mimeheader,
}

impl RuleKind {
    pub fn keyword(self) -> &'static str {
        match self {
            RuleKind::Header => "header",
            RuleKind::Body => "body",
            RuleKind::Rawbody => "rawbody",
            RuleKind::Full => "full",
            RuleKind::Uri => "uri",
            RuleKind::Meta => "meta",
            RuleKind::Mimeheader => "mimeheader",
        }
    }
}

/// `add_header` / `remove_header` scope: SpamAssassin's `spam`, `ham` or `all`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    Spam,
    Ham,
    All,
}

/// One meaningful line of a `.cf` file.
#[derive(Debug, Clone, PartialEq)]
pub enum Directive {
    Rule {
        kind: RuleKind,
        name: String,
        def: String,
    },
    Score {
        name: String,
        scores: Vec<f64>,
    },
    Describe {
        name: String,
        text: String,
    },
    Tflags {
        name: String,
        flags: Vec<String>,
    },
    Priority {
        name: String,
        priority: i32,
    },
    RequiredScore(f64),
    RewriteHeader {
        header: String,
        text: String,
    },
    AddHeader {
        which: Which,
        name: String,
        text: String,
    },
    RemoveHeader {
        which: Which,
        name: String,
    },
    ClearHeaders,
    ReportSafe(u8),
    Report(String),
    ClearReportTemplate,
    UnsafeReport(String),
    ClearUnsafeReportTemplate,
    ReportContact(String),
    /// ReplaceTags: `replace_tag|replace_pre|replace_inter|replace_post NAME VALUE`.
    ReplaceTag {
        kind: String,
        name: String,
        value: String,
    },
    /// ReplaceTags: the rules whose regexes get `<TAG>` substitution.
    ReplaceRules(Vec<String>),
    /// `freemail_domains a.com b.net *.c.org`: the FreeMail plugin's list.
    FreemailDomains(Vec<String>),
    /// `util_rb_tld` (the valid top-level domains), `util_rb_2tld` / `util_rb_3tld`: registry
    /// boundaries below which a domain is one registrant's (RegistryBoundaries' two- and three-level
    /// "TLDs", co.uk, demon.co.uk).
    RbTld {
        labels: usize,
        domains: Vec<String>,
    },
    /// correo's own: `token_model_weight HASH WEIGHT`, one weight of the token model `correo spam
    /// rescore` fits (see `bayes::eval_check_token_model`).
    TokenWeight(i64, f64),
    Include(String),
    LoadPlugin(String),
    IfPlugin(String),
    If(String),
    Else,
    EndIf,
    /// `lang xx <directive>`: only applies under that locale; kept for lint, not applied (we run as `C`).
    Lang {
        lang: String,
    },
    /// A keyword we know but do not act on (network lists, Bayes tuning, ...), kept for lint counts.
    Ignored {
        key: String,
    },
    /// A line we could not make sense of; `why` goes into lint output.
    Bad {
        key: String,
        why: String,
    },
    Unknown {
        key: String,
    },
}

/// A directive with its position, for lint messages.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub lineno: usize,
    pub directive: Directive,
}

/// Parses a whole file. Never fails: bad lines become `Directive::Bad`.
pub fn parse(text: &str) -> Vec<Line> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = strip_comment(raw);
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        out.push(Line {
            lineno: i + 1,
            directive: parse_line(line),
        });
    }
    out
}

/// SpamAssassin's Conf::Parser: `#` starts a comment unless escaped as `\#`, which then means a literal `#`.
fn strip_comment(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut end = bytes.len();
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'#' && (i == 0 || bytes[i - 1] != b'\\') {
            end = i;
            break;
        }
    }
    raw[..end].replace("\\#", "#")
}

fn split_word(s: &str) -> (&str, &str) {
    let s = s.trim_start();
    match s.find(char::is_whitespace) {
        Some(i) => (&s[..i], s[i..].trim_start()),
        None => (s, ""),
    }
}

/// Parses one comment-free, trimmed line.
pub fn parse_line(line: &str) -> Directive {
    let (key, rest) = split_word(line);
    let lkey = key.to_ascii_lowercase();
    let bad = |why: &str| Directive::Bad {
        key: lkey.clone(),
        why: why.to_string(),
    };
    let kind = match lkey.as_str() {
        "header" => Some(RuleKind::Header),
        "body" => Some(RuleKind::Body),
        "rawbody" => Some(RuleKind::Rawbody),
        "full" => Some(RuleKind::Full),
        "uri" => Some(RuleKind::Uri),
        "meta" => Some(RuleKind::Meta),
        "mimeheader" => Some(RuleKind::Mimeheader),
        _ => None,
    };
    if let Some(kind) = kind {
        let (name, def) = split_word(rest);
        if name.is_empty() || def.is_empty() {
            return bad("rule needs a name and a definition");
        }
        return Directive::Rule {
            kind,
            name: name.to_string(),
            def: def.to_string(),
        };
    }
    match lkey.as_str() {
        "score" => {
            let (name, vals) = split_word(rest);
            if name.is_empty() {
                return bad("score needs a rule name");
            }
            // Scores may be written in parentheses in some files: `score X (1.0)`.
            let scores: Option<Vec<f64>> = vals
                .split_whitespace()
                .map(|v| v.trim_matches(|c| c == '(' || c == ')').parse::<f64>().ok())
                .collect();
            match scores {
                Some(s) if s.len() == 1 || s.len() == 4 => Directive::Score {
                    name: name.to_string(),
                    scores: s,
                },
                Some(s) if s.is_empty() => bad("score without a value"),
                _ => bad("score needs 1 or 4 numbers"),
            }
        }
        "describe" => {
            let (name, text) = split_word(rest);
            Directive::Describe {
                name: name.to_string(),
                text: text.to_string(),
            }
        }
        "tflags" => {
            let (name, flags) = split_word(rest);
            Directive::Tflags {
                name: name.to_string(),
                flags: flags.split_whitespace().map(str::to_string).collect(),
            }
        }
        "priority" => {
            let (name, p) = split_word(rest);
            match p.trim().parse::<i32>() {
                Ok(priority) => Directive::Priority {
                    name: name.to_string(),
                    priority,
                },
                Err(_) => bad("priority needs an integer"),
            }
        }
        "required_score" | "required_hits" => match rest.trim().parse::<f64>() {
            Ok(v) => Directive::RequiredScore(v),
            Err(_) => bad("required_score needs a number"),
        },
        "rewrite_header" => {
            let (h, text) = split_word(rest);
            let header = match h.to_ascii_lowercase().as_str() {
                "subject" => "Subject",
                "from" => "From",
                "to" => "To",
                _ => return bad("rewrite_header works on Subject, From or To"),
            };
            Directive::RewriteHeader {
                header: header.to_string(),
                text: text.to_string(),
            }
        }
        "add_header" | "remove_header" => {
            let (w, rest2) = split_word(rest);
            let which = match w.to_ascii_lowercase().as_str() {
                "spam" => Which::Spam,
                "ham" => Which::Ham,
                "all" => Which::All,
                _ => return bad("add_header needs spam, ham or all"),
            };
            let (name, text) = split_word(rest2);
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return bad("bad header name");
            }
            if lkey == "remove_header" {
                return Directive::RemoveHeader {
                    which,
                    name: name.to_string(),
                };
            }
            // SpamAssassin strips one pair of surrounding double quotes from the template.
            let text = text
                .strip_prefix('"')
                .and_then(|t| t.strip_suffix('"'))
                .unwrap_or(text);
            Directive::AddHeader {
                which,
                name: name.to_string(),
                text: text.to_string(),
            }
        }
        "clear_headers" => Directive::ClearHeaders,
        "report_safe" => match rest.trim() {
            "0" => Directive::ReportSafe(0),
            "1" => Directive::ReportSafe(1),
            "2" => Directive::ReportSafe(2),
            _ => bad("report_safe is 0, 1 or 2"),
        },
        "report" => Directive::Report(unquote_template(rest)),
        "clear_report_template" => Directive::ClearReportTemplate,
        "unsafe_report" => Directive::UnsafeReport(unquote_template(rest)),
        "clear_unsafe_report_template" => Directive::ClearUnsafeReportTemplate,
        "report_contact" => Directive::ReportContact(rest.to_string()),
        "replace_tag" | "replace_pre" | "replace_inter" | "replace_post" => {
            let (name, value) = split_word(rest);
            if name.is_empty() {
                return bad("replace_tag needs a name");
            }
            Directive::ReplaceTag {
                kind: lkey.clone(),
                name: name.to_string(),
                value: value.to_string(),
            }
        }
        "replace_rules" => {
            Directive::ReplaceRules(rest.split_whitespace().map(str::to_string).collect())
        }
        "freemail_domains" => Directive::FreemailDomains(
            rest.split_whitespace()
                .map(|d| d.to_ascii_lowercase())
                .collect(),
        ),
        "util_rb_tld" | "util_rb_2tld" | "util_rb_3tld" => Directive::RbTld {
            labels: match lkey.as_str() {
                "util_rb_tld" => 1,
                "util_rb_2tld" => 2,
                _ => 3,
            },
            domains: rest
                .split_whitespace()
                .map(|d| d.to_ascii_lowercase())
                .collect(),
        },
        "token_model_weight" => {
            let mut it = rest.split_whitespace();
            match (
                it.next().and_then(|h| h.parse::<i64>().ok()),
                it.next().and_then(|w| w.parse::<f64>().ok()),
            ) {
                (Some(h), Some(w)) if w.is_finite() => Directive::TokenWeight(h, w),
                _ => bad("token_model_weight needs a token hash and a weight"),
            }
        }
        "include" => Directive::Include(rest.to_string()),
        "loadplugin" => Directive::LoadPlugin(split_word(rest).0.to_string()),
        "ifplugin" => Directive::IfPlugin(rest.to_string()),
        "if" => Directive::If(rest.to_string()),
        "else" => Directive::Else,
        "endif" => Directive::EndIf,
        "lang" => Directive::Lang {
            lang: split_word(rest).0.to_string(),
        },
        _ if KNOWN_IGNORED.contains(&lkey.as_str()) || lkey.starts_with("bayes_stopword_") => {
            Directive::Ignored { key: lkey }
        }
        _ => Directive::Unknown { key: lkey },
    }
}

/// `report "..."` lines keep inner spacing when quoted (SpamAssassin strips the quotes).
fn unquote_template(s: &str) -> String {
    s.strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(s)
        .to_string()
}

/// Keywords the stock rules use that we accept without acting on: network lists, Bayes and auto-learn
/// tuning, welcome/block lists, plugin settings. They never make a load fail, and lint counts them.
const KNOWN_IGNORED: &[&str] = &[
    "urirhssub",
    "urirhsbl",
    "uridnsbl",
    "uridnssub",
    "askdns",
    "uri_detail",
    "replace_start",
    "replace_end",
    "bayes_auto_learn",
    "bayes_auto_learn_threshold_spam",
    "bayes_auto_learn_threshold_nonspam",
    "use_bayes",
    "bayes_path",
    "util_rb_tld",
    "freemail_whitelist",
    "freemail_welcomelist",
    "freemail_import_whitelist_auth",
    "freemail_import_welcomelist_auth",
    "enlist_uri_host",
    "enlist_addrlist",
    "delist_uri_host",
    "uridnsbl_skip_domain",
    "whitelist_from_rcvd",
    "welcomelist_from_rcvd",
    "def_whitelist_from_rcvd",
    "def_welcomelist_from_rcvd",
    "whitelist_from",
    "welcomelist_from",
    "blacklist_from",
    "blocklist_from",
    "def_whitelist_auth",
    "def_welcomelist_auth",
    "whitelist_auth",
    "welcomelist_auth",
    "def_whitelist_from_dkim",
    "def_welcomelist_from_dkim",
    "whitelist_from_dkim",
    "welcomelist_from_dkim",
    "whitelist_from_spf",
    "welcomelist_from_spf",
    "def_whitelist_from_spf",
    "def_welcomelist_from_spf",
    "unwhitelist_from",
    "unwelcomelist_from",
    "whitelist_to",
    "welcomelist_to",
    "more_spam_to",
    "all_spam_to",
    "blacklist_to",
    "blocklist_to",
    "whitelist_subject",
    "welcomelist_subject",
    "blacklist_subject",
    "blocklist_subject",
    "redirector_pattern",
    "url_shortener",
    "url_shortener_get",
    "shortcircuit",
    "shortcircuit_spam_score",
    "shortcircuit_ham_score",
    "dns_block_rule",
    "dns_query_restriction",
    "dns_server",
    "dns_available",
    "skip_rbl_checks",
    "trusted_networks",
    "internal_networks",
    "msa_networks",
    "clear_trusted_networks",
    "clear_internal_networks",
    "clear_msa_networks",
    "clear_originating_ip_headers",
    "originating_ip_headers",
    "envelope_sender_header",
    "report_hostname",
    "report_charset",
    "fold_headers",
    "bayes_ignore_header",
    "bayes_ignore_from",
    "bayes_ignore_to",
    "bayes_stopword_en",
    "bayes_stopword_es",
    "bayes_stopword_de",
    "bayes_stopword_fr",
    "bayes_stopword_it",
    "bayes_stopword_nl",
    "bayes_stopword_pt",
    "bayes_stopword_ru",
    "hashbl_acl_freemail",
    "hashbl_ignore",
    "util_rb_tld_",
    "body_part_scan_size",
    "rawbody_part_scan_size",
    "ok_locales",
    "ok_languages",
    "normalize_charset",
    "dcc_options",
    "pyzor_options",
    "razor_config",
    "use_razor2",
    "use_pyzor",
    "use_dcc",
    "txrep_factor",
    "auto_whitelist_factor",
    "auto_welcomelist_factor",
    "use_auto_whitelist",
    "use_auto_welcomelist",
    "use_txrep",
    "adsp_override",
    "dkim_minimum_key_bits",
    "uri_block_cc",
    "uri_block_cont",
    "asn_prefix",
    "asn_lookup",
    "asn_lookup_ipv6",
    "unsafe_report_template",
    "test",
    "lock_method",
    "spamcop_from_address",
    "spamcop_to_address",
    "report_safe_copy_headers",
    "encapsulated_content_description",
    "use_learner",
    "header_fields_for_hashing",
    "whitelist_allows_relays",
    "welcomelist_allows_relays",
    "blacklist_uri_host",
    "blocklist_uri_host",
    "whitelist_uri_host",
    "welcomelist_uri_host",
    "parse_dkim_uris",
    "dns_options",
    "rbl_timeout",
    "util_rb_3tld_",
    "pdfinfo",
    "reuse",
    "report_wrap_width",
    "check_rbl_from_domain",
    "urirhsbl_",
    "tld",
    "dmarc_save_reports",
    "uri_from",
    "add_uri_detail",
    "bayes_token_sources",
    "bayes_sql_override_username",
    "mimeheader_",
    "enlist_uri_host_",
    "clear_report_safe_copy_headers",
    "hashbl_email_domain_alias",
    "hashbl_email_welcomelist",
    "hashbl_email_whitelist",
    "hashbl_email_regex",
    "dns_local_ports_avoid",
    "dns_local_ports_permit",
    "require_version",
    "clear_util_rb",
    "version_tag",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_and_escaped_hash() {
        let v = parse("# hi\nbody  X  /a\\#b/ # c\n\n");
        assert_eq!(v.len(), 1);
        assert_eq!(
            v[0].directive,
            Directive::Rule {
                kind: RuleKind::Body,
                name: "X".into(),
                def: "/a#b/".into()
            }
        );
    }

    #[test]
    fn scores_one_or_four() {
        assert_eq!(
            parse_line("score A 1.5"),
            Directive::Score {
                name: "A".into(),
                scores: vec![1.5]
            }
        );
        assert!(
            matches!(parse_line("score A 1 2 3 4"), Directive::Score { scores, .. } if scores.len() == 4)
        );
        assert!(matches!(parse_line("score A 1 2"), Directive::Bad { .. }));
        assert!(matches!(parse_line("score A x"), Directive::Bad { .. }));
    }

    #[test]
    fn add_header_strips_quotes() {
        assert_eq!(
            parse_line("add_header all Status \"_YESNO_, score=_SCORE_\""),
            Directive::AddHeader {
                which: Which::All,
                name: "Status".into(),
                text: "_YESNO_, score=_SCORE_".into()
            }
        );
    }
}
