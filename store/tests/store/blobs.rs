//! Content-addressed blobs: small ones in the database, large ones in files.

use std::fs;
use std::path::{Path, PathBuf};

use codencer_store::{
    ArtifactKind, ArtifactRow, BlobContent, BlobProblem, BlobRef, EventBody, EventIds,
    INLINE_BLOB_MAX_BYTES, Store, StoreError, VerifyReport,
};
use sha2::{Digest, Sha256};

use crate::fixtures::{ACTOR, as_version_4, open, raw, run_created};

const ABC_SHA256: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
const LIMIT: usize = INLINE_BLOB_MAX_BYTES as usize;

fn tmp_entries(dir: &tempfile::TempDir) -> usize {
    fs::read_dir(dir.path().join("tmp")).unwrap().count()
}

/// Every file under `blobs/sha256`.
fn blob_files(dir: &tempfile::TempDir) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(&dir.path().join("blobs/sha256"), &mut out);
    out
}

/// The rows of the `blobs` table, read behind the store's back.
fn inline_rows(dir: &tempfile::TempDir) -> Vec<(String, Vec<u8>)> {
    raw(dir)
        .prepare("SELECT sha256, data FROM blobs ORDER BY sha256")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// `len` bytes, different for each `seed`.
fn content(seed: &str, len: usize) -> Vec<u8> {
    format!("{seed} ").bytes().cycle().take(len).collect()
}

fn blob_ref(bytes: &[u8]) -> BlobRef {
    BlobRef {
        sha256: hex::encode(Sha256::digest(bytes)),
        bytes: bytes.len() as u64,
    }
}

#[test]
fn small_blobs_are_rows_not_files_and_idempotent() {
    let (dir, store) = open();
    let blob = store.put_blob(b"abc").unwrap();
    assert_eq!((blob.sha256.as_str(), blob.bytes), (ABC_SHA256, 3));
    assert_eq!(
        inline_rows(&dir),
        vec![(ABC_SHA256.to_owned(), b"abc".to_vec())]
    );
    assert_eq!(blob_files(&dir), Vec::<PathBuf>::new());
    assert_eq!(tmp_entries(&dir), 0);

    assert_eq!(store.put_blob(b"abc").unwrap(), blob);
    assert_eq!(inline_rows(&dir).len(), 1);
    assert_eq!(store.read_blob(ABC_SHA256).unwrap(), b"abc");
    assert_eq!(
        store.open_blob(ABC_SHA256).unwrap(),
        BlobContent::Inline(b"abc".to_vec())
    );

    let src = dir.path().join("small.txt");
    fs::write(&src, b"small file").unwrap();
    let from_file = store.put_blob_file(&src).unwrap();
    assert_eq!(from_file, blob_ref(b"small file"));
    assert_eq!(store.put_blob_file(&src).unwrap(), from_file);
    assert_eq!(inline_rows(&dir).len(), 2);
    assert_eq!(store.read_blob(&from_file.sha256).unwrap(), b"small file");
    assert_eq!(blob_files(&dir), Vec::<PathBuf>::new());
    assert_eq!(tmp_entries(&dir), 0);
}

#[test]
fn a_blob_at_the_limit_is_a_row_and_one_byte_more_is_a_file() {
    let (dir, store) = open();
    let at = content("at", LIMIT);
    let over = content("over", LIMIT + 1);
    let at_ref = store.put_blob(&at).unwrap();
    let over_ref = store.put_blob(&over).unwrap();
    assert_eq!(
        (at_ref.bytes, over_ref.bytes),
        (LIMIT as u64, LIMIT as u64 + 1)
    );
    assert_eq!(inline_rows(&dir), vec![(at_ref.sha256.clone(), at.clone())]);
    assert_eq!(
        blob_files(&dir),
        vec![store.blob_path(&over_ref.sha256).unwrap()]
    );

    // The same through put_blob_file, into a fresh store.
    let (dir2, store2) = open();
    let (at_src, over_src) = (dir2.path().join("at"), dir2.path().join("over"));
    fs::write(&at_src, &at).unwrap();
    fs::write(&over_src, &over).unwrap();
    assert_eq!(store2.put_blob_file(&at_src).unwrap(), at_ref);
    assert_eq!(store2.put_blob_file(&over_src).unwrap(), over_ref);
    assert_eq!(inline_rows(&dir2), vec![(at_ref.sha256.clone(), at)]);
    assert_eq!(
        blob_files(&dir2),
        vec![store2.blob_path(&over_ref.sha256).unwrap()]
    );
    assert_eq!(
        fs::read(store2.blob_path(&over_ref.sha256).unwrap()).unwrap(),
        over
    );
    assert_eq!(tmp_entries(&dir2), 0);
}

#[test]
fn file_blobs_are_content_addressed_and_idempotent() {
    let (dir, store) = open();
    let big = content("big", LIMIT + 100);
    let blob = store.put_blob(&big).unwrap();
    assert_eq!(blob, blob_ref(&big));
    let path = store.blob_path(&blob.sha256).unwrap();
    assert_eq!(
        path,
        dir.path()
            .join("blobs/sha256")
            .join(&blob.sha256[..2])
            .join(&blob.sha256)
    );
    assert_eq!(fs::read(&path).unwrap(), big);
    let written = fs::metadata(&path).unwrap().modified().unwrap();

    std::thread::sleep(std::time::Duration::from_millis(20));
    assert_eq!(store.put_blob(&big).unwrap(), blob);
    assert_eq!(
        fs::metadata(&path).unwrap().modified().unwrap(),
        written,
        "rewritten"
    );
    assert_eq!(store.read_blob(&blob.sha256).unwrap(), big);
    assert_eq!(inline_rows(&dir), Vec::new());
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

/// A source whose size says "small" but whose content is not (a pipe reports 0 bytes, a log
/// may grow while read) is stored whole, as a file.
#[test]
fn put_blob_file_of_a_source_larger_than_its_size_makes_a_file() {
    let (dir, store) = open();
    let fifo = dir.path().join("fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let big = content("piped", LIMIT * 2 + 17);
    let writer = {
        let (fifo, big) = (fifo.clone(), big.clone());
        std::thread::spawn(move || fs::write(fifo, big).unwrap())
    };
    let blob = store.put_blob_file(&fifo).unwrap();
    writer.join().unwrap();
    assert_eq!(blob, blob_ref(&big));
    assert_eq!(
        fs::read(store.blob_path(&blob.sha256).unwrap()).unwrap(),
        big
    );
    assert_eq!(inline_rows(&dir), Vec::new());
    assert_eq!(tmp_entries(&dir), 0);
}

#[test]
fn read_blob_and_open_blob_find_both_kinds() {
    let (_dir, store) = open();
    let small = content("small", 4096);
    let large = content("large", LIMIT * 3);
    let small_ref = store.put_blob(&small).unwrap();
    let large_ref = store.put_blob(&large).unwrap();
    assert_eq!(store.read_blob(&small_ref.sha256).unwrap(), small);
    assert_eq!(store.read_blob(&large_ref.sha256).unwrap(), large);
    assert_eq!(
        store.open_blob(&small_ref.sha256).unwrap(),
        BlobContent::Inline(small)
    );
    assert_eq!(
        store.open_blob(&large_ref.sha256).unwrap(),
        BlobContent::File(store.blob_path(&large_ref.sha256).unwrap())
    );
}

#[test]
fn a_truncated_blob_file_is_replaced_whole() {
    let (_dir, store) = open();
    let big = content("truncated", LIMIT + 1);
    let blob = store.put_blob(&big).unwrap();
    let path = store.blob_path(&blob.sha256).unwrap();
    fs::write(&path, &big[..10]).unwrap();
    store.put_blob(&big).unwrap();
    assert_eq!(fs::read(&path).unwrap(), big);
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
        assert!(
            matches!(store.open_blob(bad), Err(StoreError::InvalidSha256 { .. })),
            "{bad}"
        );
    }
    let err = store.read_blob(ABC_SHA256).unwrap_err();
    assert!(matches!(err, StoreError::BlobNotFound { .. }), "{err:?}");
    let err = store.open_blob(ABC_SHA256).unwrap_err();
    assert!(matches!(err, StoreError::BlobNotFound { .. }), "{err:?}");
}

#[test]
fn inline_blobs_cannot_be_updated_or_deleted() {
    let (dir, store) = open();
    store.put_blob(b"abc").unwrap();
    let conn = raw(&dir);
    for sql in [
        "UPDATE blobs SET data = X'00'",
        "UPDATE blobs SET sha256 = 'x'",
        "DELETE FROM blobs",
    ] {
        let err = conn.execute(sql, []).unwrap_err();
        assert!(
            err.to_string().contains("blobs are immutable"),
            "{sql}: {err}"
        );
    }
    assert_eq!(
        inline_rows(&dir),
        vec![(ABC_SHA256.to_owned(), b"abc".to_vec())]
    );
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

fn problems(report: &VerifyReport) -> Vec<(&str, BlobProblem)> {
    report
        .blob_problems
        .iter()
        .map(|p| (p.artifact_id.as_str(), p.problem.clone()))
        .collect()
}

fn recorder(store: &Store) -> impl Fn(&[u8]) -> ArtifactRow + '_ {
    let run = codencer_store::new_id();
    store.append(run_created(&run, "r")).unwrap();
    move |bytes: &[u8]| {
        store
            .record_artifact(
                &EventIds::run(&run),
                ACTOR,
                ArtifactKind::Other,
                None,
                bytes,
            )
            .unwrap()
    }
}

#[test]
fn verify_detects_altered_truncated_and_missing_blob_files() {
    let (_dir, store) = open();
    let record = recorder(&store);
    let big = |seed: &str| content(seed, LIMIT + 1);
    let altered = record(&big("original"));
    let truncated = record(&big("truncate me"));
    let missing = record(&big("delete me"));
    let intact = record(&big("keep me"));
    let report = store.verify().unwrap();
    assert!(report.ok, "{report}");
    assert_eq!(report.blobs_checked, 4);

    fs::write(store.blob_path(&altered.sha256).unwrap(), big("ORIGINAL")).unwrap();
    fs::write(store.blob_path(&truncated.sha256).unwrap(), b"trunc").unwrap();
    fs::remove_file(store.blob_path(&missing.sha256).unwrap()).unwrap();
    let report = store.verify().unwrap();
    assert!(!report.ok);
    assert!(report.broken_link.is_none());
    assert_eq!(report.blobs_checked, 4);
    let problems = problems(&report);
    assert_eq!(problems.len(), 3, "{report}");
    assert!(matches!(problems[0], (id, BlobProblem::WrongDigest { .. }) if id == altered.id));
    assert_eq!(
        problems[1],
        (
            truncated.id.as_str(),
            BlobProblem::WrongSize {
                expected: LIMIT as u64 + 1,
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

#[test]
fn verify_detects_altered_resized_and_missing_inline_blobs() {
    let (dir, store) = open();
    let record = recorder(&store);
    let altered = record(b"original");
    let resized = record(b"resize me");
    let missing = record(b"delete me");
    let intact = record(b"keep me");
    let report = store.verify().unwrap();
    assert!(report.ok, "{report}");
    assert_eq!(report.blobs_checked, 4);
    assert_eq!(inline_rows(&dir).len(), 4);

    // Behind the store's back, with the immutability triggers dropped.
    let conn = raw(&dir);
    conn.execute_batch("DROP TRIGGER blobs_no_update; DROP TRIGGER blobs_no_delete;")
        .unwrap();
    conn.execute(
        "UPDATE blobs SET data = ?1 WHERE sha256 = ?2",
        rusqlite::params![b"ORIGINAL".to_vec(), altered.sha256],
    )
    .unwrap();
    conn.execute(
        "UPDATE blobs SET data = ?1 WHERE sha256 = ?2",
        rusqlite::params![b"resized".to_vec(), resized.sha256],
    )
    .unwrap();
    conn.execute("DELETE FROM blobs WHERE sha256 = ?1", [&missing.sha256])
        .unwrap();
    drop(conn);

    let report = store.verify().unwrap();
    assert!(!report.ok);
    assert!(report.broken_link.is_none());
    assert_eq!(report.blobs_checked, 4);
    assert_eq!(
        problems(&report),
        vec![
            (
                altered.id.as_str(),
                BlobProblem::WrongDigest {
                    found: blob_ref(b"ORIGINAL").sha256
                }
            ),
            (
                resized.id.as_str(),
                BlobProblem::WrongSize {
                    expected: 9,
                    found: 7
                }
            ),
            (missing.id.as_str(), BlobProblem::Missing),
        ],
        "{report}"
    );
    assert!(!report.to_string().contains(&intact.id), "{report}");
}

/// A store written by schema version 3 keeps its small blobs as files: upgraded in place, it
/// reads and verifies them where they are.
#[test]
fn a_version_3_store_with_blob_files_is_upgraded_in_place() {
    let (dir, store) = open();
    let run = codencer_store::new_id();
    store.append(run_created(&run, "old")).unwrap();
    let small = [b"old taskspec".to_vec(), content("old policy", 4096)];
    let mut refs = Vec::new();
    for (i, bytes) in small.iter().enumerate() {
        // Written as version 3 wrote every blob: a file, then the event naming it.
        let blob = blob_ref(bytes);
        let path = store.blob_path(&blob.sha256).unwrap();
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, bytes).unwrap();
        store
            .append(EventIds::run(&run).event(
                ACTOR,
                EventBody::ArtifactRecorded {
                    artifact_id: format!("artifact-{i}"),
                    kind: ArtifactKind::Taskspec,
                    name: None,
                    sha256: blob.sha256.clone(),
                    bytes: blob.bytes,
                },
            ))
            .unwrap();
        refs.push(blob);
    }
    drop(store);
    // Back to exactly what version 3 had: no `blobs` table (its triggers go with it).
    as_version_4(&dir);
    raw(&dir)
        .execute_batch("DROP TABLE blobs; PRAGMA user_version = 3;")
        .unwrap();
    let tables: i64 = raw(&dir)
        .query_row(
            "SELECT count(*) FROM sqlite_schema WHERE tbl_name = 'blobs'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(tables, 0);

    let store = Store::open(dir.path()).unwrap();
    let version: u32 = raw(&dir)
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 5);
    assert_eq!(inline_rows(&dir), Vec::new(), "file blobs were moved");
    for (blob, bytes) in refs.iter().zip(&small) {
        assert_eq!(&store.read_blob(&blob.sha256).unwrap(), bytes);
        assert_eq!(
            store.open_blob(&blob.sha256).unwrap(),
            BlobContent::File(store.blob_path(&blob.sha256).unwrap())
        );
    }
    let report = store.verify().unwrap();
    assert!(report.ok, "{report}");
    assert_eq!(report.blobs_checked, 2);

    // New small blobs go to the table; the old files are still checked.
    let new = store.put_blob(b"new").unwrap();
    assert_eq!(inline_rows(&dir), vec![(new.sha256, b"new".to_vec())]);
    fs::write(store.blob_path(&refs[0].sha256).unwrap(), b"OLD TASKSPEC").unwrap();
    let report = store.verify().unwrap();
    assert_eq!(
        problems(&report),
        vec![(
            "artifact-0",
            BlobProblem::WrongDigest {
                found: blob_ref(b"OLD TASKSPEC").sha256
            }
        )],
        "{report}"
    );
}

#[test]
fn read_blob_range_reads_a_window_of_either_kind() {
    let (_dir, store) = open();
    let small: Vec<u8> = (0..1_000u32).map(|i| (i % 251) as u8).collect();
    let large: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    for content in [&small, &large] {
        let blob = store.put_blob(content).unwrap();
        let read =
            |offset: u64, len: usize| store.read_blob_range(&blob.sha256, offset, len).unwrap();
        assert_eq!(read(0, 10), content[..10].to_vec());
        assert_eq!(read(100, 50), content[100..150].to_vec());
        let n = content.len();
        // A window running past the end stops at it; one starting past it is empty.
        assert_eq!(read(n as u64 - 5, 100), content[n - 5..].to_vec());
        assert!(read(n as u64 + 10, 100).is_empty());
    }
    assert!(matches!(
        store.read_blob_range(ABC_SHA256, 0, 1),
        Err(StoreError::BlobNotFound { .. })
    ));
}

/// A small staged blob is inserted in the transaction of the events that name it: with
/// them or not at all. A large one is a file from the moment it is staged.
#[test]
fn staged_blobs_land_with_their_events_or_not_at_all() {
    let (dir, store) = open();
    let run = codencer_store::new_id();
    store.append(run_created(&run, "r")).unwrap();
    let small_bytes = b"small content".to_vec();
    let large_bytes = content("large", LIMIT + 1);
    let small = store.stage_blob(&small_bytes).unwrap();
    let large = store.stage_blob(&large_bytes).unwrap();
    assert_eq!(small.blob(), &blob_ref(&small_bytes));
    assert_eq!(blob_files(&dir).len(), 1);
    assert!(inline_rows(&dir).is_empty());

    // Refused (an event names a step that does not exist): the small blob is not kept.
    let orphan = EventIds::step(&run, codencer_store::new_id()).event(
        ACTOR,
        EventBody::StepStarted {
            base: "main".into(),
            base_commit: "c".into(),
        },
    );
    let err = store
        .append_all_with_blobs(std::slice::from_ref(&small), vec![orphan])
        .unwrap_err();
    assert!(
        matches!(err, StoreError::UnknownNode { node: "step", .. }),
        "{err:?}"
    );
    assert!(inline_rows(&dir).is_empty());

    let artifact = |blob: &BlobRef| {
        EventIds::run(&run).event(
            ACTOR,
            EventBody::ArtifactRecorded {
                artifact_id: codencer_store::new_id(),
                kind: ArtifactKind::Other,
                name: None,
                sha256: blob.sha256.clone(),
                bytes: blob.bytes,
            },
        )
    };
    let events = vec![artifact(small.blob()), artifact(large.blob())];
    store
        .append_all_with_blobs(&[small.clone(), large.clone()], events)
        .unwrap();
    assert_eq!(
        inline_rows(&dir),
        vec![(small.blob().sha256.clone(), small_bytes)]
    );
    assert_eq!(store.read_blob(&large.blob().sha256).unwrap(), large_bytes);
    let report = store.verify().unwrap();
    assert!(report.ok, "{report}");
}
