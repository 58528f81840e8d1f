//! The list manager (the Mailman analogue): lists, members, posting pipeline, confirmations, moderation.

pub mod config;
