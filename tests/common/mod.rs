//! Helpers the integration tests share: a temp data directory, the real `correo` binary run the way an
//! MTA runs it (empty environment, cwd /), and a real SMTP sink (Debian's python3-aiosmtpd) that
//! writes every transaction it accepts to a file.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub const BIN: &str = env!("CARGO_BIN_EXE_correo");

/// True when a peer is missing and the test should skip; fails instead under CORREO_REQUIRE_PEERS.
pub fn missing_peer(what: &str, present: bool) -> bool {
    if present {
        return false;
    }
    if std::env::var_os("CORREO_REQUIRE_PEERS").is_some() {
        panic!("required peer missing: {what}");
    }
    eprintln!("skipping: {what} is not installed");
    true
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct Sink {
    child: Child,
    pub port: u16,
    pub dir: PathBuf,
}

#[derive(Debug, Clone, serde::Deserialize)]
pub struct Delivered {
    pub mail_from: String,
    pub rcpt_tos: Vec<String>,
    pub data: String,
}

impl Delivered {
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.data.split("\r\n\r\n").next().unwrap_or("");
        let mut value: Option<String> = None;
        let mut in_field = false;
        for line in head.split("\r\n") {
            if in_field && (line.starts_with(' ') || line.starts_with('\t')) {
                value.as_mut().unwrap().push_str(line);
                continue;
            }
            in_field = false;
            if value.is_some() {
                continue;
            }
            if let Some((n, v)) = line.split_once(':') {
                if n.eq_ignore_ascii_case(name) {
                    value = Some(v.trim().to_string());
                    in_field = true;
                }
            }
        }
        value
    }
    pub fn body(&self) -> String {
        self.data
            .split_once("\r\n\r\n")
            .map(|x| x.1.to_string())
            .unwrap_or_default()
    }
}

pub fn have_aiosmtpd() -> bool {
    Command::new("/usr/bin/python3")
        .args(["-c", "import aiosmtpd"])
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

impl Sink {
    /// Starts the sink; None (skip) when python3-aiosmtpd is missing.
    pub fn start(dir: &Path) -> Option<Sink> {
        Self::start_on(dir, free_port(), &[])
    }

    pub fn start_on(dir: &Path, port: u16, extra: &[&str]) -> Option<Sink> {
        if missing_peer("python3-aiosmtpd (/usr/bin/python3)", have_aiosmtpd()) {
            return None;
        }
        let out = dir.join("sink");
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/sink.py");
        let mut child = Command::new("/usr/bin/python3")
            .arg(script)
            .arg(port.to_string())
            .arg(&out)
            .args(extra)
            .stdout(Stdio::piped())
            .spawn()
            .expect("start sink");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "sink did not start");
        Some(Sink {
            child,
            port,
            dir: out,
        })
    }

    pub fn messages(&self) -> Vec<Delivered> {
        let mut files: Vec<PathBuf> = match std::fs::read_dir(&self.dir) {
            Ok(rd) => rd
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .collect(),
            Err(_) => vec![],
        };
        files.sort();
        files
            .iter()
            .map(|p| serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap())
            .collect()
    }

    /// Messages to one recipient.
    pub fn to(&self, rcpt: &str) -> Vec<Delivered> {
        self.messages()
            .into_iter()
            .filter(|m| m.rcpt_tos.iter().any(|r| r.eq_ignore_ascii_case(rcpt)))
            .collect()
    }

    pub fn clear(&self) {
        if let Ok(rd) = std::fs::read_dir(&self.dir) {
            for e in rd.flatten() {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// A data directory with a correo.toml pointing list mail at `smtp_port`.
pub struct Home {
    pub tmp: tempfile::TempDir,
}

impl Home {
    pub fn new(smtp_port: u16) -> Home {
        let tmp = tempfile::tempdir().unwrap();
        let home = Home { tmp };
        home.write_config(&format!("[outbound]\nsmtp = \"127.0.0.1:{smtp_port}\"\n"));
        home
    }
    pub fn path(&self) -> &Path {
        self.tmp.path()
    }
    pub fn write_config(&self, text: &str) {
        std::fs::write(self.path().join("correo.toml"), text).unwrap();
    }
    /// Runs `correo --home HOME args...` as an MTA would: empty environment but `env`, cwd /.
    pub fn run(&self, args: &[&str], stdin: &[u8], env: &[(&str, &str)]) -> Out {
        let mut cmd = Command::new(BIN);
        cmd.env_clear()
            .current_dir("/")
            .arg("--home")
            .arg(self.path())
            .args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut si = child.stdin.take().unwrap();
        let data = stdin.to_vec();
        let writer = std::thread::spawn(move || {
            let _ = si.write_all(&data);
        });
        let o = child.wait_with_output().unwrap();
        writer.join().unwrap();
        Out {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into(),
            stderr: String::from_utf8_lossy(&o.stderr).into(),
        }
    }
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args, b"", &[]);
        assert_eq!(o.code, 0, "correo {args:?} failed: {}", o.stderr);
        o.stdout
    }
    /// Pipes a message to `correo mail ACTION LIST`, returns the exit code.
    pub fn mail(&self, action: &str, list: &str, msg: &str, env: &[(&str, &str)]) -> Out {
        self.run(&["mail", action, list], msg.as_bytes(), env)
    }
    pub fn maillog(&self) -> String {
        std::fs::read_to_string(self.path().join("log/maillog")).unwrap_or_default()
    }
}

/// A list `dev@lists.example.org` owned by boss@example.org with members.
pub fn list_with_members(home: &Home, members: &[&str]) {
    home.ok(&[
        "list",
        "create",
        "dev@lists.example.org",
        "--owner",
        "boss@example.org",
    ]);
    if !members.is_empty() {
        let mut args = vec!["list", "add", "dev", "--no-welcome"];
        args.extend_from_slice(members);
        home.ok(&args);
    }
}

pub fn post(from: &str, subject: &str, body: &str) -> String {
    format!("From: {from}\nTo: dev@lists.example.org\nSubject: {subject}\nMessage-ID: <{}@example.com>\n\n{body}", subject.len())
}

/// The 40-hex token in a text.
pub fn token_in(text: &str) -> Option<String> {
    text.split(|c: char| !c.is_ascii_hexdigit())
        .find(|w| w.len() == 40)
        .map(str::to_string)
}
