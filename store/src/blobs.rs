//! Content-addressed blob files: `<state>/blobs/sha256/<2 hex>/<64 hex>`, for blobs too large
//! to keep in the database (see `inline.rs`).
//!
//! A blob file is written to `<state>/tmp`, fsynced, renamed into place, and its directory
//! fsynced: a reader sees the whole blob or none of it, even across a crash.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::StoreError;
use crate::model::BlobRef;

/// Leftover temporary files older than this are removed on open (a writer crashed).
const STALE_TMP: Duration = Duration::from_secs(24 * 60 * 60);
const TMP_SUFFIX: &str = ".partial";

#[derive(Debug, Clone)]
pub(crate) struct Blobs {
    /// `<state>/blobs/sha256`
    dir: PathBuf,
    /// `<state>/tmp`
    tmp: PathBuf,
}

/// What is wrong with a stored blob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "problem", rename_all = "snake_case")]
#[non_exhaustive]
pub enum BlobProblem {
    /// The blob is neither in the database nor in a file.
    Missing,
    /// The blob could not be read.
    Unreadable { error: String },
    /// The blob's size differs from the recorded size.
    WrongSize { expected: u64, found: u64 },
    /// The blob's content does not hash to its name.
    WrongDigest { found: String },
}

impl std::fmt::Display for BlobProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BlobProblem::Missing => write!(f, "missing"),
            BlobProblem::Unreadable { error } => write!(f, "unreadable: {error}"),
            BlobProblem::WrongSize { expected, found } => {
                write!(f, "size {found} bytes, recorded {expected}")
            }
            BlobProblem::WrongDigest { found } => write!(f, "content hashes to {found}"),
        }
    }
}

pub(crate) fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Name and size of `bytes` as a blob.
pub(crate) fn blob_ref(bytes: &[u8]) -> BlobRef {
    BlobRef {
        sha256: hex::encode(Sha256::digest(bytes)),
        bytes: bytes.len() as u64,
    }
}

/// What is wrong with a blob named `sha256` of `bytes` bytes whose content turned out to be
/// `found`; `None` when it is intact.
pub(crate) fn compare(found: BlobRef, sha256: &str, bytes: u64) -> Option<BlobProblem> {
    if found.bytes != bytes {
        Some(BlobProblem::WrongSize {
            expected: bytes,
            found: found.bytes,
        })
    } else if found.sha256 != sha256 {
        Some(BlobProblem::WrongDigest {
            found: found.sha256,
        })
    } else {
        None
    }
}

impl Blobs {
    pub(crate) fn new(state: &Path) -> Blobs {
        Blobs {
            dir: state.join("blobs").join("sha256"),
            tmp: state.join("tmp"),
        }
    }

    pub(crate) fn create_dirs(&self) -> Result<(), StoreError> {
        for dir in [&self.dir, &self.tmp] {
            fs::create_dir_all(dir).map_err(StoreError::io(dir))?;
        }
        Ok(())
    }

    /// Path of blob `sha256` (which must be 64 lowercase hex digits: it becomes a file name).
    pub(crate) fn path(&self, sha256: &str) -> Result<PathBuf, StoreError> {
        if !is_sha256_hex(sha256) {
            return Err(StoreError::InvalidSha256 {
                sha256: sha256.to_owned(),
            });
        }
        Ok(self.dir.join(&sha256[..2]).join(sha256))
    }

    pub(crate) fn put(&self, bytes: &[u8]) -> Result<BlobRef, StoreError> {
        let blob = blob_ref(bytes);
        let dest = self.path(&blob.sha256)?;
        if already_stored(&dest, blob.bytes) {
            return Ok(blob);
        }
        let (tmp_path, mut file) = self.create_tmp()?;
        let written = file
            .write_all(bytes)
            .and_then(|()| file.sync_all())
            .map_err(StoreError::io(&tmp_path));
        drop(file);
        self.finish(written, &tmp_path, &dest)?;
        Ok(blob)
    }

    /// Stream `input` (the content of `src`) into a blob file.
    pub(crate) fn put_reader(
        &self,
        mut input: impl Read,
        src: &Path,
    ) -> Result<BlobRef, StoreError> {
        let (tmp_path, mut file) = self.create_tmp()?;
        let copied = copy_hashing(&mut input, &mut file, src, &tmp_path).and_then(|blob| {
            file.sync_all()
                .map(|()| blob)
                .map_err(StoreError::io(&tmp_path))
        });
        drop(file);
        let blob = match copied {
            Ok(blob) => blob,
            Err(err) => {
                remove_quietly(&tmp_path);
                return Err(err);
            }
        };
        let dest = self.path(&blob.sha256)?;
        if already_stored(&dest, blob.bytes) {
            remove_quietly(&tmp_path);
            return Ok(blob);
        }
        self.finish(Ok(()), &tmp_path, &dest)?;
        Ok(blob)
    }

    pub(crate) fn read(&self, sha256: &str) -> Result<Vec<u8>, StoreError> {
        let path = self.path(sha256)?;
        fs::read(&path).map_err(|source| match source.kind() {
            io::ErrorKind::NotFound => StoreError::BlobNotFound {
                sha256: sha256.to_owned(),
            },
            _ => StoreError::Io { path, source },
        })
    }

    /// Re-hash a blob file; `None` when it is intact.
    pub(crate) fn check(&self, sha256: &str, bytes: u64) -> Option<BlobProblem> {
        let path = match self.path(sha256) {
            Ok(path) => path,
            Err(err) => {
                return Some(BlobProblem::Unreadable {
                    error: err.to_string(),
                });
            }
        };
        let mut file = match File::open(&path) {
            Ok(file) => file,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Some(BlobProblem::Missing),
            Err(err) => {
                return Some(BlobProblem::Unreadable {
                    error: err.to_string(),
                });
            }
        };
        match copy_hashing(&mut file, &mut io::sink(), &path, &path) {
            Err(err) => Some(BlobProblem::Unreadable {
                error: err.to_string(),
            }),
            Ok(found) => compare(found, sha256, bytes),
        }
    }

    /// Remove temporary files a crashed writer left behind (young ones may be in use).
    pub(crate) fn sweep_tmp(&self) {
        let Ok(entries) = fs::read_dir(&self.tmp) else {
            return;
        };
        let now = SystemTime::now();
        for entry in entries.flatten() {
            let path = entry.path();
            let stale = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|modified| now.duration_since(modified).ok())
                .is_some_and(|age| age > STALE_TMP);
            if stale && path.to_string_lossy().ends_with(TMP_SUFFIX) {
                tracing::debug!(path = %path.display(), "removing stale temporary blob");
                remove_quietly(&path);
            }
        }
    }

    fn create_tmp(&self) -> Result<(PathBuf, File), StoreError> {
        let path = self
            .tmp
            .join(format!("{}{TMP_SUFFIX}", ulid::Ulid::generate()));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(StoreError::io(&path))?;
        Ok((path, file))
    }

    /// Move a fully written and fsynced temporary file into place, durably.
    fn finish(
        &self,
        written: Result<(), StoreError>,
        tmp_path: &Path,
        dest: &Path,
    ) -> Result<(), StoreError> {
        let placed = written.and_then(|()| {
            let parent = dest.parent().unwrap_or(&self.dir);
            let created = !parent.exists();
            fs::create_dir_all(parent).map_err(StoreError::io(parent))?;
            fs::rename(tmp_path, dest).map_err(StoreError::io(dest))?;
            sync_dir(parent)?;
            if created {
                sync_dir(&self.dir)?;
            }
            Ok(())
        });
        if placed.is_err() {
            remove_quietly(tmp_path);
        }
        placed
    }
}

/// A blob is already stored when its file exists with the right size (a truncated leftover of
/// an older, non-atomic writer is replaced).
fn already_stored(dest: &Path, bytes: u64) -> bool {
    fs::metadata(dest).is_ok_and(|m| m.is_file() && m.len() == bytes)
}

fn copy_hashing(
    input: &mut impl Read,
    output: &mut impl Write,
    src: &Path,
    dst: &Path,
) -> Result<BlobRef, StoreError> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => {
                return Err(StoreError::Io {
                    path: src.to_owned(),
                    source: err,
                });
            }
        };
        let chunk = &buf[..n];
        hasher.update(chunk);
        output.write_all(chunk).map_err(StoreError::io(dst))?;
        total += n as u64;
    }
    Ok(BlobRef {
        sha256: hex::encode(hasher.finalize()),
        bytes: total,
    })
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(StoreError::io(dir))
}

fn remove_quietly(path: &Path) {
    if let Err(err) = fs::remove_file(path) {
        tracing::warn!(path = %path.display(), error = %err, "cannot remove temporary blob");
    }
}
