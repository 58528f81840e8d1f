//! Subscriptions by mail: double opt-in, -request commands, rate limits, welcome and goodbye.

mod common;
use common::*;

fn confirm_token_sent_to(sink: &Sink, addr: &str) -> String {
    let m = sink
        .to(addr)
        .into_iter()
        .find(|m| {
            m.header("Subject")
                .unwrap_or_default()
                .starts_with("confirm ")
        })
        .expect("confirmation sent");
    token_in(&m.header("Subject").unwrap()).unwrap()
}

#[test]
fn join_then_confirm_by_replying_subscribes_and_welcomes() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(sink) = Sink::start(tmp.path()) else {
        return;
    };
    let home = Home::new(sink.port);
    list_with_members(&home, &[]);
    assert_eq!(
        home.mail(
            "join",
            "dev",
            "From: New <new@example.com>\nSubject: hi\n\n",
            &[]
        )
        .code,
        0
    );
    assert!(
        !home
            .ok(&["list", "members", "dev"])
            .contains("new@example.com"),
        "not before confirming"
    );
    let token = confirm_token_sent_to(&sink, "new@example.com");
    let reply = format!("From: new@example.com\nSubject: Re: confirm {token}\n\n");
    assert_eq!(home.mail("confirm", "dev", &reply, &[]).code, 0);
    assert!(home
        .ok(&["list", "members", "dev"])
        .contains("new@example.com"));
    assert!(sink.to("new@example.com").iter().any(|m| m
        .header("Subject")
        .unwrap_or_default()
        .starts_with("Welcome to")));
}

#[test]
fn forged_or_wrong_tokens_do_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(sink) = Sink::start(tmp.path()) else {
        return;
    };
    let home = Home::new(sink.port);
    list_with_members(&home, &[]);
    assert_eq!(
        home.mail("subscribe", "dev", "From: new@example.com\n\n", &[])
            .code,
        0
    );
    let token = confirm_token_sent_to(&sink, "new@example.com");
    let mut wrong = token.clone().into_bytes();
    wrong[0] = if wrong[0] == b'a' { b'b' } else { b'a' };
    let reply = format!(
        "From: new@example.com\nSubject: confirm {}\n\n",
        String::from_utf8(wrong).unwrap()
    );
    assert_eq!(home.mail("confirm", "dev", &reply, &[]).code, 0);
    assert!(!home
        .ok(&["list", "members", "dev"])
        .contains("new@example.com"));
}

#[test]
fn request_subscribe_for_another_address_asks_that_address() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(sink) = Sink::start(tmp.path()) else {
        return;
    };
    let home = Home::new(sink.port);
    list_with_members(&home, &[]);
    let msg = "From: prankster@example.org\nSubject: subscribe address=victim@example.net\n\n";
    assert_eq!(home.mail("request", "dev", msg, &[]).code, 0);
    let token = confirm_token_sent_to(&sink, "victim@example.net");
    let results = &sink.to("prankster@example.org")[0];
    assert!(
        results
            .body()
            .contains("> subscribe address=victim@example.net"),
        "{}",
        results.body()
    );
    assert!(
        results
            .body()
            .contains("A confirmation request was sent to victim@example.net"),
        "{}",
        results.body()
    );
    // The token confirms via the -request address too.
    let reply = format!("From: victim@example.net\nSubject: Re: confirm {token}\n\n");
    assert_eq!(home.mail("request", "dev", &reply, &[]).code, 0);
    assert!(home
        .ok(&["list", "members", "dev"])
        .contains("victim@example.net"));
}

#[test]
fn confirmations_to_one_address_are_rate_limited() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(sink) = Sink::start(tmp.path()) else {
        return;
    };
    let home = Home::new(sink.port);
    list_with_members(&home, &[]);
    for _ in 0..6 {
        let msg = "From: prankster@example.org\nSubject: subscribe address=victim@example.net\n\n";
        assert_eq!(home.mail("request", "dev", msg, &[]).code, 0);
    }
    assert_eq!(
        sink.to("victim@example.net").len(),
        3,
        "default confirm_per_day = 3"
    );
    assert!(home.maillog().contains("status=rate-limited"));
}

#[test]
fn request_commands_help_info_who_and_stop_rules() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(sink) = Sink::start(tmp.path()) else {
        return;
    };
    let home = Home::new(sink.port);
    list_with_members(&home, &["ann@example.com"]);
    let msg =
        "From: ann@example.com\nSubject: help\n\ninfo\nwho\nthis is not a command\nunsubscribe\n";
    assert_eq!(home.mail("request", "dev", msg, &[]).code, 0);
    let mails = sink.to("ann@example.com");
    let subjects: Vec<String> = mails.iter().filter_map(|m| m.header("Subject")).collect();
    assert!(
        subjects.iter().any(|s| s.starts_with("Help for")),
        "{subjects:?}"
    );
    assert!(
        subjects.iter().any(|s| s.starts_with("About")),
        "{subjects:?}"
    );
    let results = mails
        .iter()
        .find(|m| m.header("Subject").as_deref() == Some("The results of your email commands"))
        .unwrap();
    let body = results.body();
    assert!(
        body.contains("not available to you"),
        "who is closed by default: {body}"
    );
    assert!(
        body.contains("unknown command: this is not a command"),
        "{body}"
    );
    assert!(
        !body.contains("> unsubscribe"),
        "stops at the first unknown line: {body}"
    );
    assert!(
        !subjects.iter().any(|s| s.starts_with("confirm")),
        "unsubscribe after the stop must not run"
    );

    home.ok(&["list", "set", "dev", "who", "members"]);
    sink.clear();
    assert_eq!(
        home.mail(
            "request",
            "dev",
            "From: ann@example.com\nSubject: who\n\n",
            &[]
        )
        .code,
        0
    );
    assert!(sink.to("ann@example.com")[0]
        .body()
        .contains("ann@example.com"));
}

#[test]
fn leave_with_confirmation_and_goodbye() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(sink) = Sink::start(tmp.path()) else {
        return;
    };
    let home = Home::new(sink.port);
    list_with_members(&home, &["ann@example.com"]);
    assert_eq!(
        home.mail("leave", "dev", "From: ann@example.com\n\n", &[])
            .code,
        0
    );
    let token = confirm_token_sent_to(&sink, "ann@example.com");
    let rcpt = format!("dev-confirm+{token}@lists.example.org");
    assert_eq!(
        home.mail(
            "confirm",
            "dev",
            "From: ann@example.com\nSubject: ok\n\n",
            &[("RECIPIENT", &rcpt)]
        )
        .code,
        0
    );
    assert!(home.ok(&["list", "members", "dev"]).is_empty());
    assert!(sink.to("ann@example.com").iter().any(|m| m
        .header("Subject")
        .unwrap_or_default()
        .starts_with("You have left")));
}

#[test]
fn autoresponders_do_not_get_answers() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(sink) = Sink::start(tmp.path()) else {
        return;
    };
    let home = Home::new(sink.port);
    list_with_members(&home, &[]);
    let msg = "From: robot@example.com\nAuto-Submitted: auto-replied\nSubject: subscribe\n\n";
    assert_eq!(home.mail("request", "dev", msg, &[]).code, 0);
    assert!(sink.messages().is_empty());
}

#[test]
fn templates_can_be_overridden_per_list() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(sink) = Sink::start(tmp.path()) else {
        return;
    };
    let home = Home::new(sink.port);
    list_with_members(&home, &[]);
    home.ok(&["list", "set", "dev", "subscribe_policy", "open"]);
    let dir = home.path().join("lists/dev@lists.example.org/templates");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("welcome.txt"),
        "Subject: Bienvenido a {list}\n\nHola {address}.\n",
    )
    .unwrap();
    assert_eq!(
        home.mail("join", "dev", "From: nuevo@example.com\n\n", &[])
            .code,
        0
    );
    let m = &sink.to("nuevo@example.com")[0];
    assert_eq!(
        m.header("Subject").as_deref(),
        Some("Bienvenido a dev@lists.example.org")
    );
    assert!(m.body().contains("Hola nuevo@example.com."), "{}", m.body());
}
