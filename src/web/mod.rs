//! The web front (hyper). For now it owns one thing: the RFC 8058 one-click unsubscribe endpoint that
//! list posts advertise in List-Unsubscribe when `[web] url` is set. Routing and the pages are plain
//! functions of (method, path, query, body) so they are tested without sockets; `run` is the thin
//! hyper glue that `correo serve` starts when `[web] listen` is set.

pub mod checkv2;
pub mod unsubscribe;

use serde::Deserialize;
use std::sync::Arc;

/// `[web]` in correo.toml.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebConfig {
    /// Where the web listener binds, e.g. "127.0.0.1:8025". Unset: no web listener.
    pub listen: Option<String>,
    /// The public base URL (e.g. "https://lists.example.org"), used in List-Unsubscribe and templates.
    pub url: Option<String>,
}

/// A response before it becomes HTTP.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

impl Reply {
    pub fn html(status: u16, body: String) -> Reply {
        Reply {
            status,
            content_type: "text/html; charset=utf-8",
            body,
        }
    }
    pub fn text(status: u16, body: impl Into<String>) -> Reply {
        Reply {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.into(),
        }
    }
}

/// Routes one request. `user` is the request's `User` header (rspamd's per-user field).
pub fn route(
    home: &crate::config::Home,
    method: &str,
    path: &str,
    query: &str,
    user: Option<&str>,
    body: &[u8],
) -> Reply {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    match parts.as_slice() {
        ["lists", list, "unsubscribe"] => unsubscribe::handle(home, method, list, query, body),
        ["checkv2"] => checkv2::handle(home, method, user, body),
        _ => Reply::text(404, "not found\n"),
    }
}

/// Serves HTTP/1.1 on `listen` until the process ends. Each request runs the synchronous handler on
/// the blocking pool, since it talks to SQLite.
pub async fn run(
    home: Arc<crate::config::Home>,
    listener: std::net::TcpListener,
) -> std::io::Result<()> {
    use http_body_util::{BodyExt, Full, Limited};
    use hyper::body::Bytes;
    use hyper::server::conn::http1;
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;

    let listen = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let listener = tokio::net::TcpListener::from_std(listener)?;
    crate::message::log::event("web", "-", &[("listen", &listen), ("status", "ready")]);
    loop {
        let (stream, _) = listener.accept().await?;
        let home = home.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let home = home.clone();
                async move {
                    let method = req.method().as_str().to_string();
                    let path = req.uri().path().to_string();
                    let query = req.uri().query().unwrap_or("").to_string();
                    let user = req
                        .headers()
                        .get("User")
                        .and_then(|v| v.to_str().ok())
                        .map(|u| u.trim().to_string())
                        .filter(|u| !u.is_empty());
                    // Small bodies only: a one-click POST is a few bytes; /checkv2 carries a message.
                    let limit = if path == "/checkv2" {
                        home.config.spam.max_size
                    } else {
                        64 * 1024
                    };
                    let body = match Limited::new(req.into_body(), limit).collect().await {
                        Ok(b) => b.to_bytes(),
                        Err(_) => Bytes::new(),
                    };
                    let reply = tokio::task::spawn_blocking(move || {
                        route(&home, &method, &path, &query, user.as_deref(), &body)
                    })
                    .await
                    .unwrap_or_else(|_| Reply::text(500, "internal error\n"));
                    let resp = hyper::Response::builder()
                        .status(reply.status)
                        .header("Content-Type", reply.content_type)
                        .header("X-Frame-Options", "DENY")
                        .header(
                            "Content-Security-Policy",
                            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
                        )
                        .body(Full::new(Bytes::from(reply.body)))
                        .unwrap_or_else(|_| {
                            hyper::Response::new(Full::new(Bytes::from_static(b"error")))
                        });
                    Ok::<_, std::convert::Infallible>(resp)
                }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}
