//! The relay end to end with real clients (swaks, Python's smtplib) and Postfix's smtp-sink as the
//! remote end: smarthost delivery, alias pipes, full disk, dead smarthost, bounces, expiry, the queue CLI.

#[path = "relay/common.rs"]
mod common;

use common::{peer, Server, Sink};
use std::process::Command;
use std::time::Duration;

fn swaks(port: u16, args: &[&str]) -> String {
    let o = Command::new("swaks")
        .args([
            "-s",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "--timeout",
            "20",
        ])
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
}

fn relay_config(sink_port: u16, extra: &str) -> String {
    format!(
        "domains = [\"example.org\"]\naliases = \"HOME/aliases\"\nhostname = \"mx.example.org\"\n{extra}\n[relay]\nsmarthost = \"127.0.0.1:{sink_port}\"\nretry_secs = 0.3\nretry_max_secs = 1\ndown_secs = 0.3\n"
    )
}

const ALIASES: &str = "postmaster: HOME/postmaster.mbox\nroot: HOME/root.mbox\nsender: HOME/sender.mbox\n\
lista: \"|HOME/post.sh lista\"\nowner-lista: sender\nretry: \"|exit 75\"\nnouser: \"|echo no such list; exit 67\"\n";
const POST_SH: &str = "#!/bin/sh\n# stands in for `correo mail post LIST`: keep what the pipe got\ncat > HOME/piped.$1.$$\necho \"sender=$SENDER recipient=$RECIPIENT home=$CORREO_HOME\" >> HOME/piped.$1.$$\n";

fn files(prefix: &str, dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect();
    v.sort();
    v
}

fn wait_for(mut f: impl FnMut() -> bool, secs: u64) -> bool {
    let start = std::time::Instant::now();
    while start.elapsed() < Duration::from_secs(secs) {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

#[test]
fn swaks_through_smarthost_to_smtp_sink() {
    if !peer("swaks") || !peer("smtp-sink") {
        return;
    }
    let sink = Sink::start(&[]);
    let s = Server::start_with(&relay_config(sink.port, ""), &[("aliases", ALIASES)], &[]);
    let out = swaks(
        s.port,
        &[
            "-f",
            "a@example.org",
            "-t",
            "b@far.example.net,c@far.example.net",
            "--pipeline",
            "--header",
            "Subject: via correo",
        ],
    );
    assert!(out.contains("250 2.0.0 Ok: queued as"), "{out}");
    assert!(
        wait_for(
            || sink.messages().iter().any(|m| m.contains("via correo")),
            10
        ),
        "not delivered; log:\n{}",
        s.maillog()
    );
    let m = sink
        .messages()
        .into_iter()
        .find(|m| m.contains("via correo"))
        .unwrap();
    assert!(m.contains("by mx.example.org (correo) with ESMTP"), "{m}");
    assert!(s.wait_empty(Duration::from_secs(5)));
    let log = s.maillog();
    for want in [
        "to=<b@far.example.net>",
        "to=<c@far.example.net>",
        &format!("relay=127.0.0.1:{}", sink.port),
        "dsn=2.0.0",
        "status=sent",
        "delay=",
    ] {
        assert!(log.contains(want), "{want} missing in maillog:\n{log}");
    }
}

#[test]
fn python_smtplib_client() {
    if !peer("/usr/bin/python3") || !peer("smtp-sink") {
        return;
    }
    let sink = Sink::start(&[]);
    let s = Server::start_with(&relay_config(sink.port, ""), &[("aliases", ALIASES)], &[]);
    let script = format!(
        "import smtplib\ns = smtplib.SMTP('127.0.0.1', {})\ns.ehlo('py.test')\nassert s.has_extn('pipelining') and s.has_extn('enhancedstatuscodes')\n\
         r = s.sendmail('a@example.org', ['py@far.example.net'], 'Subject: from python\\r\\n\\r\\n.leading dot\\r\\nbody\\r\\n')\nassert r == {{}}, r\n\
         try:\n    s.sendmail('a@example.org', ['x@far.example.net'], 'Subject: x\\n\\nbare\\nlf\\n')\nexcept smtplib.SMTPDataError as e:\n    raise SystemExit('unexpected %r' % (e,))\n\
         s.quit()\n",
        s.port
    );
    // smtplib converts bare LF to CRLF itself, so both messages are fine on the wire.
    let o = Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(&script)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        wait_for(
            || sink
                .messages()
                .iter()
                .any(|m| m.contains("from python") && m.contains("\n.leading dot")),
            10
        ),
        "{}",
        s.maillog()
    );
}

#[test]
fn alias_pipe_end_to_end() {
    if !peer("swaks") {
        return;
    }
    let s = Server::start_with(
        &relay_config(9, ""),
        &[("aliases", ALIASES), ("post.sh", POST_SH)],
        &[],
    );
    let out = swaks(
        s.port,
        &[
            "-f",
            "poster@example.net",
            "-t",
            "lista@example.org",
            "--header",
            "Subject: to the list",
        ],
    );
    assert!(out.contains("250 2.0.0 Ok: queued"), "{out}");
    let home = s.home.path().to_path_buf();
    assert!(
        wait_for(
            || files("piped.lista.", &home)
                .iter()
                .any(|f| f.contains("recipient=")),
            10
        ),
        "pipe did not run:\n{}",
        s.maillog()
    );
    let got = &files("piped.lista.", &home)[0];
    assert!(
        got.starts_with("Return-Path: <owner-lista@example.org>"),
        "owner- alias should be the envelope sender: {got}"
    );
    assert!(
        got.contains("Subject: to the list") && got.contains("Received: from"),
        "{got}"
    );
    assert!(got.contains("recipient=lista@example.org"), "{got}");
    // `correo mail post` run from the alias finds the data directory serve uses.
    assert!(
        got.contains(&format!(
            "home={}",
            s.home.path().canonicalize().unwrap().display()
        )),
        "{got}"
    );
    assert!(s.wait_empty(Duration::from_secs(5)));
    assert!(s.maillog().contains("relay=pipe"), "{}", s.maillog());
}

#[test]
fn pipe_exit_codes_retry_and_bounce() {
    if !peer("swaks") {
        return;
    }
    let s = Server::start_with(&relay_config(9, ""), &[("aliases", ALIASES)], &[]);
    // 75 (EX_TEMPFAIL): stays queued and is retried.
    assert!(swaks(
        s.port,
        &["-f", "sender@example.org", "-t", "retry@example.org"]
    )
    .contains("queued as"));
    assert!(
        wait_for(|| s.maillog().matches("status=deferred").count() >= 2, 10),
        "{}",
        s.maillog()
    );
    let (_, ls, _) = s.cli(&["queue", "ls"]);
    assert!(ls.contains("pipe exit 75") && ls.contains("4.3.0"), "{ls}");
    // 67 (EX_NOUSER): bounced once, with an RFC 3464 report to the sender.
    assert!(swaks(
        s.port,
        &["-f", "sender@example.org", "-t", "nouser@example.org"]
    )
    .contains("queued as"));
    let mbox = s.path("sender.mbox");
    assert!(
        wait_for(
            || std::fs::read_to_string(&mbox)
                .unwrap_or_default()
                .contains("Final-Recipient: rfc822; nouser@example.org"),
            10
        ),
        "{}",
        s.maillog()
    );
    let dsn = std::fs::read_to_string(&mbox).unwrap();
    assert!(
        dsn.contains("Status: 5.1.1")
            && dsn.contains("no such list")
            && dsn.contains("Return-Path: <>"),
        "{dsn}"
    );
}

#[test]
fn full_disk_gives_452_and_keeps_nothing_half_done() {
    if !peer("swaks") {
        return;
    }
    let s = Server::start_with(
        &relay_config(9, ""),
        &[("aliases", ALIASES)],
        &[("CORREO_FAULT", "spool")],
    );
    let out = swaks(
        s.port,
        &["-f", "a@example.org", "-t", "postmaster@example.org"],
    );
    assert!(out.contains("452 4.3.1"), "{out}");
    let (_, stats, _) = s.cli(&["queue", "stats"]);
    assert!(stats.contains("messages: 0"), "{stats}");
    // The server is still up and answering.
    assert!(swaks(
        s.port,
        &[
            "--quit-after",
            "RCPT",
            "-f",
            "a@example.org",
            "-t",
            "postmaster@example.org"
        ]
    )
    .contains("250 2.1.5"));
}

#[test]
fn dead_smarthost_leaves_mail_queued_until_it_returns() {
    if !peer("swaks") || !peer("smtp-sink") {
        return;
    }
    let port = common::free_port();
    let s = Server::start_with(&relay_config(port, ""), &[("aliases", ALIASES)], &[]);
    assert!(swaks(
        s.port,
        &[
            "-f",
            "a@example.org",
            "-t",
            "b@far.example.net",
            "--header",
            "Subject: waiting"
        ]
    )
    .contains("queued as"));
    assert!(
        wait_for(|| s.cli(&["queue", "ls"]).1.contains("4.4.1"), 10),
        "{}",
        s.maillog()
    );
    let (_, ls, _) = s.cli(&["queue", "ls"]);
    assert!(
        ls.contains("smtp b@far.example.net") && ls.contains("4.4.1"),
        "{ls}"
    );
    let id = ls.split_whitespace().next().unwrap().to_string();
    let (code, show, _) = s.cli(&["queue", "show", &id]);
    assert!(code == 0 && show.contains("Subject: waiting"), "{show}");
    let sink = Sink::start_on(port, &[]);
    s.cli(&["queue", "flush"]);
    assert!(
        wait_for(
            || sink
                .messages()
                .iter()
                .any(|m| m.contains("Subject: waiting")),
            10
        ),
        "{}",
        s.maillog()
    );
    assert!(s.wait_empty(Duration::from_secs(5)));
}

#[test]
fn remote_rejection_bounces_but_never_to_the_null_sender() {
    if !peer("swaks") || !peer("smtp-sink") {
        return;
    }
    let sink = Sink::start(&["-f", "rcpt"]);
    let s = Server::start_with(&relay_config(sink.port, ""), &[("aliases", ALIASES)], &[]);
    assert!(swaks(
        s.port,
        &["-f", "sender@example.org", "-t", "x@far.example.net"]
    )
    .contains("queued as"));
    let mbox = s.path("sender.mbox");
    assert!(
        wait_for(
            || std::fs::read_to_string(&mbox)
                .unwrap_or_default()
                .contains("Final-Recipient: rfc822; x@far.example.net"),
            10
        ),
        "{}",
        s.maillog()
    );
    assert!(s.wait_empty(Duration::from_secs(5)));
    // A bounce of a bounce is never sent: the null sender's failure is only logged.
    assert!(swaks(s.port, &["-f", "", "-t", "y@far.example.net"]).contains("queued as"));
    assert!(
        wait_for(
            || s.maillog().contains("to=<y@far.example.net>")
                && s.maillog().matches("status=bounced").count() >= 2,
            10
        ),
        "{}",
        s.maillog()
    );
    assert!(s.wait_empty(Duration::from_secs(5)));
    let text = std::fs::read_to_string(&mbox).unwrap();
    assert_eq!(text.matches("Final-Recipient").count(), 1, "{text}");
}

#[test]
fn expiry_bounces_after_the_configured_time() {
    if !peer("swaks") {
        return;
    }
    // 0.0005 h = 1.8 s in the queue, smarthost dead.
    let cfg = relay_config(common::free_port(), "").replace(
        "retry_secs = 0.3",
        "retry_secs = 0.3\nexpire_hours = 0.0005",
    );
    let s = Server::start_with(&cfg, &[("aliases", ALIASES)], &[]);
    assert!(swaks(
        s.port,
        &["-f", "sender@example.org", "-t", "late@far.example.net"]
    )
    .contains("queued as"));
    let mbox = s.path("sender.mbox");
    assert!(
        wait_for(
            || std::fs::read_to_string(&mbox)
                .unwrap_or_default()
                .contains("gave up after"),
            15
        ),
        "{}",
        s.maillog()
    );
    assert!(s.wait_empty(Duration::from_secs(5)));
}

#[test]
fn trusted_networks_decide_relaying() {
    if !peer("swaks") {
        return;
    }
    let s = Server::start_with(
        &relay_config(9, "trusted_networks = [\"127.0.0.1/32\"]"),
        &[("aliases", ALIASES)],
        &[],
    );
    let ok = swaks(
        s.port,
        &[
            "--quit-after",
            "RCPT",
            "--local-interface",
            "127.0.0.1",
            "-f",
            "a@example.org",
            "-t",
            "x@far.example.net",
        ],
    );
    assert!(ok.contains("250 2.1.5"), "{ok}");
    let denied = swaks(
        s.port,
        &[
            "--quit-after",
            "RCPT",
            "--local-interface",
            "127.0.0.2",
            "-f",
            "a@example.org",
            "-t",
            "x@far.example.net",
        ],
    );
    assert!(denied.contains("550 5.7.1"), "{denied}");
    // Our own domains are open to everyone.
    let local = swaks(
        s.port,
        &[
            "--quit-after",
            "RCPT",
            "--local-interface",
            "127.0.0.2",
            "-f",
            "a@far.example.net",
            "-t",
            "postmaster@example.org",
        ],
    );
    assert!(local.contains("250 2.1.5"), "{local}");
    assert!(s.maillog().contains("reject=RCPT"), "{}", s.maillog());
}

#[test]
fn virtusertable_and_per_domain_tables() {
    if !peer("swaks") {
        return;
    }
    let cfg = relay_config(9, "virtusers = \"HOME/virtusertable\"\n[smtp.domain_aliases]\n\"lists.example.net\" = \"HOME/aliases.lists\"");
    let cfg = cfg
        .replace(
            "[smtp.domain_aliases]",
            "domain_aliases = { \"lists.example.net\" = \"HOME/aliases.lists\" }",
        )
        .replace("\n\"lists.example.net\" = \"HOME/aliases.lists\"\n", "\n");
    let s = Server::start_with(
        &cfg,
        &[
            ("aliases", ALIASES),
            (
                "virtusertable",
                "pablofelipe@miong.org  sender\n@catchall.example  root\n",
            ),
            ("aliases.lists", "dev: HOME/dev.mbox\n"),
        ],
        &[],
    );
    for (to, want) in [
        ("pablofelipe@miong.org", "250 2.1.5"),
        ("other@miong.org", "550 5.1.1"),
        ("anyone@catchall.example", "250 2.1.5"),
        ("dev@lists.example.net", "250 2.1.5"),
        ("nodev@lists.example.net", "550 5.1.1"),
    ] {
        let out = swaks(s.port, &["-f", "a@far.example.net", "-t", to]);
        assert!(out.contains(want), "{to}: {out}");
    }
    assert!(
        wait_for(
            || s.path("dev.mbox").exists()
                && s.path("sender.mbox").exists()
                && s.path("root.mbox").exists(),
            10
        ),
        "{}",
        s.maillog()
    );
}

#[test]
fn newaliases_names_every_bad_line() {
    let s = Server::start_with(&relay_config(9, ""), &[("aliases", ALIASES)], &[]);
    std::fs::write(
        s.path("aliases"),
        "ok: root\nbroken line\nx: \"|unterminated\n",
    )
    .unwrap();
    let (code, _, err) = s.cli(&["newaliases"]);
    assert_eq!(code, 65, "{err}");
    assert!(
        err.contains("aliases:2:") && err.contains("aliases:3:"),
        "{err}"
    );
    std::fs::write(
        s.path("aliases"),
        ALIASES.replace("HOME", s.home.path().to_str().unwrap()),
    )
    .unwrap();
    let (code, out, err) = s.cli(&["newaliases"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("7 aliases"), "{out}");
}

#[test]
fn queue_rm_and_stats() {
    if !peer("swaks") {
        return;
    }
    let s = Server::start_with(
        &relay_config(common::free_port(), ""),
        &[("aliases", ALIASES)],
        &[],
    );
    assert!(
        swaks(s.port, &["-f", "a@example.org", "-t", "b@far.example.net"]).contains("queued as")
    );
    let (_, stats, _) = s.cli(&["queue", "stats"]);
    assert!(stats.contains("messages: 1"), "{stats}");
    let (_, ls, _) = s.cli(&["queue", "ls"]);
    let id = ls.split_whitespace().next().unwrap().to_string();
    let (code, out, _) = s.cli(&["queue", "rm", &id]);
    assert_eq!(code, 0, "{out}");
    let (code, _, _) = s.cli(&["queue", "show", &id]);
    assert_eq!(code, 67);
}

#[test]
fn smtp_source_load_with_many_recipients() {
    if !peer("smtp-source") || !peer("smtp-sink") {
        return;
    }
    let sink = Sink::start(&[]);
    let s = Server::start_with(&relay_config(sink.port, ""), &[("aliases", ALIASES)], &[]);
    // 200 messages, 10 recipients each, 5 sessions reusing connections: 2,000 deliveries.
    let out = Command::new(common::which("smtp-source").unwrap())
        .args([
            "-s",
            "5",
            "-m",
            "200",
            "-r",
            "10",
            "-l",
            "2048",
            "-d",
            "-f",
            "load@example.org",
            "-t",
            "rcpt@far.example.net",
        ])
        .arg(format!("127.0.0.1:{}", s.port))
        .output()
        .unwrap();
    let source = String::from_utf8_lossy(&out.stderr).into_owned();
    // smtp-source exits non-zero on any reply it did not expect (msg_fatal), so success means it
    // heard 250 for all 200 messages.
    assert!(out.status.success(), "{}", load_report(&s, &sink, &source));
    assert!(
        s.wait_empty(Duration::from_secs(30)),
        "{}\n{}",
        s.cli(&["queue", "stats"]).1,
        load_report(&s, &sink, &source)
    );
    // The runner journals accepted rows first and logs status=sent right after (runner/remote.rs), so
    // on a busy machine the last log lines can trail the empty queue by a moment.
    let sent = || s.maillog().matches("status=sent").count();
    assert!(
        wait_for(|| sent() == 2000, 10),
        "{}",
        load_report(&s, &sink, &source)
    );
    // Recipients of one message travel in one transaction: 200 transactions at the sink.
    assert!(
        wait_for(|| sink.messages().len() == 200, 10),
        "{}",
        load_report(&s, &sink, &source)
    );
}

/// What a load run left behind, for a failure message: how many messages the server accepted (smtpd
/// lines), `status=sent` lines per queue id, the sink's count, every line that is neither queued, sent
/// nor removed, the whole story of each message short of its 10 sends, and smtp-source's stderr. The
/// data directory is copied to /tmp for a closer look.
fn load_report(s: &Server, sink: &Sink, source: &str) -> String {
    use std::collections::{BTreeMap, BTreeSet};
    let log = s.maillog();
    let id_of = |line: &str| Some(line.split("]: ").nth(1)?.split(':').next()?.to_string());
    let mut accepted = BTreeSet::new();
    let mut sent: BTreeMap<String, usize> = BTreeMap::new();
    let mut other = Vec::new();
    for line in log.lines() {
        let Some(id) = id_of(line) else { continue };
        if line.contains("correo/smtpd[") && line.contains("nrcpt=") {
            accepted.insert(id);
        } else if line.contains("status=sent") {
            *sent.entry(id).or_default() += 1;
        } else if !line.contains("status=queued") && !line.contains("status=removed") {
            other.push(line);
        }
    }
    let short: Vec<&String> = accepted
        .iter()
        .filter(|id| sent.get(*id) != Some(&10))
        .collect();
    let story: Vec<&str> = log
        .lines()
        .filter(|l| short.iter().any(|id| l.contains(id.as_str())))
        .collect();
    let keep = format!("/tmp/correo-load-{}", std::process::id());
    let _ = Command::new("cp")
        .arg("-a")
        .arg(s.home.path())
        .arg(&keep)
        .status();
    format!(
        "accepted: {}; status=sent: {} over {} queue ids; accepted but not sent 10 times: {short:?}\n\
         sink transactions: {}\nother lines:\n{}\nthose messages' lines:\n{}\n\
         smtp-source stderr:\n{source}\ndata directory copied to {keep}\n",
        accepted.len(),
        sent.values().sum::<usize>(),
        sent.len(),
        sink.messages().len(),
        other.join("\n"),
        story.join("\n"),
    )
}

#[test]
fn local_user_gets_an_mbox() {
    if !peer("swaks") {
        return;
    }
    let cfg = relay_config(9, "mailbox_dir = \"HOME/mail\"").replace("root: HOME/root.mbox\n", "");
    let aliases = ALIASES.replace("root: HOME/root.mbox\n", "");
    let s = Server::start_with(&cfg, &[("aliases", &aliases), ("mail/.keep", "")], &[]);
    // root exists everywhere; with no alias for it, it is a local user.
    let out = swaks(
        s.port,
        &[
            "-f",
            "a@far.example.net",
            "-t",
            "root@example.org",
            "--header",
            "Subject: for root",
        ],
    );
    assert!(out.contains("queued as"), "{out}");
    let mbox = s.path("mail/root");
    assert!(
        wait_for(
            || std::fs::read_to_string(&mbox)
                .unwrap_or_default()
                .contains("Subject: for root"),
            10
        ),
        "{}",
        s.maillog()
    );
    let text = std::fs::read_to_string(&mbox).unwrap();
    assert!(
        text.starts_with("From a@far.example.net ")
            && text.contains("Return-Path: <a@far.example.net>"),
        "{text}"
    );
    assert!(!text.contains('\r'), "mbox lines end in LF");
}

#[test]
fn new_alias_lines_take_effect_without_a_restart() {
    if !peer("swaks") {
        return;
    }
    let s = Server::start_with(&relay_config(9, ""), &[("aliases", ALIASES)], &[]);
    let before = swaks(
        s.port,
        &[
            "--quit-after",
            "RCPT",
            "-f",
            "a@far.example.net",
            "-t",
            "newlist@example.org",
        ],
    );
    assert!(before.contains("550 5.1.1"), "{before}");
    // What `correo list create` does: append the list's line to the aliases file.
    let mut text = std::fs::read_to_string(s.path("aliases")).unwrap();
    text.push_str(&format!(
        "newlist: {}/newlist.mbox\n",
        s.home.path().display()
    ));
    std::fs::write(s.path("aliases"), &text).unwrap();
    assert!(
        wait_for(
            || swaks(
                s.port,
                &[
                    "--quit-after",
                    "RCPT",
                    "-f",
                    "a@far.example.net",
                    "-t",
                    "newlist@example.org"
                ]
            )
            .contains("250 2.1.5"),
            10
        ),
        "{}",
        s.maillog()
    );
    // A broken edit is refused and the old tables stay.
    std::fs::write(s.path("aliases"), text + "broken line without colon\n").unwrap();
    std::thread::sleep(Duration::from_millis(1200));
    assert!(swaks(
        s.port,
        &[
            "--quit-after",
            "RCPT",
            "-f",
            "a@far.example.net",
            "-t",
            "newlist@example.org"
        ]
    )
    .contains("250 2.1.5"));
    assert!(
        wait_for(|| s.maillog().contains("reload refused"), 5),
        "{}",
        s.maillog()
    );
}

#[test]
fn local_users_can_go_through_the_recipe_engine() {
    if !peer("swaks") {
        return;
    }
    // deliver_command stands in for `correo deliver`: it gets the message on stdin and procmail's -f.
    let script = "#!/bin/sh\n{ echo \"args=$* user=$USER\"; cat; } > HOME/delivered.txt\nexit 0\n";
    let cfg = relay_config(
        9,
        "local_delivery = \"deliver\"\ndeliver_command = \"HOME/deliver.sh\"",
    );
    let aliases = ALIASES.replace("root: HOME/root.mbox\n", "");
    let s = Server::start_with(&cfg, &[("aliases", &aliases), ("deliver.sh", script)], &[]);
    assert!(swaks(
        s.port,
        &[
            "-f",
            "a@far.example.net",
            "-t",
            "root@example.org",
            "--header",
            "Subject: recipes"
        ]
    )
    .contains("queued as"));
    let out = s.path("delivered.txt");
    assert!(
        wait_for(
            || std::fs::read_to_string(&out)
                .unwrap_or_default()
                .contains("Subject: recipes"),
            10
        ),
        "{}",
        s.maillog()
    );
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(
        text.starts_with("args=-f a@far.example.net user=root"),
        "{text}"
    );
}

#[test]
fn sigterm_lets_a_running_pipe_finish_so_a_restart_does_not_repeat_it() {
    if !peer("swaks") {
        return;
    }
    let slow = "#!/bin/sh\ntouch HOME/started\nsleep 1\ncat > /dev/null\necho done >> HOME/runs\n";
    let aliases = format!("{ALIASES}slow: \"|HOME/slow.sh\"\n");
    let mut s = Server::start_with(
        &relay_config(9, ""),
        &[("aliases", &aliases), ("slow.sh", slow)],
        &[],
    );
    assert!(swaks(
        s.port,
        &["-f", "a@far.example.net", "-t", "slow@example.org"]
    )
    .contains("queued as"));
    let started = s.path("started");
    assert!(wait_for(|| started.exists(), 10), "{}", s.maillog());
    let mut child = s.child.take().unwrap();
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    // The pipe finished before serve exited, and its result was committed.
    assert_eq!(std::fs::read_to_string(s.path("runs")).unwrap(), "done\n");
    s.spawn();
    std::thread::sleep(Duration::from_millis(1500));
    assert!(s.wait_empty(Duration::from_secs(5)));
    assert_eq!(
        std::fs::read_to_string(s.path("runs")).unwrap(),
        "done\n",
        "the pipe ran again after restart"
    );
    assert!(s.maillog().contains("status=stopped"), "{}", s.maillog());
}

/// Starts tests/support/utf8_sink.py (a next hop offering SMTPUTF8 and 8BITMIME) and returns its port,
/// the file it logs every command to, and the child to kill.
fn utf8_sink(dir: &std::path::Path) -> (u16, std::path::PathBuf, std::process::Child) {
    use std::io::BufRead;
    let port = common::free_port();
    let log = dir.join("utf8-sink.log");
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/utf8_sink.py");
    let mut child = Command::new("/usr/bin/python3")
        .arg(script)
        .arg(port.to_string())
        .arg(&log)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready");
    (port, log, child)
}

/// RFC 6531 through the relay: Python's smtplib sends a UTF-8 sender and recipient with SMTPUTF8 and
/// BODY=8BITMIME; both parameters reach the next hop, which offers them. Without SMTPUTF8 the same
/// addresses are refused with 553 5.6.7.
#[test]
fn smtputf8_addresses_pass_through_to_a_next_hop_that_offers_it() {
    if !peer("/usr/bin/python3") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (port, log, mut child) = utf8_sink(tmp.path());
    let s = Server::start_with(&relay_config(port, ""), &[("aliases", ALIASES)], &[]);
    let script = format!(
        "import smtplib\n\
         s = smtplib.SMTP('127.0.0.1', {port})\n\
         s.ehlo('py.test')\n\
         assert s.has_extn('smtputf8') and s.has_extn('8bitmime')\n\
         msg = 'Subject: Grüße\\r\\nFrom: josé@example.org\\r\\n\\r\\nÄrger über Öl\\r\\n'.encode('utf-8')\n\
         r = s.sendmail('josé@example.org', ['dörte@far.example.net'], msg, mail_options=['SMTPUTF8', 'BODY=8BITMIME'])\n\
         assert r == {{}}, r\n\
         s.command_encoding = 'utf-8'\n\
         code, text = s.mail('josé@example.org')\n\
         assert code == 553 and text.startswith(b'5.6.7'), (code, text)\n\
         code, text = s.mail('a@example.org')\n\
         assert code == 250, (code, text)\n\
         code, text = s.rcpt('dörte@far.example.net')\n\
         assert code == 553 and text.startswith(b'5.6.7'), (code, text)\n\
         s.quit()\n",
        port = s.port
    );
    let o = Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(&script)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let seen = || String::from_utf8_lossy(&std::fs::read(&log).unwrap_or_default()).into_owned();
    assert!(
        wait_for(|| seen().contains("DATA "), 10),
        "{}\n{}",
        seen(),
        s.maillog()
    );
    let text = seen();
    let _ = child.kill();
    let _ = child.wait();
    let mail = text
        .lines()
        .find(|l| l.starts_with("MAIL FROM:"))
        .unwrap_or_default();
    assert!(mail.starts_with("MAIL FROM:<josé@example.org>"), "{text}");
    assert!(
        mail.contains(" SMTPUTF8") && mail.contains(" BODY=8BITMIME"),
        "{text}"
    );
    assert!(text.contains("RCPT TO:<dörte@far.example.net>"), "{text}");
    assert!(text.contains("Ärger über Öl"), "{text}");
    assert!(s.wait_empty(Duration::from_secs(5)));
}

/// RFC 6531 §3.2: a next hop without SMTPUTF8 (smtp-sink) never gets a UTF-8 address: that recipient
/// bounces with 5.6.7 (an RFC 6533 report), while an ASCII recipient of the same message is delivered.
#[test]
fn smtputf8_recipient_bounces_when_the_next_hop_lacks_it() {
    if !peer("/usr/bin/python3") || !peer("smtp-sink") {
        return;
    }
    let sink = Sink::start(&[]);
    let s = Server::start_with(&relay_config(sink.port, ""), &[("aliases", ALIASES)], &[]);
    let script = format!(
        "import smtplib\n\
         s = smtplib.SMTP('127.0.0.1', {})\n\
         msg = b'Subject: mixed\\r\\n\\r\\nplain ascii body\\r\\n'\n\
         r = s.sendmail('sender@example.org', ['dörte@far.example.net', 'plain@far.example.net'], msg, mail_options=['SMTPUTF8'])\n\
         assert r == {{}}, r\n\
         s.quit()\n",
        s.port
    );
    let o = Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(&script)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mbox = s.path("sender.mbox");
    assert!(
        wait_for(
            || std::fs::read_to_string(&mbox)
                .unwrap_or_default()
                .contains("Final-Recipient: utf-8; dörte@far.example.net"),
            10
        ),
        "{}",
        s.maillog()
    );
    let bounce = std::fs::read_to_string(&mbox).unwrap();
    assert!(bounce.contains("Status: 5.6.7"), "{bounce}");
    assert!(
        bounce.contains("message/global-delivery-status"),
        "{bounce}"
    );
    assert!(
        wait_for(
            || sink
                .messages()
                .iter()
                .any(|m| m.contains("plain ascii body")),
            10
        ),
        "{}",
        s.maillog()
    );
    assert!(
        !sink.messages().iter().any(|m| m.contains("dörte")),
        "a UTF-8 address reached a next hop without SMTPUTF8"
    );
    assert!(s.wait_empty(Duration::from_secs(5)));
}

/// RFC 5321 §4.1.3: address literals in MAIL FROM and RCPT TO. A trusted client's mail to
/// `user@[127.0.0.1]` goes straight to that address (no DNS; `[relay] port` points at smtp-sink).
#[test]
fn address_literal_recipient_is_delivered_without_dns() {
    if !peer("swaks") || !peer("smtp-sink") {
        return;
    }
    let sink = Sink::start(&[]);
    let config = format!(
        "domains = [\"example.org\"]\naliases = \"HOME/aliases\"\nhostname = \"mx.example.org\"\n\
         [relay]\nport = {}\ndns = \"127.0.0.1:9\"\nmx_tls = \"never\"\nretry_secs = 0.3\nretry_max_secs = 1\n",
        sink.port
    );
    let s = Server::start_with(&config, &[("aliases", ALIASES)], &[]);
    let out = swaks(
        s.port,
        &[
            "-f",
            "a@[192.0.2.1]",
            "-t",
            "lit@[127.0.0.1]",
            "--header",
            "Subject: to a literal",
        ],
    );
    assert!(out.contains("queued as"), "{out}");
    assert!(
        wait_for(
            || sink
                .messages()
                .iter()
                .any(|m| m.contains("Subject: to a literal")),
            10
        ),
        "{}",
        s.maillog()
    );
    // The sink has the message before the courier has read its 250 and logged it; the row goes only
    // after the log line, so an empty queue means the line is there (as in the tests above).
    assert!(s.wait_empty(Duration::from_secs(5)));
    let log = s.maillog();
    assert!(
        log.contains("to=<lit@[127.0.0.1]>") && log.contains("status=sent"),
        "{log}"
    );
}
