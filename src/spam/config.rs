//! `[spam]` in correo.toml: where the rules are and how the daemon listens.

use serde::Deserialize;
use std::path::PathBuf;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SpamConfig {
    /// Rule directories or files, read in order. Empty means correo's own `rules/`.
    pub rules: Vec<PathBuf>,
    /// Overrides `required_score` from the rule files.
    pub required_score: Option<f64>,
    /// Daemon listeners: `host:port` or a unix socket path (anything with a `/`).
    pub listen: Vec<String>,
    /// Largest message the daemon scores, in bytes (spamd's default is 500 KB, spamc's too).
    pub max_size: usize,
    /// Most connections served at once; the rest wait in the kernel's backlog.
    pub max_children: usize,
    /// `[spam.bayes]`: the Bayes database and auto-learn (see `bayes/config.rs`).
    pub bayes: super::bayes::BayesConfig,
}

impl Default for SpamConfig {
    fn default() -> Self {
        SpamConfig {
            rules: Vec::new(),
            required_score: None,
            listen: Vec::new(),
            max_size: 500 * 1024,
            max_children: 64,
            bayes: Default::default(),
        }
    }
}

impl SpamConfig {
    /// The rule paths to load: configured ones, else the installed or source-tree `rules/`.
    pub fn rule_paths(&self, cli: &[PathBuf]) -> Vec<PathBuf> {
        if !cli.is_empty() {
            return cli.to_vec();
        }
        if !self.rules.is_empty() {
            return self.rules.clone();
        }
        default_rules()
    }
}

/// `/usr/share/correo/rules` when installed, else the source tree's `rules/` (development and CI).
pub fn default_rules() -> Vec<PathBuf> {
    let installed = PathBuf::from("/usr/share/correo/rules");
    if installed.is_dir() {
        return vec![installed];
    }
    vec![PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/rules"))]
}
