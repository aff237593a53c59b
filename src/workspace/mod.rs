//! The workspace side of an out. Data flows one way:
//! walk (bulk stat) → observe (compare with the snapshot, hash suspects) →
//! plan → apply → snapshot; `record` is add/commit's path through the same
//! steps.

pub mod apply;
pub mod link;
pub mod observe;
pub mod plan;
pub mod record;
pub mod relink;
pub mod rows;
pub mod walk;

pub use observe::{Observation, matches_snapshot, observe};
pub use record::{RecordOptions, Recorded, record};
