//! Posting: the real binary piped a message as an MTA would, with a real SMTP sink as outbound host.

mod common;
use common::*;

#[test]
fn post_fans_out_with_verp_prefix_list_headers_and_footer() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(sink) = Sink::start(tmp.path()) else {
        return;
    };
    let home = Home::new(sink.port);
    home.write_config(&format!(
        "[outbound]\nsmtp = \"127.0.0.1:{}\"\n[web]\nurl = \"https://lists.example.org\"\n",
        sink.port
    ));
    list_with_members(&home, &["ann@example.com", "Bob@Example.NET"]);
    home.ok(&[
        "list",
        "set",
        "dev",
        "footer",
        "To leave: dev-leave@lists.example.org",
    ]);
    home.ok(&["list", "set", "dev", "description", "Developers"]);
    let o = home.mail(
        "post",
        "dev@lists.example.org",
        &post("Ann <ann@example.com>", "Hello all", "Hi there.\n"),
        &[("SENDER", "ann@example.com")],
    );
    assert_eq!(o.code, 0, "{}", o.stderr);

    let msgs = sink.messages();
    assert_eq!(msgs.len(), 2, "one transaction per member with VERP");
    let ann = &sink.to("ann@example.com")[0];
    assert_eq!(
        ann.mail_from,
        "dev-bounces+ann=example.com@lists.example.org"
    );
    let bob = &sink.to("Bob@Example.NET")[0];
    assert_eq!(
        bob.mail_from,
        "dev-bounces+Bob=example.net@lists.example.org"
    );
    assert_eq!(ann.header("Subject").as_deref(), Some("[dev] Hello all"));
    assert_eq!(
        ann.header("List-Id").as_deref(),
        Some("\"Developers\" <dev.lists.example.org>")
    );
    assert_eq!(
        ann.header("List-Post").as_deref(),
        Some("<mailto:dev@lists.example.org>")
    );
    assert_eq!(
        ann.header("List-Help").as_deref(),
        Some("<mailto:dev-request@lists.example.org?subject=help>")
    );
    assert_eq!(ann.header("Precedence").as_deref(), Some("list"));
    assert_eq!(
        ann.header("List-Unsubscribe-Post").as_deref(),
        Some("List-Unsubscribe=One-Click")
    );
    let unsub = ann.header("List-Unsubscribe").unwrap();
    assert!(
        unsub.starts_with("<mailto:dev-request@lists.example.org?subject=unsubscribe>"),
        "{unsub}"
    );
    assert!(unsub.contains("https://lists.example.org/lists/dev@lists.example.org/unsubscribe?address=ann@example.com&key="), "{unsub}");
    assert_ne!(
        unsub,
        bob.header("List-Unsubscribe").unwrap(),
        "one-click URL names the member"
    );
    assert_eq!(
        ann.body(),
        "Hi there.\r\nTo leave: dev-leave@lists.example.org\r\n"
    );
    let log = home.maillog();
    assert!(
        log.contains("action=accepted, status=recipients=2"),
        "{log}"
    );
    assert!(log.contains("sent=2, deferred=0, failed=0"), "{log}");
}

#[test]
fn replies_keep_one_prefix_and_reply_to_policy_applies() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(sink) = Sink::start(tmp.path()) else {
        return;
    };
    let home = Home::new(sink.port);
    list_with_members(&home, &["ann@example.com"]);
    home.ok(&["list", "set", "dev", "reply_to", "list"]);
    assert_eq!(
        home.mail(
            "post",
            "dev",
            &post("ann@example.com", "Re: [dev] Hello all", "ok\n"),
            &[]
        )
        .code,
        0
    );
    let m = &sink.messages()[0];
    assert_eq!(m.header("Subject").as_deref(), Some("Re: [dev] Hello all"));
    assert_eq!(
        m.header("Reply-To").as_deref(),
        Some("<dev@lists.example.org>")
    );
    // No subject at all gets one.
    sink.clear();
    assert_eq!(
        home.mail("post", "dev", "From: ann@example.com\n\nbody\n", &[])
            .code,
        0
    );
    assert_eq!(
        sink.messages()[0].header("Subject").as_deref(),
        Some("[dev] (no subject)")
    );
}

#[test]
fn verp_off_batches_recipients_in_one_transaction() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(sink) = Sink::start(tmp.path()) else {
        return;
    };
    let home = Home::new(sink.port);
    list_with_members(&home, &["a@example.com", "b@example.com", "c@example.com"]);
    home.ok(&["list", "set", "dev", "verp", "no"]);
    assert_eq!(
        home.mail("post", "dev", &post("a@example.com", "batch", "x\n"), &[])
            .code,
        0
    );
    let msgs = sink.messages();
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].mail_from, "dev-bounces@lists.example.org");
    assert_eq!(msgs[0].rcpt_tos.len(), 3);
    assert!(msgs[0].header("List-Unsubscribe").is_some());
}

#[test]
fn members_with_delivery_off_get_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(sink) = Sink::start(tmp.path()) else {
        return;
    };
    let home = Home::new(sink.port);
    list_with_members(&home, &["a@example.com", "b@example.com"]);
    let o = home.mail(
        "request",
        "dev",
        "From: b@example.com\nSubject: set delivery off\n\n",
        &[],
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    let reply = &sink.to("b@example.com")[0];
    assert!(
        reply
            .body()
            .contains("Delivery of posts to b@example.com is now off"),
        "{}",
        reply.body()
    );
    sink.clear();
    assert_eq!(
        home.mail("post", "dev", &post("a@example.com", "hi", "x\n"), &[])
            .code,
        0
    );
    let rcpts: Vec<String> = sink
        .messages()
        .iter()
        .flat_map(|m| m.rcpt_tos.clone())
        .collect();
    assert_eq!(rcpts, vec!["a@example.com"]);
    assert!(home
        .ok(&["list", "members", "dev"])
        .contains("b@example.com\tnomail"));
}

#[test]
fn loops_are_discarded_not_resent() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(sink) = Sink::start(tmp.path()) else {
        return;
    };
    let home = Home::new(sink.port);
    list_with_members(&home, &["ann@example.com"]);
    let looped =
        "From: ann@example.com\nList-Id: <dev.lists.example.org>\nSubject: [dev] x\n\nbody\n";
    assert_eq!(home.mail("post", "dev", looped, &[]).code, 0);
    let looped2 =
        "From: ann@example.com\nX-BeenThere: dev@lists.example.org\nSubject: [dev] x\n\nbody\n";
    assert_eq!(home.mail("post", "dev", looped2, &[]).code, 0);
    assert!(sink.messages().is_empty());
    assert_eq!(
        home.maillog()
            .matches("action=discarded, status=reason=mail loop")
            .count(),
        2,
        "{}",
        home.maillog()
    );
}

#[test]
fn footer_wraps_signed_mail_without_touching_the_signed_part() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(sink) = Sink::start(tmp.path()) else {
        return;
    };
    let home = Home::new(sink.port);
    list_with_members(&home, &["ann@example.com"]);
    home.ok(&["list", "set", "dev", "footer", "list footer"]);
    let signed_body = "--sig\nContent-Type: text/plain\n\nSigned text.\n--sig\nContent-Type: application/pgp-signature\n\n-----BEGIN PGP SIGNATURE-----\nabc\n-----END PGP SIGNATURE-----\n--sig--\n";
    let msg = format!("From: ann@example.com\nSubject: signed\nMIME-Version: 1.0\nContent-Type: multipart/signed; boundary=\"sig\"; protocol=\"application/pgp-signature\"\n\n{signed_body}");
    assert_eq!(home.mail("post", "dev", &msg, &[]).code, 0);
    let m = &sink.messages()[0];
    let ct = m.header("Content-Type").unwrap();
    assert!(
        ct.starts_with("multipart/mixed; boundary=\"correo-"),
        "{ct}"
    );
    let data = m.data.replace("\r\n", "\n");
    assert!(data.contains(&format!("Content-Type: multipart/signed; boundary=\"sig\"; protocol=\"application/pgp-signature\"\n\n{}", signed_body.trim_end())), "{data}");
    assert!(
        data.contains("Content-Disposition: inline\n\nlist footer\n"),
        "{data}"
    );

    // A multipart/mixed gets the footer as its last part.
    sink.clear();
    let mixed = "From: ann@example.com\nSubject: mixed\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"b1\"\n\n--b1\nContent-Type: text/plain\n\nhello\n--b1--\n";
    assert_eq!(home.mail("post", "dev", mixed, &[]).code, 0);
    let d = sink.messages()[0].data.replace("\r\n", "\n");
    assert!(d.contains("hello\n--b1\nContent-Type: text/plain; charset=\"utf-8\"\nContent-Transfer-Encoding: 7bit\nContent-Disposition: inline\n\nlist footer\n\n--b1--"), "{d}");

    // A base64 text body is wrapped, never re-encoded.
    sink.clear();
    let b64 = "From: ann@example.com\nSubject: b64\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64\n\naGVsbG8K\n";
    assert_eq!(home.mail("post", "dev", b64, &[]).code, 0);
    let d = sink.messages()[0].data.replace("\r\n", "\n");
    assert!(
        d.contains("Content-Transfer-Encoding: base64\n\naGVsbG8K\n--correo-"),
        "{d}"
    );
}

#[test]
fn approved_header_with_the_password_skips_moderation_and_is_stripped() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(sink) = Sink::start(tmp.path()) else {
        return;
    };
    let home = Home::new(sink.port);
    list_with_members(&home, &["ann@example.com"]);
    home.ok(&["list", "set", "dev", "posting", "moderated"]);
    home.ok(&["list", "set", "dev", "moderator_password", "hunter2"]);
    let msg = "From: boss@example.org\nApproved: hunter2\nSubject: news\n\nbody\n";
    assert_eq!(home.mail("post", "dev", msg, &[]).code, 0);
    let m = &sink.to("ann@example.com")[0];
    assert!(
        m.header("Approved").is_none(),
        "password must not reach members"
    );
    assert!(!m.data.contains("hunter2"));
    // A wrong password is stripped too, and the post is held.
    let bad = "From: boss@example.org\nApproved: hunter3\nSubject: news2\n\nbody\n";
    assert_eq!(home.mail("post", "dev", bad, &[]).code, 0);
    assert!(home
        .ok(&["list", "held", "dev"])
        .contains("Post to a moderated list"));
    assert!(!home.ok(&["list", "held", "dev"]).contains("hunter3"));
}

#[test]
fn oversized_posts_are_held_with_their_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(sink) = Sink::start(tmp.path()) else {
        return;
    };
    let home = Home::new(sink.port);
    list_with_members(&home, &["ann@example.com"]);
    home.ok(&["list", "set", "dev", "max_size_kb", "1"]);
    let big = post("ann@example.com", "big", &"x".repeat(3000));
    assert_eq!(home.mail("post", "dev", &big, &[]).code, 0);
    let held = home.ok(&["list", "held", "dev"]);
    assert!(held.contains("Message body is too big"), "{held}");
    assert!(sink
        .to("ann@example.com")
        .iter()
        .all(|m| !m.header("Subject").unwrap_or_default().contains("big")));
}

#[test]
fn broken_mime_eight_bit_headers_and_no_final_newline_still_go_out() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(sink) = Sink::start(tmp.path()) else {
        return;
    };
    let home = Home::new(sink.port);
    list_with_members(&home, &["ann@example.com"]);
    home.ok(&["list", "set", "dev", "footer", "footer"]);
    let cases: Vec<Vec<u8>> = vec![
        // multipart/mixed whose closing boundary never comes
        b"From: ann@example.com\nSubject: broken\nContent-Type: multipart/mixed; boundary=zz\n\n--zz\nContent-Type: text/plain\n\nunfinished".to_vec(),
        // raw 8-bit bytes in a header, invalid UTF-8
        b"From: ann@example.com\nSubject: caf\xe9 \xff\xfe\n\nbody\n".to_vec(),
        // no trailing newline, no body separator at all
        b"From: ann@example.com\nSubject: headers only".to_vec(),
    ];
    for c in &cases {
        let o = home.run(&["mail", "post", "dev"], c, &[]);
        assert_eq!(o.code, 0, "{}", o.stderr);
    }
    assert_eq!(sink.to("ann@example.com").len(), 3);
    // By Subject, not by "caf" anywhere: the other posts' random tokens (Message-Id, VERP) are hex
    // and now and then hold "caf" too.
    let subjects: Vec<String> = sink
        .to("ann@example.com")
        .iter()
        .filter_map(|m| m.header("Subject"))
        .collect();
    assert!(
        subjects.iter().any(|s| s.starts_with("[dev] caf")),
        "8-bit subject kept and prefixed: {subjects:?}"
    );
}
