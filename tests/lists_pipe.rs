//! The pipe contract with the MTA: exit codes, durability, the outgoing spool, shunt, owners, bounces.

mod common;
use common::*;

#[test]
fn exit_codes_are_the_sysexits_an_mta_expects() {
    let home = Home::new(free_port());
    list_with_members(&home, &["ann@example.com"]);
    assert_eq!(
        home.mail(
            "post",
            "nosuch@lists.example.org",
            &post("a@b.org", "x", "y\n"),
            &[]
        )
        .code,
        67
    );
    assert_eq!(
        home.mail("frobnicate", "dev", &post("a@b.org", "x", "y\n"), &[])
            .code,
        64
    );
    assert_eq!(
        home.run(&["mail", "post"], b"", &[]).code,
        2,
        "clap usage error"
    );
    let no_from = home.mail("post", "dev", "Subject: x\n\nbody\n", &[]);
    assert_eq!(no_from.code, 65);
    assert!(no_from.stderr.contains("no From"), "{}", no_from.stderr);
    assert_eq!(home.mail("post", "dev", "", &[]).code, 65);
    let full = home.mail(
        "post",
        "dev",
        &post("ann@example.com", "x", "y\n"),
        &[("CORREO_FAULT", "spool")],
    );
    assert_eq!(
        full.code, 75,
        "a full disk must make the MTA retry: {}",
        full.stderr
    );
    // Garbage never panics.
    let junk: Vec<u8> = (0..4000u32).map(|i| (i * 7919 % 251) as u8).collect();
    let o = home.run(&["mail", "post", "dev"], &junk, &[]);
    assert!(o.code == 0 || o.code == 65, "code {} {}", o.code, o.stderr);
    assert!(!o.stderr.contains("panicked"), "{}", o.stderr);
    assert!(
        home.maillog().contains("refused (no such list"),
        "{}",
        home.maillog()
    );
}

#[test]
fn dead_outbound_keeps_the_post_and_flush_sends_it_once() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let home = Home::new(port);
    list_with_members(&home, &["ann@example.com", "bob@example.com"]);
    let o = home.mail(
        "post",
        "dev",
        &post("ann@example.com", "while down", "x\n"),
        &[],
    );
    assert_eq!(
        o.code, 0,
        "the post is durable even with the relay down: {}",
        o.stderr
    );
    assert!(
        home.maillog().contains("status=deferred"),
        "{}",
        home.maillog()
    );
    let Some(sink) = Sink::start_on(tmp.path(), port, &[]) else {
        return;
    };
    let out = home.ok(&["list", "flush"]);
    assert!(out.contains("sent 2"), "{out}");
    assert_eq!(sink.messages().len(), 2);
    assert_eq!(
        home.ok(&["list", "flush"]),
        "",
        "nothing left: flush is quiet"
    );
    assert_eq!(sink.messages().len(), 2, "sent once");
}

#[test]
fn refused_recipients_are_recorded_as_bounces_and_not_retried() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(sink) = Sink::start_on(tmp.path(), free_port(), &["--refuse-rcpt", "gone"]) else {
        return;
    };
    let home = Home::new(sink.port);
    list_with_members(&home, &["ann@example.com", "gone@example.com"]);
    assert_eq!(
        home.mail("post", "dev", &post("ann@example.com", "x", "y\n"), &[])
            .code,
        0
    );
    assert_eq!(sink.messages().len(), 1);
    assert!(home
        .ok(&["list", "members", "dev"])
        .contains("gone@example.com\tbounces=1"));
    assert_eq!(home.ok(&["list", "flush"]), "");
}

#[test]
fn verp_bounce_is_recorded_against_the_member() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(sink) = Sink::start(tmp.path()) else {
        return;
    };
    let home = Home::new(sink.port);
    list_with_members(&home, &["ann@example.com"]);
    let dsn = "From: MAILER-DAEMON@mx.example.com\nSubject: Undelivered Mail\nContent-Type: multipart/report; report-type=delivery-status; boundary=b\n\n--b\n\ngone\n--b--\n";
    let o = home.mail(
        "bounces",
        "dev",
        dsn,
        &[(
            "ORIGINAL_RECIPIENT",
            "dev-bounces+ann=example.com@lists.example.org",
        )],
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(home
        .ok(&["list", "members", "dev"])
        .contains("ann@example.com\tbounces=1"));
    // A bounce nobody can attribute goes to the owners, not to /dev/null.
    assert_eq!(
        home.mail(
            "bounces",
            "dev",
            "From: MAILER-DAEMON@x.org\nSubject: ?\n\nwhat\n",
            &[]
        )
        .code,
        0
    );
    assert_eq!(sink.to("boss@example.org").len(), 1);
}

#[test]
fn owner_mail_reaches_owners_and_moderators_and_never_loops() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(sink) = Sink::start(tmp.path()) else {
        return;
    };
    let home = Home::new(sink.port);
    list_with_members(&home, &[]);
    home.ok(&[
        "list",
        "set",
        "dev",
        "moderators",
        "mod@example.org, boss@example.org",
    ]);
    assert_eq!(
        home.mail(
            "owner",
            "dev",
            "From: someone@example.com\nSubject: question\n\nhi\n",
            &[]
        )
        .code,
        0
    );
    let m = sink.messages();
    assert_eq!(m.len(), 1);
    let mut rcpts = m[0].rcpt_tos.clone();
    rcpts.sort();
    assert_eq!(rcpts, vec!["boss@example.org", "mod@example.org"]);
    assert_eq!(
        m[0].header("X-Loop").as_deref(),
        Some("dev-owner@lists.example.org")
    );
    // The same message coming back is dropped.
    assert_eq!(
        home.mail("owner", "dev", &m[0].data.replace("\r\n", "\n"), &[])
            .code,
        0
    );
    assert_eq!(sink.messages().len(), 1);
}

#[test]
fn a_bug_in_processing_shunts_the_message_and_unshunt_reruns_it() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(sink) = Sink::start(tmp.path()) else {
        return;
    };
    let home = Home::new(sink.port);
    list_with_members(&home, &["ann@example.com"]);
    let o = home.mail(
        "post",
        "dev",
        &post("ann@example.com", "shunted", "x\n"),
        &[("CORREO_FAULT", "list-panic")],
    );
    assert_eq!(o.code, 0, "kept on our disk, so the MTA may forget it");
    let listing = home.ok(&["list", "shunt"]);
    assert!(
        listing.contains("post dev@lists.example.org") && listing.contains("list-panic"),
        "{listing}"
    );
    assert!(sink.messages().is_empty());
    home.ok(&["list", "unshunt"]);
    assert_eq!(sink.to("ann@example.com").len(), 1);
    assert_eq!(home.ok(&["list", "shunt"]), "");
}

#[test]
fn admin_cli_validates_names_settings_and_prints_aliases() {
    let home = Home::new(free_port());
    for bad in ["a;b@x.org", "x-request@x.org", "dev@-x.org", "nodomain"] {
        let o = home.run(&["list", "create", bad, "--owner", "o@x.org"], b"", &[]);
        assert_eq!(o.code, 64, "{bad}: {}", o.stderr);
    }
    home.ok(&["list", "create", "dev@x.org", "--owner", "o@x.org"]);
    home.ok(&["list", "create", "dev@y.org", "--owner", "o@x.org"]);
    let amb = home.run(&["list", "show", "dev"], b"", &[]);
    assert_eq!(amb.code, 64, "bare name shared by two lists is ambiguous");
    let e = home.run(
        &["list", "set", "dev@x.org", "reply_to", "everyone"],
        b"",
        &[],
    );
    assert_eq!(e.code, 64);
    assert!(
        e.stderr.contains("poster | list | explicit"),
        "{}",
        e.stderr
    );
    let aliases = home.ok(&["list", "aliases", "dev@x.org"]);
    assert_eq!(
        aliases.lines().filter(|l| l.contains("\"|/")).count(),
        10,
        "{aliases}"
    );
    let home_dir = std::fs::canonicalize(home.path()).unwrap();
    assert!(aliases.contains("dev-request: "), "{aliases}");
    assert!(
        aliases.contains(&format!(
            "--home {} mail request dev@x.org\"",
            home_dir.display()
        )),
        "{aliases}"
    );
    assert!(home.ok(&["list", "ls"]).contains("dev@y.org\t0 members"));
    home.ok(&["list", "rm", "dev@y.org"]);
    assert!(!home.ok(&["list", "ls"]).contains("dev@y.org"));
}
