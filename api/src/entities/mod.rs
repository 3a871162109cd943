//! sea-orm entities, one file each.

pub mod generation;
pub mod membership;
pub mod project;
pub mod task;
pub mod tenant;
pub mod user;
pub mod voice;
