//! Rules hit per message, and the in-process scoring rate, for checking that a speed change to the spam
//! engine changes no result (`bench/spam.sh` measures the daemon against its peers; this measures only
//! the engine, with no socket in the loop).
//!
//! Usage: `spam_hits RULES_DIR [REPEAT] < file-list`. Prints one line per message: the path, then every
//! rule that hit (scored and sub-rules, sorted), then the score. Sub-rules, and rules score set 0 gives
//! 0, run only as far as the scored metas need them (`meta::Metas`), so which of those show depends on
//! the engine's evaluation order; `CORREO_SPAM_EAGER=1` runs every rule, for comparing all hits. On
//! stderr, messages per second over
//! REPEAT passes (default 1) and the slowest message's time, and with REPEAT > 1 the median CPU time of
//! a pass after the first (warm caches: what a long-running daemon sees), and the first pass's CPU per
//! message. With `WARMUP=1` it first scores the daemon's built-in warm-up messages (`spam::warmup`).
//! With `STATS=1` in the environment it first prints, per kind of test, how many rules run, how many
//! the literal prefilter gates and how many need the fallback regex engine, and names the
//! backreference rules `backref::Split` runs and the repeated-part rules `repeat::Repeat` runs.
//! `WARMUP_FILES=LIST` then scores the messages named in LIST (one path a line) before the timed
//! passes: what a bigger warm-up would save.
//! `HS_CACHE=DIR` keeps the compiled Hyperscan databases in DIR across runs.
//! With `TIMES=1` it prints each message's wall time in the last pass on stderr (`TIME ms bytes path`).
//! `THRASH_MB=N` writes over an N MB buffer before each message of the passes after the first (outside
//! the timing), so those passes show what cold CPU caches cost with every lazy-DFA state already built;
//! each pass's summed per-message wall time is printed (`pass N: ... of wall per message`; the CPU
//! figures then include the writing).

use correo::spam::rules::compile;
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(dir) = args.get(1) else {
        eprintln!("usage: spam_hits RULES_DIR [REPEAT] < file-list");
        std::process::exit(64);
    };
    let repeat: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1);
    // HS_CACHE=DIR: keep the compiled Hyperscan databases there, as the daemon does under its home,
    // so that runs after the first start in seconds.
    if let Some(dir) = std::env::var_os("HS_CACHE") {
        correo::spam::hyperscan::set_cache_dir(PathBuf::from(dir));
    }
    let loaded = match correo::spam::load::load(&[PathBuf::from(dir)]) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("loading rules: {e}");
            std::process::exit(78);
        }
    };
    let rs = compile(loaded);
    if std::env::var_os("STATS").is_some() {
        use correo::spam::rules::Test;
        let mut m: std::collections::BTreeMap<String, (usize, usize, usize)> = Default::default();
        for &i in &rs.order {
            let r = &rs.rules[i];
            let (k, fancy) = match &r.test {
                Test::Header { re, .. } => ("header", re.is_fancy()),
                Test::Body(re) => ("body", re.is_fancy()),
                Test::Rawbody(re) => ("rawbody", re.is_fancy()),
                Test::Full(re) => ("full", re.is_fancy()),
                Test::Uri(re) => ("uri", re.is_fancy()),
                Test::Eval(_) => ("eval", false),
                Test::Exists(_) => ("exists", false),
                Test::Mimeheader { .. } => ("mime", false),
                Test::Meta(_) => ("meta", false),
            };
            let e = m.entry(k.to_string()).or_default();
            e.0 += 1;
            if rs.prefilter.gated[i].is_some() {
                e.1 += 1;
            }
            if fancy {
                e.2 += 1;
            }
        }
        eprintln!(
            "kind: (rules, gated, fancy) {m:?}; metas {}",
            rs.metas.len()
        );
        let split: Vec<&str> = rs
            .order
            .iter()
            .filter(|&&i| {
                matches!(&rs.rules[i].test,
                    Test::Header { re, .. } | Test::Body(re) | Test::Rawbody(re) | Test::Full(re)
                    | Test::Uri(re) if matches!(re, correo::spam::perlre::Re::Backref(..)))
            })
            .map(|&i| rs.rules[i].name.as_str())
            .collect();
        eprintln!(
            "backreference rules without backtracking: {} {split:?}",
            split.len()
        );
        let repeated: Vec<&str> = rs
            .order
            .iter()
            .filter(|&&i| rs.repeats[i].is_some())
            .map(|&i| rs.rules[i].name.as_str())
            .collect();
        eprintln!("one part repeated (repeat.rs): {repeated:?}");
    }
    let files: Vec<String> = std::io::stdin()
        .lock()
        .lines()
        .map_while(Result::ok)
        .collect();
    let msgs: Vec<(String, Vec<u8>)> = files
        .into_iter()
        .filter_map(|f| std::fs::read(&f).ok().map(|m| (f, m)))
        .collect();
    // WARMUP=1: first score the daemon's built-in warm-up messages, as `correo spam daemon` does on
    // each scoring thread before it listens, so the first pass shows what a client of a fresh daemon
    // pays.
    // `WARMUP=name,name` scores only the named ones.
    if let Some(w) = std::env::var("WARMUP").ok().filter(|v| v != "0") {
        let c = cpu_seconds();
        let mut n = 0;
        for (name, m) in correo::spam::warmup::MESSAGES {
            if w == "1" || w.split(',').any(|x| x == *name) {
                let _ = rs.check(m);
                n += 1;
            }
        }
        eprintln!(
            "warm-up: {n} built-in messages, {:.1} ms of CPU",
            (cpu_seconds() - c) * 1000.0
        );
    }
    // WARMUP_FILES=list: also score these messages first (what a bigger warm-up would save).
    if let Ok(list) = std::env::var("WARMUP_FILES") {
        let c = cpu_seconds();
        let names = std::fs::read_to_string(list).unwrap_or_default();
        let mut n = 0;
        for f in names.lines() {
            if let Ok(m) = std::fs::read(f) {
                let _ = rs.check(&m);
                n += 1;
            }
        }
        eprintln!(
            "warm-up: {n} messages from WARMUP_FILES, {:.1} ms of CPU",
            (cpu_seconds() - c) * 1000.0
        );
    }
    let out = std::io::stdout();
    let mut out = out.lock();
    let mut slowest = (0.0f64, String::new());
    let t0 = Instant::now();
    let c0 = cpu_seconds();
    // CPU time of each pass after the first (the first builds the lazy DFAs' states).
    let mut warm: Vec<f64> = Vec::new();
    let times = std::env::var_os("TIMES").is_some();
    let thrash_mb: usize = std::env::var("THRASH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut thrash = vec![0u8; thrash_mb << 20];
    for pass in 0..repeat {
        let pass_cpu = cpu_seconds();
        let mut sum = 0.0;
        for (name, m) in &msgs {
            if pass > 0 && thrash_mb > 0 {
                for b in thrash.iter_mut().step_by(64) {
                    *b = b.wrapping_add(1);
                }
            }
            let t = Instant::now();
            let (_, v) = rs.check(m);
            let ms = t.elapsed().as_secs_f64() * 1000.0;
            sum += ms;
            if ms > slowest.0 {
                slowest = (ms, name.clone());
            }
            if times && pass + 1 == repeat {
                eprintln!("TIME {ms:.3} {} {name}", m.len());
            }
            if pass == 0 {
                let mut names: Vec<&str> = v
                    .hits
                    .iter()
                    .chain(v.subhits.iter())
                    .map(|&i| rs.rules[i].name.as_str())
                    .collect();
                names.sort_unstable();
                let _ = writeln!(out, "{name} {} {}", names.join(","), v.score);
            }
        }
        eprintln!(
            "pass {}: {:.2} ms of wall per message",
            pass + 1,
            sum / msgs.len().max(1) as f64
        );
        if pass > 0 {
            warm.push(cpu_seconds() - pass_cpu);
        } else {
            let first = cpu_seconds() - pass_cpu;
            eprintln!(
                "pass 1: {:.2} ms of CPU per message",
                first * 1000.0 / msgs.len().max(1) as f64
            );
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - c0;
    eprintln!(
        "{} messages x {repeat}: {:.1} msg/s wall, {:.1} msg/s of CPU; slowest {:.1} ms ({})",
        msgs.len(),
        (msgs.len() * repeat) as f64 / secs,
        (msgs.len() * repeat) as f64 / cpu,
        slowest.0,
        slowest.1
    );
    if !warm.is_empty() {
        warm.sort_by(f64::total_cmp);
        let med = warm[warm.len() / 2];
        eprintln!(
            "passes 2..{repeat}: median {:.2} ms of CPU per pass, {:.2} ms per message ({:.1} msg/s of CPU)",
            med * 1000.0,
            med * 1000.0 / msgs.len().max(1) as f64,
            msgs.len() as f64 / med
        );
    }
}

/// CPU time this thread has used: on a machine shared with other builds, wall-clock rates mostly measure
/// the neighbours.
fn cpu_seconds() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes the timespec we pass.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}
