//! `correo deliver` behaviour that has no procmail peer to compare with: the dry run (`--explain`),
//! exit 75 when nothing was delivered (73 only with `--bounce`), a full disk during an mbox append,
//! eight concurrent deliveries into one mbox, and `-d USER` with `.forward` (needs root and user pm).

use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

const MSG: &[u8] = b"From: Ana <ana@example.org>\nTo: pablo@miong.org\nSubject: reunion del lunes\n\nHola\nFrom here\n";

fn deliver(args: &[&str], env: &[(&str, &str)], msg: &[u8]) -> (i32, String) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_correo"));
    c.arg("deliver")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        c.env(k, v);
    }
    let mut ch = c.spawn().unwrap();
    // A usage error exits before reading the mail (procmail does too), so the pipe may be closed
    // already: a broken pipe here is the child's answer, not a test failure.
    if let Err(e) = ch.stdin.take().unwrap().write_all(msg) {
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
    }
    let out = ch.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn rc(dir: &Path, text: &str) -> String {
    let p = dir.join("rc");
    fs::write(&p, format!("MAILDIR={}\n{text}", dir.display())).unwrap();
    p.display().to_string()
}

#[test]
fn explain_shows_the_match_and_delivers_nothing() {
    let d = tempfile::tempdir().unwrap();
    let r = rc(
        d.path(),
        ":0:\n* ^Subject: \\/reunion.*\nmeetings\n:0\ninbox\n",
    );
    let (code, out) = deliver(&["--explain", "-m", &r], &[], MSG);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("* ^Subject: \\/reunion.*  -> matched"),
        "{out}"
    );
    assert!(
        out.contains("matched text: \"Subject: reunion del lunes\""),
        "{out}"
    );
    assert!(out.contains("MATCH=\"reunion del lunes\""), "{out}");
    assert!(out.contains("would deliver to meetings"), "{out}");
    assert!(out.contains("result: meetings"), "{out}");
    assert!(!d.path().join("meetings").exists());
}

#[test]
fn nothing_delivered_means_exit_75_unless_bounce() {
    let d = tempfile::tempdir().unwrap();
    let r = rc(d.path(), ":0\nmissing/dir/box\n");
    assert_eq!(deliver(&["-m", &r], &[], MSG).0, 75);
    assert_eq!(deliver(&["--bounce", "-m", &r], &[], MSG).0, 73);
    // procmail's -t is accepted and is our default anyway.
    assert_eq!(deliver(&["-t", "-m", &r], &[], MSG).0, 75);
}

#[test]
fn full_disk_during_mbox_append_keeps_the_mail_and_the_mailbox() {
    let d = tempfile::tempdir().unwrap();
    let r = rc(d.path(), ":0:\ninbox\n");
    assert_eq!(deliver(&["-m", &r], &[], MSG).0, 0);
    let before = fs::read(d.path().join("inbox")).unwrap();
    assert_eq!(deliver(&["-m", &r], &[("CORREO_FAULT", "mbox")], MSG).0, 75);
    assert_eq!(fs::read(d.path().join("inbox")).unwrap(), before);
    assert!(!d.path().join("inbox.lock").exists());
    assert_eq!(
        deliver(&["-m", &r], &[("CORREO_FAULT", "folder")], MSG).0,
        75
    );
}

#[test]
fn eight_concurrent_deliveries_into_one_mbox_stay_whole() {
    let d = tempfile::tempdir().unwrap();
    let r = rc(d.path(), ":0:\ninbox\n");
    let mut kids = Vec::new();
    for i in 0..8 {
        let body: Vec<u8> = format!(
            "From: n{i}@x.org\nSubject: {i}\n\n{}\n",
            format!("line {i}\n").repeat(2000)
        )
        .into_bytes();
        let mut c = Command::new(env!("CARGO_BIN_EXE_correo"));
        c.args(["deliver", "-m", &r]).stdin(Stdio::piped());
        let mut ch = c.spawn().unwrap();
        let mut stdin = ch.stdin.take().unwrap();
        kids.push((
            ch,
            std::thread::spawn(move || stdin.write_all(&body).unwrap()),
        ));
    }
    for (mut ch, w) in kids {
        w.join().unwrap();
        assert!(ch.wait().unwrap().success());
    }
    let mbox = fs::read_to_string(d.path().join("inbox")).unwrap();
    for i in 0..8 {
        let block = format!(
            "From: n{i}@x.org\nSubject: {i}\n\n{}\n",
            format!("line {i}\n").repeat(2000)
        );
        assert!(mbox.contains(&block), "message {i} is not whole");
    }
    assert_eq!(mbox.matches("\nSubject: ").count(), 8);
}

#[test]
fn suspicious_rcfiles_are_refused() {
    use std::os::unix::fs::PermissionsExt;
    let d = tempfile::tempdir().unwrap();
    let r = rc(d.path(), ":0\ninbox\n");
    fs::set_permissions(&r, fs::Permissions::from_mode(0o666)).unwrap();
    assert_eq!(deliver(&["-m", &r], &[], MSG).0, 75);
    assert!(!d.path().join("inbox").exists());
    fs::set_permissions(&r, fs::Permissions::from_mode(0o644)).unwrap();
    fs::set_permissions(d.path(), fs::Permissions::from_mode(0o777)).unwrap();
    assert_eq!(deliver(&["-m", &r], &[], MSG).0, 75);
    fs::set_permissions(d.path(), fs::Permissions::from_mode(0o1777)).unwrap();
    assert_eq!(deliver(&["-m", &r], &[], MSG).0, 0);
    assert!(d.path().join("inbox").exists());
}

#[test]
fn bad_arguments_are_usage_errors() {
    assert_eq!(deliver(&["-m"], &[], MSG).0, 64);
    assert_eq!(deliver(&["-Q"], &[], MSG).0, 64);
}

#[test]
fn junk_rcfiles_never_crash() {
    let d = tempfile::tempdir().unwrap();
    for junk in [
        ":0\n",
        "{\n}\n}",
        ":0 XYZ:\n* [\n* (\n* \\\n{",
        "A=`\nB=\"\n:0\n* $ ${A\n|\n",
        ":0\n* 1^1\n* -2^x\n! \n",
    ] {
        let r = rc(d.path(), junk);
        let (code, _) = deliver(&["-m", &r], &[], MSG);
        assert!([0, 75].contains(&code), "{junk:?} gave {code}");
    }
}

/// `-d pm`: `.forward` first (files, pipes, `\user`), refused when writable by others, then
/// `.procmailrc`. Runs only as root with user pm (CI creates it), and puts its files in pm's home.
#[test]
fn delivery_mode_reads_forward_then_procmailrc() {
    // SAFETY: geteuid cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    let Some(home) = Command::new("sh")
        .args(["-c", "getent passwd pm | cut -d: -f6"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|h| !h.is_empty())
    else {
        if std::env::var_os("CORREO_REQUIRE_PEERS").is_some() {
            panic!("user pm is required");
        }
        eprintln!("skipping -d tests: no user pm");
        return;
    };
    if !root {
        eprintln!("skipping -d tests: not root");
        return;
    }
    let h = Path::new(&home);
    let work = h.join("correo-d-test");
    let _ = fs::remove_dir_all(&work);
    fs::create_dir_all(&work).unwrap();
    let chown = |p: &Path| {
        Command::new("chown")
            .args(["-R", "pm:pm"])
            .arg(p)
            .status()
            .unwrap();
    };
    let fwd = h.join(".forward");
    let prc = h.join(".procmailrc");
    let (old_fwd, old_prc) = (fs::read(&fwd).ok(), fs::read(&prc).ok());

    fs::write(
        &fwd,
        format!(
            "# test\n{w}/copy, \"|cat > {w}/piped\"\n",
            w = work.display()
        ),
    )
    .unwrap();
    chown(&fwd);
    chown(&work);
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&fwd, fs::Permissions::from_mode(0o644)).unwrap();
    let (code, _) = deliver(&["-d", "pm"], &[], MSG);
    assert_eq!(code, 0);
    let copy = fs::read_to_string(work.join("copy")).unwrap();
    assert!(
        copy.starts_with("From "),
        "a From_ line is added in delivery mode: {copy}"
    );
    assert!(copy.contains("\n>From here\n"));
    assert!(fs::read_to_string(work.join("piped"))
        .unwrap()
        .contains("Subject: reunion del lunes"));

    // A .forward writable by others is refused; .procmailrc takes over.
    fs::set_permissions(&fwd, fs::Permissions::from_mode(0o666)).unwrap();
    fs::write(&prc, format!(":0\n{}/Maildir/\n", work.display())).unwrap();
    chown(&prc);
    fs::set_permissions(&prc, fs::Permissions::from_mode(0o644)).unwrap();
    assert_eq!(deliver(&["-d", "pm"], &[], MSG).0, 0);
    let new: Vec<_> = fs::read_dir(work.join("Maildir/new")).unwrap().collect();
    assert_eq!(new.len(), 1);

    // The seed's .forward: "| exec /usr/local/bin/procmail" runs our engine on .procmailrc.
    fs::write(&fwd, "\"| exec /usr/local/bin/procmail\"\n").unwrap();
    fs::set_permissions(&fwd, fs::Permissions::from_mode(0o644)).unwrap();
    assert_eq!(deliver(&["-d", "pm"], &[], MSG).0, 0);
    assert_eq!(fs::read_dir(work.join("Maildir/new")).unwrap().count(), 2);

    match old_fwd {
        Some(d) => fs::write(&fwd, d).unwrap(),
        None => fs::remove_file(&fwd).unwrap(),
    }
    match old_prc {
        Some(d) => fs::write(&prc, d).unwrap(),
        None => fs::remove_file(&prc).unwrap(),
    }
    let _ = fs::remove_dir_all(&work);
}
