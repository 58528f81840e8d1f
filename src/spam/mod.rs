//! The spam scorer: SpamAssassin-format rules, the message view they read, the X-Spam markup, and the
//! spamd wire protocol with its daemon.
//!
//! Flow: `load` (files → directives → definitions) → `rules::compile` (→ `RuleSet`, built once) →
//! `RuleSet::check` (message → `View` → `Verdict`) → `markup` (verdict → headers / rewritten message).
//! Parsers (`cf`, `perlre`, `meta`, `protocol`) only turn bytes into values and are fuzzed.

pub mod backref;
pub mod bayes;
pub mod cf;
pub mod check;
pub mod config;
pub mod css;
pub mod daemon;
pub mod dfagate;
pub mod eval;
pub mod forgery;
pub mod freemail;
pub mod hsfilter;
pub mod hsheader;
pub mod html;
pub mod hugepages;
pub mod hyperscan;
#[cfg(target_os = "linux")]
pub mod inline;
pub mod joined;
pub mod load;
pub mod markup;
pub mod meta;
pub mod perlre;
pub mod prefilter;
pub mod protocol;
pub mod relays;
pub mod repeat;
pub mod rules;
pub mod uri;
pub mod view;
pub mod warmup;
