//! Test support: a real Redis server.

pub mod client;
pub mod server;
