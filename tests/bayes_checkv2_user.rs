//! `POST /checkv2` honours rspamd's `User` header: with `[spam.bayes] per_user`, the named user's Bayes
//! database decides BAYES_xx, not the site's (regression: the handler always read the global one).
//! Its own test binary: the web handler keeps its rules and Bayes handle per process.

use correo::spam::bayes::store::Class;
use correo::spam::bayes::Bayes;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn post(port: u16, user: Option<&str>, body: &[u8]) -> serde_json::Value {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let user = user.map(|u| format!("User: {u}\r\n")).unwrap_or_default();
    let head = format!(
        "POST /checkv2 HTTP/1.1\r\nHost: localhost\r\n{user}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    serde_json::from_str(&out[out.find("\r\n\r\n").unwrap() + 4..]).unwrap()
}

fn bayes_symbols(v: &serde_json::Value) -> Vec<String> {
    v["symbols"]
        .as_object()
        .map(|o| {
            o.keys()
                .filter(|k| k.starts_with("BAYES_"))
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn checkv2_reads_the_users_bayes_database() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("correo.toml"),
        "[spam.bayes]\nper_user = true\nmin_spam = 1\nmin_ham = 1\nauto_learn = false\n",
    )
    .unwrap();
    let home = Arc::new(correo::config::Home::open(Some(dir.path()), None).unwrap());
    let bayes = Bayes::open(&home);
    let spam = b"Message-Id: <s1@example.com>\nSubject: cheap pills\n\nbuy cheap pills viagra discount pharmacy now\n";
    let ham = b"Message-Id: <h1@example.com>\nSubject: meeting\n\nthe project meeting moved to thursday afternoon\n";
    bayes
        .learn_bytes(Some("alice"), spam, Some(Class::Spam))
        .unwrap();
    bayes
        .learn_bytes(Some("alice"), ham, Some(Class::Ham))
        .unwrap();
    drop(bayes);

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

    let probe = b"Message-Id: <p1@example.com>\nSubject: pills\n\ncheap pills discount pharmacy\n";
    let alice = post(port, Some("alice"), probe);
    assert!(
        bayes_symbols(&alice)
            .iter()
            .any(|s| s.as_str() >= "BAYES_60"),
        "alice's database knows these words: {alice}"
    );
    let nobody = post(port, None, probe);
    assert!(
        bayes_symbols(&nobody).is_empty(),
        "the site database learned nothing: {nobody}"
    );
}
