//! The spam scorer: SpamAssassin-format rules, Bayes, X-Spam headers and the spamd protocol.

pub mod config;
