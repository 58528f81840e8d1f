//! Every message the list sends comes from a template under `lists/templates/` in the source tree
//! (compiled in), overridable per list by a file `HOME/lists/LIST@DOMAIN/templates/NAME.txt`.
//! A template is `Subject: ...`, an empty line, and the body; `{key}` is replaced by its value.

use super::model::List;
use crate::config::Home;
use crate::message::error::{Error, Result};

const BUILTIN: &[(&str, &str)] = &[
    (
        "confirm-subscribe",
        include_str!("../../lists/templates/confirm-subscribe.txt"),
    ),
    (
        "confirm-unsubscribe",
        include_str!("../../lists/templates/confirm-unsubscribe.txt"),
    ),
    ("welcome", include_str!("../../lists/templates/welcome.txt")),
    ("goodbye", include_str!("../../lists/templates/goodbye.txt")),
    (
        "held-notice",
        include_str!("../../lists/templates/held-notice.txt"),
    ),
    (
        "held-poster",
        include_str!("../../lists/templates/held-poster.txt"),
    ),
    (
        "rejected",
        include_str!("../../lists/templates/rejected.txt"),
    ),
    (
        "request-reply",
        include_str!("../../lists/templates/request-reply.txt"),
    ),
    ("help", include_str!("../../lists/templates/help.txt")),
    ("info", include_str!("../../lists/templates/info.txt")),
];

pub struct Rendered {
    pub subject: String,
    pub body: String,
}

/// Values every template can use, for this list.
pub fn list_vars(list: &List) -> Vec<(String, String)> {
    vec![
        ("list".into(), list.address()),
        ("description".into(), list.settings.description.clone()),
        ("owner_address".into(), list.service("owner")),
        ("request_address".into(), list.service("request")),
        ("join_address".into(), list.service("join")),
        ("leave_address".into(), list.service("leave")),
        (
            "posting".into(),
            format!("{:?}", list.settings.posting).to_lowercase(),
        ),
    ]
}

pub fn render(home: &Home, list: &List, name: &str, extra: &[(&str, String)]) -> Result<Rendered> {
    let override_path = home
        .dir
        .join("lists")
        .join(list.address())
        .join("templates")
        .join(format!("{name}.txt"));
    let text = match std::fs::read_to_string(&override_path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => BUILTIN
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, t)| t.to_string())
            .ok_or_else(|| Error::software(format!("no template {name}")))?,
        Err(e) => return Err(Error::from(e).context(override_path.display())),
    };
    let mut vars = list_vars(list);
    vars.extend(extra.iter().map(|(k, v)| (k.to_string(), v.clone())));
    let filled = fill(&text, &vars);
    let (subject, body) = match filled.split_once("\n\n") {
        Some((head, body)) if head.starts_with("Subject:") => (
            head["Subject:".len()..].trim().to_string(),
            body.to_string(),
        ),
        _ => (format!("Message from {}", list.address()), filled),
    };
    Ok(Rendered { subject, body })
}

/// Replaces `{key}` with values in one pass, so a value that contains braces is never expanded again.
fn fill(text: &str, vars: &[(String, String)]) -> String {
    let mut out = String::with_capacity(text.len() + 64);
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close) if vars.iter().any(|(k, _)| k == &after[..close]) => {
                let key = &after[..close];
                out.push_str(
                    vars.iter()
                        .find(|(k, _)| k == key)
                        .map(|(_, v)| v.as_str())
                        .unwrap_or(""),
                );
                rest = &after[close + 1..];
            }
            _ => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn fill_is_single_pass() {
        let vars = vec![
            ("a".to_string(), "{b}".to_string()),
            ("b".to_string(), "x".to_string()),
        ];
        assert_eq!(super::fill("{a} {b} {c}", &vars), "{b} x {c}");
    }

    #[test]
    fn builtins_have_subjects() {
        for (name, t) in super::BUILTIN {
            assert!(t.starts_with("Subject: "), "{name}");
        }
    }
}
