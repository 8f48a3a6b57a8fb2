//! Content-addressed blobs.

use std::fs;

use codencer_store::{ArtifactKind, BlobProblem, EventIds, StoreError};

use crate::fixtures::{ACTOR, open, run_created};

const ABC_SHA256: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

fn tmp_entries(dir: &tempfile::TempDir) -> usize {
    fs::read_dir(dir.path().join("tmp")).unwrap().count()
}

#[test]
fn put_blob_is_content_addressed_and_idempotent() {
    let (dir, store) = open();
    let blob = store.put_blob(b"abc").unwrap();
    assert_eq!((blob.sha256.as_str(), blob.bytes), (ABC_SHA256, 3));
    let path = store.blob_path(ABC_SHA256).unwrap();
    assert_eq!(path, dir.path().join("blobs/sha256/ba").join(ABC_SHA256));
    assert_eq!(fs::read(&path).unwrap(), b"abc");
    let written = fs::metadata(&path).unwrap().modified().unwrap();

    std::thread::sleep(std::time::Duration::from_millis(20));
    assert_eq!(store.put_blob(b"abc").unwrap(), blob);
    assert_eq!(
        fs::metadata(&path).unwrap().modified().unwrap(),
        written,
        "rewritten"
    );
    assert_eq!(store.read_blob(ABC_SHA256).unwrap(), b"abc");
    assert_eq!(tmp_entries(&dir), 0);
}

#[test]
fn put_blob_file_streams_large_files() {
    let (dir, store) = open();
    let src = dir.path().join("big.bin");
    let content: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    fs::write(&src, &content).unwrap();
    let from_file = store.put_blob_file(&src).unwrap();
    assert_eq!(from_file.bytes, content.len() as u64);
    assert_eq!(store.put_blob(&content).unwrap(), from_file);
    assert_eq!(store.put_blob_file(&src).unwrap(), from_file);
    assert_eq!(store.read_blob(&from_file.sha256).unwrap(), content);
    assert_eq!(tmp_entries(&dir), 0);
    let err = store.put_blob_file(&dir.path().join("absent")).unwrap_err();
    assert!(matches!(err, StoreError::Io { .. }), "{err:?}");
    assert_eq!(tmp_entries(&dir), 0);
}

#[test]
fn a_truncated_blob_is_replaced_whole() {
    let (_dir, store) = open();
    let blob = store.put_blob(b"abc").unwrap();
    let path = store.blob_path(&blob.sha256).unwrap();
    fs::write(&path, b"ab").unwrap();
    store.put_blob(b"abc").unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"abc");
}

#[test]
fn blob_names_are_never_trusted_as_paths() {
    let (_dir, store) = open();
    for bad in [
        "../../etc/passwd",
        "",
        &ABC_SHA256.to_uppercase(),
        &ABC_SHA256[1..],
    ] {
        assert!(
            matches!(store.blob_path(bad), Err(StoreError::InvalidSha256 { .. })),
            "{bad}"
        );
        assert!(
            matches!(store.read_blob(bad), Err(StoreError::InvalidSha256 { .. })),
            "{bad}"
        );
    }
    let err = store.read_blob(ABC_SHA256).unwrap_err();
    assert!(matches!(err, StoreError::BlobNotFound { .. }), "{err:?}");
}

#[test]
fn recorded_artifacts_point_at_their_blob() {
    let (dir, store) = open();
    let run = codencer_store::new_id();
    store.append(run_created(&run, "r")).unwrap();
    let ids = EventIds::run(&run);
    let row = store
        .record_artifact(&ids, ACTOR, ArtifactKind::Taskspec, Some("spec"), b"abc")
        .unwrap();
    assert_eq!(store.artifact(&row.id).unwrap().as_ref(), Some(&row));
    assert_eq!(
        (row.sha256.as_str(), row.bytes, row.run_id.as_deref()),
        (ABC_SHA256, 3, Some(run.as_str()))
    );
    let src = dir.path().join("log.txt");
    fs::write(&src, b"log line\n").unwrap();
    let from_file = store
        .record_artifact_file(&ids, ACTOR, ArtifactKind::ExecutorStdout, None, &src)
        .unwrap();
    assert_eq!(store.read_blob(&from_file.sha256).unwrap(), b"log line\n");
    assert_ne!(from_file.id, row.id);
    let events = store.events_for_run(&run).unwrap();
    assert_eq!(events.len(), 3);
}

#[test]
fn verify_detects_altered_truncated_and_missing_blobs() {
    let (_dir, store) = open();
    let run = codencer_store::new_id();
    store.append(run_created(&run, "r")).unwrap();
    let ids = EventIds::run(&run);
    let record = |bytes: &[u8]| {
        store
            .record_artifact(&ids, ACTOR, ArtifactKind::Other, None, bytes)
            .unwrap()
    };
    let altered = record(b"original");
    let truncated = record(b"truncate me");
    let missing = record(b"delete me");
    let intact = record(b"keep me");
    let report = store.verify().unwrap();
    assert!(report.ok, "{report}");
    assert_eq!(report.blobs_checked, 4);

    fs::write(store.blob_path(&altered.sha256).unwrap(), b"ORIGINAL").unwrap();
    fs::write(store.blob_path(&truncated.sha256).unwrap(), b"trunc").unwrap();
    fs::remove_file(store.blob_path(&missing.sha256).unwrap()).unwrap();
    let report = store.verify().unwrap();
    assert!(!report.ok);
    assert!(report.broken_link.is_none());
    let problems: Vec<_> = report
        .blob_problems
        .iter()
        .map(|p| (p.artifact_id.as_str(), p.problem.clone()))
        .collect();
    assert_eq!(problems.len(), 3, "{report}");
    assert!(matches!(problems[0], (id, BlobProblem::WrongDigest { .. }) if id == altered.id));
    assert_eq!(
        problems[1],
        (
            truncated.id.as_str(),
            BlobProblem::WrongSize {
                expected: 11,
                found: 5
            }
        )
    );
    assert_eq!(problems[2], (missing.id.as_str(), BlobProblem::Missing));
    assert!(!problems.iter().any(|(id, _)| *id == intact.id));
    assert!(
        report
            .to_string()
            .contains(&format!("artifact {}", missing.id)),
        "{report}"
    );
}
