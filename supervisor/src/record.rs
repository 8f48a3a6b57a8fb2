//! The supervisor's handle on the record: appends events and artifacts to the store and
//! broadcasts every appended event to live watchers (CLI progress, the daemon's SSE).

use std::path::Path;
use std::sync::Arc;

use codencer_store::{ArtifactKind, Event, EventBody, NewEvent, StagedBlob, Store, StoreError};
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
        self.append_all_with_blobs(&[], events)
    }

    /// [`Recorder::append_all`] with the staged blobs the events name, in one transaction.
    pub fn append_all_with_blobs(
        &self,
        blobs: &[StagedBlob],
        events: Vec<(Ids, EventBody)>,
    ) -> Result<Vec<Event>, StoreError> {
        let new = events
            .into_iter()
            .map(|(ids, body)| self.new_event(&ids, body))
            .collect();
        let appended = self.store.append_all_with_blobs(blobs, new)?;
        for event in &appended {
            let _ = self.live.send(event.clone());
        }
        Ok(appended)
    }

    /// Records what an attempt changed: its diff and its changed-files list.
    pub(crate) fn capture_artifacts(
        &self,
        ids: &Ids,
        capture: &crate::git::Capture,
    ) -> Result<(), StoreError> {
        let files = serde_json::to_vec(&capture.files).unwrap_or_default();
        self.record(
            ids,
            &[
                NewArtifact::bytes(ArtifactKind::Diff, None, &capture.diff),
                NewArtifact::bytes(ArtifactKind::ChangedFiles, None, &files),
            ],
            |_| Vec::new(),
        )
    }

    /// Records `artifacts` of node `ids`, then the events `then` makes (it gets the
    /// artifacts' new ids, in order, to name them), in one transaction: the
    /// `artifact.recorded` events, the small contents and the other events land together or
    /// not at all (large contents are stored as files first).
    pub fn record(
        &self,
        ids: &Ids,
        artifacts: &[NewArtifact<'_>],
        then: impl FnOnce(&[String]) -> Vec<(Ids, EventBody)>,
    ) -> Result<(), StoreError> {
        let mut blobs = Vec::with_capacity(artifacts.len());
        let mut artifact_ids = Vec::with_capacity(artifacts.len());
        let mut new = Vec::with_capacity(artifacts.len() + 1);
        for artifact in artifacts {
            let staged = match artifact.content {
                Content::Bytes(bytes) => self.store.stage_blob(bytes)?,
                Content::File(path) => self.store.stage_blob_file(path)?,
            };
            let (artifact_id, body) = staged.recorded(artifact.kind, artifact.name);
            new.push(self.new_event(ids, body));
            blobs.push(staged);
            artifact_ids.push(artifact_id);
        }
        new.extend(
            then(&artifact_ids)
                .into_iter()
                .map(|(ids, body)| self.new_event(&ids, body)),
        );
        let appended = self.store.append_all_with_blobs(&blobs, new)?;
        for event in &appended {
            let _ = self.live.send(event.clone());
        }
        Ok(())
    }
}

/// An artifact for [`Recorder::record`].
#[derive(Debug, Clone, Copy)]
pub struct NewArtifact<'a> {
    pub kind: ArtifactKind,
    pub name: Option<&'a str>,
    pub content: Content<'a>,
}

/// Where an artifact's content is.
#[derive(Debug, Clone, Copy)]
pub enum Content<'a> {
    Bytes(&'a [u8]),
    /// A file, streamed when large.
    File(&'a Path),
}

impl<'a> NewArtifact<'a> {
    pub fn bytes(kind: ArtifactKind, name: Option<&'a str>, bytes: &'a [u8]) -> NewArtifact<'a> {
        NewArtifact {
            kind,
            name,
            content: Content::Bytes(bytes),
        }
    }

    pub fn file(kind: ArtifactKind, name: Option<&'a str>, path: &'a Path) -> NewArtifact<'a> {
        NewArtifact {
            kind,
            name,
            content: Content::File(path),
        }
    }
}
