//! What the daemon's warm-up (`spam::warmup`) saves, measured in one process so the machine's load
//! hits both sides alike: the rules are compiled twice, one copy scores the built-in warm-up messages,
//! then both copies score the same messages, alternating message by message (and which copy goes
//! first), for PASSES passes. Prints the CPU per message of each copy per pass: pass 1 is what the
//! first clients of a fresh daemon pay, with and without the warm-up.
//!
//! Usage: `spam_warmup RULES_DIR [PASSES] < file-list`.

use std::io::BufRead;
use std::path::PathBuf;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(dir) = args.get(1) else {
        eprintln!("usage: spam_warmup RULES_DIR [PASSES] < file-list");
        std::process::exit(64);
    };
    let passes: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(2);
    let compile = || match correo::spam::load::load(&[PathBuf::from(dir)]) {
        Ok(l) => correo::spam::rules::compile(l),
        Err(e) => {
            eprintln!("loading rules: {e}");
            std::process::exit(78);
        }
    };
    let sets = [compile(), compile()];
    let msgs: Vec<Vec<u8>> = std::io::stdin()
        .lock()
        .lines()
        .map_while(Result::ok)
        .filter_map(|f| std::fs::read(f).ok())
        .collect();
    // WARM_FILES=LIST warms with the messages listed in that file instead (to see what a bigger or
    // different warm-up set would save).
    let warm: Vec<Vec<u8>> = match std::env::var("WARM_FILES") {
        Ok(list) => std::fs::read_to_string(list)
            .unwrap_or_default()
            .lines()
            .filter_map(|f| std::fs::read(f).ok())
            .collect(),
        Err(_) => correo::spam::warmup::MESSAGES
            .iter()
            .map(|(_, m)| m.to_vec())
            .collect(),
    };
    let c = cpu_seconds();
    for m in &warm {
        let _ = sets[0].check(m);
    }
    println!(
        "warm-up: {} messages, {:.1} ms of CPU",
        warm.len(),
        (cpu_seconds() - c) * 1000.0
    );
    let n = msgs.len().max(1) as f64;
    for pass in 1..=passes {
        let mut cpu = [0.0f64; 2];
        for (i, m) in msgs.iter().enumerate() {
            for k in [i % 2, 1 - i % 2] {
                let t = cpu_seconds();
                let _ = sets[k].check(m);
                cpu[k] += cpu_seconds() - t;
            }
        }
        println!(
            "pass {pass}: warmed {:.2} ms/msg, cold start {:.2} ms/msg",
            cpu[0] * 1000.0 / n,
            cpu[1] * 1000.0 / n
        );
    }
}

/// This thread's CPU time, not wall time: the machine is shared with other builds.
fn cpu_seconds() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes the timespec we pass.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}
