//! HTML to text as SpamAssassin renders it for body rules (Mail::SpamAssassin::HTML on top of
//! HTML::Parser), and the facts its HTML evals read: tag balance, element and bad-tag ratios,
//! obfuscation between text pieces, font sizes and colours (invisible text), image area, comments,
//! titles and anchor texts.
//!
//! The tokenizer follows HTML::Parser's default mode: `<` starts markup only before a letter, `/`, `!`
//! or `?`; the content of script, style, xmp, iframe, title, textarea and plaintext is literal (no tags,
//! no entity decoding); comments end at the first `-->`. The renderer keeps the text as pieces, each
//! marked whitespace (from a tag) or invisible (low contrast, tiny, hidden), because SpamAssassin's
//! spacing rules look at the previous piece: that is what makes our body text and HTML_* hits match.

use super::css;
use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

/// One rendered HTML part and what SpamAssassin's HTML evals read from it.
#[derive(Debug, Clone, Default)]
pub struct Rendered {
    /// All rendered text, visible and invisible, before whitespace is collapsed across parts.
    pub text: String,
    /// The invisible pieces only (kept apart for Bayes, as SpamAssassin does).
    pub invisible: String,
    pub uris: Vec<String>,
    /// Open minus close count per tag name, never below 0 (`inside` in HTML.pm); a tag that was ever
    /// seen has an entry.
    pub inside: HashMap<String, i64>,
    pub tags: usize,
    pub elements: usize,
    pub tags_seen: usize,
    pub elements_seen: usize,
    pub closed_extra: usize,
    /// Text pieces glued to the previous one mid-word (`obfu<b></b>scated`).
    pub obfuscation: usize,
    pub backhair: HashSet<(usize, usize)>,
    pub max_size: i64,
    pub min_size: i64,
    pub image_area: u64,
    pub images: usize,
    /// Characters of HTML source.
    pub length: usize,
    /// Rendered characters that are not whitespace.
    pub non_space_len: usize,
    pub comments: Vec<String>,
    pub titles: Vec<String>,
    pub anchors: Vec<String>,
    pub scripts: Vec<String>,
    pub charsets: Vec<String>,
    pub font_low_contrast: bool,
    pub font_invalid_color: bool,
    pub font_face_bad: bool,
    pub form_action_mailto: bool,
    pub embeds: bool,
    /// An iframe with a `src` (check_iframe_src).
    pub iframe_src: bool,
}

impl Rendered {
    pub fn has_tag(&self, t: &str) -> bool {
        self.inside.contains_key(t)
    }

    /// The titles joined, for our own rules.
    pub fn title(&self) -> String {
        self.titles.concat()
    }

    /// A named numeric result, as `html_range`/`html_eval` read `$html->{NAME}`; None when HTML.pm
    /// would leave it undefined (a ratio whose counts never started).
    pub fn value(&self, name: &str) -> Option<f64> {
        let ratio = |a: usize, b: usize| (b > 0).then(|| a as f64 / b as f64);
        match name {
            "length" => Some(self.length as f64),
            "max_size" => Some(self.max_size as f64),
            "min_size" => Some(self.min_size as f64),
            "image_area" => Some(self.image_area as f64),
            "non_space_len" => Some(self.non_space_len as f64),
            "html_length" => Some(self.text.chars().count() as f64),
            "closed_extra_ratio" => ratio(self.closed_extra, self.tags),
            "bad_tag_ratio" if self.elements > 0 => {
                ratio(self.tags.saturating_sub(self.elements), self.tags)
            }
            "non_element_ratio" if self.elements_seen > 0 => ratio(
                self.tags_seen.saturating_sub(self.elements_seen),
                self.tags_seen,
            ),
            "obfuscation_ratio" if self.obfuscation > 0 => ratio(self.obfuscation, self.tags),
            "backhair_count" if !self.backhair.is_empty() => Some(self.backhair.len() as f64),
            _ => None,
        }
    }

    /// `html_test(NAME)`: the boolean results.
    pub fn test(&self, name: &str) -> bool {
        match name {
            "html" => true,
            "font_low_contrast" => self.font_low_contrast,
            "font_invalid_color" => self.font_invalid_color,
            "font_face_bad" => self.font_face_bad,
            "form_action_mailto" => self.form_action_mailto,
            "embeds" => self.embeds,
            _ => self.value(name).is_some_and(|v| v != 0.0),
        }
    }

    /// `html_text_match(NAME, re)` reads these lists.
    pub fn texts(&self, name: &str) -> &[String] {
        match name {
            "comment" => &self.comments,
            "title" => &self.titles,
            "anchor" => &self.anchors,
            "script" => &self.scripts,
            _ => &[],
        }
    }
}

/// HTML 4 elements (and the few extra SpamAssassin accepts); anything else counts as a bad tag.
const ELEMENTS: &[&str] = &[
    "a",
    "abbr",
    "acronym",
    "address",
    "applet",
    "area",
    "b",
    "base",
    "basefont",
    "bdo",
    "big",
    "blockquote",
    "body",
    "br",
    "button",
    "caption",
    "center",
    "cite",
    "code",
    "col",
    "colgroup",
    "dd",
    "del",
    "dfn",
    "dir",
    "div",
    "dl",
    "dt",
    "em",
    "fieldset",
    "font",
    "form",
    "frame",
    "frameset",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "head",
    "hr",
    "html",
    "i",
    "iframe",
    "img",
    "input",
    "ins",
    "isindex",
    "kbd",
    "label",
    "legend",
    "li",
    "link",
    "map",
    "menu",
    "meta",
    "nobr",
    "noframes",
    "noscript",
    "object",
    "ol",
    "optgroup",
    "option",
    "p",
    "param",
    "pre",
    "q",
    "s",
    "samp",
    "script",
    "select",
    "small",
    "span",
    "strike",
    "strong",
    "style",
    "sub",
    "sup",
    "table",
    "tbody",
    "td",
    "textarea",
    "tfoot",
    "th",
    "thead",
    "title",
    "tr",
    "tt",
    "u",
    "ul",
    "var",
    "x-sigsep",
    "x-tab",
];
/// Tags that are not elements but still render (old tricks).
const TRICKS: &[&str] = &["bgsound", "embed", "listing", "plaintext", "xmp"];
const TEXT_STYLE: &[&str] = &[
    "body", "font", "table", "tr", "th", "td", "big", "small", "basefont", "span", "p", "div", "a",
];
const URI_TAGS: &[&str] = &[
    "body", "table", "tr", "td", "a", "area", "link", "img", "frame", "iframe", "embed", "script",
    "form", "base", "bgsound", "meta",
];
/// Elements whose content HTML::Parser passes through literally.
const LITERAL: &[&str] = &[
    "script",
    "style",
    "xmp",
    "iframe",
    "title",
    "textarea",
    "plaintext",
];

/// Attributes that change the text style, per tag (the rest are ignored for visibility).
fn style_attr(tag: &str, name: &str) -> bool {
    match tag {
        "basefont" | "font" => matches!(name, "color" | "face" | "size"),
        "body" => matches!(
            name,
            "text" | "bgcolor" | "link" | "alink" | "vlink" | "background"
        ),
        "table" | "td" | "th" | "tr" => matches!(name, "bgcolor" | "style"),
        "span" | "p" | "div" | "a" => name == "style",
        _ => false,
    }
}

#[derive(Debug, Clone)]
struct Style {
    tag: String,
    fg: String,
    bg: String,
    size: i64,
    display: Option<String>,
    visibility: Option<String>,
}

#[derive(Debug)]
struct Piece {
    text: String,
    whitespace: bool,
    invisible: bool,
}

struct Renderer {
    r: Rendered,
    pieces: Vec<Piece>,
    styles: Vec<Style>,
    basefont: i64,
}

pub fn render(html: &str) -> Rendered {
    // HTML.pm's parse(): count the source, then turn &nbsp; into blanks, `<br/>` into `<br>` and curly
    // double quotes into straight ones before HTML::Parser sees the text.
    let length = html.chars().count();
    let src = preprocess(html);
    let mut p = Renderer {
        r: Rendered {
            length,
            max_size: 3,
            min_size: 3,
            ..Default::default()
        },
        pieces: Vec::new(),
        styles: vec![Style {
            tag: "default".into(),
            fg: "#000000".into(),
            bg: "#ffffff".into(),
            size: 3,
            display: None,
            visibility: None,
        }],
        basefont: 3,
    };
    p.parse(&src);
    // An unclosed style or script would swallow the rest: HTML.pm closes them explicitly.
    for t in ["style", "script"] {
        let open = p.r.inside.get(t).copied().unwrap_or(0);
        for _ in 0..open {
            p.tag(t, &[], false);
        }
    }
    p.finish()
}

fn preprocess(html: &str) -> String {
    let s = html.replace("&nbsp;", " ");
    static SELF_CLOSING: OnceLock<regex::Regex> = OnceLock::new();
    let re = SELF_CLOSING.get_or_init(|| regex::Regex::new(r"<(\w+)\s*/>").expect("static regex"));
    let s = re.replace_all(&s, "<$1>");
    s.replace(['\u{201c}', '\u{201d}'], "\"")
}

fn is_name_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':')
}

/// Case-insensitive search for `</name` followed by a non-name character, from `from`.
fn find_end_tag(b: &[u8], from: usize, name: &str) -> Option<usize> {
    let n = name.as_bytes();
    let mut i = from;
    while let Some(p) = memchr::memmem::find(&b[i..], b"</") {
        let at = i + p;
        let after = at + 2;
        if b.len() >= after + n.len()
            && b[after..after + n.len()].eq_ignore_ascii_case(n)
            && b.get(after + n.len()).is_none_or(|&c| !is_name_char(c))
        {
            return Some(at);
        }
        i = at + 2;
    }
    None
}

/// Where a start tag's `>` is, skipping quoted attribute values (an unclosed quote falls back to the
/// first `>`).
fn tag_end(b: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    let mut quote: Option<u8> = None;
    while i < b.len() {
        let c = b[i];
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == b'>' => return Some(i),
            None if (c == b'"' || c == b'\'') && i > 0 && b[i - 1] == b'=' => quote = Some(c),
            None if (c == b'"' || c == b'\'')
                && i > 1
                && b[i - 1].is_ascii_whitespace()
                && b[..i].iter().rev().find(|x| !x.is_ascii_whitespace()) == Some(&b'=') =>
            {
                quote = Some(c)
            }
            None => {}
        }
        i += 1;
    }
    if quote.is_some() {
        return memchr::memchr(b'>', &b[from..]).map(|p| from + p);
    }
    None
}

impl Renderer {
    fn parse(&mut self, src: &str) {
        let b = src.as_bytes();
        let mut i = 0;
        let mut text_start = 0;
        while i < b.len() {
            let Some(lt) = memchr::memchr(b'<', &b[i..]).map(|p| i + p) else {
                break;
            };
            i = lt;
            let next = b.get(i + 1).copied().unwrap_or(0);
            if b[i..].starts_with(b"<!--") {
                let Some(e) = memchr::memmem::find(&b[i + 4..], b"-->").map(|p| i + 4 + p + 3)
                else {
                    i += 1;
                    continue;
                };
                self.text(&src[text_start..i], true);
                self.r.comments.push(src[i..e].to_string());
                i = e;
                text_start = i;
            } else if next == b'!' {
                let Some(gt) = memchr::memchr(b'>', &b[i..]).map(|p| i + p) else {
                    i += 1;
                    continue;
                };
                self.text(&src[text_start..i], true);
                let inner = &src[i..=gt];
                if let Some(cdata) = src[i..].strip_prefix("<![CDATA[") {
                    // A marked CDATA section: its content is text, not decoded.
                    let end = cdata.find("]]>").map(|p| i + 9 + p).unwrap_or(b.len());
                    self.text(&src[i + 9..end], false);
                    i = (end + 3).min(b.len());
                    text_start = i;
                    continue;
                }
                if b.get(i + 2).is_some_and(u8::is_ascii_alphabetic) {
                    self.declaration(inner);
                } else if next == b'!' && b.get(i + 2) != Some(&b'[') {
                    self.r.comments.push(inner.to_string());
                }
                i = gt + 1;
                text_start = i;
            } else if next == b'?' {
                let Some(gt) = memchr::memchr(b'>', &b[i..]).map(|p| i + p) else {
                    i += 1;
                    continue;
                };
                self.text(&src[text_start..i], true);
                i = gt + 1;
                text_start = i;
            } else if next == b'/' && b.get(i + 2).is_some_and(u8::is_ascii_alphabetic) {
                let Some(gt) = memchr::memchr(b'>', &b[i..]).map(|p| i + p) else {
                    i += 1;
                    continue;
                };
                self.text(&src[text_start..i], true);
                let ne = (i + 2..gt).find(|&k| !is_name_char(b[k])).unwrap_or(gt);
                let name = src[i + 2..ne].to_ascii_lowercase();
                self.tag(&name, &[], false);
                i = gt + 1;
                text_start = i;
            } else if next.is_ascii_alphabetic() {
                let Some(gt) = tag_end(b, i + 1) else {
                    i += 1;
                    continue;
                };
                self.text(&src[text_start..i], true);
                let ne = (i + 1..gt).find(|&k| !is_name_char(b[k])).unwrap_or(gt);
                let name = src[i + 1..ne].to_ascii_lowercase();
                let attrs = parse_attrs(&src[ne..gt]);
                self.tag(&name, &attrs, true);
                i = gt + 1;
                text_start = i;
                if LITERAL.contains(&name.as_str()) {
                    let end = if name == "plaintext" {
                        None
                    } else {
                        find_end_tag(b, i, &name)
                    };
                    let end = end.unwrap_or(b.len());
                    self.text(&src[i..end], false);
                    i = end;
                    text_start = i;
                }
            } else {
                i += 1;
            }
        }
        if text_start < b.len() {
            self.text(&src[text_start..], true);
        }
    }

    fn declaration(&mut self, text: &str) {
        if text.len() >= 9 && text[..9].eq_ignore_ascii_case("<!doctype") {
            self.r.elements += 1;
            self.r.tags += 1;
            self.r.inside.insert("!doctype".into(), 0);
        }
    }

    fn inside(&self, t: &str) -> bool {
        self.r.inside.get(t).is_some_and(|&n| n > 0)
    }

    fn tag(&mut self, tag: &str, attrs: &[(String, String)], open: bool) {
        static NS: OnceLock<regex::Regex> = OnceLock::new();
        let ns =
            NS.get_or_init(|| regex::Regex::new(r"^(?:o|st\d):[\w-]+/?$").expect("static regex"));
        let maybe_namespace = ns.is_match(tag);
        let seen = self.r.inside.contains_key(tag);
        if ELEMENTS.contains(&tag) || maybe_namespace {
            self.r.elements += 1;
            if !seen {
                self.r.elements_seen += 1;
            }
        }
        self.r.tags += 1;
        if !seen {
            self.r.tags_seen += 1;
        }
        let n = self.r.inside.entry(tag.to_string()).or_insert(0);
        *n += if open { 1 } else { -1 };
        if *n < 0 {
            *n = 0;
            self.r.closed_extra += 1;
        }
        if maybe_namespace || !(ELEMENTS.contains(&tag) || TRICKS.contains(&tag)) {
            return;
        }
        if TEXT_STYLE.contains(&tag) {
            self.text_style(tag, attrs, open);
        }
        self.whitespace(tag);
        if open {
            if URI_TAGS.contains(&tag) {
                self.uri(tag, attrs);
            }
            self.tests(tag, attrs);
        }
    }

    fn whitespace(&mut self, tag: &str) {
        let ws = match tag {
            "br" | "div" => "\n",
            "li" | "th" | "td" | "dt" | "dd" | "embed" | "h1" | "h2" | "h3" | "h4" | "h5"
            | "h6" => " ",
            "p" | "hr" | "blockquote" | "pre" | "listing" | "plaintext" | "xmp" | "title" => "\n\n",
            _ => return,
        };
        if let Some(last) = self.pieces.last_mut() {
            if !last.whitespace && !last.invisible && last.text.ends_with(' ') {
                last.text.pop();
            }
        }
        self.pieces.push(Piece {
            text: ws.to_string(),
            whitespace: true,
            invisible: false,
        });
    }

    fn text_style(&mut self, tag: &str, attrs: &[(String, String)], open: bool) {
        let tag = if tag == "th" { "td" } else { tag };
        if !open {
            if tag != "body" {
                self.close_style(tag);
            }
            return;
        }
        if tag == "basefont" {
            if let Some(n) = attr(attrs, "size").and_then(leading_int) {
                self.basefont = n;
                return;
            }
        }
        if tag == "td" || tag == "tr" {
            self.close_table_style(tag);
        }
        let Some(top) = self.styles.last() else {
            return;
        };
        let mut new = top.clone();
        new.tag = tag.to_string();
        if tag == "big" || tag == "small" {
            new.size += if tag == "big" { 1 } else { -1 };
            self.styles.push(new);
            return;
        }
        for (name, value) in attrs {
            if !style_attr(tag, name) {
                continue;
            }
            match name.as_str() {
                "text" | "color" => new.fg = css::name_to_rgb(value),
                "size" => {
                    let t = value.trim_start();
                    if t.starts_with(['+', '-']) {
                        if let Some(d) = leading_int(t) {
                            new.size = self.basefont + d;
                        }
                    } else if let Some(n) = leading_int(t) {
                        new.size = n;
                    }
                }
                "style" => {
                    let d = css::parse_style(value);
                    if let Some(fg) = d.fg {
                        new.fg = fg;
                    }
                    if let Some(bg) = d.bg {
                        new.bg = bg;
                    }
                    if d.display.is_some() {
                        new.display = d.display;
                    }
                    if d.visibility.is_some() {
                        new.visibility = d.visibility;
                    }
                    if new.bg == "transparent" {
                        new.bg = top.bg.clone();
                    }
                    if new.fg == "transparent" {
                        new.fg = new.bg.clone();
                    }
                }
                // HTML.pm converts bgcolor= but never applies it to the style: kept that way.
                _ => {}
            }
            if new.size > self.r.max_size {
                self.r.max_size = new.size;
            } else if new.size < self.r.min_size {
                self.r.min_size = new.size;
            }
        }
        self.styles.push(new);
    }

    fn close_style(&mut self, tag: &str) {
        if !self.styles.iter().any(|s| s.tag == tag) {
            return;
        }
        while self.styles.len() > 1 {
            if self.styles.pop().is_some_and(|s| s.tag == tag) {
                break;
            }
        }
    }

    fn close_table_style(&mut self, tag: &str) {
        if !self.styles.iter().any(|s| s.tag == tag) {
            return;
        }
        while self.styles.len() > 1 {
            let top = self.styles.last().map(|s| s.tag.as_str()).unwrap_or("");
            let pop = match tag {
                "td" => matches!(top, "font" | "td"),
                _ => matches!(top, "font" | "td" | "tr"),
            };
            if !pop {
                break;
            }
            self.styles.pop();
        }
    }

    fn uri(&mut self, tag: &str, attrs: &[(String, String)]) {
        let mut push = |u: &str| {
            let u = canon_uri(u);
            if !u.is_empty() {
                self.r.uris.push(u);
            }
        };
        match tag {
            "body" | "table" | "tr" | "td" => {
                if let Some(v) = attr(attrs, "background") {
                    push(v);
                }
            }
            "a" | "area" | "link" => {
                if let Some(v) = attr(attrs, "href") {
                    push(&v.replace('\u{feff}', ""));
                }
                if let Some(v) = attr(attrs, "data-saferedirecturl") {
                    push(v);
                }
            }
            "img" | "frame" | "iframe" | "embed" | "script" | "bgsound" => {
                if let Some(v) = attr(attrs, "src") {
                    push(v);
                    if tag == "iframe" && !canon_uri(v).is_empty() {
                        self.r.iframe_src = true;
                    }
                }
            }
            "form" => {
                if let Some(v) = attr(attrs, "action") {
                    push(v);
                }
            }
            "base" => {
                if let Some(v) = attr(attrs, "href") {
                    push(v);
                }
            }
            "meta" => {
                let refresh = attr(attrs, "http-equiv")
                    .is_some_and(|h| h.to_ascii_lowercase().contains("refresh"));
                if let (true, Some(c)) = (refresh, attr(attrs, "content")) {
                    let lc = c.to_ascii_lowercase();
                    if let Some(p) = lc.find("url") {
                        let rest = c[p + 3..].trim_start();
                        if let Some(u) = rest.strip_prefix('=') {
                            let u = u.trim_start();
                            let u = u.split(';').next().unwrap_or("").trim_end();
                            push(u);
                        }
                    }
                }
            }
            _ => {}
        }
    }

    fn tests(&mut self, tag: &str, attrs: &[(String, String)]) {
        static FACE: OnceLock<regex::Regex> = OnceLock::new();
        match tag {
            "font" => {
                if let Some(face) = attr(attrs, "face") {
                    let re = FACE.get_or_init(|| {
                        regex::Regex::new(
                            r#"(?i)^\s*["'.]?[a-z ][a-z -]*[a-z]\d?["']?(?:,\s*["']?[a-z][a-z -]*[a-z]\d?["']?)*;?$"#,
                        )
                        .expect("static regex")
                    });
                    if !re.is_match(face) {
                        self.r.font_face_bad = true;
                    }
                }
            }
            "img" => {
                self.r.images += 1;
                if self.inside("a") {
                    if let Some(a) = self.r.anchors.last_mut() {
                        a.push_str("<img>\n");
                    }
                }
                if let (Some(w), Some(h)) = (attr(attrs, "width"), attr(attrs, "height")) {
                    let dim = |v: &str, pct: u64| -> u64 {
                        let (digits, is_pct) = match v.strip_suffix('%') {
                            Some(d) => (d, true),
                            None => (v, false),
                        };
                        let n = if !digits.is_empty() && digits.bytes().all(|c| c.is_ascii_digit())
                        {
                            digits
                                .parse::<u64>()
                                .unwrap_or(u64::MAX)
                                .saturating_mul(if is_pct { pct } else { 1 })
                        } else {
                            0
                        };
                        if n == 0 {
                            200
                        } else {
                            n
                        }
                    };
                    let area = dim(w, 8).saturating_mul(dim(h, 6));
                    self.r.image_area = self.r.image_area.saturating_add(area);
                }
            }
            "form"
                if attr(attrs, "action")
                    .is_some_and(|a| a.to_ascii_lowercase().contains("mailto:")) =>
            {
                self.r.form_action_mailto = true;
            }
            "object" | "embed" => self.r.embeds = true,
            "a" => self.r.anchors.push(String::new()),
            "title" => self.r.titles.push(String::new()),
            "meta" => {
                let ct = attr(attrs, "http-equiv")
                    .is_some_and(|h| h.to_ascii_lowercase().contains("content-type"));
                if let (true, Some(c)) = (ct, attr(attrs, "content")) {
                    static CS: OnceLock<regex::Regex> = OnceLock::new();
                    let re = CS.get_or_init(|| {
                        regex::Regex::new(r#"(?i)\bcharset\s*=\s*["']?([^"']+)"#)
                            .expect("static regex")
                    });
                    if let Some(m) = re.captures(c).and_then(|c| c.get(1)) {
                        self.r.charsets.push(m.as_str().to_string());
                    }
                }
            }
            _ => {}
        }
    }

    /// One text event: `raw` as it stands in the source, decoded unless it is literal content.
    fn text(&mut self, raw: &str, decode: bool) {
        if raw.is_empty() {
            return;
        }
        let decoded;
        let text: &str = if decode {
            decoded = decode_entities(raw);
            &decoded
        } else {
            raw
        };
        if self.inside("script") {
            self.r.scripts.push(text.to_string());
            return;
        }
        if self.inside("style") {
            return;
        }
        if self.inside("a") {
            if let Some(a) = self.r.anchors.last_mut() {
                a.push_str(text);
            }
        }
        if self.inside("title") {
            if let Some(t) = self.r.titles.last_mut() {
                t.push_str(text);
            }
        }
        let invisible = text.chars().any(|c| !is_html_space(c)) && self.font_invisible();
        if let Some(last) = self.pieces.last() {
            let first = text.chars().next();
            let end = last.text.chars().next_back();
            if first.is_some_and(is_word) && end.is_some_and(is_word) {
                self.r.obfuscation += 1;
            }
            let tail = trailing_word(&last.text);
            let head = leading_word(text);
            if let (Some(t), Some(h)) = (tail, head) {
                self.r.backhair.insert((t, h));
            }
        }
        let mut t = collapse_html_space(text);
        if !invisible && self.pieces.last().is_some_and(|p| p.whitespace) && t.starts_with(' ') {
            t.remove(0);
        }
        self.pieces.push(Piece {
            text: t,
            whitespace: false,
            invisible,
        });
    }

    /// HTML.pm's html_font_invisible: low contrast, an invalid colour, size 1 or less, display:none or
    /// visibility:hidden make text invisible (and set the font_* results on the way).
    fn font_invisible(&mut self) -> bool {
        let Some(s) = self.styles.last() else {
            return false;
        };
        let last6 = |c: &str| -> String {
            let n = c.chars().count();
            c.chars().skip(n.saturating_sub(6)).collect()
        };
        if last6(&s.fg) == last6(&s.bg) {
            self.r.font_low_contrast = true;
            return true;
        }
        if let (Some(a), Some(b)) = (rgb(&s.fg), rgb(&s.bg)) {
            let d = |i: usize, w: f64| (w * (a[i] - b[i])).powi(2);
            let distance = (d(0, 0.2126) + d(1, 0.7152) + d(2, 0.0722)).sqrt();
            if distance < 12.0 {
                self.r.font_low_contrast = true;
                return true;
            }
        }
        if s.fg == "invalid" || s.bg == "invalid" {
            self.r.font_invalid_color = true;
            return true;
        }
        s.size <= 1
            || s.display
                .as_deref()
                .is_some_and(|d| d.eq_ignore_ascii_case("none"))
            || s.visibility
                .as_deref()
                .is_some_and(|v| v.eq_ignore_ascii_case("hidden"))
    }

    fn finish(mut self) -> Rendered {
        let mut text = String::new();
        let mut invisible = String::new();
        for p in &self.pieces {
            text.push_str(&p.text);
            if p.invisible {
                invisible.push_str(&p.text);
            }
        }
        let chars = text.chars().count();
        let spaces = text.chars().filter(|c| c.is_whitespace()).count();
        self.r.non_space_len = chars - spaces;
        self.r.text = text;
        self.r.invisible = invisible;
        self.r
    }
}

fn attr<'a>(attrs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    attrs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// `^\s*([+-]?\d+)`.
fn leading_int(v: &str) -> Option<i64> {
    let t = v.trim_start();
    let (sign, digits) = match t.as_bytes().first() {
        Some(b'+') => (1, &t[1..]),
        Some(b'-') => (-1, &t[1..]),
        _ => (1, t),
    };
    let end = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    if end == 0 {
        return None;
    }
    digits[..end.min(12)].parse::<i64>().ok().map(|n| sign * n)
}

fn rgb(c: &str) -> Option<[f64; 3]> {
    let h = c.strip_prefix('#').unwrap_or(c);
    if h.len() != 6
        || !h
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return None;
    }
    let v = |i: usize| u8::from_str_radix(&h[i..i + 2], 16).map(f64::from).ok();
    Some([v(0)?, v(2)?, v(4)?])
}

fn canon_uri(u: &str) -> String {
    let t = u.trim_matches(|c: char| c.is_whitespace() || c == '\u{a0}');
    // MAX_URI_LENGTH in SpamAssassin's constants.
    let mut end = t.len().min(8192);
    while !t.is_char_boundary(end) {
        end -= 1;
    }
    t[..end].to_string()
}

/// The blanks HTML.pm collapses in text: ASCII space, tab, CR, LF, FF and VT.
fn is_html_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0c' | '\x0b')
}

fn collapse_html_space(t: &str) -> String {
    let mut out = String::with_capacity(t.len());
    let mut in_space = false;
    for c in t.chars() {
        if is_html_space(c) {
            if !in_space {
                out.push(' ');
            }
            in_space = true;
        } else {
            out.push(c);
            in_space = false;
        }
    }
    out
}

/// HTML.pm's "word" character for obfuscation checks: not whitespace and not ASCII punctuation.
fn is_word(c: char) -> bool {
    !c.is_whitespace() && !c.is_ascii_punctuation()
}

/// Perl's `\w`.
fn is_perl_w(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Length of a 1..7-character word run ending the text, when a word boundary starts it.
fn trailing_word(t: &str) -> Option<usize> {
    let mut n: usize = 0;
    let mut before = None;
    for c in t.chars().rev() {
        if is_word(c) {
            n += 1;
        } else {
            before = Some(c);
            break;
        }
    }
    let first = t.chars().rev().nth(n.saturating_sub(1));
    let boundary = match (before, first) {
        (_, None) => false,
        (None, Some(f)) => is_perl_w(f),
        (Some(b), Some(f)) => is_perl_w(b) != is_perl_w(f),
    };
    ((1..=7).contains(&n) && boundary).then_some(n)
}

/// Length of a 1..7-character word run starting the text, when a word boundary ends it.
fn leading_word(t: &str) -> Option<usize> {
    let mut n: usize = 0;
    let mut after = None;
    for c in t.chars() {
        if is_word(c) {
            n += 1;
        } else {
            after = Some(c);
            break;
        }
    }
    let last = t.chars().nth(n.saturating_sub(1));
    let boundary = match (last, after) {
        (None, _) => false,
        (Some(l), None) => is_perl_w(l),
        (Some(l), Some(a)) => is_perl_w(l) != is_perl_w(a),
    };
    ((1..=7).contains(&n) && boundary).then_some(n)
}

fn parse_attrs(s: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && (b[i].is_ascii_whitespace() || b[i] == b'/') {
            i += 1;
        }
        let ks = i;
        while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b'=' {
            i += 1;
        }
        let key = s[ks..i].to_ascii_lowercase();
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        let value = if i < b.len() && b[i] == b'=' {
            i += 1;
            while i < b.len() && b[i].is_ascii_whitespace() {
                i += 1;
            }
            let val = if i < b.len() && (b[i] == b'"' || b[i] == b'\'') {
                let q = b[i];
                let vs = i + 1;
                let ve = memchr::memchr(q, &b[vs..])
                    .map(|p| vs + p)
                    .unwrap_or(b.len());
                i = (ve + 1).min(b.len());
                &s[vs..ve]
            } else {
                let vs = i;
                while i < b.len() && !b[i].is_ascii_whitespace() {
                    i += 1;
                }
                &s[vs..i]
            };
            decode_entities(val)
        } else {
            // A bare attribute's value is its name (HTML::Parser's default).
            key.clone()
        };
        // HTML::Parser keeps the first of repeated attributes.
        if !key.is_empty() && !out.iter().any(|(k, _)| *k == key) {
            out.push((key, value));
        }
    }
    out
}

/// Named entities decoded in text and attribute values, plus numeric ones (with or without `;`).
pub fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(p) = rest.find('&') {
        out.push_str(&rest[..p]);
        let after = &rest[p + 1..];
        match entity(after) {
            Some((ch, used)) => {
                out.push(ch);
                rest = &after[used..];
            }
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The character an entity (text after `&`) stands for and how many bytes it used.
fn entity(after: &str) -> Option<(char, usize)> {
    let b = after.as_bytes();
    if let Some(num) = after.strip_prefix('#') {
        let (hex, digits) = match num.strip_prefix(['x', 'X']) {
            Some(h) => (true, h),
            None => (false, num),
        };
        let end = digits
            .find(|c: char| {
                !(if hex {
                    c.is_ascii_hexdigit()
                } else {
                    c.is_ascii_digit()
                })
            })
            .unwrap_or(digits.len());
        if end == 0 || end > 8 {
            return None;
        }
        let v = u32::from_str_radix(&digits[..end], if hex { 16 } else { 10 }).ok()?;
        let ch = char::from_u32(v)?;
        let mut used = 1 + usize::from(hex) + end;
        if after.as_bytes().get(used) == Some(&b';') {
            used += 1;
        }
        return Some((ch, used));
    }
    let end = b
        .iter()
        .position(|c| !c.is_ascii_alphanumeric())
        .unwrap_or(b.len());
    if end == 0 || end > 10 {
        return None;
    }
    let ch = match &after[..end] {
        "amp" | "AMP" => '&',
        "lt" | "LT" => '<',
        "gt" | "GT" => '>',
        "quot" | "QUOT" => '"',
        "apos" => '\'',
        "nbsp" => '\u{a0}',
        "copy" => '\u{a9}',
        "reg" => '\u{ae}',
        "trade" => '\u{2122}',
        "euro" => '\u{20ac}',
        "pound" => '\u{a3}',
        "cent" => '\u{a2}',
        "yen" => '\u{a5}',
        "sect" => '\u{a7}',
        "deg" => '\u{b0}',
        "middot" => '\u{b7}',
        "laquo" => '\u{ab}',
        "raquo" => '\u{bb}',
        "iexcl" => '\u{a1}',
        "iquest" => '\u{bf}',
        "mdash" => '\u{2014}',
        "ndash" => '\u{2013}',
        "hellip" => '\u{2026}',
        "bull" => '\u{2022}',
        "lsquo" => '\u{2018}',
        "rsquo" => '\u{2019}',
        "ldquo" => '\u{201c}',
        "rdquo" => '\u{201d}',
        "eacute" => '\u{e9}',
        "egrave" => '\u{e8}',
        "aacute" => '\u{e1}',
        "agrave" => '\u{e0}',
        "oacute" => '\u{f3}',
        "uacute" => '\u{fa}',
        "iacute" => '\u{ed}',
        "ntilde" => '\u{f1}',
        "ouml" => '\u{f6}',
        "uuml" => '\u{fc}',
        "auml" => '\u{e4}',
        "szlig" => '\u{df}',
        "ccedil" => '\u{e7}',
        _ => return None,
    };
    let mut used = end;
    if b.get(used) == Some(&b';') {
        used += 1;
    }
    Some((ch, used))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_text_and_links() {
        let r = render("<html><head><title>T</title><style>x{}</style></head><body><p>Hi &amp; <b>bye</b></p><a href=\"http://x.org/a\">l</a><img src='i.gif'></body>");
        assert!(r.text.contains("Hi & bye"), "{:?}", r.text);
        assert!(!r.text.contains("x{}"));
        assert_eq!(r.title(), "T");
        assert_eq!(r.uris, vec!["http://x.org/a", "i.gif"]);
        assert_eq!(r.images, 1);
        assert_eq!(r.anchors, vec!["l"]);
    }

    #[test]
    fn tag_balance_and_ratios() {
        let r = render("<html><body><foo>a</foo></p></body><body>");
        assert_eq!(r.inside["body"], 1);
        assert_eq!(r.closed_extra, 1);
        assert_eq!(r.tags, 7);
        assert_eq!(r.elements, 5);
        assert_eq!(r.value("bad_tag_ratio"), Some(2.0 / 7.0));
        assert_eq!(r.value("non_element_ratio"), Some(1.0 / 4.0));
        assert_eq!(r.value("obfuscation_ratio"), None);
    }

    #[test]
    fn obfuscation_and_invisible_text() {
        let r =
            render("<p>vi<b>ag</b>ra</p><font color=white>hidden</font><font size=7>big</font>");
        assert_eq!(r.obfuscation, 3);
        assert!(r.font_low_contrast);
        assert_eq!(r.invisible, "hidden");
        assert_eq!(r.max_size, 7);
        assert!(r.text.starts_with("\n\nviagra\n\nhidden"), "{:?}", r.text);
    }

    #[test]
    fn comments_and_literal_content() {
        let r = render("<!-- saved from url=(0022)http://x/ --><script>if (a<b) x()</script><!>t");
        assert_eq!(r.comments.len(), 2);
        assert_eq!(r.scripts, vec!["if (a<b) x()"]);
        assert_eq!(r.text, "t");
    }

    #[test]
    fn image_area() {
        let r = render("<img width=10 height=20><img width=50% height=x>");
        assert_eq!(r.image_area, 10 * 20 + 400 * 200);
    }

    #[test]
    fn odd_html_does_not_panic() {
        for h in [
            "<",
            "<a",
            "</",
            "<!",
            "<!--",
            "<![CDATA[x",
            "<a href='é",
            "<font size=99999999999999999999>x",
            "<img width=99999999999999999999% height=99999999999999999999%>",
            "<p style=\"color:rgb(\">é",
            "<title>é",
            "<script>é",
            "&#x110000;&#99999999;&",
            "<é>é</é>",
            "<b>é</b>é<i>é",
            "<span style='background: url(\"x'>a",
            "<font color=#>a",
            "<font face=\"\">a",
        ] {
            let _ = render(h);
        }
    }
}
