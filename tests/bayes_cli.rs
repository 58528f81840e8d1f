//! `correo spam learn|explain|rescore|check` with Bayes, driving the real binary on a temp home with
//! small synthetic corpora (so the suite is fast and needs no shared files).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const SPAM_WORDS: &[&str] = &[
    "viagra", "lottery", "winner", "casino", "pharmacy", "discount", "bitcoin", "prize",
];
const HAM_WORDS: &[&str] = &[
    "meeting", "agenda", "patch", "review", "kernel", "minutes", "release", "budget",
];

fn message(i: usize, spam: bool) -> String {
    let w = if spam { SPAM_WORDS } else { HAM_WORDS };
    let from = if spam {
        format!("promo{i}@deals{i}.example")
    } else {
        format!("dev{}@work.example", i % 3)
    };
    format!(
        "From: {from}\nTo: you@site.example\nSubject: {} {}\nMessage-Id: <m{i}{}@x.example>\nDate: Mon, 1 Jan 2024 10:00:00 +0000\n\n\
         Hello, {} {} {} number{i} and {} again.\n",
        w[i % w.len()],
        w[(i + 1) % w.len()],
        if spam { "s" } else { "h" },
        w[(i + 2) % w.len()],
        w[(i + 3) % w.len()],
        w[(i + 5) % w.len()],
        w[(i + 7) % w.len()],
    )
}

struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    fn new(toml: &str) -> Home {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("correo.toml"), toml).unwrap();
        Home { dir }
    }
    fn path(&self) -> &Path {
        self.dir.path()
    }
    fn run(&self, args: &[&str], stdin: &str) -> Output {
        use std::io::Write;
        let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
        let mut c = Command::new(env!("CARGO_BIN_EXE_correo"));
        c.arg("--home").arg(self.path()).args(args);
        if matches!(args.get(1), Some(&"check") | Some(&"explain")) {
            c.arg("--rules").arg(&rules);
        }
        let mut ch = c
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let _ = ch.stdin.take().unwrap().write_all(stdin.as_bytes());
        ch.wait_with_output().unwrap()
    }
    fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args, "");
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }
    /// Writes n messages of a class into a directory and returns it.
    fn corpus(&self, name: &str, n: usize, spam: bool, offset: usize) -> PathBuf {
        let d = self.path().join(name);
        std::fs::create_dir_all(&d).unwrap();
        for i in offset..offset + n {
            std::fs::write(d.join(format!("{i:04}")), message(i, spam)).unwrap();
        }
        d
    }
}

const SMALL: &str = "[spam.bayes]\nmin_spam = 10\nmin_ham = 10\nauto_learn = false\n";

#[test]
fn learn_counts_once_forget_undoes_and_dump_shows_it() {
    let h = Home::new(SMALL);
    let spam = h.corpus("spam", 12, true, 0);
    let ham = h.corpus("ham", 15, false, 100);
    let s = spam.to_str().unwrap();
    let o = h.run(&["spam", "learn", "--spam", s], "");
    assert!(o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("learned from 12 message(s)"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    h.ok(&["spam", "learn", "--ham", ham.to_str().unwrap()]);
    // Learning the same mail again changes nothing.
    let o = h.run(&["spam", "learn", "--spam", s], "");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("12 already learned"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(h
        .ok(&["spam", "learn", "--dump"])
        .contains("nspam=12 nham=15"));
    // Relearning a ham as spam moves it; forgetting undoes.
    let one = ham.join("0100");
    h.ok(&["spam", "learn", "--spam", one.to_str().unwrap()]);
    assert!(h
        .ok(&["spam", "learn", "--dump"])
        .contains("nspam=13 nham=14"));
    h.ok(&["spam", "learn", "--forget", one.to_str().unwrap()]);
    assert!(h
        .ok(&["spam", "learn", "--dump"])
        .contains("nspam=12 nham=14"));
}

#[test]
fn mbox_and_maildir_are_read() {
    let h = Home::new(SMALL);
    let mbox = h.path().join("spam.mbox");
    let text: String = (0..4)
        .map(|i| format!("From x@y Mon Jan  1 00:00:00 2024\n{}\n", message(i, true)))
        .collect();
    std::fs::write(&mbox, text).unwrap();
    let md = h.path().join("Maildir");
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(md.join(sub)).unwrap();
        std::fs::write(
            md.join(sub).join("1.x"),
            message(if sub == "cur" { 50 } else { 51 }, false),
        )
        .unwrap();
    }
    h.ok(&["spam", "learn", "--spam", mbox.to_str().unwrap()]);
    h.ok(&["spam", "learn", "--ham", md.to_str().unwrap()]);
    assert!(
        h.ok(&["spam", "learn", "--dump"])
            .contains("nspam=4 nham=2"),
        "tmp/ is skipped"
    );
}

#[test]
fn no_verdict_before_the_minimum_then_bayes_rules_fire() {
    let h = Home::new("[spam.bayes]\nauto_learn = false\n");
    h.ok(&[
        "spam",
        "learn",
        "--spam",
        h.corpus("spam", 12, true, 0).to_str().unwrap(),
    ]);
    h.ok(&[
        "spam",
        "learn",
        "--ham",
        h.corpus("ham", 12, false, 100).to_str().unwrap(),
    ]);
    let probe = message(500, true);
    let o = h.run(&["spam", "check", "--symbols"], &probe);
    assert!(
        !String::from_utf8_lossy(&o.stdout).contains("BAYES_"),
        "default minimum is 200 of each"
    );
    let e = String::from_utf8_lossy(&h.run(&["spam", "explain"], &probe).stdout).into_owned();
    assert!(e.contains("no verdict: needs 200 spam and 200 ham"), "{e}");

    let h = Home::new(SMALL);
    h.ok(&[
        "spam",
        "learn",
        "--spam",
        h.corpus("spam", 12, true, 0).to_str().unwrap(),
    ]);
    h.ok(&[
        "spam",
        "learn",
        "--ham",
        h.corpus("ham", 12, false, 100).to_str().unwrap(),
    ]);
    let o = h.run(&["spam", "check", "--symbols"], &message(500, true));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("BAYES_99"), "{out}");
    let o = h.run(&["spam", "check", "--symbols"], &message(501, false));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("BAYES_00"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    let e = String::from_utf8_lossy(&h.run(&["spam", "explain"], &message(502, true)).stdout)
        .into_owned();
    assert!(e.contains("towards spam:") && e.contains("BAYES_99"), "{e}");
}

#[test]
fn auto_learn_teaches_only_from_rules_and_not_when_bayes_was_sure() {
    // Threshold so low that every message auto-learns as ham... unless Bayes was already sure.
    let h = Home::new(
        "[spam.bayes]\nmin_spam = 10\nmin_ham = 10\nauto_learn_threshold_nonspam = 100.0\n",
    );
    let m = message(900, false);
    h.run(&["spam", "check"], &m);
    assert!(
        h.ok(&["spam", "learn", "--dump"]).contains("nham=1"),
        "{}",
        h.ok(&["spam", "learn", "--dump"])
    );
    h.ok(&[
        "spam",
        "learn",
        "--spam",
        h.corpus("spam", 12, true, 0).to_str().unwrap(),
    ]);
    h.ok(&[
        "spam",
        "learn",
        "--ham",
        h.corpus("ham", 12, false, 100).to_str().unwrap(),
    ]);
    let before = h.ok(&["spam", "learn", "--dump"]);
    // Bayes is sure this is spam (p >= 0.99): the rules' "ham" verdict is not learned.
    h.run(&["spam", "check"], &message(777, true));
    assert_eq!(h.ok(&["spam", "learn", "--dump"]), before);
}

#[test]
fn rescore_writes_a_cf_the_engine_loads() {
    let h = Home::new(SMALL);
    let spam = h.corpus("spam", 30, true, 0);
    let ham = h.corpus("ham", 30, false, 100);
    let out = h.path().join("fitted.cf");
    let o = h.run(
        &[
            "spam",
            "rescore",
            "--spam",
            spam.to_str().unwrap(),
            "--ham",
            ham.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--rules",
            concat!(env!("CARGO_MANIFEST_DIR"), "/rules"),
        ],
        "",
    );
    let so = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{so}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        so.contains("before: precision") && so.contains("after:  precision"),
        "{so}"
    );
    assert!(so.contains("score sets 2/3 (Bayes)    after:"), "{so}");
    let cf = std::fs::read_to_string(&out).unwrap();
    assert!(cf.starts_with("# Rule scores fitted"), "{cf}");
    // Sets 2/3 come from the token model, which stands in for the Bayes buckets: they are written
    // with 0 everywhere, and the token weights and CORREO_TOKENS buckets are there instead.
    assert!(cf.contains("\ntoken_model_weight "), "{cf}");
    assert!(
        cf.contains("\nbody CORREO_TOKENS_000 eval:check_token_model("),
        "{cf}"
    );
    let mut bayes = 0;
    for l in cf.lines().filter(|l| l.starts_with("score BAYES_")) {
        let v: Vec<f64> = l
            .split_whitespace()
            .skip(2)
            .take(4)
            .map(|x| x.parse().unwrap())
            .collect();
        assert_eq!((v[0], v[1]), (0.0, 0.0), "{l}");
        assert_eq!((v[2], v[3]), (0.0, 0.0), "{l}");
        bayes += 1;
    }
    assert!(bayes > 0, "{cf}");
    let lint = h.ok(&[
        "spam",
        "lint",
        "--rules",
        concat!(env!("CARGO_MANIFEST_DIR"), "/rules"),
        "--rules",
        out.to_str().unwrap(),
    ]);
    assert!(lint.contains("rules that run"), "{lint}");
}
