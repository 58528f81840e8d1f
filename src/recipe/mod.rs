//! The recipe engine: procmailrc(5) and .forward with procmail's semantics.
