//! The web front (hyper): list pages, archives, one-click unsubscribe, admin, JSON API.

use serde::Deserialize;

/// `[web]` in correo.toml.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebConfig {
    /// Where the web listener binds, e.g. "127.0.0.1:8025". Unset: no web listener.
    pub listen: Option<String>,
    /// The public base URL (e.g. "https://lists.example.org"), used in List-Unsubscribe and templates.
    pub url: Option<String>,
}
