//! Adding the list footer without breaking anything: appended to a plain text body when the bytes can
//! take it (right charset and transfer encoding), added as a last part of a multipart/mixed, and
//! otherwise the original body becomes the first part of a new multipart/mixed, untouched, so
//! multipart/signed and encrypted structures verify as before (what Mailman 2.1 does too).

use super::headers::Headers;
use mail_parser::{Message, MimeHeaders};

fn part_headers(footer: &str) -> String {
    let cte = if footer.is_ascii() { "7bit" } else { "8bit" };
    format!("Content-Type: text/plain; charset=\"utf-8\"\nContent-Transfer-Encoding: {cte}\nContent-Disposition: inline\n\n{footer}\n")
}

pub fn add(msg: &Message<'_>, h: &mut Headers, body: &[u8], footer: &str) -> Vec<u8> {
    let root = msg.root_part();
    let ct = root.content_type();
    let (ty, sub) = ct
        .map(|c| {
            (
                c.ctype().to_ascii_lowercase(),
                c.subtype().unwrap_or("").to_ascii_lowercase(),
            )
        })
        .unwrap_or_else(|| ("text".into(), "plain".into()));
    let charset = ct
        .and_then(|c| c.attribute("charset"))
        .unwrap_or("us-ascii")
        .to_ascii_lowercase();
    let cte = h
        .get("Content-Transfer-Encoding")
        .unwrap_or_default()
        .to_ascii_lowercase();
    let crlf = body.windows(2).any(|w| w == b"\r\n");
    let nl: &[u8] = if crlf { b"\r\n" } else { b"\n" };

    let plain_cte = matches!(cte.as_str(), "" | "7bit" | "8bit" | "binary");
    let eight_ok =
        matches!(cte.as_str(), "8bit" | "binary") && (charset == "utf-8" || charset == "utf8");
    if ty == "text" && sub == "plain" && plain_cte && (footer.is_ascii() || eight_ok) {
        let mut out = body.to_vec();
        if !out.is_empty() && !out.ends_with(b"\n") {
            out.extend_from_slice(nl);
        }
        out.extend_from_slice(&fix_newlines(footer, crlf));
        out.extend_from_slice(nl);
        return out;
    }

    let footer_part = fix_newlines(&part_headers(footer), crlf);
    if ty == "multipart" && sub == "mixed" {
        if let Some(boundary) = ct.and_then(|c| c.attribute("boundary")) {
            let close = format!("--{boundary}--");
            if let Some(pos) = find_last_line(body, close.as_bytes()) {
                let mut out = body[..pos].to_vec();
                out.extend_from_slice(format!("--{boundary}").as_bytes());
                out.extend_from_slice(nl);
                out.extend_from_slice(&footer_part);
                out.extend_from_slice(nl);
                out.extend_from_slice(&body[pos..]);
                return out;
            }
        }
    }

    // Wrap: the original Content-* fields move into the first part, with the body as it was.
    let boundary = format!("correo-{}", crate::message::spool::unique_id());
    let mut inner = Headers::default();
    for name in [
        "Content-Type",
        "Content-Transfer-Encoding",
        "Content-Disposition",
        "Content-Description",
        "Content-ID",
        "Content-Language",
        "Content-MD5",
    ] {
        for v in h.get_all(name) {
            inner.append(name, &v);
        }
        h.remove(name);
    }
    if !inner.contains("Content-Type") {
        inner.append("Content-Type", "text/plain; charset=\"us-ascii\"");
    }
    h.set("MIME-Version", "1.0");
    h.set(
        "Content-Type",
        &format!("multipart/mixed; boundary=\"{boundary}\""),
    );
    let mut out = Vec::with_capacity(body.len() + footer_part.len() + 256);
    out.extend_from_slice(&fix_newlines(&format!("--{boundary}\n"), crlf));
    let mut ih = Vec::new();
    inner.write(&mut ih);
    out.extend_from_slice(&fix_newlines(&String::from_utf8_lossy(&ih), crlf));
    out.extend_from_slice(nl);
    out.extend_from_slice(body);
    if !body.ends_with(b"\n") {
        out.extend_from_slice(nl);
    }
    out.extend_from_slice(&fix_newlines(&format!("--{boundary}\n"), crlf));
    out.extend_from_slice(&footer_part);
    out.extend_from_slice(&fix_newlines(&format!("--{boundary}--\n"), crlf));
    out
}

fn fix_newlines(s: &str, crlf: bool) -> Vec<u8> {
    if crlf {
        s.replace("\r\n", "\n").replace('\n', "\r\n").into_bytes()
    } else {
        s.as_bytes().to_vec()
    }
}

/// Byte offset of the last line that starts with `needle`.
fn find_last_line(body: &[u8], needle: &[u8]) -> Option<usize> {
    let mut found = None;
    let mut start = 0;
    for line in body.split_inclusive(|&b| b == b'\n') {
        if line.starts_with(needle) {
            found = Some(start);
        }
        start += line.len();
    }
    found
}
