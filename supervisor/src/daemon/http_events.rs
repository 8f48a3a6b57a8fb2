//! The event stream: server-sent events, resumable from a sequence number (`?after=SEQ` or
//! the `Last-Event-ID` header). The store is read in order; live appends only wake the
//! stream, so nothing is skipped even when the broadcast lags or another process appends.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Extension, Path, Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use codencer_store::Event;
use futures::Stream;
use serde::Deserialize;
use tokio::sync::broadcast;

use super::auth::{Principal, Scope};
use super::error::ApiError;
use super::http::AppState;

#[derive(Debug, Deserialize)]
pub struct EventsQuery {
    /// Send events with a greater sequence number (default: from the start).
    after: Option<u64>,
    run: Option<String>,
}

pub async fn all_events(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    Query(q): Query<EventsQuery>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    s.require(&who, Scope::RunsRead, "GET /v1/events")?;
    let run = q.run.map(|r| s.resolve_run(&r)).transpose()?;
    Ok(stream(s, run, start(&headers, q.after)))
}

pub async fn run_events(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(run): Path<String>,
    headers: HeaderMap,
    Query(q): Query<EventsQuery>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    s.require(&who, Scope::RunsRead, "GET /v1/runs/{run}/events")?;
    let run = s.resolve_run(&run)?;
    Ok(stream(s, Some(run), start(&headers, q.after)))
}

/// `Last-Event-ID` (a reconnecting EventSource) wins over `?after=`.
fn start(headers: &HeaderMap, after: Option<u64>) -> u64 {
    headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
        .or(after)
        .unwrap_or(0)
}

struct Cursor {
    state: AppState,
    run: Option<String>,
    after: u64,
    pending: VecDeque<Event>,
    live: broadcast::Receiver<Event>,
}

fn stream(
    state: AppState,
    run: Option<String>,
    after: u64,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let live = state.runner.engine.recorder().subscribe();
    let cursor = Cursor {
        state,
        run,
        after,
        pending: VecDeque::new(),
        live,
    };
    let events = futures::stream::unfold(cursor, |mut c| async move {
        loop {
            if let Some(event) = c.pending.pop_front() {
                let sse = SseEvent::default()
                    .id(event.seq.to_string())
                    .event(event.body.kind())
                    .json_data(&event)
                    .unwrap_or_else(|_| SseEvent::default().comment("unencodable event"));
                return Some((Ok(sse), c));
            }
            match c.state.store().events_since(c.after, 500) {
                Ok(batch) if !batch.is_empty() => {
                    if let Some(last) = batch.last() {
                        c.after = last.seq;
                    }
                    c.pending.extend(
                        batch
                            .into_iter()
                            .filter(|e| c.run.is_none() || e.run_id == c.run),
                    );
                    continue;
                }
                Ok(_) => {}
                Err(err) => {
                    tracing::warn!(cause = %err, "event stream could not read the store");
                }
            }
            // Wait for an append (ours) or poll (another process's).
            let _ = tokio::time::timeout(Duration::from_secs(1), c.live.recv()).await;
        }
    });
    Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}
