//! `correo serve` and `correo newaliases` (src/smtp).
//!
//! `serve` checks everything it will need (alias tables, TLS files, password file, networks) before it
//! binds a socket, so a broken config fails at start with EX_CONFIG and a line number, never at 3 a.m.

use crate::config::Home;
use crate::message::error::{Error, Result};
use crate::smtp::config::SmtpConfig;
use crate::smtp::courier::Supervisor;
use crate::smtp::queue::runner::{Runner, Settings};
use crate::smtp::queue::Queue;
use crate::smtp::route::{Router, Routes};
use crate::smtp::server::{self, passwd::Passwd, Ctx, Mode};
use std::sync::Arc;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Read a password on stdin and print its hash for the [smtp] passwd file, then exit.
    #[arg(long)]
    pub hash_password: bool,
    /// PBKDF2 iterations for --hash-password (default 600000; lower only for tests).
    #[arg(long, default_value_t = server::passwd::ITERATIONS)]
    pub hash_iterations: u32,
    /// Check the configuration and tables, then exit.
    #[arg(long)]
    pub check: bool,
    /// Internal: run as the server's courier (deliveries only; see src/smtp/courier.rs).
    #[arg(long, hide = true)]
    pub courier: bool,
}

#[derive(clap::Args, Debug)]
pub struct NewaliasesArgs {}

/// The host name for greetings and Received headers.
pub fn hostname(cfg: &SmtpConfig) -> String {
    cfg.hostname.clone().unwrap_or_else(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "localhost".into())
    })
}

fn load_router(cfg: &SmtpConfig) -> Result<Routes> {
    Routes::watch(cfg)
        .map_err(|errs| Error::config(format!("bad alias tables:\n  {}", errs.join("\n  "))))
}

fn build_ctx(home: &Home, queue: Arc<dyn server::Sink>, router: Arc<Routes>) -> Result<Ctx> {
    let cfg = &home.config.smtp;
    let trusted = server::parse_networks(&cfg.trusted_networks).map_err(Error::config)?;
    let tls = match (&cfg.tls_cert, &cfg.tls_key) {
        (Some(c), Some(k)) => Some(server::tls_acceptor(c, k).map_err(Error::config)?),
        (None, None) => None,
        _ => return Err(Error::config("[smtp] tls_cert and tls_key go together")),
    };
    let passwd =
        match &cfg.passwd {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .map_err(|e| Error::config(format!("{}: {e}", p.display())))?;
                Some(Passwd::parse(&text).map_err(|errs| {
                    Error::config(format!("{}: {}", p.display(), errs.join("; ")))
                })?)
            }
            None => None,
        };
    if (!cfg.submission.is_empty() || !cfg.smtps.is_empty()) && (tls.is_none() || passwd.is_none())
    {
        return Err(Error::config(
            "[smtp] submission and smtps listeners need tls_cert, tls_key and passwd",
        ));
    }
    Ok(Ctx {
        hostname: hostname(cfg),
        router,
        sink: queue,
        trusted,
        tls,
        passwd,
        max_size: cfg.max_size,
        max_rcpts: cfg.max_rcpts.max(100),
        max_received: cfg.max_received,
        timeout: std::time::Duration::from_secs(300),
        auth_delay: std::time::Duration::from_millis(500),
    })
}

/// The runtime for the server and for its courier: queue writes and pipes run on blocking threads.
fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(256)
        .build()?)
}

pub fn run(home: &Home, args: Args) -> Result<()> {
    if args.hash_password {
        let mut pw = String::new();
        std::io::stdin().read_line(&mut pw)?;
        let pw = pw.trim_end_matches(['\r', '\n']);
        if pw.is_empty() {
            return Err(Error::usage("empty password on stdin"));
        }
        println!("{}", server::passwd::hash(pw, args.hash_iterations));
        return Ok(());
    }
    let cfg = &home.config;
    let router = Arc::new(load_router(&cfg.smtp)?);
    if args.check {
        let null: Arc<dyn server::Sink> = Arc::new(server::NullSink);
        build_ctx(home, null, router)?;
        println!("configuration ok");
        return Ok(());
    }
    if args.courier {
        return courier(home, router);
    }
    let rt = runtime()?;
    let result = rt.block_on(async {
        let queue = Queue::open_intake(home.db_path())?;
        let ctx = Arc::new(build_ctx(home, Arc::new(queue.clone()), router.clone())?);
        // Check what the courier will need before it starts, so a bad [relay] is a start-up error here.
        Settings::new(&ctx.hostname, &home.dir, &cfg.smtp, &cfg.relay).map_err(Error::config)?;
        if cfg.relay.smarthost.is_none() {
            crate::smtp::mx::resolver(cfg.relay.dns.as_deref()).map_err(Error::config)?;
        }
        let courier = Supervisor::start()
            .map_err(|e| Error::temp(format!("cannot start the courier: {e}")))?;
        {
            let (q, c) = (queue.clone(), courier.clone());
            tokio::spawn(async move {
                loop {
                    q.notify.notified().await;
                    c.poke();
                }
            });
        }
        // The web front (one-click unsubscribe) shares the runtime when `[web] listen` is set.
        if let Some(listen) = cfg.web.listen.clone() {
            let web_home = Arc::new(home.clone());
            let std_listener = std::net::TcpListener::bind(&listen)
                .map_err(|e| Error::from(e).context(format!("web listener {listen}")))?;
            std_listener.set_nonblocking(true)?;
            eprintln!("correo: web listening on {listen}");
            tokio::spawn(async move {
                if let Err(e) = crate::web::run(web_home, std_listener).await {
                    crate::message::log::event(
                        "web",
                        "-",
                        &[("status", &format!("stopped ({e})"))],
                    );
                }
            });
        }
        let mut tasks = Vec::new();
        let listeners = cfg
            .smtp
            .listen
            .iter()
            .map(|a| (a, Mode::Mx))
            .chain(cfg.smtp.submission.iter().map(|a| (a, Mode::Submission)))
            .chain(cfg.smtp.smtps.iter().map(|a| (a, Mode::Smtps)));
        for (addr, mode) in listeners {
            // Bind here so a port in use is a start-up error, not a silent missing listener.
            let ctx = ctx.clone();
            let addr = addr.clone();
            let max = cfg.smtp.max_connections;
            tasks.push(tokio::spawn(async move {
                (addr.clone(), server::listen(ctx, addr, mode, max).await)
            }));
        }
        if tasks.is_empty() {
            return Err(Error::config("no listeners configured ([smtp] listen)"));
        }
        // Listeners run forever; the first to fail (bind error) ends the server with its reason.
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
        tokio::select! {
            (done, _, _) = futures_select(tasks) => match done {
                Ok((addr, Err(e))) => Err(Error::from(e).context(format!("listener {addr}"))),
                Ok((addr, Ok(()))) => Err(Error::software(format!("listener {addr} stopped"))),
                Err(e) => Err(Error::software(format!("listener task: {e}"))),
            },
            _ = term.recv() => stop_courier(&courier).await,
            _ = int.recv() => stop_courier(&courier).await,
        }
    });
    // Sessions still open are cut here; their clients had no 250 for unfinished mail.
    rt.shutdown_timeout(std::time::Duration::from_secs(5));
    result
}

/// The server's SIGTERM/SIGINT: its courier finishes the deliveries under way and exits first (at most
/// a minute for them, as `stop` allows), so a restart never runs a pipe twice.
async fn stop_courier(courier: &Arc<Supervisor>) -> Result<()> {
    eprintln!("correo: stopping");
    let c = courier.clone();
    let stopped = tokio::task::spawn_blocking(move || c.stop(std::time::Duration::from_secs(65)))
        .await
        .unwrap_or(false);
    if !stopped {
        crate::message::log::event("serve", "courier", &[("status", "still running at exit")]);
    }
    Ok(())
}

/// `serve --courier`: the queue runner alone, in the child process the server started. It stops when
/// its stdin ends (the server exited or was killed) or on SIGTERM/SIGINT, after the deliveries under way.
fn courier(home: &Home, router: Arc<Routes>) -> Result<()> {
    let cfg = &home.config;
    let _lock = crate::smtp::courier::lock(&home.dir)
        .map_err(|e| Error::temp(format!("courier lock: {e}")))?;
    let rt = runtime()?;
    let result = rt.block_on(async {
        let queue = Queue::open(home.db_path())?;
        let resolver = if cfg.relay.smarthost.is_none() {
            Some(crate::smtp::mx::resolver(cfg.relay.dns.as_deref()).map_err(Error::config)?)
        } else {
            None
        };
        let settings = Settings::new(&hostname(&cfg.smtp), &home.dir, &cfg.smtp, &cfg.relay)
            .map_err(Error::config)?;
        let runner = Runner::new(queue.clone(), router, settings, resolver);
        tokio::spawn(runner.clone().run());
        // One byte on stdin per message the server queued; end of file when the server is gone.
        let (eof_tx, eof_rx) = tokio::sync::oneshot::channel::<()>();
        let notify = queue.notify.clone();
        std::thread::Builder::new()
            .name("courier-stdin".into())
            .spawn(move || {
                use std::io::Read;
                let mut buf = [0u8; 4096];
                let mut stdin = std::io::stdin().lock();
                loop {
                    match stdin.read(&mut buf) {
                        Ok(0) => break,
                        Ok(_) => notify.notify_one(),
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(_) => break,
                    }
                }
                let _ = eof_tx.send(());
            })?;
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
        // Asked to stop, the deliveries under way get a minute (a list's pipe may be slow). When the
        // server is simply gone (killed), what matters is reading the replies to dots already sent; a
        // next hop that has not answered in 15 s is left to the new courier (at worst a duplicate), so
        // the restarted server is not kept waiting on this one's lock.
        let limit = tokio::select! {
            _ = eof_rx => 15,
            _ = term.recv() => 60,
            _ = int.recv() => 60,
        };
        stop(&runner, limit).await
    });
    rt.shutdown_timeout(std::time::Duration::from_secs(5));
    result
}

/// SIGTERM/SIGINT: let deliveries under way finish and commit (a pipe that ran must not run again
/// after the restart), for at most `limit_secs`, then exit 0. Sessions still open are cut: their clients
/// got no 250 for an unfinished message and will send it again.
async fn stop(runner: &Runner, limit_secs: u64) -> Result<()> {
    runner.stop();
    crate::message::log::event(
        "serve",
        "shutdown",
        &[
            ("status", "stopping"),
            ("deliveries", &runner.active().to_string()),
        ],
    );
    eprintln!("correo: stopping, {} deliveries under way", runner.active());
    let start = std::time::Instant::now();
    while runner.active() > 0 && start.elapsed() < std::time::Duration::from_secs(limit_secs) {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    crate::message::log::event(
        "serve",
        "shutdown",
        &[
            ("status", "stopped"),
            ("deliveries", &runner.active().to_string()),
        ],
    );
    Ok(())
}

/// Waits for the first of several join handles (a tiny select_all without the futures crate).
async fn futures_select<T: Send + 'static>(
    tasks: Vec<tokio::task::JoinHandle<T>>,
) -> (std::result::Result<T, tokio::task::JoinError>, usize, ()) {
    let (tx, mut rx) = tokio::sync::mpsc::channel(tasks.len());
    for (i, t) in tasks.into_iter().enumerate() {
        let tx = tx.clone();
        tokio::spawn(async move {
            let r = t.await;
            let _ = tx.send((r, i)).await;
        });
    }
    drop(tx);
    match rx.recv().await {
        Some((r, i)) => (r, i, ()),
        None => std::future::pending().await,
    }
}

pub fn newaliases(home: &Home, _args: NewaliasesArgs) -> Result<()> {
    let cfg = &home.config.smtp;
    if cfg.aliases.is_none() && cfg.domain_aliases.is_empty() && cfg.virtusers.is_none() {
        return Err(Error::config(
            "no alias tables configured ([smtp] aliases, domain_aliases, virtusers)",
        ));
    }
    match Router::load(cfg) {
        Ok(r) => {
            let n: usize = r.aliases.entries.len()
                + r.domain_aliases
                    .values()
                    .map(|t| t.entries.len())
                    .sum::<usize>();
            println!(
                "correo: {n} aliases, {} virtual users: ok",
                r.virtusers.map.len()
            );
            Ok(())
        }
        Err(errs) => {
            for e in &errs {
                eprintln!("{e}");
            }
            Err(Error::data(format!("{} bad line(s)", errs.len())))
        }
    }
}
