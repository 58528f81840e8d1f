//! `POST /checkv2` over real HTTP (the hyper listener from `web::run`), the way rspamc asks rspamd:
//! the raw message as the body, JSON back with action, score, required_score and symbols.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn post(port: u16, body: &[u8]) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let head = format!("POST /checkv2 HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

#[test]
fn checkv2_answers_like_rspamd() {
    let dir = tempfile::tempdir().unwrap();
    let home = Arc::new(correo::config::Home::open(Some(dir.path()), None).unwrap());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap();
    let addr = format!("127.0.0.1:{port}");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let h = home.clone();
    rt.spawn(async move {
        let listener = std::net::TcpListener::bind(&addr).unwrap();
        listener.set_nonblocking(true).unwrap();
        let _ = correo::web::run(h, listener).await;
    });
    let t = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "web listener did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let gtube = include_str!("spam/gtube.eml");
    let r = post(port, gtube.as_bytes());
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    assert!(r.contains("application/json"), "{r}");
    let json = &r[r.find("\r\n\r\n").unwrap() + 4..];
    let v: serde_json::Value = serde_json::from_str(json).unwrap();
    assert_eq!(v["action"], "add header", "{v}");
    assert!(v["score"].as_f64().unwrap() >= 5.0, "{v}");
    assert_eq!(v["required_score"], 5.0);
    assert!(
        v["symbols"]
            .as_object()
            .unwrap()
            .values()
            .all(|s| s["score"].is_number() && s["name"].is_string()),
        "{v}"
    );
    let ham = include_str!("spam/ham.eml");
    let v: serde_json::Value = serde_json::from_str(&{
        let r = post(port, ham.as_bytes());
        r[r.find("\r\n\r\n").unwrap() + 4..].to_string()
    })
    .unwrap();
    assert_eq!(v["action"], "no action", "{v}");
    rt.shutdown_background();
}
