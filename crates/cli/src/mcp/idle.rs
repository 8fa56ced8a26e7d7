//! Closing streamable HTTP sessions their clients have left.
//!
//! Most clients go without a `DELETE`, and rmcp's own idle timer restarts
//! on every message the server sends, so a session sent a `list_changed`
//! now and then would never close, and `--max-sessions` would fill with
//! sessions nobody reads. Here a session counts as alive while its client
//! holds a GET stream open or has sent a request within `--session-idle-ms`;
//! one that is neither is closed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::response::Response;
use futures::StreamExt;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::session::SessionManager;
use tokio_util::sync::CancellationToken;

/// What the clients of the sessions last did.
#[derive(Default)]
pub(crate) struct Activity {
    seen: Mutex<HashMap<String, Seen>>,
}

#[derive(Clone, Copy)]
struct Seen {
    last: Instant,
    streams: usize,
}

/// Counts one GET stream of a session open until it drops.
struct OpenStream {
    activity: Arc<Activity>,
    session: String,
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        if let Some(seen) = self.activity.lock().get_mut(&self.session) {
            seen.streams = seen.streams.saturating_sub(1);
            seen.last = Instant::now();
        }
    }
}

impl Activity {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Seen>> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Notes a request of `session` (or the response that opened it).
    pub(crate) fn touch(&self, session: &str) {
        let mut seen = self.lock();
        let entry = seen.entry(session.to_owned()).or_insert(Seen {
            last: Instant::now(),
            streams: 0,
        });
        entry.last = Instant::now();
    }

    /// `response`, whose body is `session`'s GET stream, counted open
    /// until the client lets it go.
    pub(crate) fn stream(self: &Arc<Self>, session: &str, response: Response) -> Response {
        self.touch(session);
        if let Some(seen) = self.lock().get_mut(session) {
            seen.streams += 1;
        }
        let guard = OpenStream {
            activity: self.clone(),
            session: session.to_owned(),
        };
        response.map(|body| {
            Body::from_stream(body.into_data_stream().map(move |chunk| {
                let _open = &guard;
                chunk
            }))
        })
    }

    /// Sessions of `live` whose clients have gone: no stream open and no
    /// request for `idle`. Forgets sessions no longer live.
    fn gone(&self, live: &[String], idle: Duration) -> Vec<String> {
        let mut seen = self.lock();
        seen.retain(|id, _| live.contains(id));
        let now = Instant::now();
        live.iter()
            .filter(|id| match seen.get(*id) {
                Some(s) => s.streams == 0 && now.duration_since(s.last) > idle,
                // Opened but its response not seen yet: give it a turn.
                None => {
                    seen.insert(
                        (*id).clone(),
                        Seen {
                            last: now,
                            streams: 0,
                        },
                    );
                    false
                }
            })
            .cloned()
            .collect()
    }
}

/// Closes the sessions whose clients have gone, looking every quarter of
/// `idle` (at most every 30 s), until `stop`.
pub(crate) async fn reap(
    activity: Arc<Activity>,
    sessions: Arc<LocalSessionManager>,
    idle: Duration,
    stop: CancellationToken,
) {
    let every = (idle / 4).clamp(Duration::from_millis(50), Duration::from_secs(30));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        let live: Vec<String> = sessions
            .sessions
            .read()
            .await
            .keys()
            .map(|id| id.to_string())
            .collect();
        for id in activity.gone(&live, idle) {
            tracing::info!(session = %id, idle_ms = idle.as_millis() as u64, "closing an MCP session its client left");
            if let Err(e) = sessions.close_session(&id.as_str().into()).await {
                tracing::debug!(session = %id, error = %e, "the session had closed already");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_is_gone_only_without_streams_and_requests() {
        let activity = Arc::new(Activity::default());
        let live = vec!["a".to_owned(), "b".to_owned(), "c".to_owned()];
        activity.touch("a");
        activity.touch("b");
        let response = activity.stream("b", Response::new(Body::empty()));
        // "c" is new to the reaper: it gets a turn.
        assert!(activity
            .gone(&live, Duration::ZERO)
            .contains(&"a".to_owned()));
        assert_eq!(
            activity.gone(&live, Duration::ZERO),
            vec!["a".to_owned(), "c".to_owned()]
        );
        assert!(activity.gone(&live, Duration::from_secs(60)).is_empty());
        drop(response);
        assert!(activity
            .gone(&live, Duration::ZERO)
            .contains(&"b".to_owned()));
        // A closed session is forgotten.
        assert!(activity.gone(&[], Duration::ZERO).is_empty());
        assert!(activity.lock().is_empty());
    }
}
