//! Colours and inline styles as SpamAssassin's HTML renderer reads them, to decide whether text is
//! visible (Mail::SpamAssassin::HTML `name_to_rgb`, `text_style`, `parse_css_background`). The quirks
//! are kept on purpose: a colour without `#` ("ffffff") is "invalid", `bgcolor=` attributes are
//! converted but never applied, and only the last layer of a `background:` shorthand gives a colour.
//! Matching those quirks is what makes HTML_FONT_LOW_CONTRAST and friends hit where SpamAssassin's do.

/// CSS named colours (CSS Color Module level 3, the X11 list browsers accept).
const NAMED: &[(&str, u32)] = &[
    ("aliceblue", 0xf0f8ff),
    ("antiquewhite", 0xfaebd7),
    ("aqua", 0x00ffff),
    ("aquamarine", 0x7fffd4),
    ("azure", 0xf0ffff),
    ("beige", 0xf5f5dc),
    ("bisque", 0xffe4c4),
    ("black", 0x000000),
    ("blanchedalmond", 0xffebcd),
    ("blue", 0x0000ff),
    ("blueviolet", 0x8a2be2),
    ("brown", 0xa52a2a),
    ("burlywood", 0xdeb887),
    ("cadetblue", 0x5f9ea0),
    ("chartreuse", 0x7fff00),
    ("chocolate", 0xd2691e),
    ("coral", 0xff7f50),
    ("cornflowerblue", 0x6495ed),
    ("cornsilk", 0xfff8dc),
    ("crimson", 0xdc143c),
    ("cyan", 0x00ffff),
    ("darkblue", 0x00008b),
    ("darkcyan", 0x008b8b),
    ("darkgoldenrod", 0xb8860b),
    ("darkgray", 0xa9a9a9),
    ("darkgreen", 0x006400),
    ("darkgrey", 0xa9a9a9),
    ("darkkhaki", 0xbdb76b),
    ("darkmagenta", 0x8b008b),
    ("darkolivegreen", 0x556b2f),
    ("darkorange", 0xff8c00),
    ("darkorchid", 0x9932cc),
    ("darkred", 0x8b0000),
    ("darksalmon", 0xe9967a),
    ("darkseagreen", 0x8fbc8f),
    ("darkslateblue", 0x483d8b),
    ("darkslategray", 0x2f4f4f),
    ("darkslategrey", 0x2f4f4f),
    ("darkturquoise", 0x00ced1),
    ("darkviolet", 0x9400d3),
    ("deeppink", 0xff1493),
    ("deepskyblue", 0x00bfff),
    ("dimgray", 0x696969),
    ("dimgrey", 0x696969),
    ("dodgerblue", 0x1e90ff),
    ("firebrick", 0xb22222),
    ("floralwhite", 0xfffaf0),
    ("forestgreen", 0x228b22),
    ("fuchsia", 0xff00ff),
    ("gainsboro", 0xdcdcdc),
    ("ghostwhite", 0xf8f8ff),
    ("gold", 0xffd700),
    ("goldenrod", 0xdaa520),
    ("gray", 0x808080),
    ("green", 0x008000),
    ("greenyellow", 0xadff2f),
    ("grey", 0x808080),
    ("honeydew", 0xf0fff0),
    ("hotpink", 0xff69b4),
    ("indianred", 0xcd5c5c),
    ("indigo", 0x4b0082),
    ("ivory", 0xfffff0),
    ("khaki", 0xf0e68c),
    ("lavender", 0xe6e6fa),
    ("lavenderblush", 0xfff0f5),
    ("lawngreen", 0x7cfc00),
    ("lemonchiffon", 0xfffacd),
    ("lightblue", 0xadd8e6),
    ("lightcoral", 0xf08080),
    ("lightcyan", 0xe0ffff),
    ("lightgoldenrodyellow", 0xfafad2),
    ("lightgray", 0xd3d3d3),
    ("lightgreen", 0x90ee90),
    ("lightgrey", 0xd3d3d3),
    ("lightpink", 0xffb6c1),
    ("lightsalmon", 0xffa07a),
    ("lightseagreen", 0x20b2aa),
    ("lightskyblue", 0x87cefa),
    ("lightslategray", 0x778899),
    ("lightslategrey", 0x778899),
    ("lightsteelblue", 0xb0c4de),
    ("lightyellow", 0xffffe0),
    ("lime", 0x00ff00),
    ("limegreen", 0x32cd32),
    ("linen", 0xfaf0e6),
    ("magenta", 0xff00ff),
    ("maroon", 0x800000),
    ("mediumaquamarine", 0x66cdaa),
    ("mediumblue", 0x0000cd),
    ("mediumorchid", 0xba55d3),
    ("mediumpurple", 0x9370db),
    ("mediumseagreen", 0x3cb371),
    ("mediumslateblue", 0x7b68ee),
    ("mediumspringgreen", 0x00fa9a),
    ("mediumturquoise", 0x48d1cc),
    ("mediumvioletred", 0xc71585),
    ("midnightblue", 0x191970),
    ("mintcream", 0xf5fffa),
    ("mistyrose", 0xffe4e1),
    ("moccasin", 0xffe4b5),
    ("navajowhite", 0xffdead),
    ("navy", 0x000080),
    ("oldlace", 0xfdf5e6),
    ("olive", 0x808000),
    ("olivedrab", 0x6b8e23),
    ("orange", 0xffa500),
    ("orangered", 0xff4500),
    ("orchid", 0xda70d6),
    ("palegoldenrod", 0xeee8aa),
    ("palegreen", 0x98fb98),
    ("paleturquoise", 0xafeeee),
    ("palevioletred", 0xdb7093),
    ("papayawhip", 0xffefd5),
    ("peachpuff", 0xffdab9),
    ("peru", 0xcd853f),
    ("pink", 0xffc0cb),
    ("plum", 0xdda0dd),
    ("powderblue", 0xb0e0e6),
    ("purple", 0x800080),
    ("red", 0xff0000),
    ("rosybrown", 0xbc8f8f),
    ("royalblue", 0x4169e1),
    ("saddlebrown", 0x8b4513),
    ("salmon", 0xfa8072),
    ("sandybrown", 0xf4a460),
    ("seagreen", 0x2e8b57),
    ("seashell", 0xfff5ee),
    ("sienna", 0xa0522d),
    ("silver", 0xc0c0c0),
    ("skyblue", 0x87ceeb),
    ("slateblue", 0x6a5acd),
    ("slategray", 0x708090),
    ("slategrey", 0x708090),
    ("snow", 0xfffafa),
    ("springgreen", 0x00ff7f),
    ("steelblue", 0x4682b4),
    ("tan", 0xd2b48c),
    ("teal", 0x008080),
    ("thistle", 0xd8bfd8),
    ("tomato", 0xff6347),
    ("turquoise", 0x40e0d0),
    ("violet", 0xee82ee),
    ("wheat", 0xf5deb3),
    ("white", 0xffffff),
    ("whitesmoke", 0xf5f5f5),
    ("yellow", 0xffff00),
    ("yellowgreen", 0x9acd32),
];

/// Two hex digits for 0..15 get a leading zero; larger values print as they are (more than two digits
/// past 255, as SpamAssassin's `dec2hex` does).
fn hex2(n: u64) -> String {
    format!("{n:02x}")
}

/// A colour as `#rrggbb`, or "invalid". Accepts names, `#rgb`/`#rrggbb` (cut or padded the lenient way),
/// `rgb(r, g, b)` and `rgb(r%, g%, b%)`.
pub fn name_to_rgb(color: &str) -> String {
    let c = color.trim().to_ascii_lowercase();
    if let Ok(i) = NAMED.binary_search_by(|(n, _)| n.cmp(&c.as_str())) {
        return format!("#{:06x}", NAMED[i].1);
    }
    let plain_hex = c.bytes().all(|b| b == b'#' || b.is_ascii_hexdigit());
    if !plain_hex && !rgb_call(&c) {
        return "invalid".into();
    }
    let mut c = c;
    if let Some(v) = rgb_values(&c, true) {
        c = format!(
            "#{}{}{}",
            hex2(v[0] * 255 / 100),
            hex2(v[1] * 255 / 100),
            hex2(v[2] * 255 / 100)
        );
    }
    if let Some(v) = rgb_values(&c, false) {
        c = format!("#{}{}{}", hex2(v[0]), hex2(v[1]), hex2(v[2]));
    }
    if !c.starts_with('#') {
        return "invalid".into();
    }
    let mut h: String = c.chars().filter(char::is_ascii_hexdigit).collect();
    if h.len() > 6 {
        h.truncate(6);
    }
    if h.len() > 3 && h.len() < 6 {
        h.truncate(3);
    }
    while !h.len().is_multiple_of(3) {
        h.push('0');
    }
    if h.len() == 3 {
        h = h.chars().flat_map(|x| [x, x]).collect();
    }
    format!("#{h}")
}

/// `rgb\([\d%, ]*\)` somewhere in the value.
fn rgb_call(c: &str) -> bool {
    let mut rest = c;
    while let Some(p) = rest.find("rgb(") {
        let after = &rest[p + 4..];
        let inner_end = after
            .find(|ch: char| !(ch.is_ascii_digit() || matches!(ch, '%' | ',' | ' ')))
            .unwrap_or(after.len());
        if after[inner_end..].starts_with(')') {
            return true;
        }
        rest = after;
    }
    false
}

/// The three numbers of `rgb(a, b, c)` (or `rgb(a%, b%, c%)` when `percent`), as SpamAssassin's
/// regexes find them: digits, optional blanks after each comma, optional blanks before `)`.
fn rgb_values(c: &str, percent: bool) -> Option<[u64; 3]> {
    let p = c.find("rgb(")?;
    let mut s = &c[p + 4..];
    let mut out = [0u64; 3];
    for (i, slot) in out.iter_mut().enumerate() {
        let end = s.find(|ch: char| !ch.is_ascii_digit()).unwrap_or(s.len());
        if end == 0 {
            return None;
        }
        *slot = s[..end].parse().ok()?;
        s = &s[end..];
        if percent {
            s = s.strip_prefix('%')?;
        }
        if i < 2 {
            s = s.strip_prefix(',')?.trim_start();
        }
    }
    s.trim_start().starts_with(')').then_some(out)
}

/// A `style="..."` attribute's effect on the text style.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct StyleDecl {
    pub fg: Option<String>,
    pub bg: Option<String>,
    pub display: Option<String>,
    pub visibility: Option<String>,
}

/// Reads the declarations the renderer cares about: `color`, `background-color`, the colour in a
/// `background` shorthand, `display` and `visibility`. `transparent` is returned as such; the caller
/// resolves it against the enclosing style.
pub fn parse_style(style: &str) -> StyleDecl {
    let mut d = StyleDecl::default();
    for part in style.split(';') {
        let t = part.trim_start();
        let lower = t.to_ascii_lowercase();
        let (is_bg, rest) = if let Some(r) = lower.strip_prefix("background-color:") {
            (true, Some(r))
        } else if let Some(r) = lower.strip_prefix("color:") {
            (false, Some(r))
        } else {
            (false, None)
        };
        if let Some(value) = rest {
            let value = value.trim();
            if value.is_empty() {
                continue;
            }
            let value = strip_important(value);
            let colour = if value.contains("rgb") {
                let digits: String = value
                    .chars()
                    .filter(|c| c.is_ascii_digit() || *c == ',')
                    .collect();
                let mut v = digits.split(',').map(|x| {
                    let n: u64 = x.parse().unwrap_or(0);
                    n.min(255)
                });
                let (r, g, b) = (
                    v.next().unwrap_or(0),
                    v.next().unwrap_or(0),
                    v.next().unwrap_or(0),
                );
                Some(format!("#{r:02x}{g:02x}{b:02x}"))
            } else if value == "inherit" {
                None
            } else if value == "transparent" {
                Some("transparent".to_string())
            } else {
                Some(name_to_rgb(value))
            };
            if let Some(c) = colour {
                if is_bg {
                    d.bg = Some(c);
                } else {
                    d.fg = Some(c);
                }
            }
            continue;
        }
        // `background:` is matched case-sensitively in SpamAssassin, its value lower-cased.
        if let Some(v) = t.strip_prefix("background:") {
            let v = v.trim();
            if v.is_empty() {
                continue;
            }
            let layers = background_layers(&v.to_ascii_lowercase());
            if let Some(last) = layers.last() {
                for tok in last {
                    let c = name_to_rgb(tok);
                    if c != "invalid" {
                        d.bg = Some(c);
                        break;
                    }
                }
            }
            continue;
        }
        // Other `name: value` pairs; only display and visibility matter (names are case-sensitive).
        if let Some((name, value)) = t.split_once(':') {
            let name = name.trim_end();
            let value = value.trim();
            if value.is_empty() {
                continue;
            }
            match name {
                "display" => d.display = Some(value.to_string()),
                "visibility" => d.visibility = Some(value.to_string()),
                _ => {}
            }
        }
    }
    d
}

fn strip_important(v: &str) -> &str {
    let t = v.trim_end();
    if let Some(rest) = t.strip_suffix("important") {
        let r = rest.trim_end();
        if let Some(r) = r.strip_suffix('!') {
            return r.trim_end();
        }
    }
    v
}

/// Splits a `background` shorthand into comma-separated layers of blank-separated tokens, keeping
/// parentheses and quoted strings whole (`url("a b.png")` is one token).
fn background_layers(bg: &str) -> Vec<Vec<String>> {
    let mut layers = Vec::new();
    let mut tokens: Vec<String> = Vec::new();
    let mut tok = String::new();
    // Stack of open contexts: b'(' or a quote character.
    let mut stack: Vec<char> = Vec::new();
    for ch in bg.chars() {
        match stack.last().copied() {
            None => match ch {
                ' ' => {
                    if !tok.is_empty() {
                        tokens.push(std::mem::take(&mut tok));
                    }
                }
                ',' => {
                    if !tok.is_empty() {
                        tokens.push(std::mem::take(&mut tok));
                    }
                    layers.push(std::mem::take(&mut tokens));
                }
                '(' | '"' | '\'' => {
                    tok.push(ch);
                    stack.push(ch);
                }
                _ => tok.push(ch),
            },
            Some('(') => {
                tok.push(ch);
                match ch {
                    ')' => {
                        tokens.push(std::mem::take(&mut tok));
                        stack.pop();
                    }
                    '"' | '\'' => stack.push(ch),
                    _ => {}
                }
            }
            Some(q) => {
                tok.push(ch);
                if ch == q {
                    stack.pop();
                }
            }
        }
    }
    if !tok.is_empty() {
        tokens.push(tok);
    }
    if !tokens.is_empty() {
        layers.push(tokens);
    }
    layers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_the_lenient_way() {
        assert!(NAMED.windows(2).all(|w| w[0].0 < w[1].0), "sorted");
        assert_eq!(name_to_rgb("White"), "#ffffff");
        assert_eq!(name_to_rgb("#FFF"), "#ffffff");
        assert_eq!(name_to_rgb("#12345"), "#112233");
        assert_eq!(name_to_rgb("#1234567"), "#123456");
        assert_eq!(name_to_rgb("ffffff"), "invalid");
        assert_eq!(name_to_rgb("rgb(255, 0, 16)"), "#ff0010");
        assert_eq!(name_to_rgb("rgb(100%, 0%, 50%)"), "#ff007f");
        assert_eq!(name_to_rgb("bogus"), "invalid");
    }

    #[test]
    fn styles() {
        let d = parse_style("color: #fff !important; background: url('a b.png') no-repeat white");
        assert_eq!(d.fg.as_deref(), Some("#ffffff"));
        assert_eq!(d.bg.as_deref(), Some("#ffffff"));
        let d = parse_style("display:none;Visibility:hidden;color:rgb(1,2,300)");
        assert_eq!(d.display.as_deref(), Some("none"));
        assert_eq!(d.visibility, None);
        assert_eq!(d.fg.as_deref(), Some("#0102ff"));
    }
}
