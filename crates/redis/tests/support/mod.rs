//! Test support: a real Redis server.

pub mod server;
