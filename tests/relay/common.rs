//! Helpers shared by the relay tests: start `correo serve` on free loopback ports with a temp home, start
//! Postfix's smtp-sink as the remote end, find peers (skip politely unless CORREO_REQUIRE_PEERS is set),
//! and speak raw SMTP for transcripts.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_correo");

/// True when `prog` can run; otherwise prints why the test is skipped, or fails when peers are required.
pub fn peer(prog: &str) -> bool {
    let found = which(prog).is_some();
    if !found {
        if std::env::var_os("CORREO_REQUIRE_PEERS").is_some() {
            panic!("{prog} is required (CORREO_REQUIRE_PEERS is set) but not installed");
        }
        eprintln!("SKIP: {prog} not installed");
    }
    found
}

pub fn which(prog: &str) -> Option<PathBuf> {
    if prog.starts_with('/') {
        return Path::new(prog).exists().then(|| PathBuf::from(prog));
    }
    let path = std::env::var("PATH").unwrap_or_default() + ":/usr/sbin:/sbin";
    path.split(':')
        .map(|d| Path::new(d).join(prog))
        .find(|p| p.exists())
}

pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

pub fn is_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}

pub struct Server {
    pub home: tempfile::TempDir,
    pub port: u16,
    pub child: Option<Child>,
    pub config: String,
    pub env: Vec<(String, String)>,
}

impl Server {
    /// Writes correo.toml (`[smtp] listen` is filled in) and starts the server.
    pub fn start(config: &str) -> Server {
        Self::start_env(config, &[])
    }

    pub fn start_env(config: &str, env: &[(&str, &str)]) -> Server {
        Self::start_with(config, &[], env)
    }

    /// Like `start`, writing `files` (relative to the home, "HOME" replaced) first.
    pub fn start_with(config: &str, files: &[(&str, &str)], env: &[(&str, &str)]) -> Server {
        let home = tempfile::tempdir().unwrap();
        for (name, text) in files {
            let p = home.path().join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, text.replace("HOME", home.path().to_str().unwrap())).unwrap();
            let _ =
                std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755));
        }
        // Pipes run as nobody when we are root: let them write test files here.
        let _ = std::fs::set_permissions(
            home.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o777),
        );
        let port = free_port();
        let config = config
            .replace("HOME", home.path().to_str().unwrap())
            .replace("PORT", &port.to_string());
        let mut s = Server {
            home,
            port,
            child: None,
            config,
            env: env
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
        };
        s.write_config();
        s.spawn();
        s
    }

    pub fn path(&self, p: &str) -> PathBuf {
        self.home.path().join(p)
    }

    pub fn write_config(&self) {
        let text = format!(
            "[smtp]\nlisten = [\"127.0.0.1:{}\"]\n{}",
            self.port,
            self.config.trim_start_matches("[smtp]\n")
        );
        std::fs::write(self.home.path().join("correo.toml"), text).unwrap();
    }

    pub fn spawn(&mut self) {
        let mut c = Command::new(BIN);
        c.arg("--home")
            .arg(self.home.path())
            .arg("serve")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in &self.env {
            c.env(k, v);
        }
        let mut child = c.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut r = BufReader::new(stderr);
            let mut line = String::new();
            let mut sent = false;
            while r.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
                eprint!("serve: {line}");
                if !sent && line.contains("listening on") {
                    let _ = tx.send(true);
                    sent = true;
                }
                line.clear();
            }
            let _ = tx.send(false);
        });
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(true) => {}
            other => panic!("correo serve did not start: {other:?}"),
        }
        self.child = Some(child);
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            unsafe { libc::kill(c.id() as i32, libc::SIGKILL) };
            let _ = c.wait();
        }
    }

    /// Runs `correo --home HOME ARGS...` and returns (exit code, stdout, stderr).
    pub fn cli(&self, args: &[&str]) -> (i32, String, String) {
        let o = Command::new(BIN)
            .arg("--home")
            .arg(self.home.path())
            .args(args)
            .output()
            .unwrap();
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    }

    pub fn maillog(&self) -> String {
        std::fs::read_to_string(self.path("log/maillog")).unwrap_or_default()
    }

    /// Waits until the queue is empty (every row delivered or bounced).
    pub fn wait_empty(&self, limit: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < limit {
            let (_, out, _) = self.cli(&["queue", "stats"]);
            if out.contains("recipients: 0\n") {
                return true;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        false
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Postfix's smtp-sink, dumping every transaction into `dir` (one file each).
pub struct Sink {
    pub port: u16,
    pub dir: tempfile::TempDir,
    child: Child,
}

impl Sink {
    pub fn start(extra: &[&str]) -> Sink {
        Self::start_on(free_port(), extra)
    }
    pub fn start_on(port: u16, extra: &[&str]) -> Sink {
        let dir = tempfile::tempdir().unwrap();
        let _ = std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o777),
        );
        let mut c = Command::new(which("smtp-sink").expect("smtp-sink"));
        if is_root() {
            c.args(["-u", "nobody"]);
        }
        c.arg("-d")
            .arg(format!("{}/%H%M%S.", dir.path().display()))
            .args(extra)
            .arg(format!("127.0.0.1:{port}"))
            .arg("256");
        let child = c
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "smtp-sink did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Sink { port, dir, child }
    }

    /// The transactions received so far, each as text.
    pub fn messages(&self) -> Vec<String> {
        let mut v = Vec::new();
        for e in std::fs::read_dir(self.dir.path()).unwrap() {
            let p = e.unwrap().path();
            if let Ok(s) = std::fs::read_to_string(&p) {
                v.push(s);
            }
        }
        v
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A raw SMTP connection for transcripts.
pub struct Raw {
    pub s: TcpStream,
    buf: Vec<u8>,
}

impl Raw {
    pub fn connect(port: u16) -> Raw {
        let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        Raw { s, buf: Vec::new() }
    }
    pub fn send(&mut self, data: &[u8]) {
        self.s.write_all(data).unwrap();
    }
    /// Reads one whole (possibly multi-line) reply.
    pub fn reply(&mut self) -> String {
        let mut out = String::new();
        loop {
            let line = self.line();
            out.push_str(&line);
            if line.len() < 4 || line.as_bytes()[3] != b'-' {
                return out;
            }
        }
    }
    fn line(&mut self) -> String {
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                let l: Vec<u8> = self.buf.drain(..=i).collect();
                return String::from_utf8_lossy(&l).into_owned();
            }
            let mut chunk = [0u8; 4096];
            let n = self.s.read(&mut chunk).unwrap_or(0);
            if n == 0 {
                let rest = String::from_utf8_lossy(&self.buf).into_owned();
                self.buf.clear();
                return rest;
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}
