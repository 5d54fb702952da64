//! berth-server: the `berth` binary's library half. Configuration (distribution's
//! `config.yml`), the composition root that wires concrete types, logging, and the server
//! lifecycle (listen, TLS, upload purging, online garbage collection, graceful shutdown), TLS while serving
//! (certificate reload, ACME), and the offline subcommands over the storage
//! (`check-storage`, `garbage-collect`), the health checks, and trace export.

pub mod allocator;
pub mod app;
pub mod config;
pub mod connection;
pub mod garbage_collect;
pub mod health;
pub mod lifecycle;
pub mod limits;
pub mod logging;
pub mod offline;
pub mod online_gc;
pub mod storage_check;
pub mod telemetry;
pub mod tls;
pub mod zerocopy;

pub use app::{App, StartError};
pub use config::Config;
pub use lifecycle::Server;
