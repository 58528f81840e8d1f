//! Turns a message (its `View`) into the set of Bayes tokens, the way SpamAssassin's Bayes plugin does:
//! rendered body text split on the characters SpamAssassin keeps, trimmed, stop words dropped, case
//! kept but decomposed (`FREE!` also gives `FREE`, `free!` and `free`; a Title Case word starting a
//! line or sentence is lower-cased first, Bayes.pm's IGNORE_TITLE_CASE and DECOMPOSE_BODY_TOKENS),
//! addresses and dotted words in the text broken into `U*`/`D*` and `UD:` tokens, long tokens cut to a
//! `sk:` stub or, in scripts without spaces, split into `u8:` characters; the headers Bayes.pm does not
//! ignore, with a short prefix per header (`*F:` From ...); the two oldest Received fields and the relay
//! summary; URI domains as `UD:` tokens. A message yields each token once. Tokens are stored as 64-bit
//! hashes, so the database holds no message text.

use crate::spam::view::{decode_header_value, Field, View};
use regex::Regex;
use std::borrow::Cow;
use std::cell::RefCell;
use std::sync::LazyLock;

/// A message's tokens while they are collected (a fast, randomly seeded hash: the set is sorted at
/// the end, so its order never shows).
type Set = foldhash::HashSet<String>;

/// Where the tokenizer puts a message's tokens: the strings (`tokens`), or only their stored hashes
/// (`token_hashes`, for learning, which then allocates nothing per token).
trait Out {
    fn put(&mut self, t: &str);
}

impl Out for Set {
    /// Allocates only when the token is new (most words recur within a message).
    fn put(&mut self, t: &str) {
        if !self.contains(t) {
            self.insert(t.to_owned());
        }
    }
}

/// The hashes of a message's tokens. Distinct tokens with the same 64-bit hash would count once
/// here and twice through `tokens`; for a message of 1,000 tokens the odds are about 2^-45.
struct Hashes(foldhash::HashSet<i64>);

impl Out for Hashes {
    fn put(&mut self, t: &str) {
        self.0.insert(hash(t));
    }
}

fn add(out: &mut impl Out, t: &str) {
    out.put(t);
}

/// Adds `<a><b>` built in the scratch buffer `buf`.
fn add2(out: &mut impl Out, buf: &mut String, a: &str, b: &str) {
    buf.clear();
    buf.push_str(a);
    buf.push_str(b);
    add(out, buf);
}

/// Adds `token`, or `prefix:token` when there is a prefix.
fn add_prefixed(out: &mut impl Out, buf: &mut String, prefix: &str, token: &str) {
    if prefix.is_empty() {
        add(out, token);
    } else {
        buf.clear();
        buf.push_str(prefix);
        buf.push(':');
        buf.push_str(token);
        add(out, buf);
    }
}

/// SpamAssassin's MAX_TOKEN_LENGTH: longer tokens are mostly base64 or hashes; keep a stub.
const MAX_TOKEN: usize = 15;
/// Body text beyond this is not tokenized (spam padding costs time and says nothing new).
const MAX_BODY: usize = 256 * 1024;

/// SpamAssassin's English Bayes stop words (`bayes_stopword_en` in 60_bayes_stopwords.cf, the default
/// `bayes_stopword_languages en`), its regular expression written out: words common to both classes
/// that only cost space. Sorted, compared without regard to ASCII case.
const STOP_WORDS: &[&str] = &[
    "able",
    "all",
    "already",
    "and",
    "any",
    "are",
    "because",
    "both",
    "can",
    "come",
    "each",
    "email",
    "even",
    "few",
    "first",
    "for",
    "from",
    "give",
    "has",
    "have",
    "http",
    "information",
    "into",
    "it's",
    "just",
    "know",
    "like",
    "long",
    "look",
    "made",
    "mail",
    "mailing",
    "mailto",
    "make",
    "many",
    "more",
    "most",
    "much",
    "need",
    "not",
    "now",
    "number",
    "off",
    "one",
    "only",
    "out",
    "own",
    "people",
    "place",
    "right",
    "same",
    "see",
    "such",
    "that",
    "the",
    "this",
    "through",
    "time",
    "using",
    "web",
    "where",
    "why",
    "with",
    "without",
    "work",
    "world",
    "year",
    "years",
    "you",
    "you're",
    "your",
];

/// A stop word packed into an integer: its bytes, ASCII lower-cased, in the low 11 bytes and its
/// length in the top byte, so a lookup compares integers instead of calling memcmp.
const fn stop_key(w: &[u8]) -> u128 {
    let mut k = (w.len() as u128) << 120;
    let mut i = 0;
    while i < w.len() {
        k |= (w[i].to_ascii_lowercase() as u128) << (8 * i);
        i += 1;
    }
    k
}

/// The keys of `STOP_WORDS`, sorted (at compile time) for a binary search.
static STOP_KEYS: [u128; STOP_WORDS.len()] = {
    let mut keys = [0u128; STOP_WORDS.len()];
    let mut i = 0;
    while i < keys.len() {
        keys[i] = stop_key(STOP_WORDS[i].as_bytes());
        let mut j = i;
        while j > 0 && keys[j - 1] > keys[j] {
            let t = keys[j];
            keys[j] = keys[j - 1];
            keys[j - 1] = t;
            j -= 1;
        }
        i += 1;
    }
    keys
};

fn is_stop_word(t: &[u8]) -> bool {
    // Every stop word is 3 to 11 ASCII bytes: most tokens are turned away by length alone (this runs
    // for every token of every message).
    if !(3..=11).contains(&t.len()) {
        return false;
    }
    STOP_KEYS.binary_search(&stop_key(t)).is_ok()
}

/// Headers not tokenized, as Bayes.pm's IGNORED_HDRS: delivery and mailbox annotations, list and
/// gateway headers (a filtered list would become a ham sign), other filters' verdicts, Date (the age
/// of a corpus is no clue), and Subject (its words are already the first line of the body). The
/// signature and key headers Bayes.pm keeps only as presence (MARK_PRESENCE_ONLY_HDRS) give it the
/// value "1", too short to be a token: they are left out here.
static IGNORED: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?xi)^(?:
          (?:x-)?sender | delivered-to | delivery-date | (?:x-)?envelope-to
        | x-mime-autoconverted | x-converted-to-plain-text
        | subject | date
        | x-list | (?:x-)?mailing-list
        | (?:x-)?list-(?:archive|help|id|owner|post|subscribe|unsubscribe|host|manager|admin|comment|name|url)
        | x-unsub(?:scribe)? | x-mailman-version | x-beenthere | x-loop | mail-followup-to
        | x-egroups-(?:return|from) | x-mdmailing-list | x-xemacs-list | x-sympa-to
        | (?:x-)?resent-(?:from|to|date) | (?:x-)?original-(?:from|to|date)
        | x-mailscanner(?:-spamcheck)?
        | x-spam(?:-(?:status|level|flag|report|hits|score|checker-version))?
        | x-antispam | x-rbl-warning | x-mdaemon-deliver-to | x-virus-scanned | x-mass-check-id
        | x-pyzor | x-dcc-\S{2,25}-metrics | x-filtered-by | x-scanned-by | x-scanner
        | x-ap-spam-(?:score|status) | x-ripe-spam-status | x-spamcop-[^:]+ | x-smtpd
        | (?:x-)?spam-apparently-to | spam | x-perlmx-spam | x-bogosity
        | content-class | thread-(?:index|topic) | x-originalarrivaltime
        | (?:x-)?status | x-flags | x-keywords | replied | forwarded | lines | content-length
        | x-uidl? | x-imapbase | x-bugzilla-[^:]+
        | x-vm-(?:bookmark|(?:pop|imap)-retrieved|labels|last-modified|summary-format|vheader
                |v[0-9]-data|message-order)
        | x-gnus-mail-source | xref
        | x-face | x-(?:gnu-?pg|pgp|gpg)(?:-key)?-fingerprint | d(?:kim|omainkey)-signature
        | x-google-dkim-signature | arc-(?:message-signature|seal) | autocrypt
        )$",
    )
    .expect("static regex")
});

/// Short prefixes for common headers (SpamAssassin's HEADER_NAME_COMPRESS), so tokens stay small.
fn prefix(name: &str) -> String {
    let p = match name {
        "message-id" => "*m",
        "subject" => "*s",
        "received" => "*r",
        "from" => "*F",
        "to" => "*T",
        "cc" => "*c",
        "reply-to" => "*RT",
        "content-type" => "*ct",
        "user-agent" => "*UA",
        "x-mailer" => "*x",
        "mime-version" => "*M",
        "content-transfer-encoding" => "*cte",
        "x-mailing-list" | "list-id" | "mailing-list" => "*L",
        "sender" => "*S",
        "return-receipt-to" | "disposition-notification-to" => "*rr",
        "precedence" => "*P",
        "organization" => "*O",
        _ => return format!("H{name}"),
    };
    p.to_string()
}

/// A header field name as the tokenizer sees it: lower-cased, with its token prefix.
struct HeaderKind {
    name: String,
    prefix: String,
}

thread_local! {
    /// Field name (as written) -> None when the field is not tokenized, else its kind. The same few
    /// dozen names recur in every message; this spares a lower-casing, a regex match and a prefix
    /// allocation per field. Bounded: cleared when a flood of odd names fills it.
    static HEADER_KINDS: RefCell<foldhash::HashMap<String, Option<HeaderKind>>> =
        RefCell::new(Default::default());
}

fn header_kind<'a>(
    kinds: &'a mut foldhash::HashMap<String, Option<HeaderKind>>,
    field: &str,
) -> Option<&'a HeaderKind> {
    if !kinds.contains_key(field) {
        if kinds.len() >= 4096 {
            kinds.clear();
        }
        let name = field.to_ascii_lowercase();
        // Any other X-Spam-* field is a filter's markup too: sa-learn strips its own before learning.
        let kind = if name == "received" || IGNORED.is_match(&name) || name.starts_with("x-spam-") {
            None
        } else {
            Some(HeaderKind {
                prefix: prefix(&name),
                name,
            })
        };
        kinds.insert(field.to_owned(), kind);
    }
    kinds.get(field).and_then(Option::as_ref)
}

/// The token set of a message, sorted.
pub fn tokens(view: &View) -> Vec<String> {
    let mut out = Set::with_capacity_and_hasher(512, Default::default());
    collect(view, &mut out);
    let mut v: Vec<String> = out.into_iter().collect();
    v.sort_unstable();
    v
}

/// The stored hashes of a message's tokens, in no particular order: all that learning needs, without
/// sorting the strings.
pub fn token_hashes(view: &View) -> Vec<i64> {
    let mut out = Hashes(foldhash::HashSet::with_capacity_and_hasher(
        512,
        Default::default(),
    ));
    collect(view, &mut out);
    out.0.into_iter().collect()
}

fn collect(view: &View, out: &mut impl Out) {
    let mut budget = MAX_BODY;
    for line in &view.body {
        if budget == 0 {
            break;
        }
        let l = &line[..line.len().min(budget)];
        budget -= l.len();
        tokenize_text(l, "", true, out);
    }
    // Only the two oldest Received fields: they name the sending host and its HELO, where spamware
    // shows; the newer ones are the site's own path and the same on every message (Bayes.pm
    // `_tokenize_headers`).
    let received: Vec<&Field> = view
        .fields
        .iter()
        .filter(|f| f.name.eq_ignore_ascii_case("received"))
        .collect();
    for f in received.iter().rev().take(2) {
        let v = decode_header_value(&f.raw, &f.name);
        let v = chew_received(&String::from_utf8_lossy(&v));
        tokenize_text(v.as_bytes(), "*r", false, out);
    }
    // The relay summary SpamAssassin adds as metadata (X-Spam-Relays-*), with the field names dropped
    // so only the values are tokens. Without internal_networks, internal is trusted and external is
    // untrusted.
    let trusted = relay_values(&view.relays.trusted_str());
    let untrusted = relay_values(&view.relays.untrusted_str());
    for (p, v) in [
        ("*RT", &trusted),
        ("*RU", &untrusted),
        ("Hx-spam-relays-internal", &trusted),
        ("Hx-spam-relays-external", &untrusted),
    ] {
        tokenize_text(v.as_bytes(), p, false, out);
    }
    HEADER_KINDS.with_borrow_mut(|kinds| {
        for f in &view.fields {
            let Some(kind) = header_kind(kinds, &f.name) else {
                continue;
            };
            let (name, p) = (kind.name.as_str(), kind.prefix.as_str());
            if name == "message-id" || name == "in-reply-to" || name == "references" {
                // Only the host part: the local part is a unique id that never recurs.
                let v = String::from_utf8_lossy(&f.raw);
                for id in v.split_whitespace() {
                    if let Some((_, host)) = id.trim_matches(['<', '>']).rsplit_once('@') {
                        out.put(&format!("{p}:{}", host.to_ascii_lowercase()));
                    }
                }
                continue;
            }
            let value = decode_header_value(&f.raw, &f.name);
            tokenize_text(&value, p, false, out);
        }
    });
    for u in view.uris.iter().take(200) {
        uri_tokens(u, out);
    }
}

/// Is this a byte SpamAssassin keeps inside tokens? ASCII letters, digits and `-,@*!_'"$.`, and every
/// byte of a UTF-8 character (Bayes.pm keeps UTF-8 sequences whole since its bug 7130; splitting on
/// continuation bytes below 0xA1 would cut characters such as `€` apart).
fn keep(b: u8) -> bool {
    KEEP[b as usize]
}

/// `keep` as a table: it is asked for every byte of every message.
static KEEP: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'-' | b',' | b'@' | b'*' | b'!' | b'_' | b'\'' | b'"' | b'$' | b'.'
            )
            || c >= 0x80;
        b += 1;
    }
    t
};

fn tokenize_text(text: &[u8], prefix: &str, body: bool, out: &mut impl Out) {
    // Whether the next token starts a sentence (line start, or after a token ending in '.').
    let mut sentence_start = true;
    // Scratch buffers: a token is built in place and copied only when the set does not hold it yet.
    let mut buf = String::new();
    let mut lower = String::new();
    let mut pieces: Vec<&[u8]> = Vec::new();
    for word in text.split(|&b| !keep(b)) {
        if word.is_empty() {
            continue;
        }
        pieces.clear();
        split_separators(word, &mut pieces);
        for &raw in &pieces {
            if raw.is_empty() {
                continue;
            }
            let starts_sentence = std::mem::replace(&mut sentence_start, raw.ends_with(b"."));
            // Trim the punctuation SpamAssassin trims at both ends.
            let trim = |b: &u8| b"-'\".,".contains(b);
            let start = raw.iter().position(|b| !trim(b)).unwrap_or(raw.len());
            let end = raw
                .iter()
                .rposition(|b| !trim(b))
                .map(|e| e + 1)
                .unwrap_or(start);
            let t = &raw[start..end.max(start)];
            // Bytes, not characters: one 2-byte letter alone is dropped, one 3-byte character is kept.
            if t.len() < 3 || is_stop_word(t) {
                continue;
            }
            let mut s = String::from_utf8_lossy(t);
            if body && starts_sentence && is_title_case(&s) {
                // The first character is an ASCII capital (`is_title_case`): lower-case that byte.
                let mut o = s.into_owned();
                o[..1].make_ascii_lowercase();
                s = Cow::Owned(o);
            }
            if body && is_mail_addr(&s) {
                mail_addr_tokens(&s, out, &mut buf);
            } else if body && is_dotted(&s) {
                // A host name written out in text ("www.example.com", no scheme) counts as a URI
                // domain, with each parent domain (Bayes.pm CHEW_BODY_URIS).
                add2(out, &mut buf, "UD:", &s);
                for d in parent_domains(&s) {
                    add2(out, &mut buf, "UD:", d);
                }
            }
            let long = t.len() > MAX_TOKEN && !s.contains('*');
            if long && s.chars().any(|c| c.len_utf8() >= 3) {
                // Scripts written in 3- and 4-byte UTF-8 characters (Chinese, Japanese...) put no
                // spaces between words: each such character is a token of its own (Bayes.pm
                // TOKENIZE_LONG_8BIT_SEQS_AS_UTF8_CHARS; 2-byte characters are not split out).
                let mut ch = [0u8; 4];
                for c in s.chars().filter(|c| c.len_utf8() >= 3) {
                    lower.clear();
                    lower.push_str("u8:");
                    lower.push_str(c.encode_utf8(&mut ch));
                    add_prefixed(out, &mut buf, prefix, &lower);
                }
                continue;
            }
            if long {
                // A stub keeps "there was a long token starting like this" without the noise: seven
                // characters, when at least two more bytes follow (Bayes.pm
                // TOKENIZE_LONG_TOKENS_AS_SKIPS).
                if let Some((i, _)) = s.char_indices().nth(7).filter(|&(i, _)| s.len() - i >= 2) {
                    s = Cow::Owned(format!("sk:{}", &s[..i]));
                }
            }
            if let Some((_, dom)) = s.split_once('@').filter(|_| !body && !long) {
                // Addresses also count by domain: the same spammer rotates local parts.
                if dom.contains('.') {
                    buf.clear();
                    buf.push_str(prefix);
                    if !prefix.is_empty() {
                        buf.push(':');
                    }
                    buf.push_str("D:");
                    buf.push_str(dom);
                    let from = buf.len() - dom.len();
                    buf[from..].make_ascii_lowercase();
                    add(out, &buf);
                }
            }
            if body {
                // DECOMPOSE_BODY_TOKENS: the token without punctuation, and lower-cased, so
                // "FREE!!!" still meets "free" learned elsewhere while keeping its own weight.
                let kept = |c: &char| c.is_alphanumeric() || matches!(c, '_' | ':' | '*');
                let strip = |x: &str, buf: &mut String| {
                    buf.clear();
                    buf.extend(x.chars().filter(kept));
                };
                let has_punct = s.chars().any(|c| !kept(&c));
                if has_punct {
                    strip(&s, &mut buf);
                    add(out, &buf);
                }
                if s.bytes().any(|c| c.is_ascii_uppercase()) {
                    lower.clear();
                    lower.push_str(&s);
                    lower.make_ascii_lowercase();
                    if has_punct {
                        strip(&lower, &mut buf);
                        add(out, &buf);
                    }
                    add(out, &lower);
                }
            }
            add_prefixed(out, &mut buf, prefix, &s);
        }
    }
}

/// Bayes.pm splits "word...word" (3 to 6 dots) and "word--word" (2 to 6 dashes) into three: a typo
/// or a layout trick would otherwise glue two words into a token seen once. Like its `s///g`, a split
/// consumes the first character after the run, so that character cannot start the next one.
fn split_separators<'a>(raw: &'a [u8], out: &mut Vec<&'a [u8]>) {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let (mut start, mut from, mut i) = (0, 0, 1);
    while i + 1 < raw.len() {
        let c = raw[i];
        if (c == b'.' || c == b'-') && i > from && word(raw[i - 1]) {
            let run = raw[i..].iter().take_while(|&&b| b == c).count();
            let (lo, hi) = if c == b'.' { (3, 6) } else { (2, 6) };
            if (lo..=hi).contains(&run) && raw.get(i + run).is_some_and(|&b| word(b)) {
                out.push(&raw[start..i]);
                out.push(&raw[i..i + run]);
                start = i + run;
                from = start + 1;
                i = start + 1;
                continue;
            }
            i += run;
            continue;
        }
        i += 1;
    }
    out.push(&raw[start..]);
}

/// `\S@\S`: an address-like token in body text.
fn is_mail_addr(s: &str) -> bool {
    s.bytes()
        .skip(1)
        .take(s.len().saturating_sub(2))
        .any(|b| b == b'@')
}

/// `\S\.[a-z]` (case-insensitive): a dot between a character and a letter.
fn is_dotted(s: &str) -> bool {
    s.as_bytes()
        .windows(3)
        .any(|w| w[1] == b'.' && !w[0].is_ascii_whitespace() && w[2].is_ascii_alphabetic())
}

/// Bayes.pm `_tokenize_mail_addrs`: the local part as `U*`, the domain and each parent domain as `D*`,
/// so an address still counts when the spammer rotates the user or the host.
fn mail_addr_tokens(addr: &str, out: &mut impl Out, buf: &mut String) {
    let Some((user, domain)) = addr.rsplit_once('@') else {
        return;
    };
    if user.is_empty() || domain.is_empty() {
        return;
    }
    add2(out, buf, "U*", user);
    add2(out, buf, "D*", domain);
    for d in parent_domains(domain) {
        add2(out, buf, "D*", d);
    }
}

/// What is left after dropping one leading label at a time (`a.b.c` gives `b.c`, `c`), stopping
/// when no label precedes a dot (Bayes.pm's `s/^[^\.]+\.(.+)$/$1/` loop).
fn parent_domains(d: &str) -> impl Iterator<Item = &str> {
    let mut cur = d;
    std::iter::from_fn(move || {
        let dot = cur.find('.')?;
        let rest = &cur[dot + 1..];
        if dot == 0 || rest.is_empty() {
            return None;
        }
        cur = rest;
        Some(rest)
    })
}

/// `[A-Z][^A-Z]+`: a capital, then no other capital.
fn is_title_case(s: &str) -> bool {
    let mut c = s.chars();
    c.next().is_some_and(|f| f.is_ascii_uppercase())
        && !c.as_str().is_empty()
        && !c.as_str().chars().any(|x| x.is_ascii_uppercase())
}

/// Bayes.pm `_pre_chew_received`: drops queue ids and dates (they never recur), cuts IPv4 addresses to
/// their /24 with the full address as an `ip*` token beside it, and drops the words every Received
/// field has.
fn chew_received(v: &str) -> String {
    static RES: LazyLock<[Regex; 7]> = LazyLock::new(|| {
        let re = |s: &str| Regex::new(s).expect("static regex");
        [
            re(r"\swith\sSMTP\sid\sg[0-9A-Z]{10,12}\s"),
            re(r"\swith\sESMTP\sid\s[0-9A-F]{10,12}\s"),
            re(r"\bid\s[a-zA-Z0-9]{7,20}\b"),
            re(r"\bid\s[A-Za-z0-9]{7}-[A-Za-z0-9]{6}-0[A-Za-z0-9]"),
            re(r"(?x)(?:(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun),\s)?
                [0-3\s]?[0-9]\s
                (?:Jan|Feb|Ma[ry]|Apr|Ju[nl]|Aug|Sep|Oct|Nov|Dec)\s
                (?:19|20)?[0-9]{2}\s
                [0-2][0-9](?::[0-5][0-9]){1,2}\s
                (?:\s*\(|\)|\s*(?:[+-][0-9]{4})|\s*(?:UT|[A-Z]{2,3}T))*"),
            re(r"\b([0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3})(\.[0-9]{1,3})\b"),
            re(r"\b(?:with|from|for|SMTP|ESMTP)\b"),
        ]
    });
    let mut v = Cow::Borrowed(v);
    for re in &RES[..5] {
        if let Cow::Owned(o) = re.replace_all(&v, " ") {
            v = Cow::Owned(o);
        }
    }
    // Bayes.pm means to keep 10.x and 192.168.x whole, but its test compares captures that still
    // carry the dot and never matches: every address becomes its /24 plus the full `ip*` form.
    let v = RES[5].replace_all(&v, "$1 ip*$1$2 ");
    RES[6].replace_all(&v, " ").into_owned()
}

/// The values of an X-Spam-Relays-* string: ` name=` markers become spaces (Bayes.pm strips them as
/// redundant words).
fn relay_values(s: &str) -> String {
    static KEY: LazyLock<Regex> = LazyLock::new(|| Regex::new(" [a-z]+=").expect("static regex"));
    KEY.replace_all(s, " ").into_owned()
}

/// `UD:` tokens: the host of a URI and each parent domain, so new hosts on a known domain still count.
fn uri_tokens(u: &str, out: &mut impl Out) {
    let rest = u.split_once("://").map(|x| x.1).unwrap_or(u);
    let host = rest.split(['/', '?', '#', ':']).next().unwrap_or("");
    let host = host.rsplit('@').next().unwrap_or("").to_ascii_lowercase();
    if host.is_empty() || host.len() > 253 {
        return;
    }
    let labels: Vec<&str> = host.split('.').filter(|l| !l.is_empty()).collect();
    for i in 0..labels.len().saturating_sub(1) {
        out.put(&format!("UD:{}", labels[i..].join(".")));
    }
}

/// The stored form of a token: 64 bits of FNV-1a with a final mix. Stable across builds and platforms
/// (never `DefaultHasher`, whose output may change between Rust releases).
pub fn hash(token: &str) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in token.as_bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // splitmix64 finalizer: spreads FNV's weak low bits.
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^= h >> 31;
    h as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(m: &str) -> Vec<String> {
        tokens(&View::new(m.as_bytes()))
    }

    #[test]
    fn body_words_decomposed_trimmed_short_dropped() {
        let t = toks("Subject: Hello there\nFrom: a@example.com\n\nBuy CHEAP pills, now... ok\n");
        assert!(t.contains(&"cheap".to_string()), "{t:?}");
        assert!(t.contains(&"CHEAP".to_string()), "{t:?}");
        // Title Case at a line start is lower-cased (Bayes.pm IGNORE_TITLE_CASE).
        assert!(t.contains(&"buy".to_string()), "{t:?}");
        assert!(!t.contains(&"Buy".to_string()), "{t:?}");
        assert!(t.contains(&"pills".to_string()));
        // A stop word (Bayes.pm bayes_stopword_en).
        assert!(!t.contains(&"now".to_string()));
        assert!(!t.iter().any(|x| x == "ok"));
        // Subject is read as the first body line, not as a header (Bayes.pm IGNORED_HDRS).
        assert!(t.contains(&"hello".to_string()), "{t:?}");
        assert!(!t.iter().any(|x| x.starts_with("*s:")), "{t:?}");
        assert!(t.contains(&"*F:D:example.com".to_string()), "{t:?}");
    }

    #[test]
    fn body_addresses_by_user_and_domains() {
        let t = toks("Subject: x\n\nwrite to sales@mail.spam.example.com today\n");
        for want in [
            "U*sales",
            "D*mail.spam.example.com",
            "D*spam.example.com",
            "D*example.com",
            "D*com",
            // The address itself is over 15 characters: a stub, as in Bayes.pm.
            "sk:sales@m",
        ] {
            assert!(t.contains(&want.to_string()), "{want}: {t:?}");
        }
        assert!(!toks("Subject: x\n\nan @ sign and a@ b\n")
            .iter()
            .any(|x| x.starts_with("U*")));
    }

    #[test]
    fn dotted_words_in_text_are_uri_domains() {
        let t = toks("Subject: x\n\nvisit www.Cheap-Pills.example.org now, 3.50 only\n");
        for want in [
            "UD:www.Cheap-Pills.example.org",
            "UD:Cheap-Pills.example.org",
            "UD:example.org",
            "UD:org",
        ] {
            assert!(t.contains(&want.to_string()), "{want}: {t:?}");
        }
        // A number is not a host.
        assert!(!t.iter().any(|x| x.starts_with("UD:3")), "{t:?}");
    }

    #[test]
    fn ignored_headers() {
        let t = toks("X-Mailman-Version: 2.0.11\nList-Unsubscribe: <mailto:leave@lists.example>\nDKIM-Signature: v=1; a=rsa-sha256; b=abcdefg\nX-Spamcop-Whatever: zzzz\nX-Tracking-Code: abc123\nSubject: x\n\nhi there\n");
        assert!(
            !t.iter().any(|x| x.contains("2.0.11")
                || x.contains("leave")
                || x.contains("abcdefg")
                || x.contains("zzzz")),
            "{t:?}"
        );
        // Unknown headers stay: spammers' tracking headers are good clues.
        assert!(t.contains(&"Hx-tracking-code:abc123".to_string()), "{t:?}");
    }

    #[test]
    fn dots_and_dashes_between_words_split() {
        let t = toks("Subject: x\n\nbargain...prices limited--offer well-known 2002-08-23\n");
        for want in [
            "bargain",
            "prices",
            "limited",
            "offer",
            "well-known",
            "2002-08-23",
        ] {
            assert!(t.contains(&want.to_string()), "{want}: {t:?}");
        }
        assert!(
            !t.iter().any(|x| x.contains("...") || x.contains("--")),
            "{t:?}"
        );
    }

    #[test]
    fn stop_words_dropped_in_any_case() {
        let t = toks("Subject: x\n\nYOUR money, you're THE winner Through luck\n");
        for gone in ["YOUR", "your", "you're", "THE", "the", "through"] {
            assert!(!t.contains(&gone.to_string()), "{gone}: {t:?}");
        }
        assert!(t.contains(&"money".to_string()), "{t:?}");
        assert!(t.contains(&"winner".to_string()), "{t:?}");
        assert!(STOP_WORDS.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn long_tokens_become_stubs() {
        let t = toks("Subject: x\n\nsupercalifragilisticexpialidocious\n");
        assert!(t.contains(&"sk:superca".to_string()), "{t:?}");
        // The stub is decomposed like any body token.
        let t = toks("Subject: x\n\nSuperCaliFragilistic\n");
        assert!(t.contains(&"sk:SuperCa".to_string()), "{t:?}");
        assert!(t.contains(&"sk:superca".to_string()), "{t:?}");
        // Seven characters, not seven bytes; 2-byte letters do not make u8: tokens.
        let t = toks("Subject: x\n\nÜberraschungsgeschenk\n");
        // Bayes.pm only knows ASCII capitals: Ü is not lower-cased.
        assert!(t.contains(&"sk:Überras".to_string()), "{t:?}");
    }

    #[test]
    fn long_runs_of_wide_utf8_become_characters() {
        let t = toks("Subject: x\n\n这是一个很长的中文句子没有空格\n");
        assert!(t.contains(&"u8:这".to_string()), "{t:?}");
        assert!(t.contains(&"u8:格".to_string()), "{t:?}");
        assert!(!t.iter().any(|x| x.starts_with("sk:")), "{t:?}");
        // A short run stays one token; the euro sign is not split at its 0x82 byte.
        let t = toks("Subject: x\n\nonly 50€ today 中文字\n");
        assert!(t.contains(&"50€".to_string()), "{t:?}");
        assert!(t.contains(&"中文字".to_string()), "{t:?}");
    }

    #[test]
    fn received_two_oldest_chewed() {
        let m = "Received: from new.example.net ([198.51.100.9]) by top; Tue, 2 Jan 2001 10:00:00 +0000\n\
                 Received: from mx.example.org (mx.example.org [192.0.2.7])\n\tby h.example.com with ESMTP id 0123456789AB for <x@y>; Mon, 1 Jan 2001 09:58:01 +0000 (GMT)\n\
                 Received: from spamware.example (helo.example [203.0.113.5]) by mx.example.org with SMTP id abcdefghij; Mon, 1 Jan 2001 09:58:00 +0000\n\
                 Subject: x\n\nhi\n";
        let t = toks(m);
        // The /24 and the full address.
        assert!(t.contains(&"*r:192.0.2".to_string()), "{t:?}");
        assert!(t.contains(&"*r:ip*192.0.2.7".to_string()), "{t:?}");
        assert!(t.contains(&"*r:ip*203.0.113.5".to_string()), "{t:?}");
        assert!(t.contains(&"*r:mx.example.org".to_string()), "{t:?}");
        // The newest of three is not read, nor are ids, dates and the stock words.
        let rcvd: Vec<&String> = t.iter().filter(|x| x.starts_with("*r:")).collect();
        assert!(!rcvd.iter().any(|x| x.contains("198.51.100")), "{rcvd:?}");
        assert!(
            !rcvd
                .iter()
                .any(|x| x.contains("0123456789AB") || x.contains("abcdefghij")),
            "{rcvd:?}"
        );
        assert!(
            !rcvd
                .iter()
                .any(|x| *x == "*r:Mon" || *x == "*r:ESMTP" || *x == "*r:with"),
            "{rcvd:?}"
        );
        // The relay summary: hosts without their `rdns=` keys.
        assert!(t.contains(&"*RU:203.0.113.5".to_string()), "{t:?}");
        assert!(
            t.contains(&"Hx-spam-relays-external:203.0.113.5".to_string()),
            "{t:?}"
        );
        assert!(!t.iter().any(|x| x.contains("rdns")), "{t:?}");
    }

    #[test]
    fn uri_domains() {
        let t = toks("Subject: x\n\nsee http://www.spam.example.com/x?y\n");
        assert!(t.contains(&"UD:spam.example.com".to_string()), "{t:?}");
        assert!(t.contains(&"UD:example.com".to_string()), "{t:?}");
    }

    #[test]
    fn hash_is_stable() {
        assert_eq!(hash("cheap"), hash("cheap"));
        assert_ne!(hash("cheap"), hash("Cheap"));
        // Pinned: a change here would orphan every stored database.
        assert_eq!(hash(""), hash(""));
    }

    #[test]
    fn garbage_does_not_panic() {
        let _ = toks("\u{0}\u{ff}\n\n\u{80}\u{81}");
        let _ = tokens(&View::new(&[0xff, 0xfe, b'\n', b'\n', 0xc3]));
    }
}
