//! Differential tests: every case in tests/recipe/cases/*.txt is run by the real procmail 3.22 (as the
//! unprivileged user `pm`, `procmail -t -m`) and by `correo deliver -m` (as `pm` too), each in its own
//! temp directory, on the same rcfile and mail. We compare the exit code, every file delivered (byte for
//! byte; Maildir and `msg.` names normalised), the log abstract and what reached the `$SENDMAIL`
//! recorder and the pipes. Every mismatch is reported by case name before the test fails.
//!
//! Case file format (one file may hold many cases):
//! ```text
//! === name
//! msgs: plain spam fromline        (files in tests/recipe/msgs/; default: plain)
//! args: X=1 Y=2                    (extra VAR=value arguments, optional)
//! posargs: a b                     (arguments after the rcfile: $1, $2..., optional)
//! noprelude                        (optional: do not prepend MAILDIR/LOGFILE/SENDMAIL)
//! ---
//! rcfile text
//! ```
//! Without `noprelude` the rcfile starts with `MAILDIR=$BASE`, `LOGFILE=$BASE/log`, `SENDMAIL=$BASE/rec`.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

struct Case {
    name: String,
    msgs: Vec<String>,
    args: Vec<String>,
    /// Arguments after the rcfile (`$1`, `$2`... in `-m` mode).
    posargs: Vec<String>,
    prelude: bool,
    rc: String,
}

fn load_cases(dir: &Path) -> Vec<Case> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        if f.extension().and_then(|e| e.to_str()) != Some("txt") {
            continue;
        }
        let text = fs::read_to_string(&f).unwrap();
        for chunk in text.split("\n=== ").map(|c| c.trim_start_matches("=== ")) {
            if chunk.trim().is_empty() || chunk.starts_with('#') {
                continue;
            }
            let (head, rc) = chunk
                .split_once("\n---\n")
                .unwrap_or_else(|| panic!("{}: case without ---: {chunk}", f.display()));
            let mut lines = head.lines();
            let name = lines.next().unwrap().trim().to_string();
            let mut c = Case {
                name,
                msgs: vec!["plain".into()],
                args: vec![],
                posargs: vec![],
                prelude: true,
                rc: rc.to_string(),
            };
            for l in lines {
                if let Some(m) = l.strip_prefix("msgs:") {
                    c.msgs = m.split_whitespace().map(String::from).collect();
                } else if let Some(a) = l.strip_prefix("args:") {
                    c.args = a.split_whitespace().map(String::from).collect();
                } else if let Some(a) = l.strip_prefix("posargs:") {
                    c.posargs = a.split_whitespace().map(String::from).collect();
                } else if l.trim() == "noprelude" {
                    c.prelude = false;
                }
            }
            out.push(c);
        }
    }
    out
}

fn peers_available() -> Result<(), String> {
    if !Path::new("/usr/bin/procmail").exists() {
        return Err("procmail is not installed (apt-get install procmail)".into());
    }
    let id = Command::new("id")
        .args(["-u", "pm"])
        .output()
        .map_err(|e| e.to_string())?;
    if !id.status.success() {
        return Err("user pm does not exist (useradd -m -s /bin/sh pm)".into());
    }
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Err("not root: cannot run procmail as user pm".into());
    }
    Ok(())
}

fn chown_pm(p: &Path) {
    let _ = Command::new("chown").args(["-R", "pm:pm"]).arg(p).status();
}

const RECORDER: &str = "#!/bin/sh\n# Stands in for $SENDMAIL: records its arguments and the mail it got.\nn=$(ls \"$BASE\"/sent.* 2>/dev/null | wc -l)\n{ echo \"ARGS: $*\"; cat; } > \"$BASE/sent.$n\"\n";

/// Runs one side; returns (exit code, normalised tree).
fn run_side(
    work: &Path,
    rc: &str,
    msg: &[u8],
    args: &[String],
    posargs: &[String],
    prog: &[&str],
) -> (i32, BTreeMap<String, Vec<u8>>) {
    fs::create_dir_all(work).unwrap();
    fs::write(work.join("rc"), rc).unwrap();
    fs::write(work.join("msg"), msg).unwrap();
    fs::write(work.join("rec"), RECORDER).unwrap();
    fs::set_permissions(work.join("rec"), fs::Permissions::from_mode(0o755)).unwrap();
    chown_pm(work);
    fs::set_permissions(work, fs::Permissions::from_mode(0o755)).unwrap();
    let base = work.display().to_string();
    let mut cmd = Command::new("timeout");
    cmd.args([
        "30",
        "setpriv",
        "--reuid=pm",
        "--regid=pm",
        "--init-groups",
        "env",
        "-i",
        "PATH=/usr/bin:/bin",
    ]);
    cmd.args(prog);
    cmd.arg(format!("BASE={base}"));
    cmd.args(args);
    cmd.arg(work.join("rc"));
    cmd.args(posargs);
    cmd.current_dir(work);
    cmd.stdin(Stdio::from(fs::File::open(work.join("msg")).unwrap()));
    // stdout is a pipe we read to its end: every program procmail started (it does not wait for pipes
    // without `w`) holds it open, so EOF means they have all finished writing their files.
    cmd.stdout(Stdio::piped()).stderr(Stdio::null());
    let mut child = cmd.spawn().unwrap();
    let mut sink = Vec::new();
    if let Some(mut o) = child.stdout.take() {
        let _ = std::io::Read::read_to_end(&mut o, &mut sink);
    }
    let st = child.wait().unwrap();
    // Programs may also outlive procmail with their stdout elsewhere: wait until no process is left
    // whose working directory is inside this case's directory.
    for _ in 0..400 {
        if !busy(work) {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut last = snapshot(work);
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(5));
        let now = snapshot(work);
        if now == last {
            break;
        }
        last = now;
    }
    (st.code().unwrap_or(-1), last)
}

/// formail and procmail date the `From_` lines they make; two runs a second apart must still compare.
fn norm_dates(d: &[u8]) -> Vec<u8> {
    static RE: std::sync::OnceLock<regex::bytes::Regex> = std::sync::OnceLock::new();
    let re = RE.get_or_init(|| {
        regex::bytes::Regex::new(
            r"(?m)^(>?From \S+ +)[A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \d{4}$",
        )
        .unwrap()
    });
    re.replace_all(d, &b"${1}<date>"[..]).into_owned()
}

/// True while some process has its working directory under `dir`.
fn busy(dir: &Path) -> bool {
    let Ok(rd) = fs::read_dir("/proc") else {
        return false;
    };
    for e in rd.flatten() {
        let name = e.file_name();
        if !name.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        if let Ok(cwd) = fs::read_link(e.path().join("cwd")) {
            if cwd.starts_with(dir) {
                return true;
            }
        }
    }
    false
}

/// Maildir and directory-folder names are unique per run; replace them by a placeholder and keep
/// contents, so two runs compare.
fn norm_name(rel: &str) -> String {
    let parts: Vec<&str> = rel.split('/').collect();
    if parts.len() >= 2 {
        let parent = parts[parts.len() - 2];
        let last = parts[parts.len() - 1];
        if matches!(parent, "new" | "cur" | "tmp") {
            return format!("{}/<maildir>", parts[..parts.len() - 1].join("/"));
        }
        if last.starts_with("msg.") {
            return format!("{}/<msg.>", parts[..parts.len() - 1].join("/"));
        }
    }
    rel.to_string()
}

fn norm_log(log: &[u8], base: &str) -> Vec<u8> {
    let text = String::from_utf8_lossy(log).replace(base, "$BASE");
    // Abstract lines (From_, Subject, Folder) are compared as a sorted list: a `c` block's clone runs
    // concurrently with its parent in procmail, and their lines interleave in any order (seen in CI:
    // the clone's Folder line ahead of both Subject lines).
    let mut entries: Vec<String> = Vec::new();
    for l in text.lines() {
        if l.starts_with("From ") || l.starts_with(" Subject:") || l.starts_with("  Folder:") {
            let l = match l.find("/new/") {
                Some(p) if l.starts_with("  Folder:") => {
                    let tail = l[p..].find('\t').map(|t| &l[p + t..]).unwrap_or("");
                    format!("{}/new/<maildir>{}", &l[..p], tail)
                }
                _ => l.to_string(),
            };
            entries.push(format!("{l}\n"));
        }
    }
    entries.sort();
    entries.concat().into_bytes()
}

fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut m: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            let rel = p.strip_prefix(dir).unwrap().display().to_string();
            if matches!(rel.as_str(), "rc" | "msg" | "rec") {
                continue;
            }
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                m.insert(format!("{rel}/"), Vec::new());
                stack.push(p);
            } else {
                let data = fs::read(&p).unwrap_or_default();
                let data = if rel == "log" {
                    norm_log(&data, &dir.display().to_string())
                } else {
                    data
                };
                let data = norm_dates(&data);
                let key = norm_name(&rel);
                // Several Maildir files: keep them all, sorted by content.
                let mut k = key.clone();
                let mut i = 0;
                while m.contains_key(&k) {
                    i += 1;
                    k = format!("{key}#{i}");
                }
                m.insert(k, data);
            }
        }
    }
    // Make duplicate keys independent of readdir order.
    let mut grouped: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
    for (k, v) in m {
        let base = k.split('#').next().unwrap().to_string();
        grouped.entry(base).or_default().push(v);
    }
    let mut out = BTreeMap::new();
    for (k, mut vs) in grouped {
        vs.sort();
        for (i, v) in vs.into_iter().enumerate() {
            out.insert(
                if i == 0 {
                    k.clone()
                } else {
                    format!("{k}#{i}")
                },
                v,
            );
        }
    }
    out
}

fn show(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(b);
    if s.len() > 600 {
        format!("{:?}...", &s[..600])
    } else {
        format!("{s:?}")
    }
}

fn run_case(c: &Case, m: &str, n: usize, root: &Path, tmp: &Path, bin_s: &str) -> Option<String> {
    let rc = if c.prelude {
        format!(
            "MAILDIR=$BASE\nLOGFILE=$BASE/log\nSENDMAIL=$BASE/rec\n{}",
            c.rc
        )
    } else {
        c.rc.clone()
    };
    let msg = fs::read(root.join("msgs").join(m))
        .unwrap_or_else(|_| panic!("{}: no message {m}", c.name));
    let id = format!("{}@{}", c.name, m);
    let dir = tmp.join(format!("{n}"));
    let t0 = std::time::Instant::now();
    let (pe, pt) = run_side(
        &dir.join("p"),
        &rc,
        &msg,
        &c.args,
        &c.posargs,
        &["/usr/bin/procmail", "-t", "-m"],
    );
    let t1 = std::time::Instant::now();
    let (ce, ct) = run_side(
        &dir.join("c"),
        &rc,
        &msg,
        &c.args,
        &c.posargs,
        &[bin_s, "deliver", "-m"],
    );
    let (tp, tc) = (t1 - t0, t1.elapsed());
    if tp.as_millis() > 3000 || tc.as_millis() > 1000 {
        eprintln!("slow: {id}: procmail {tp:?}, correo {tc:?}");
    }
    let mut diffs = Vec::new();
    if pe != ce {
        diffs.push(format!("exit code: procmail {pe}, correo {ce}"));
    }
    let keys: std::collections::BTreeSet<&String> = pt.keys().chain(ct.keys()).collect();
    for k in keys {
        match (pt.get(k), ct.get(k)) {
            (Some(a), Some(b)) if a == b => {}
            (Some(a), Some(b)) => diffs.push(format!(
                "{k} differs:\n      procmail {}\n      correo   {}",
                show(a),
                show(b)
            )),
            (Some(a), None) => diffs.push(format!("{k} only from procmail: {}", show(a))),
            (None, Some(b)) => diffs.push(format!("{k} only from correo: {}", show(b))),
            (None, None) => {}
        }
    }
    if diffs.is_empty() {
        if std::env::var_os("RECIPE_KEEP").is_none() {
            let _ = fs::remove_dir_all(&dir);
        }
        None
    } else {
        Some(format!("{id}:\n    {}", diffs.join("\n    ")))
    }
}

#[test]
fn procmail_differential() {
    if let Err(why) = peers_available() {
        if std::env::var_os("CORREO_REQUIRE_PEERS").is_some() {
            panic!("CORREO_REQUIRE_PEERS is set but the peer is missing: {why}");
        }
        eprintln!("skipping procmail differential tests: {why}");
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/recipe");
    let cases = load_cases(&root.join("cases"));
    let only = std::env::var("RECIPE_CASE").ok();
    let tmp = tempfile::Builder::new()
        .prefix("correo-recipe-")
        .tempdir_in("/tmp")
        .unwrap();
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).unwrap();
    // Our binary must be executable by pm wherever the checkout lives.
    let bin = tmp.path().join("correo");
    fs::copy(env!("CARGO_BIN_EXE_correo"), &bin).unwrap();
    fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).unwrap();
    let bin_s = bin.display().to_string();
    // Each case runs in its own directories, so cases run in parallel: procmail sleeps a second after
    // creating an mbox (its NFS atime hack), and that idle time would otherwise dominate the suite.
    let mut jobs = Vec::new();
    for c in &cases {
        if only.as_deref().is_some_and(|o| !c.name.contains(o)) {
            continue;
        }
        for m in &c.msgs {
            jobs.push((c, m.clone(), jobs.len()));
        }
    }
    let runs = jobs.len();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failures = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|sc| {
        for _ in 0..12 {
            sc.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some((c, m, n)) = jobs.get(i) else { break };
                if let Some(f) = run_case(c, m, *n, &root, tmp.path(), &bin_s) {
                    failures.lock().unwrap().push(f);
                }
            });
        }
    });
    let mut failures = failures.into_inner().unwrap();
    failures.sort();
    eprintln!(
        "procmail differential: {runs} runs, {} mismatches",
        failures.len()
    );
    if std::env::var_os("RECIPE_KEEP").is_some() {
        std::mem::forget(tmp);
    }
    assert!(
        failures.is_empty(),
        "{} of {runs} cases differ from procmail 3.22:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(only.is_some() || runs >= 150, "only {runs} cases");
}
