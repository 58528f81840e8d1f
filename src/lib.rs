//! correo as a library: the binary in main.rs is a thin shell over `cli`, and the fuzz targets and
//! benchmarks reach the parsers through here.

pub mod cli;
pub mod config;
pub mod hugeheap;
pub mod lists;
pub mod message;
pub mod recipe;
pub mod smtp;
pub mod spam;
pub mod store;
pub mod web;
