//! Moderation labels teach Bayes: `list discard --spam` learns the held post as spam, `list approve`
//! learns it as ham, a plain `discard` learns nothing.

mod common;
use common::*;

fn dump(home: &Home) -> String {
    home.ok(&["spam", "learn", "--dump"])
}

#[test]
fn discard_as_spam_and_approve_teach_bayes() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(sink) = Sink::start(tmp.path()) else {
        return;
    };
    let home = Home::new(sink.port);
    list_with_members(&home, &["ann@example.com"]);
    for (from, subj) in [
        ("eve@example.org", "cheap pills"),
        ("bob@example.org", "meeting notes"),
        ("joe@example.org", "other"),
    ] {
        assert_eq!(
            home.mail(
                "post",
                "dev",
                &post(from, subj, &format!("{subj} body text\n")),
                &[]
            )
            .code,
            0
        );
    }
    home.ok(&["list", "discard", "dev", "1", "--spam"]);
    assert!(dump(&home).contains("nspam=1 nham=0"), "{}", dump(&home));
    home.ok(&["list", "approve", "dev", "2"]);
    assert!(dump(&home).contains("nspam=1 nham=1"), "{}", dump(&home));
    home.ok(&["list", "discard", "dev", "3"]);
    assert!(dump(&home).contains("nspam=1 nham=1"), "{}", dump(&home));
    assert!(
        home.maillog().contains("moderation=spam"),
        "{}",
        home.maillog()
    );
}
