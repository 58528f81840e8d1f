//! correo: mailing lists, procmail-style delivery, spam scoring and a durable SMTP relay in one program.
//!
//! `main` only parses the command line and dispatches; every command returns a sysexits code so the MTA
//! that ran us always gets the code it expects.

use clap::Parser;

#[global_allocator]
static GLOBAL: correo::hugeheap::Alloc = correo::hugeheap::Alloc;

fn main() {
    // `correo deliver` runs once per mail, as procmail does, so its start-up is part of every delivery's
    // cost: it skips clap (building the whole command tree costs more than parsing procmail's flags).
    // Anything clap itself would answer (`--help`, the global `--home`/`--config`, `--`) still goes
    // through clap, so both paths see the same command line the same way.
    // Not `env::args()`, which panics on a word that is not UTF-8: such a word is left to clap.
    let argv: Option<Vec<String>> = std::env::args_os().map(|a| a.into_string().ok()).collect();
    let argv = argv.unwrap_or_default();
    if argv.get(1).map(String::as_str) == Some("deliver") && !needs_clap(&argv[2..]) {
        let code = correo::cli::deliver::run(correo::cli::deliver::Args {
            rest: argv[2..].to_vec(),
        });
        std::process::exit(code.code());
    }
    // Not for `deliver` above: it lives for one mail, and the programs it pipes to would inherit it.
    no_huge_pages();
    let args = correo::cli::Cli::parse();
    let code = correo::cli::run(args);
    std::process::exit(code.code());
}

/// Turns transparent huge pages off for this process, except where it asks for them. mimalloc (built
/// with `no_thp`) no longer asks; before, it advised them on its arenas, and every first touch of a
/// fresh 2 MB range then had the kernel zero all of it, while mimalloc hands freed pages back after a
/// second and takes fresh ones later. The spam daemon's Bayes learner, which builds its batch's token
/// tables anew every half second, spent ~60% of its time in that zeroing; a fresh daemon's scoring
/// thread several percent. With 4 KB pages (`bench/RESULTS.md`, stop 28), 200 cold messages: learner
/// 196 -> 75 us a message, scorer -6 to -10%.
///
/// The exception is memory that lives as long as a rule set and is read on every message: the
/// Hyperscan databases and the dense DFA gates (`spam::hugepages` advises MADV_HUGEPAGE on them).
/// That needs PR_THP_DISABLE_EXCEPT_ADVISED (Linux 6.18); an older kernel refuses the flag, and then
/// huge pages are off for everything, as before. A failure changes nothing but speed, so it is ignored. The
/// setting passes to child processes (pipe deliveries of `serve`), where it only means 4 KB pages.
fn no_huge_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_THP_DISABLE takes plain integers and touches only this process's flags.
    unsafe {
        /// `PR_THP_DISABLE_EXCEPT_ADVISED` from linux/prctl.h (6.18), which the libc crate lacks.
        const EXCEPT_ADVISED: libc::c_ulong = 1 << 1;
        if libc::prctl(libc::PR_SET_THP_DISABLE, 1, EXCEPT_ADVISED, 0, 0) != 0 {
            libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
        }
    }
}

/// True when clap would read one of these words itself rather than pass it on to `deliver`.
fn needs_clap(rest: &[String]) -> bool {
    rest.iter()
        .any(|a| a == "-h" || (a.starts_with("--") && a != "--explain" && a != "--bounce"))
}
