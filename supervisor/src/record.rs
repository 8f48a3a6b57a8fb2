//! The supervisor's handle on the record: appends events and artifacts to the store and
//! broadcasts every appended event to live watchers (CLI progress, the daemon's SSE).

use std::path::Path;
use std::sync::Arc;

use codencer_store::{ArtifactKind, ArtifactRow, Event, EventBody, NewEvent, Store, StoreError};
use tokio::sync::broadcast;

/// Which node of the tree an event belongs to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ids {
    pub run: Option<String>,
    pub step: Option<String>,
    pub attempt: Option<String>,
}

impl Ids {
    pub fn run(run: &str) -> Ids {
        Ids {
            run: Some(run.to_string()),
            step: None,
            attempt: None,
        }
    }

    pub fn step(run: &str, step: &str) -> Ids {
        Ids {
            run: Some(run.to_string()),
            step: Some(step.to_string()),
            attempt: None,
        }
    }

    pub fn attempt(run: &str, step: &str, attempt: &str) -> Ids {
        Ids {
            run: Some(run.to_string()),
            step: Some(step.to_string()),
            attempt: Some(attempt.to_string()),
        }
    }
}

/// Appends to the store on behalf of one actor (a local user or an API token's name).
#[derive(Debug, Clone)]
pub struct Recorder {
    store: Arc<Store>,
    actor: String,
    live: broadcast::Sender<Event>,
}

impl Recorder {
    pub fn new(store: Arc<Store>, actor: String) -> Recorder {
        let (live, _) = broadcast::channel(1024);
        Recorder { store, actor, live }
    }

    /// The same store and broadcast, another actor (e.g. the token that approved a gate).
    pub fn as_actor(&self, actor: &str) -> Recorder {
        Recorder {
            store: self.store.clone(),
            actor: actor.to_string(),
            live: self.live.clone(),
        }
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    pub fn actor(&self) -> &str {
        &self.actor
    }

    /// Live events, from the moment of subscribing.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.live.subscribe()
    }

    fn new_event(&self, ids: &Ids, body: EventBody) -> NewEvent {
        NewEvent {
            run_id: ids.run.clone(),
            step_id: ids.step.clone(),
            attempt_id: ids.attempt.clone(),
            actor: self.actor.clone(),
            body,
        }
    }

    pub fn append(&self, ids: &Ids, body: EventBody) -> Result<Event, StoreError> {
        let event = self.store.append(self.new_event(ids, body))?;
        // No receiver is fine: nobody is watching.
        let _ = self.live.send(event.clone());
        Ok(event)
    }

    pub fn append_all(&self, events: Vec<(Ids, EventBody)>) -> Result<Vec<Event>, StoreError> {
        let new = events
            .into_iter()
            .map(|(ids, body)| self.new_event(&ids, body))
            .collect();
        let appended = self.store.append_all(new)?;
        for event in &appended {
            let _ = self.live.send(event.clone());
        }
        Ok(appended)
    }

    pub fn artifact(
        &self,
        ids: &Ids,
        kind: ArtifactKind,
        name: Option<&str>,
        bytes: &[u8],
    ) -> Result<ArtifactRow, StoreError> {
        let blob = self.store.put_blob(bytes)?;
        self.record_blob(ids, kind, name, blob.sha256, blob.bytes)
    }

    /// Records what an attempt changed: its diff and its changed-files list.
    pub(crate) fn capture_artifacts(
        &self,
        ids: &Ids,
        capture: &crate::git::Capture,
    ) -> Result<(), StoreError> {
        self.artifact(ids, ArtifactKind::Diff, None, &capture.diff)?;
        let files = serde_json::to_vec(&capture.files).unwrap_or_default();
        self.artifact(ids, ArtifactKind::ChangedFiles, None, &files)?;
        Ok(())
    }

    pub fn artifact_file(
        &self,
        ids: &Ids,
        kind: ArtifactKind,
        name: Option<&str>,
        path: &Path,
    ) -> Result<ArtifactRow, StoreError> {
        let blob = self.store.put_blob_file(path)?;
        self.record_blob(ids, kind, name, blob.sha256, blob.bytes)
    }

    fn record_blob(
        &self,
        ids: &Ids,
        kind: ArtifactKind,
        name: Option<&str>,
        sha256: String,
        bytes: u64,
    ) -> Result<ArtifactRow, StoreError> {
        let artifact_id = codencer_store::new_id();
        let event = self.append(
            ids,
            EventBody::ArtifactRecorded {
                artifact_id: artifact_id.clone(),
                kind,
                name: name.map(str::to_string),
                sha256: sha256.clone(),
                bytes,
            },
        )?;
        Ok(ArtifactRow {
            id: artifact_id,
            run_id: ids.run.clone(),
            step_id: ids.step.clone(),
            attempt_id: ids.attempt.clone(),
            kind,
            name: name.map(str::to_string),
            sha256,
            bytes,
            created_at: event.ts,
        })
    }
}
