//! `[spam.bayes]` in correo.toml: when Bayes gives a verdict, whose database it reads, how big the
//! database may grow, and when the scorer teaches itself (auto-learn).

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BayesConfig {
    /// Off: BAYES_xx never fires and nothing is learned (SpamAssassin's `use_bayes 0`).
    pub enabled: bool,
    /// No verdict until this many spam and ham are learned (SpamAssassin's `bayes_min_spam_num`):
    /// a database of a few messages says more about those messages than about mail.
    pub min_spam: u64,
    pub min_ham: u64,
    /// One database per spamc `User` instead of one for the site (`bayes_sql_override_username` off).
    pub per_user: bool,
    /// Tokens kept after expiry (SpamAssassin's `bayes_expiry_max_db_size`, 150,000 tokens).
    pub max_tokens: u64,
    /// Let spamc `-L`/`-C` (TELL) teach the database. spamd needs `--allow-tell` for this; correo allows
    /// it by default because the daemon listens on loopback or a local socket unless told otherwise.
    pub allow_tell: bool,
    /// Learn from scored mail on its own (SpamAssassin's `bayes_auto_learn`).
    pub auto_learn: bool,
    /// Score, without the Bayes rules, at or above which a message is learned as spam.
    pub auto_learn_threshold_spam: f64,
    /// Score, without the Bayes rules, below which a message is learned as ham.
    pub auto_learn_threshold_nonspam: f64,
    /// Robinson's s (strength of the prior) and x (the prior for a token never seen).
    pub robinson_s: f64,
    pub robinson_x: f64,
    /// Tokens whose f(w) is closer to 0.5 than this are ignored (SpamAssassin's MIN_PROB_STRENGTH).
    pub min_strength: f64,
    /// At most this many of the strongest tokens are combined (SpamAssassin's N_SIGNIFICANT_TOKENS).
    pub max_tokens_used: usize,
}

impl Default for BayesConfig {
    fn default() -> Self {
        BayesConfig {
            enabled: true,
            min_spam: 200,
            min_ham: 200,
            per_user: false,
            max_tokens: 150_000,
            allow_tell: true,
            auto_learn: true,
            auto_learn_threshold_spam: 12.0,
            auto_learn_threshold_nonspam: 0.1,
            robinson_s: 0.030,
            robinson_x: 0.538,
            min_strength: 0.346,
            max_tokens_used: 150,
        }
    }
}
