//! Mail helpers every part shares: sysexits codes and classified errors, address validation, durable
//! spool writes and the maillog.

pub mod address;
pub mod error;
pub mod log;
pub mod spool;
pub mod sysexits;
