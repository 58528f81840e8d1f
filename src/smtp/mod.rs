//! The relay core: SMTP server and client, aliases, local delivery and the durable queue.

pub mod client;
pub mod config;
