//! What coordinators tell each other on `toolfan.coordinator.fair` so
//! that each can work out every caller's fair share of the fleet: their
//! callers' tasks dispatched and not finished, per tool.

use serde::{Deserialize, Serialize};

use crate::ToolName;

/// Most entries in one [`FairReport`] (one per tool and caller with work
/// on a coordinator); a coordinator with more tells the busiest ones.
pub const MAX_FAIR_ENTRIES: usize = 4096;

/// One coordinator's report: everything it has in the fleet, per tool and
/// caller. Sent when that changes (at most every 20 ms) and every second
/// while it is not empty; an empty report withdraws the last one. A
/// report not renewed within 3 s is forgotten.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FairReport {
    /// Protocol version, 1.
    pub v: u32,
    /// The coordinator's id (new at each start).
    pub coordinator: String,
    /// Its callers' use of each tool.
    pub entries: Vec<FairEntry>,
}

/// One caller's use of one tool on one coordinator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FairEntry {
    /// The tool.
    pub tool: ToolName,
    /// The caller (the subject token it submits under).
    pub caller: String,
    /// Its tasks on the tool dispatched and not yet finished.
    pub out: u32,
    /// How many of its jobs have tasks for the tool held back by their share.
    pub wanting_jobs: u32,
    /// What its jobs that want no more hold of `out`.
    pub settled_out: u32,
}
