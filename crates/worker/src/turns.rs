//! Taking turns at the limiter: tasks under the same set of limits ask
//! Redis one at a time (FIFO), so a worker sends one request per limit set
//! at a time instead of a stampede.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use toolfan_limits::LimitSpec;

/// Drop idle turn locks once there are this many.
const TURNS_KEPT: usize = 1024;

/// One FIFO turn per set of limit keys.
#[derive(Default)]
pub(crate) struct Turns(Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>);

impl Turns {
    pub(crate) fn for_limits(&self, limits: &[(String, LimitSpec)]) -> Arc<tokio::sync::Mutex<()>> {
        let name = limits
            .iter()
            .map(|(k, _)| k.as_str())
            .collect::<Vec<_>>()
            .join("\u{1f}");
        let mut turns = self.0.lock().expect("turns lock");
        if turns.len() > TURNS_KEPT {
            turns.retain(|_, turn| Arc::strong_count(turn) > 1);
        }
        turns.entry(name).or_default().clone()
    }
}
