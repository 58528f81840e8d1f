//! RFC 8058 one-click unsubscribe. The URL in each member's List-Unsubscribe carries the address and
//! an HMAC key (lists/token.rs), so a POST with `List-Unsubscribe=One-Click` removes exactly that member
//! with no login and no confirmation, as the RFC requires; nobody can unsubscribe anyone else without
//! the key. A GET (a person clicking, or a link scanner) only shows a button: it never unsubscribes.

use super::Reply;
use crate::config::Home;
use crate::lists::{model, subscription, token};
use crate::message::address::Address;

fn param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == name).then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push(h * 16 + l);
                i += 3;
                continue;
            }
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

pub fn handle(home: &Home, method: &str, list_spec: &str, query: &str, body: &[u8]) -> Reply {
    let list_spec = percent_decode(list_spec);
    let (Some(addr), Some(key)) = (param(query, "address"), param(query, "key")) else {
        return Reply::text(400, "missing address or key\n");
    };
    let Ok(addr) = Address::parse(&addr) else {
        return Reply::text(400, "bad address\n");
    };
    let mut conn = match model::db(home) {
        Ok(c) => c,
        Err(e) => return Reply::text(503, format!("try again later: {}\n", e.msg)),
    };
    let list = match model::find(&conn, &list_spec) {
        Ok(l) => l,
        Err(_) => return Reply::text(404, "no such list\n"),
    };
    let expected =
        token::unsubscribe_key(&list.settings.secret, &list.address(), &addr.to_string());
    let ok = expected.len() == key.len()
        && expected
            .bytes()
            .zip(key.bytes())
            .fold(0u8, |a, (x, y)| a | (x ^ y))
            == 0;
    if !ok {
        return Reply::text(403, "this unsubscribe link is not valid\n");
    }
    match method {
        "POST" => {
            // RFC 8058 §3.1: the body is "List-Unsubscribe=One-Click"; a browser form sends the same.
            if !String::from_utf8_lossy(body).contains("List-Unsubscribe=One-Click") {
                return Reply::text(400, "expected List-Unsubscribe=One-Click\n");
            }
            match subscription::unsubscribe_now(home, &mut conn, &list, &addr) {
                Ok(true) => Reply::text(200, format!("{addr} has been unsubscribed from {}.\n", list.address())),
                Ok(false) => Reply::text(200, format!("{addr} is not subscribed to {}.\n", list.address())),
                Err(e) if e.exit.is_temporary() => Reply::text(503, "try again later\n"),
                Err(e) => Reply::text(500, format!("{}\n", e.msg)),
            }
        }
        "GET" | "HEAD" => Reply::html(
            200,
            format!(
                "<!doctype html><title>Unsubscribe</title><p>Unsubscribe <b>{}</b> from <b>{}</b>?</p>\
                 <form method=post><input type=hidden name=List-Unsubscribe value=One-Click>\
                 <button type=submit>Unsubscribe</button></form>",
                escape(&addr.to_string()),
                escape(&list.address())
            ),
        ),
        _ => Reply::text(405, "method not allowed\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, Home};
    use crate::lists::members;

    fn setup() -> (tempfile::TempDir, Home, String) {
        let d = tempfile::tempdir().unwrap();
        let mut config = Config::default();
        // Nothing listens here: goodbye notices stay spooled, which is fine for this test.
        config.outbound.smtp = Some("127.0.0.1:9".into());
        let home = Home {
            dir: d.path().to_path_buf(),
            config,
            explicit: true,
        };
        let conn = model::db(&home).unwrap();
        let mut l = model::create(&conn, "dev@x.org", "o@x.org").unwrap();
        l.settings.send_goodbye = false;
        l.save(&conn).unwrap();
        members::add(
            &conn,
            &l,
            &Address::parse("ann@example.com").unwrap(),
            false,
        )
        .unwrap();
        let key = token::unsubscribe_key(&l.settings.secret, &l.address(), "ann@example.com");
        (d, home, key)
    }

    #[test]
    fn one_click_post_unsubscribes_and_get_does_not() {
        let (_d, home, key) = setup();
        let q = format!("address=ann%40example.com&key={key}");
        let get = handle(&home, "GET", "dev@x.org", &q, b"");
        assert_eq!(get.status, 200);
        assert!(get.body.contains("<form method=post>"));
        let conn = model::db(&home).unwrap();
        let l = model::find(&conn, "dev@x.org").unwrap();
        assert_eq!(
            members::count(&conn, &l).unwrap(),
            1,
            "GET must not unsubscribe"
        );
        let post = handle(
            &home,
            "POST",
            "dev@x.org",
            &q,
            b"List-Unsubscribe=One-Click",
        );
        assert_eq!(post.status, 200, "{}", post.body);
        assert_eq!(members::count(&conn, &l).unwrap(), 0);
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%40b.org"), "a@b.org");
        assert_eq!(percent_decode("x%4"), "x%4");
        assert_eq!(percent_decode("%zz+%41"), "%zz A");
    }

    #[test]
    fn wrong_key_or_other_address_is_refused() {
        let (_d, home, key) = setup();
        let other = handle(
            &home,
            "POST",
            "dev@x.org",
            &format!("address=bob@example.com&key={key}"),
            b"List-Unsubscribe=One-Click",
        );
        assert_eq!(other.status, 403);
        let bad = handle(
            &home,
            "POST",
            "dev@x.org",
            "address=ann@example.com&key=00",
            b"List-Unsubscribe=One-Click",
        );
        assert_eq!(bad.status, 403);
        assert_eq!(
            super::super::route(&home, "GET", "/nothing", "", None, b"").status,
            404
        );
    }
}
