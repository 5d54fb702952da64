//! berth-bench: a registry benchmark that drives any registry URL over HTTP.
//!
//! `run` executes scenarios (large and small pushes and pulls, tag and catalog listing,
//! parallel image pushes, server memory) and prints one JSON [`Line`] per variant;
//! `report` turns lines from several rounds against two registries into a Markdown
//! table of medians, ratios and targets; `receive` is the live notification endpoint of
//! the operations mode. Data is seeded random bytes generated before
//! each timed part; every answer is checked, and a wrong one counts as an error.

pub mod cli;
pub mod cpu;
pub mod data;
pub mod line;
pub mod ops;
pub mod paging;
pub mod populate_s3;
pub mod receiver;
pub mod report;
pub mod rss;
pub mod runner;
pub mod scenarios;
pub mod size;
pub mod stats;
pub mod token;
pub mod wait;

pub use line::Line;
pub use runner::{RunOptions, run};
pub use scenarios::Scenario;
pub use size::Size;
