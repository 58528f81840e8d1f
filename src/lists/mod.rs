//! The list manager (the Mailman analogue): lists, members, the posting pipeline, confirmations,
//! moderation, bounces and the outgoing spool.

pub mod bounces;
pub mod commands;
pub mod config;
pub mod footer;
pub mod headers;
pub mod hold;
pub mod members;
pub mod model;
pub mod notice;
pub mod outbox;
pub mod pending;
pub mod post;
pub mod service;
pub mod shunt;
pub mod subscription;
pub mod templates;
pub mod token;
