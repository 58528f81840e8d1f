//! Moderation: held posts, approval by CLI and by reply, discard, reject; each post leaves once.

mod common;
use common::*;

#[test]
fn nonmember_post_is_held_owner_notified_and_approved_exactly_once() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(sink) = Sink::start(tmp.path()) else {
        return;
    };
    let home = Home::new(sink.port);
    list_with_members(&home, &["ann@example.com", "bob@example.com"]);
    assert_eq!(
        home.mail(
            "post",
            "dev",
            &post("eve@example.org", "from outside", "hello\n"),
            &[]
        )
        .code,
        0
    );
    let notice = &sink.to("boss@example.org")[0];
    let subject = notice.header("Subject").unwrap();
    assert!(subject.contains("requires approval"), "{subject}");
    assert!(notice
        .data
        .contains("Post by non-member to a members-only list"));
    assert!(notice
        .data
        .contains("correo list approve dev@lists.example.org 1"));
    assert_eq!(
        sink.to("eve@example.org").len(),
        1,
        "poster told the post is held"
    );
    assert!(sink.to("ann@example.com").is_empty());

    let held = home.ok(&["list", "held", "dev"]);
    assert!(held.starts_with("1\t"), "{held}");
    assert!(home
        .ok(&["list", "approve", "dev", "1"])
        .contains("sent to 2 members"));
    let again = home.run(&["list", "approve", "dev", "1"], b"", &[]);
    assert_ne!(again.code, 0, "second approve must fail");
    assert_eq!(sink.to("ann@example.com").len(), 1);
    assert_eq!(sink.to("bob@example.com").len(), 1);
    assert_eq!(
        sink.to("ann@example.com")[0].header("Subject").as_deref(),
        Some("[dev] from outside")
    );
    assert!(home.ok(&["list", "held", "dev"]).is_empty());
}

#[test]
fn reply_to_the_notice_with_password_approves_and_without_discards() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(sink) = Sink::start(tmp.path()) else {
        return;
    };
    let home = Home::new(sink.port);
    list_with_members(&home, &["ann@example.com"]);
    home.ok(&["list", "set", "dev", "moderator_password", "pw"]);
    home.ok(&["list", "set", "dev", "posting", "moderated"]);
    assert_eq!(
        home.mail("post", "dev", &post("ann@example.com", "one", "1\n"), &[])
            .code,
        0
    );
    assert_eq!(
        home.mail("post", "dev", &post("ann@example.com", "two", "2\n"), &[])
            .code,
        0
    );
    let notices = sink.to("boss@example.org");
    assert_eq!(notices.len(), 2);
    let reply_to = notices[0].header("Reply-To").unwrap();
    let t1 = token_in(&reply_to).unwrap();
    let t2 = token_in(&notices[1].header("Subject").unwrap()).unwrap();
    sink.clear();
    let approve = "From: boss@example.org\nSubject: Re: x\nApproved: pw\n\nok\n".to_string();
    let rcpt = format!("dev-confirm+{t1}@lists.example.org");
    assert_eq!(
        home.mail("confirm", "dev", &approve, &[("ORIGINAL_RECIPIENT", &rcpt)])
            .code,
        0
    );
    let discard = format!(
        "From: boss@example.org\nSubject: Re: dev post requires approval (confirm {t2})\n\nno\n"
    );
    assert_eq!(home.mail("confirm", "dev", &discard, &[]).code, 0);
    let got: Vec<String> = sink
        .to("ann@example.com")
        .iter()
        .filter_map(|m| m.header("Subject"))
        .collect();
    assert_eq!(got, vec!["[dev] one"]);
    assert!(home.ok(&["list", "held", "dev"]).is_empty());
    // The token is single-use.
    assert_eq!(
        home.mail("confirm", "dev", &approve, &[("ORIGINAL_RECIPIENT", &rcpt)])
            .code,
        0
    );
    assert_eq!(sink.to("ann@example.com").len(), 1);
}

#[test]
fn reject_tells_the_poster_why_and_discard_is_silent() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(sink) = Sink::start(tmp.path()) else {
        return;
    };
    let home = Home::new(sink.port);
    list_with_members(&home, &["ann@example.com"]);
    assert_eq!(
        home.mail("post", "dev", &post("eve@example.org", "a", "x\n"), &[])
            .code,
        0
    );
    assert_eq!(
        home.mail("post", "dev", &post("mallory@example.org", "b", "x\n"), &[])
            .code,
        0
    );
    sink.clear();
    home.ok(&["list", "reject", "dev", "1", "--reason", "off topic"]);
    let r = &sink.to("eve@example.org")[0];
    assert!(r.body().contains("off topic"), "{}", r.body());
    home.ok(&["list", "discard", "dev", "2"]);
    assert!(sink.to("mallory@example.org").is_empty());
    assert!(sink.to("ann@example.com").is_empty());
}

#[test]
fn nonmember_reject_and_discard_policies() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(sink) = Sink::start(tmp.path()) else {
        return;
    };
    let home = Home::new(sink.port);
    list_with_members(&home, &["ann@example.com"]);
    home.ok(&["list", "set", "dev", "nonmember", "reject"]);
    assert_eq!(
        home.mail("post", "dev", &post("eve@example.org", "a", "x\n"), &[])
            .code,
        0
    );
    assert!(
        sink.to("eve@example.org")[0].body().contains("Non-members")
            || sink.to("eve@example.org")[0].body().contains("non-member")
    );
    home.ok(&["list", "set", "dev", "nonmember", "discard"]);
    sink.clear();
    assert_eq!(
        home.mail("post", "dev", &post("eve@example.org", "b", "x\n"), &[])
            .code,
        0
    );
    assert!(sink.messages().is_empty());
    assert!(home.maillog().contains("action=discarded"));
    home.ok(&["list", "set", "dev", "posting", "open"]);
    assert_eq!(
        home.mail("post", "dev", &post("eve@example.org", "c", "x\n"), &[])
            .code,
        0
    );
    assert_eq!(sink.to("ann@example.com").len(), 1);
}
