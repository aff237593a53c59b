//! bale: a data-versioning workspace tool. Large files and folders live in a
//! content-addressed cache; small YAML pointer files live in git; workspace
//! files are linked from the cache.

pub mod cache;
pub mod cli;
pub mod config;
pub mod error;
pub mod fsutil;
pub mod hash;
pub mod history;
pub mod human;
pub mod import;
pub mod manifest;
pub mod memory;
pub mod ops;
pub mod out;
pub mod paths;
pub mod pointer;
pub mod progress;
pub mod remote;
pub mod repo;
pub mod state;
pub mod url;
pub mod warnings;
pub mod workspace;

pub use error::{Error, Result};
