//! sea-orm entities, one file each.

pub mod project;
pub mod task;
pub mod tenant;
