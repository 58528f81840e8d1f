//! `POST /checkv2`: rspamd's scan endpoint, so clients written for rspamd (rspamc, milters, Rspamd
//! plugins in other MTAs) can ask correo. The body is the raw message; the answer is rspamd's JSON:
//! `action`, `score`, `required_score`, `thresholds` and `symbols` (name, score, description), plus
//! `is_skipped` and `message-id`. Rules are compiled once per process, on the first request.
//!
//! The `User` header names the user, as rspamc's `--user` sends it: with `[spam.bayes] per_user`, that
//! user's Bayes database is read (and auto-learned), as spamc's `-u` does for the spamd protocol.
//!
//! Action mapping: correo has one threshold, so a message at or over `required_score` gets rspamd's
//! "add header" (tag and deliver, as SpamAssassin does) and anything else "no action".

use super::Reply;
use crate::config::Home;
use crate::spam::bayes::Bayes;
use crate::spam::rules::RuleSet;
use serde_json::{json, Map, Value};
use std::sync::{Arc, OnceLock};

static RULES: OnceLock<Option<Arc<RuleSet>>> = OnceLock::new();
static BAYES: OnceLock<Bayes> = OnceLock::new();

pub fn handle(home: &Home, method: &str, user: Option<&str>, body: &[u8]) -> Reply {
    if method != "POST" {
        return json_reply(
            405,
            json!({"error": "use POST with the message as the body"}),
        );
    }
    if body.is_empty() {
        return json_reply(400, json!({"error": "empty message"}));
    }
    let Some(rs) = RULES
        .get_or_init(|| crate::cli::spam::load_rules(home, &[]).ok().map(Arc::new))
        .clone()
    else {
        return json_reply(500, json!({"error": "rules could not be loaded"}));
    };
    let bayes = BAYES.get_or_init(|| Bayes::open(home));
    let t = std::time::Instant::now();
    let c = crate::spam::bayes::check(
        &rs,
        Some(bayes),
        user,
        crate::spam::bayes::learn::strip_from_line(body),
    );
    Reply {
        status: 200,
        content_type: "application/json",
        body: verdict_json(&rs, &c, t.elapsed().as_secs_f64()).to_string(),
    }
}

/// rspamd rounds nothing; we round to what SpamAssassin shows plus one digit, so tests can compare.
fn r(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

pub fn verdict_json(rs: &RuleSet, c: &crate::spam::bayes::Checked, secs: f64) -> Value {
    let v = &c.verdict;
    let mut symbols = Map::new();
    for &i in &v.hits {
        let rule = &rs.rules[i];
        symbols.insert(
            rule.name.clone(),
            json!({"name": rule.name, "score": r(v.score_of(rule)), "metric_score": r(v.score_of(rule)), "description": rule.describe}),
        );
    }
    let id = c.view.header_for_rule("Message-Id").map(|b| {
        String::from_utf8_lossy(&b)
            .trim()
            .trim_matches(['<', '>'])
            .to_string()
    });
    let mut o = json!({
        "is_skipped": false,
        "score": r(v.score),
        "required_score": r(v.required),
        "action": if v.is_spam { "add header" } else { "no action" },
        "thresholds": {"add header": r(v.required)},
        "symbols": symbols,
        "messages": {},
        "time_real": secs,
    });
    if let (Some(id), Some(m)) = (id, o.as_object_mut()) {
        m.insert("message-id".into(), Value::String(id));
    }
    if let (Some(b), Some(m)) = (&c.bayes, o.as_object_mut()) {
        m.insert(
            "bayes".into(),
            json!({"probability": b.probability, "tokens": b.used.len()}),
        );
    }
    o
}

fn json_reply(status: u16, v: Value) -> Reply {
    Reply {
        status,
        content_type: "application/json",
        body: v.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let home = Home::open(Some(d.path()), None).unwrap();
        assert_eq!(handle(&home, "GET", None, b"").status, 405);
    }

    #[test]
    fn scores_a_message() {
        let d = tempfile::tempdir().unwrap();
        let home = Home::open(Some(d.path()), None).unwrap();
        let rep = super::super::route(
            &home,
            "POST",
            "/checkv2",
            "",
            None,
            b"From: a@b.example\nTo: c@d.example\nSubject: hi\n\nhello\n",
        );
        assert_eq!(rep.status, 200, "{}", rep.body);
        let v: Value = serde_json::from_str(&rep.body).unwrap();
        assert_eq!(v["action"], "no action");
        assert!(v["score"].is_number());
        assert_eq!(v["required_score"], 5.0);
        assert!(v["symbols"].is_object());
    }
}
