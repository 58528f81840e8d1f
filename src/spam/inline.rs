//! Connections served on the scoring threads themselves (Linux): each scoring thread waits in its
//! own epoll set for a client, reads the request, scores it and writes the answer, as one spamd child
//! does. Owns the per-thread wait (`Poller`), the listening sockets' side of it, the hand-over of
//! slow clients to the async runtime, and what keeps thread 0's CPU awake between requests (`Spinner`).
//!
//! Why: with the runtime accepting and reading, one CHECK woke three threads in turn (the runtime's
//! worker for the request, a scoring thread, the worker again for the reply), and the switches cost
//! ~8% of the daemon's CPU a message (bench/RESULTS.md, stop 16). Here the kernel wakes the one
//! thread that does all of it.
//!
//! Which thread: every thread's epoll set holds the listeners with EPOLLEXCLUSIVE, added in thread
//! order, and the kernel wakes the first set in that order with a thread waiting in it: thread 0
//! whenever it is idle (it owns the regexes' fast-path caches, see `daemon::Scorers`), the next one
//! only while thread 0 is busy, with no wake-up of the others.
//!
//! A client that has not sent its whole request within `PATIENCE` must not hold a scoring thread for
//! the 30 s read timeout: it goes to the async runtime with the bytes read so far (`Prefixed`), which
//! reads the rest and scores on a scoring thread as other platforms always do. A reply the client is
//! slow to take is finished there too.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// How long a scoring thread waits, in all, for a request's bytes to arrive before it hands the
/// client to the runtime. spamc writes the whole request at once: on loopback it is there in
/// microseconds.
pub const PATIENCE: Duration = Duration::from_millis(10);

/// How long thread 0's CPU is kept awake after it goes back to waiting (`Spinner`).
pub const AWAKE: Duration = Duration::from_millis(1);

/// Keeps a CPU busy at idle priority for `AWAKE` after each request, so the scoring thread that runs
/// there (thread 0, which a lone client keeps) finds it awake and its caches warm when the next
/// client comes.
///
/// Why: a virtual machine whose kernel halts an idle CPU at once (as here: `haltpoll.guest_halt_poll_ns=0`)
/// gives it up to the host while the scoring thread waits the ~0.1 ms a client takes to send its next
/// request; the thread then wakes slower and finds colder caches. In process, a 0.1 ms sleep before
/// each of the 200 bench messages made them cost 0.77-0.78 ms instead of 0.66-0.73; with this beside
/// it, 0.71-0.74 (bench/RESULTS.md, stop 32). A thread that polls instead of sleeping would not do:
/// the kernel then wakes thread 1 for the next client, cold. At `SCHED_IDLE` the spinner gives way to
/// any other work on the CPU at once, the scoring thread included; an idle daemon spends `AWAKE` of
/// CPU time per request on it. `CORREO_SPAM_SPIN=0` turns it off.
pub struct Spinner {
    /// Until when to spin.
    until: std::sync::Mutex<Instant>,
    cv: std::sync::Condvar,
    /// The spinning thread's id, once it runs (for tests).
    tid: std::sync::atomic::AtomicI32,
}

impl Spinner {
    /// Binds the calling thread to the CPU it runs on and starts a spinner there. None when turned off
    /// or the kernel refused the binding or the thread (then the caller runs as before). A spinner the
    /// kernel will not put at idle priority never spins; the caller stays bound.
    pub fn start() -> Option<std::sync::Arc<Spinner>> {
        if std::env::var("CORREO_SPAM_SPIN").is_ok_and(|v| v == "0") {
            return None;
        }
        // SAFETY: sched_getcpu takes no arguments.
        let cpu = unsafe { libc::sched_getcpu() };
        let cpu = usize::try_from(cpu).ok()?;
        bind_to(cpu).then_some(())?;
        let sp = std::sync::Arc::new(Spinner {
            until: std::sync::Mutex::new(Instant::now()),
            cv: std::sync::Condvar::new(),
            tid: std::sync::atomic::AtomicI32::new(0),
        });
        let me = sp.clone();
        std::thread::Builder::new()
            .name("spam-awake".into())
            .spawn(move || me.run(cpu))
            .ok()?;
        Some(sp)
    }

    /// Spin from now until `AWAKE` from now.
    pub fn keep_awake(&self) {
        *self.until.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now() + AWAKE;
        self.cv.notify_one();
    }

    fn run(&self, cpu: usize) {
        // SAFETY: gettid takes no arguments.
        let tid = unsafe { libc::gettid() };
        self.tid.store(tid, std::sync::atomic::Ordering::Relaxed);
        let p = libc::sched_param { sched_priority: 0 };
        // SAFETY: changes only this thread's policy (lowering it needs no privilege).
        let idle = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &p) } == 0;
        // Spinning at normal priority would take the scoring thread's CPU: better not at all.
        if !idle || !bind_to(cpu) {
            return;
        }
        let mut g = self.until.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            while *g <= Instant::now() {
                g = self.cv.wait(g).unwrap_or_else(|p| p.into_inner());
            }
            let until = *g;
            drop(g);
            while Instant::now() < until {
                for _ in 0..256 {
                    std::hint::spin_loop();
                }
            }
            g = self.until.lock().unwrap_or_else(|p| p.into_inner());
        }
    }
}

/// Binds the calling thread to one CPU; false when the kernel refused.
fn bind_to(cpu: usize) -> bool {
    // SAFETY: a zeroed cpu_set_t is an empty set; CPU_SET writes within it for cpu < CPU_SETSIZE,
    // which sched_getcpu's answer is; sched_setaffinity reads the set we pass.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if cpu >= libc::CPU_SETSIZE as usize {
            return false;
        }
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
    }
}

/// The epoll data of the thread's own wake-up eventfd (listeners use their index).
const WAKE: u64 = u64::MAX;

/// One scoring thread's wait: an epoll set with an eventfd that jobs ring, plus the listeners.
pub struct Poller {
    ep: OwnedFd,
    ev: OwnedFd,
}

fn check(rc: libc::c_int) -> std::io::Result<libc::c_int> {
    if rc < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

impl Poller {
    pub fn new() -> std::io::Result<Poller> {
        // SAFETY: plain syscalls; each returned fd is checked and then owned.
        let ep = unsafe { OwnedFd::from_raw_fd(check(libc::epoll_create1(libc::EPOLL_CLOEXEC))?) };
        let ev = unsafe {
            OwnedFd::from_raw_fd(check(libc::eventfd(
                0,
                libc::EFD_CLOEXEC | libc::EFD_NONBLOCK,
            ))?)
        };
        let p = Poller { ep, ev };
        p.add(p.ev.as_raw_fd(), WAKE, libc::EPOLLIN as u32)?;
        Ok(p)
    }

    fn add(&self, fd: RawFd, data: u64, events: u32) -> std::io::Result<()> {
        let mut e = libc::epoll_event { events, u64: data };
        // SAFETY: both fds are open; e outlives the call.
        check(unsafe { libc::epoll_ctl(self.ep.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut e) })?;
        Ok(())
    }

    /// Adds listener number `k`, exclusive where the kernel has it (Linux 4.5+; before, every waiting
    /// thread wakes and all but one find nothing to accept).
    pub fn add_listener(&self, fd: RawFd, k: usize) -> std::io::Result<()> {
        let ex = (libc::EPOLLIN | libc::EPOLLEXCLUSIVE) as u32;
        self.add(fd, k as u64, ex)
            .or_else(|_| self.add(fd, k as u64, libc::EPOLLIN as u32))
    }

    /// Wakes the thread waiting in `wait` (or makes its next `wait` return at once).
    pub fn notify(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64 to our eventfd. A full counter (EAGAIN) is already
        // a pending wake-up.
        unsafe { libc::write(self.ev.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }

    /// Blocks until a job rang or a listener has a client; the ready listeners' numbers go to `ready`
    /// (none when it was a job, or a signal interrupted the wait).
    pub fn wait(&self, ready: &mut Vec<usize>) {
        ready.clear();
        let mut evs = [libc::epoll_event { events: 0, u64: 0 }; 8];
        // SAFETY: evs is a writable array of 8 events.
        let n = unsafe { libc::epoll_wait(self.ep.as_raw_fd(), evs.as_mut_ptr(), 8, -1) };
        for e in evs.iter().take(n.max(0) as usize) {
            let data = e.u64;
            if data == WAKE {
                let mut count: u64 = 0;
                // SAFETY: reads 8 bytes into a live u64; resets the counter.
                unsafe { libc::read(self.ev.as_raw_fd(), (&mut count as *mut u64).cast(), 8) };
            } else {
                ready.push(data as usize);
            }
        }
    }
}

/// A listening socket the scoring threads accept on.
pub enum Listener {
    Tcp(std::net::TcpListener),
    Unix(std::os::unix::net::UnixListener),
}

impl Listener {
    pub fn fd(&self) -> RawFd {
        match self {
            Listener::Tcp(l) => l.as_raw_fd(),
            Listener::Unix(l) => l.as_raw_fd(),
        }
    }

    /// A waiting client, non-blocking; None when another thread took it first, or accept failed. A
    /// failure that lasts (out of file descriptors) leaves the listener readable, and the thread would
    /// spin on it: it pauses 50 ms first, as the runtime's accept loop does.
    pub fn accept(&self) -> Option<Conn> {
        let got = match self {
            Listener::Tcp(l) => l.accept().map(|(c, _)| {
                let _ = c.set_nodelay(true);
                Conn::Tcp(c)
            }),
            Listener::Unix(l) => l.accept().map(|(c, _)| Conn::Unix(c)),
        };
        let c = match got {
            Ok(c) => c,
            Err(e) => {
                if !matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::Interrupted
                        | std::io::ErrorKind::ConnectionAborted
                ) {
                    std::thread::sleep(Duration::from_millis(50));
                }
                return None;
            }
        };
        c.set_nonblocking().ok()?;
        Some(c)
    }
}

/// One client's socket.
pub enum Conn {
    Tcp(std::net::TcpStream),
    Unix(std::os::unix::net::UnixStream),
}

impl Conn {
    fn set_nonblocking(&self) -> std::io::Result<()> {
        match self {
            Conn::Tcp(c) => c.set_nonblocking(true),
            Conn::Unix(c) => c.set_nonblocking(true),
        }
    }

    fn fd(&self) -> RawFd {
        match self {
            Conn::Tcp(c) => c.as_raw_fd(),
            Conn::Unix(c) => c.as_raw_fd(),
        }
    }

    fn read(&self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Conn::Tcp(c) => (&*c).read(buf),
            Conn::Unix(c) => (&*c).read(buf),
        }
    }

    fn write(&self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Conn::Tcp(c) => (&*c).write(buf),
            Conn::Unix(c) => (&*c).write(buf),
        }
    }

    /// `write` for a reply's bytes, which `shutdown` follows once all are written. On TCP they go with
    /// MSG_MORE: the kernel sends full segments but holds back a last one shorter than the path's MSS
    /// (TCP_NODELAY would send it), and `shutdown` then sets FIN on that unsent segment and sends the
    /// two as one. The client then gets its answer and the end of the stream in one packet, one wake-up, where
    /// it took two, and the daemon's thread pushes one segment through the stack instead of two.
    fn write_more(&self, buf: &[u8]) -> std::io::Result<usize> {
        let Conn::Tcp(c) = self else {
            return self.write(buf);
        };
        // SAFETY: send reads `buf.len()` bytes from `buf`, a live slice, on a socket `c` owns.
        let n = unsafe {
            libc::send(
                c.as_raw_fd(),
                buf.as_ptr().cast(),
                buf.len(),
                libc::MSG_MORE | libc::MSG_NOSIGNAL,
            )
        };
        if n < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }

    fn shutdown(&self) {
        let _ = match self {
            Conn::Tcp(c) => c.shutdown(std::net::Shutdown::Write),
            Conn::Unix(c) => c.shutdown(std::net::Shutdown::Write),
        };
    }

    /// Waits up to `d` for the socket to be readable (or writable).
    fn ready(&self, d: Duration, write: bool) {
        let mut p = libc::pollfd {
            fd: self.fd(),
            events: if write { libc::POLLOUT } else { libc::POLLIN },
            revents: 0,
        };
        let ms = d.as_millis().clamp(1, 1000) as libc::c_int;
        // SAFETY: one live pollfd.
        unsafe { libc::poll(&mut p, 1, ms) };
    }
}

/// A client handed to the async runtime (`Conn::into_runtime`).
pub enum Stream {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
}

impl Conn {
    /// The same socket registered with the runtime; call it on the runtime (in a task it runs).
    pub fn into_runtime(self) -> std::io::Result<Stream> {
        Ok(match self {
            Conn::Tcp(s) => Stream::Tcp(tokio::net::TcpStream::from_std(s)?),
            Conn::Unix(s) => Stream::Unix(tokio::net::UnixStream::from_std(s)?),
        })
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Unix(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
            Stream::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// The request reader's view of a client on a scoring thread: reads what has arrived, waits for more
/// at most `PATIENCE` in all, and keeps every byte it read for the hand-over.
pub struct Patient<'a> {
    conn: &'a Conn,
    pub seen: Vec<u8>,
    waited: Duration,
    /// The client was too slow: the read failed with WouldBlock and the caller hands it over.
    pub gave_up: bool,
}

impl<'a> Patient<'a> {
    pub fn new(conn: &'a Conn) -> Patient<'a> {
        Patient {
            conn,
            seen: Vec::new(),
            waited: Duration::ZERO,
            gave_up: false,
        }
    }
}

impl AsyncRead for Patient<'_> {
    /// Never Pending: it blocks (briefly) instead, so one poll runs a whole request read.
    fn poll_read(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let me = self.get_mut();
        loop {
            match me.conn.read(buf.initialize_unfilled()) {
                Ok(n) => {
                    let start = buf.filled().len();
                    buf.advance(n);
                    me.seen.extend_from_slice(&buf.filled()[start..]);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if me.waited >= PATIENCE {
                        me.gave_up = true;
                        return Poll::Ready(Err(e));
                    }
                    let t = Instant::now();
                    me.conn.ready(PATIENCE - me.waited, false);
                    me.waited += t.elapsed();
                }
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

/// Runs a future that never waits (one whose reads are `Patient`) to its end; None if it did wait.
pub fn run_now<F: std::future::Future>(f: F) -> Option<F::Output> {
    let mut f = std::pin::pin!(f);
    let mut cx = Context::from_waker(std::task::Waker::noop());
    match f.as_mut().poll(&mut cx) {
        Poll::Ready(v) => Some(v),
        Poll::Pending => None,
    }
}

/// Writes what it can of `reply` now, waiting up to `PATIENCE` for room; returns what is left (empty:
/// all written, and the write side shut) or None when the client is gone.
pub fn write_now(conn: &Conn, reply: &[u8]) -> Option<usize> {
    let mut at = 0;
    let mut waited = Duration::ZERO;
    while at < reply.len() {
        match conn.write_more(&reply[at..]) {
            Ok(0) => return None,
            Ok(n) => at += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if waited >= PATIENCE {
                    return Some(at);
                }
                let t = Instant::now();
                conn.ready(PATIENCE - waited, true);
                waited += t.elapsed();
            }
            Err(_) => return None,
        }
    }
    conn.shutdown();
    Some(at)
}

/// A stream whose first bytes were already read (by a `Patient`): they are read again first.
pub struct Prefixed<S> {
    head: Vec<u8>,
    at: usize,
    inner: S,
}

impl<S> Prefixed<S> {
    pub fn new(head: Vec<u8>, inner: S) -> Prefixed<S> {
        Prefixed { head, at: 0, inner }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let me = self.get_mut();
        if me.at < me.head.len() {
            let n = (me.head.len() - me.at).min(buf.remaining());
            buf.put_slice(&me.head[me.at..me.at + n]);
            me.at += n;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut me.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// CPU time (ns) thread `tid` of this process has used, and its scheduling policy.
    fn thread_cpu(tid: libc::pid_t) -> Option<(u64, libc::c_int)> {
        let ns = std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat")).ok()?;
        let ns = ns.split_whitespace().next()?.parse().ok()?;
        // SAFETY: asks the policy of a thread of ours by its id.
        let policy = unsafe { libc::sched_getscheduler(tid) };
        Some((ns, policy))
    }

    /// A short reply and the end of the stream reach the client as one segment: the client's socket
    /// sees the handshake's SYN-ACK and then one more, where a reply sent at once (TCP_NODELAY) and a
    /// FIN after it made two.
    #[test]
    fn a_reply_and_its_end_go_as_one_segment() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let client = std::net::TcpStream::connect(l.local_addr().expect("addr")).expect("connect");
        let (c, _) = l.accept().expect("accept");
        c.set_nodelay(true).expect("nodelay");
        let conn = Conn::Tcp(c);
        conn.set_nonblocking().expect("nonblocking");
        let reply = b"SPAMD/1.5 0 EX_OK\r\nSpam: False ; 1.2 / 5.0\r\n\r\n";
        assert_eq!(write_now(&conn, reply), Some(reply.len()));
        drop(conn);
        let mut got = Vec::new();
        (&client).read_to_end(&mut got).expect("read");
        assert_eq!(got, reply);
        // SAFETY: tcp_info is plain integers, for which all zeroes is a valid value.
        let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
        // SAFETY: getsockopt writes at most `len` bytes into `info`, a tcp_info of that size.
        let r = unsafe {
            libc::getsockopt(
                client.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_INFO,
                (&mut info as *mut libc::tcp_info).cast(),
                &mut len,
            )
        };
        assert_eq!(r, 0);
        assert_eq!(info.tcpi_segs_in, 2, "segments the client received");
    }

    /// The spinner runs at idle priority and only for a while after each request: a daemon with no
    /// mail spends no CPU on it.
    #[test]
    fn the_spinner_spins_only_for_a_while() {
        std::thread::spawn(|| {
            let sp = Spinner::start().expect("spinner");
            let spinner = || {
                for _ in 0..200 {
                    let tid = sp.tid.load(std::sync::atomic::Ordering::Relaxed);
                    if let Some(t) = (tid != 0).then(|| thread_cpu(tid)).flatten() {
                        return t;
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                panic!("no spinner thread");
            };
            sp.keep_awake();
            std::thread::sleep(AWAKE * 20);
            let (before, policy) = spinner();
            assert_eq!(policy, libc::SCHED_IDLE);
            std::thread::sleep(AWAKE * 50);
            let (after, _) = spinner();
            // Idle: at most a wake-up's worth, nowhere near the 50 ms that passed.
            assert!(
                after - before < 5_000_000,
                "spun {} ns while idle",
                after - before
            );
        })
        .join()
        .expect("test thread");
    }
}
