//! The store's blob API. Blobs up to [`INLINE_BLOB_MAX_BYTES`] live in the database (table
//! `blobs`, schema version 4); larger ones are files (`blobs.rs`). Reads look in the table
//! first, then for a file, so stores written before version 4, whose small blobs are files,
//! read as before.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use rusqlite::{OptionalExtension, params};

use crate::blobs::{BlobProblem, blob_ref, compare, is_sha256_hex};
use crate::error::StoreError;
use crate::model::{ArtifactKind, BlobRef, EventBody};
use crate::store::{Store, lock, new_id};

/// Blobs of up to this many bytes are kept in the database, larger ones in files.
///
/// A file costs two fsyncs (its content, its directory) before the event naming it may be
/// appended, about 1 ms; a row costs a WAL append. A run's TaskSpec, policy, reports and
/// ResultSpec are a few KiB each; diffs and transcripts can be megabytes, which are better
/// streamed than held in memory and copied into the WAL and then the database.
pub const INLINE_BLOB_MAX_BYTES: u64 = 64 * 1024;

/// Where the content of a blob is: see [`Store::open_blob`].
///
/// Not `#[non_exhaustive]`: a reader must handle every place a blob can be, and a new place
/// should fail to compile where it is not handled, not fall into a wildcard arm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobContent {
    /// A small blob, kept in the database: its bytes.
    Inline(Vec<u8>),
    /// A blob kept as a file: its path, to stream from.
    File(PathBuf),
}

/// A blob ready to be named by an event: a small one's bytes, to be inserted in the
/// transaction of that event ([`Store::append_all_with_blobs`]); a large one already stored
/// as a file (fsynced).
#[derive(Debug, Clone)]
pub struct StagedBlob {
    blob: BlobRef,
    inline: Option<Vec<u8>>,
}

impl StagedBlob {
    pub fn blob(&self) -> &BlobRef {
        &self.blob
    }

    /// A new artifact id, and the `artifact.recorded` body recording this blob under it.
    pub fn recorded(&self, kind: ArtifactKind, name: Option<&str>) -> (String, EventBody) {
        let artifact_id = new_id();
        let body = EventBody::ArtifactRecorded {
            artifact_id: artifact_id.clone(),
            kind,
            name: name.map(str::to_owned),
            sha256: self.blob.sha256.clone(),
            bytes: self.blob.bytes,
        };
        (artifact_id, body)
    }

    /// Inserts a small blob in `conn`'s transaction (no-op if already stored).
    pub(crate) fn insert(&self, conn: &rusqlite::Connection) -> Result<(), StoreError> {
        if let Some(data) = &self.inline {
            conn.prepare_cached("INSERT OR IGNORE INTO main.blobs (sha256, data) VALUES (?1, ?2)")?
                .execute(params![self.blob.sha256, data])?;
        }
        Ok(())
    }
}

impl Store {
    /// Store `bytes` as a blob (no-op if already stored).
    pub fn put_blob(&self, bytes: &[u8]) -> Result<BlobRef, StoreError> {
        let staged = self.stage_blob(bytes)?;
        self.put_staged(staged)
    }

    /// Store the content of the file at `path` as a blob (no-op if already stored). Files over
    /// [`INLINE_BLOB_MAX_BYTES`] are streamed, never held in memory.
    pub fn put_blob_file(&self, path: &Path) -> Result<BlobRef, StoreError> {
        let staged = self.stage_blob_file(path)?;
        self.put_staged(staged)
    }

    /// Stages `bytes` as a blob: over [`INLINE_BLOB_MAX_BYTES`] it is stored as a file now,
    /// else it waits for the transaction of the event naming it.
    pub fn stage_blob(&self, bytes: &[u8]) -> Result<StagedBlob, StoreError> {
        if bytes.len() as u64 > INLINE_BLOB_MAX_BYTES {
            return Ok(StagedBlob {
                blob: self.blobs.put(bytes)?,
                inline: None,
            });
        }
        Ok(StagedBlob {
            blob: blob_ref(bytes),
            inline: Some(bytes.to_vec()),
        })
    }

    /// [`Store::stage_blob`] for the content of the file at `path`; a large file is
    /// streamed, never held in memory.
    pub fn stage_blob_file(&self, path: &Path) -> Result<StagedBlob, StoreError> {
        let mut file = File::open(path).map_err(StoreError::io(path))?;
        let len = file.metadata().map_err(StoreError::io(path))?.len();
        if len > INLINE_BLOB_MAX_BYTES {
            return Ok(StagedBlob {
                blob: self.blobs.put_reader(file, path)?,
                inline: None,
            });
        }
        // The size is a hint: the file may grow while we read it (a log still being written),
        // and a pipe or device reports 0. Read one byte past the limit to know.
        let mut head = Vec::with_capacity(len as usize);
        (&mut file)
            .take(INLINE_BLOB_MAX_BYTES + 1)
            .read_to_end(&mut head)
            .map_err(StoreError::io(path))?;
        if head.len() as u64 > INLINE_BLOB_MAX_BYTES {
            return Ok(StagedBlob {
                blob: self
                    .blobs
                    .put_reader(io::Cursor::new(head).chain(file), path)?,
                inline: None,
            });
        }
        Ok(StagedBlob {
            blob: blob_ref(&head),
            inline: Some(head),
        })
    }

    /// Where a file-backed blob `sha256` lives (or would live); small blobs are in the
    /// database instead, so use [`Store::open_blob`] or [`Store::read_blob`] to read one.
    /// Errors unless `sha256` is 64 lowercase hex digits (it becomes a path, so it is never
    /// trusted).
    pub fn blob_path(&self, sha256: &str) -> Result<PathBuf, StoreError> {
        self.blobs.path(sha256)
    }

    /// The content of blob `sha256`.
    pub fn read_blob(&self, sha256: &str) -> Result<Vec<u8>, StoreError> {
        match self.inline(sha256)? {
            Some(data) => Ok(data),
            None => self.blobs.read(sha256),
        }
    }

    /// At most `len` bytes of blob `sha256` from byte `offset` on (fewer at its end): a
    /// file blob is read only where asked, not whole.
    pub fn read_blob_range(
        &self,
        sha256: &str,
        offset: u64,
        len: usize,
    ) -> Result<Vec<u8>, StoreError> {
        match self.open_blob(sha256)? {
            BlobContent::Inline(data) => {
                let start = usize::try_from(offset)
                    .unwrap_or(usize::MAX)
                    .min(data.len());
                let end = start.saturating_add(len).min(data.len());
                Ok(data[start..end].to_vec())
            }
            BlobContent::File(path) => {
                let io = |source| StoreError::Io {
                    path: path.clone(),
                    source,
                };
                let mut file = File::open(&path).map_err(io)?;
                file.seek(SeekFrom::Start(offset)).map_err(io)?;
                let mut out = Vec::with_capacity(len.min(1 << 20));
                file.take(len as u64).read_to_end(&mut out).map_err(io)?;
                Ok(out)
            }
        }
    }

    /// Where to read blob `sha256` from: its bytes when it is kept in the database, else the
    /// path of its file, to stream. [`StoreError::BlobNotFound`] when it is in neither.
    pub fn open_blob(&self, sha256: &str) -> Result<BlobContent, StoreError> {
        if let Some(data) = self.inline(sha256)? {
            return Ok(BlobContent::Inline(data));
        }
        let path = self.blobs.path(sha256)?;
        if path.is_file() {
            Ok(BlobContent::File(path))
        } else {
            Err(StoreError::BlobNotFound {
                sha256: sha256.to_owned(),
            })
        }
    }

    /// Re-hash blob `sha256`, inline or file, against its recorded size; `None` when intact.
    pub(crate) fn check_blob(&self, sha256: &str, bytes: u64) -> Option<BlobProblem> {
        match self.inline(sha256) {
            Ok(Some(data)) => compare(blob_ref(&data), sha256, bytes),
            Ok(None) => self.blobs.check(sha256, bytes),
            Err(err) => {
                // The report outlives the error: keep its causes.
                let mut error = err.to_string();
                let mut source = std::error::Error::source(&err);
                while let Some(cause) = source {
                    error = format!("{error}: {cause}");
                    source = cause.source();
                }
                Some(BlobProblem::Unreadable { error })
            }
        }
    }

    /// Stores a staged blob on its own, before any event names it.
    fn put_staged(&self, staged: StagedBlob) -> Result<BlobRef, StoreError> {
        // Durability without an fsync. This insert commits on its own (autocommit) before the
        // caller appends the event that names the blob, and every commit, from any connection
        // or process, is appended to the one WAL in commit order. Each WAL frame's checksum
        // covers all frames before it, so recovery after a crash or power cut keeps a prefix
        // of the commits: if the event's commit survives, the blob's, earlier in the WAL, does
        // too. A checkpoint fsyncs the WAL before copying it into the database, and the WAL
        // restarts only after a complete checkpoint, so that order holds across checkpoints.
        // Files, outside the WAL, need their own fsyncs to be ordered before the event.
        staged.insert(&lock(&self.writer))?;
        Ok(staged.blob)
    }

    /// The bytes of blob `sha256` if it is kept in the database.
    fn inline(&self, sha256: &str) -> Result<Option<Vec<u8>>, StoreError> {
        if !is_sha256_hex(sha256) {
            return Err(StoreError::InvalidSha256 {
                sha256: sha256.to_owned(),
            });
        }
        let conn = lock(&self.reader);
        let data = conn
            .prepare_cached("SELECT data FROM main.blobs WHERE sha256 = ?1")?
            .query_row([sha256], |r| r.get(0))
            .optional()?;
        Ok(data)
    }
}
