//! End to end, as a postmaster runs it: swaks → `correo serve` → aliases → `correo mail post LIST` →
//! the relay's durable queue → the remote sink. Nothing here is mocked: real swaks, the real binary as
//! server and as pipe, a real SMTP sink (python3-aiosmtpd) as the remote end.

mod common;
use common::*;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn have(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {cmd}")])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

#[test]
fn swaks_to_serve_to_list_to_queue_to_sink() {
    if missing_peer("swaks", have("swaks")) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let Some(sink) = Sink::start(tmp.path()) else {
        return;
    };
    let port = free_port();
    let web_port = free_port();
    let home = Home::new(port);
    home.ok(&[
        "list",
        "create",
        "dev@lists.example.org",
        "--owner",
        "boss@example.org",
    ]);
    home.ok(&[
        "list",
        "add",
        "dev",
        "--no-welcome",
        "ann@example.com",
        "bob@example.net",
    ]);
    let aliases = home.ok(&["list", "aliases", "dev@lists.example.org"]);
    let aliases_path = home.path().join("aliases");
    std::fs::write(&aliases_path, &aliases).unwrap();
    // As root the relay runs pipes as pipe_user; the list data here belongs to the test's own user.
    let me = if unsafe { libc::geteuid() } == 0 {
        "root".to_string()
    } else {
        std::env::var("USER").unwrap_or_default()
    };
    home.write_config(&format!(
        "[outbound]\nsmtp = \"127.0.0.1:{port}\"\n\n[smtp]\nlisten = [\"127.0.0.1:{port}\"]\ndomains = [\"lists.example.org\"]\naliases = \"{}\"\npipe_user = \"{me}\"\n\n[relay]\nsmarthost = \"127.0.0.1:{}\"\nretry_secs = 1\n\n[web]\nlisten = \"127.0.0.1:{web_port}\"\nurl = \"http://127.0.0.1:{web_port}\"\n",
        aliases_path.display(),
        sink.port
    ));
    let mut serve = Command::new(BIN)
        .arg("--home")
        .arg(home.path())
        .arg("serve")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(serve.stderr.take().unwrap());
    let mut line = String::new();
    let start = Instant::now();
    while !line.contains("listening") && start.elapsed() < Duration::from_secs(20) {
        line.clear();
        if err.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
    }
    assert!(line.contains("listening"), "serve did not start: {line}");
    std::thread::spawn(move || for _ in err.lines() {});

    let sw = Command::new("swaks")
        .args([
            "-s",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-f",
            "ann@example.com",
            "-t",
            "dev@lists.example.org",
        ])
        .args([
            "--header",
            "Subject: through the relay",
            "--body",
            "Hello list.",
            "--pipeline",
        ])
        .output()
        .unwrap();
    let so = String::from_utf8_lossy(&sw.stdout);
    assert!(sw.status.success(), "swaks failed: {so}");

    let start = Instant::now();
    while sink.messages().len() < 2 && start.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let msgs = sink.messages();
    assert_eq!(msgs.len(), 2, "maillog:\n{}", home.maillog());
    let ann = &sink.to("ann@example.com")[0];
    assert_eq!(
        ann.mail_from,
        "dev-bounces+ann=example.com@lists.example.org"
    );
    assert_eq!(
        ann.header("Subject").as_deref(),
        Some("[dev] through the relay")
    );
    assert_eq!(
        ann.header("List-Id").as_deref(),
        Some("<dev.lists.example.org>")
    );
    assert!(
        ann.header("Received").is_some(),
        "the relay adds its Received header"
    );
    assert_eq!(sink.to("bob@example.net").len(), 1);

    // RFC 8058 one-click: POST to the URL in Bob's List-Unsubscribe, on serve's web listener.
    let unsub = sink.to("bob@example.net")[0]
        .header("List-Unsubscribe")
        .unwrap();
    let url = unsub
        .split(['<', '>'])
        .find(|p| p.starts_with("http://"))
        .expect("https URL in List-Unsubscribe")
        .to_string();
    let path = url.splitn(4, '/').nth(3).map(|p| format!("/{p}")).unwrap();
    let body = "List-Unsubscribe=One-Click";
    let req = format!("POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", web_port)).unwrap();
    use std::io::{Read, Write};
    conn.write_all(req.as_bytes()).unwrap();
    let mut resp = String::new();
    conn.read_to_string(&mut resp).unwrap();
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(
        resp.contains("bob@example.net has been unsubscribed"),
        "{resp}"
    );
    let _ = serve.kill();
    let _ = serve.wait();
    let members = home.ok(&["list", "members", "dev"]);
    assert!(
        !members.contains("bob@example.net") && members.contains("ann@example.com"),
        "{members}"
    );
}
