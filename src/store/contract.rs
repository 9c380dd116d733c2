//! The storage contract: what the registry relies on from a [`BlobStore`] and a
//! [`MetadataStore`], as checks any backend can run.
//!
//! ```no_run
//! # async fn demo() {
//! use std::sync::Arc;
//! use marina::store::{contract, MemoryBlobStore, SqliteMetaStore};
//! contract::check_blob_store(&|| Arc::new(MemoryBlobStore::new())).await;
//! contract::check_metadata_store(&|| Arc::new(SqliteMetaStore::in_memory().unwrap())).await;
//! # }
//! ```
//!
//! Each check gets a fresh store from the factory and panics with the name of the
//! broken rule, so a failure reads as "which promise does my backend break".

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures_util::future::BoxFuture;
use futures_util::StreamExt;
use tokio::io::AsyncReadExt;

use super::{BlobStore, MetadataStore, NewManifest, StoreError, UploadRecord};
use crate::oci::{Algorithm, Digest};

/// Makes a fresh, empty blob store for one check.
pub type BlobFactory<'a> = &'a (dyn Fn() -> Arc<dyn BlobStore> + Sync);
/// Makes a fresh, empty metadata store for one check.
pub type MetaFactory<'a> = &'a (dyn Fn() -> Arc<dyn MetadataStore> + Sync);

async fn read_all(store: &dyn BlobStore, d: &Digest, offset: u64, len: u64) -> Vec<u8> {
    let mut r = store
        .open(d, offset, len)
        .await
        .expect("open a stored blob");
    let mut out = Vec::new();
    r.read_to_end(&mut out).await.expect("read a stored blob");
    out
}

async fn read_chunks(store: &dyn BlobStore, d: &Digest, offset: u64, len: u64) -> Vec<u8> {
    let mut chunks = store
        .open_chunks(d, offset, len)
        .await
        .expect("open_chunks on a stored blob");
    let mut out = Vec::new();
    while let Some(chunk) = chunks.next().await {
        out.extend_from_slice(&chunk.expect("read a chunk of a stored blob"));
    }
    out
}

/// Runs every blob store check against stores made by `make`.
pub async fn check_blob_store(make: BlobFactory<'_>) {
    let data = b"hello, contract".to_vec();
    let d = Algorithm::Sha256.digest_of(&data);

    // The empty blob (the spec's "empty" blob tests push it) and a blob larger
    // than one part of a chunked backend publish and read back whole.
    let s = make();
    let big: Vec<u8> = (0..(9u32 << 20)).map(|i| (i % 251) as u8).collect();
    for (id, bytes) in [("empty", Vec::new()), ("big", big)] {
        let digest = Algorithm::Sha256.digest_of(&bytes);
        let mut st = s.create_staging(id, b"").expect("create staging");
        for piece in bytes.chunks(1 << 20) {
            st.append(piece).unwrap();
        }
        st.publish(&digest).expect("publish");
        assert_eq!(
            s.size_of(&digest).await.unwrap(),
            Some(bytes.len() as u64),
            "publish: a blob of {} bytes has its size",
            bytes.len()
        );
        assert!(
            read_all(&*s, &digest, 0, bytes.len() as u64).await == bytes,
            "publish: a blob of {} bytes reads back whole",
            bytes.len()
        );
    }

    // Appended bytes are read back in order; truncation rolls back.
    let s = make();
    let mut st = s.create_staging("s1", b"note").expect("create staging");
    st.append(b"hello, ").unwrap();
    st.append(b"garbage").unwrap();
    st.truncate(7).unwrap();
    st.append(b"contract").unwrap();
    assert_eq!(
        st.size(),
        data.len() as u64,
        "staging: size counts appended bytes after truncation"
    );
    let mut back = Vec::new();
    std::io::Read::read_to_end(&mut st.read_back().unwrap(), &mut back).unwrap();
    assert_eq!(
        back, data,
        "staging: read_back returns exactly the bytes held"
    );
    assert_eq!(
        s.size_of(&d).await.unwrap(),
        None,
        "staging: nothing is visible before publish"
    );

    // Publishing makes the blob visible with its size and bytes, ranges included.
    st.publish(&d).expect("publish");
    assert_eq!(
        s.size_of(&d).await.unwrap(),
        Some(data.len() as u64),
        "publish: size_of reports the size"
    );
    assert_eq!(
        read_all(&*s, &d, 0, data.len() as u64).await,
        data,
        "publish: bytes read back"
    );
    assert_eq!(
        read_all(&*s, &d, 7, 5).await,
        b"contr",
        "open: offset and length select a range"
    );
    assert_eq!(
        read_chunks(&*s, &d, 0, data.len() as u64).await,
        data,
        "open_chunks: bytes read back"
    );
    assert_eq!(
        read_chunks(&*s, &d, 7, 5).await,
        b"contr",
        "open_chunks: offset and length select a range"
    );
    assert!(
        read_chunks(&*s, &d, 3, 0).await.is_empty(),
        "open_chunks: an empty range yields no bytes"
    );
    assert!(
        s.reopen_staging("s1").unwrap().is_none(),
        "publish: the staging area is gone afterwards"
    );

    // Publishing an already stored blob keeps the stored one and drops the staging area.
    let mut st = s.create_staging("s2", b"").unwrap();
    st.append(&data).unwrap();
    st.publish(&d).expect("publish of an existing blob");
    assert_eq!(
        read_all(&*s, &d, 0, 100).await,
        data,
        "publish twice: content unchanged"
    );

    // Sessions can be reopened with their note; unknown ones cannot.
    let s = make();
    let mut st = s.create_staging("resume", b"{\"repo\":\"r\"}").unwrap();
    st.append(b"part").unwrap();
    drop(st);
    let (st, note) = s
        .reopen_staging("resume")
        .unwrap()
        .expect("reopen: a staging area survives its handle");
    assert_eq!(note, b"{\"repo\":\"r\"}", "reopen: the note comes back");
    assert_eq!(st.size(), 4, "reopen: the bytes come back");
    assert!(
        s.reopen_staging("nope").unwrap().is_none(),
        "reopen: unknown sessions are None"
    );

    // Staleness and discard.
    let future = SystemTime::now() + Duration::from_secs(5);
    assert_eq!(
        s.stale_staging(future),
        vec!["resume".to_string()],
        "stale_staging: lists idle sessions"
    );
    assert!(
        s.stale_staging(SystemTime::now() - Duration::from_secs(3600))
            .is_empty(),
        "stale_staging: recent sessions are not stale"
    );
    s.discard_staging("resume");
    s.discard_staging("resume");
    assert!(
        s.reopen_staging("resume").unwrap().is_none(),
        "discard: the session is gone"
    );
    assert!(
        s.stale_staging(future).is_empty(),
        "discard: nothing left to expire"
    );

    // Removal.
    let mut st = s.create_staging("r", b"").unwrap();
    st.append(&data).unwrap();
    st.publish(&d).unwrap();
    s.remove(&d).await.unwrap();
    assert_eq!(
        s.size_of(&d).await.unwrap(),
        None,
        "remove: the blob is gone"
    );
    s.remove(&d)
        .await
        .expect("remove: removing an absent blob is not an error");
}

fn manifest<'a>(
    repo: &'a str,
    digest: &'a str,
    tags: &'a [String],
    subject: Option<&'a str>,
    artifact_type: Option<&'a str>,
) -> NewManifest<'a> {
    NewManifest {
        repo,
        digest,
        media_type: "application/vnd.oci.image.manifest.v1+json",
        artifact_type,
        subject,
        annotations: None,
        bytes: digest.as_bytes(),
        tags,
        required_blobs: vec![],
        required_manifests: vec![],
        references: vec![],
    }
}

/// `present` for [`MetadataStore::link_blob`] when the bytes are there.
fn here<'a>() -> BoxFuture<'a, bool> {
    Box::pin(async { true })
}

/// `present` for [`MetadataStore::link_blob`] when they are not.
fn gone<'a>() -> BoxFuture<'a, bool> {
    Box::pin(async { false })
}

/// Milliseconds since the epoch.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn d(i: u32) -> String {
    Algorithm::Sha256.digest_of(&i.to_be_bytes()).to_string()
}

/// Runs every metadata store check against stores made by `make`.
pub async fn check_metadata_store(make: MetaFactory<'_>) {
    // Links are per repository; lookups see only their own repository.
    let s = make();
    assert!(
        !s.repo_exists("a").await.unwrap(),
        "repo_exists: false before any write"
    );
    assert!(
        matches!(
            s.link_blob("a", &d(1), 10, &gone).await,
            Err(StoreError::Vanished(_))
        ),
        "link_blob: refuses bytes that are not there"
    );
    assert!(
        !s.repo_exists("a").await.unwrap() && s.blob_anywhere(&d(1)).await.unwrap().is_none(),
        "link_blob: a refused link changes nothing"
    );
    s.link_blob("a", &d(1), 10, &here).await.unwrap();
    s.link_blob("a", &d(1), 10, &here)
        .await
        .expect("link_blob: linking twice is fine");
    assert!(
        s.repo_exists("a").await.unwrap(),
        "link_blob: creates the repository"
    );
    assert_eq!(
        s.blob_in_repo("a", &d(1)).await.unwrap(),
        Some(10),
        "blob_in_repo: sees a link"
    );
    assert_eq!(
        s.blob_in_repo("b", &d(1)).await.unwrap(),
        None,
        "blob_in_repo: other repositories do not see it"
    );
    assert_eq!(
        s.blob_anywhere(&d(1)).await.unwrap(),
        Some(10),
        "blob_anywhere: sees any link"
    );
    assert!(
        s.unreferenced_blobs(10).await.unwrap().is_empty(),
        "unreferenced_blobs: linked blobs are held"
    );
    let removed = AtomicUsize::new(0);
    let count = || -> BoxFuture<'_, std::io::Result<()>> {
        removed.fetch_add(1, Ordering::SeqCst);
        Box::pin(async { Ok(()) })
    };
    assert!(
        !s.collect_blob(&d(1), &count).await.unwrap(),
        "collect_blob: refuses a linked blob"
    );
    assert_eq!(
        removed.load(Ordering::SeqCst),
        0,
        "collect_blob: a refused blob's bytes stay"
    );
    assert!(
        !s.collect_unrecorded(&d(1), &count).await.unwrap(),
        "collect_unrecorded: refuses a recorded blob"
    );
    assert_eq!(
        removed.load(Ordering::SeqCst),
        0,
        "collect_unrecorded: a recorded blob's bytes stay"
    );
    assert!(
        s.collect_unrecorded(&d(900), &count).await.unwrap(),
        "collect_unrecorded: removes bytes no record names"
    );
    assert_eq!(
        removed.swap(0, Ordering::SeqCst),
        1,
        "collect_unrecorded: removes them once"
    );
    assert!(
        s.unlink_blob("a", &d(1)).await.unwrap(),
        "unlink_blob: true when linked"
    );
    assert!(
        !s.unlink_blob("a", &d(1)).await.unwrap(),
        "unlink_blob: false when not linked"
    );
    assert_eq!(
        s.blob_anywhere(&d(1)).await.unwrap(),
        None,
        "blob_anywhere: unlinked blobs are not mountable"
    );
    assert_eq!(
        s.unreferenced_blobs(10).await.unwrap(),
        vec![(d(1), 10)],
        "unreferenced_blobs: an unlinked, unreferenced blob is garbage"
    );
    assert!(
        s.collect_blob(&d(1), &|| Box::pin(async {
            Err(std::io::Error::other("disk"))
        }))
        .await
        .is_err(),
        "collect_blob: a failed removal is an error"
    );
    assert_eq!(
        s.unreferenced_blobs(10).await.unwrap(),
        vec![(d(1), 10)],
        "collect_blob: a failed removal keeps the blob recorded"
    );
    assert!(
        s.collect_blob(&d(1), &count).await.unwrap(),
        "collect_blob: forgets garbage"
    );
    assert_eq!(
        removed.load(Ordering::SeqCst),
        1,
        "collect_blob: removes the bytes once"
    );
    assert!(
        s.unreferenced_blobs(10).await.unwrap().is_empty(),
        "collect_blob: the blob is forgotten"
    );
    assert_eq!(
        s.prune_repositories().await.unwrap(),
        1,
        "prune_repositories: a repository left with nothing is forgotten"
    );
    assert!(
        !s.repo_exists("a").await.unwrap(),
        "prune_repositories: gone"
    );

    // Links live while a manifest of their repository references the blob, or
    // while they are younger than the cutoff.
    let s = make();
    let (d20, d21, d22) = (d(20), d(21), d(22));
    for b in [&d20, &d21] {
        s.link_blob("q", b, 1, &here).await.unwrap();
    }
    let no_tags: Vec<String> = vec![];
    let mut m = manifest("q", &d22, &no_tags, None, None);
    m.references = vec![d21.clone(), d(23)];
    s.put_manifest(&m).await.unwrap();
    assert_eq!(
        s.prune_links(now_ms() - 60_000, 100).await.unwrap(),
        0,
        "prune_links: links younger than the cutoff stay"
    );
    let preview = s.garbage_preview(now_ms() + 60_000).await.unwrap();
    assert_eq!(
        (preview.links, preview.blobs, preview.bytes),
        (1, 1, 1),
        "garbage_preview: the unreferenced link and the blob it alone holds"
    );
    assert_eq!(
        s.prune_links(now_ms() + 60_000, 100).await.unwrap(),
        1,
        "prune_links: an old unreferenced link goes"
    );
    assert_eq!(
        s.blob_in_repo("q", &d20).await.unwrap(),
        None,
        "prune_links: d20 unlinked"
    );
    assert_eq!(
        s.blob_in_repo("q", &d21).await.unwrap(),
        Some(1),
        "prune_links: a link its repository's manifest references stays"
    );
    s.unlink_blob("q", &d21).await.unwrap();
    assert_eq!(
        s.unreferenced_blobs(10).await.unwrap(),
        vec![(d20.clone(), 1)],
        "unreferenced_blobs: a blob a manifest references is held even unlinked"
    );
    assert!(s.delete_manifest("q", &d22).await.unwrap());
    let mut garbage = s.unreferenced_blobs(10).await.unwrap();
    garbage.sort();
    let mut want = vec![(d20, 1), (d21, 1)];
    want.sort();
    assert_eq!(
        garbage, want,
        "unreferenced_blobs: deleting the manifest releases what it referenced"
    );

    // Manifests with missing references change nothing.
    let s = make();
    let tags = vec!["v1".to_string()];
    let (d10, d12) = (d(10), d(12));
    let mut m = manifest("r", &d10, &tags, None, None);
    m.required_blobs = vec![d(11)];
    match s.put_manifest(&m).await {
        Err(StoreError::MissingReferences(missing)) => {
            assert_eq!(missing, vec![d(11)], "put_manifest: names the missing blob")
        }
        other => panic!("put_manifest: a missing blob must be MissingReferences, got {other:?}"),
    }
    assert!(
        s.get_manifest("r", "v1").await.unwrap().is_none(),
        "put_manifest: a rejected manifest stores nothing"
    );
    s.link_blob("r", &d(11), 1, &here).await.unwrap();
    s.put_manifest(&m)
        .await
        .expect("put_manifest: accepted once the blob is linked");
    let got = s
        .get_manifest("r", "v1")
        .await
        .unwrap()
        .expect("get_manifest: by tag");
    assert_eq!(
        (got.digest.as_str(), got.bytes.as_slice()),
        (d(10).as_str(), d(10).as_bytes()),
        "get_manifest: exact bytes by tag"
    );
    assert!(
        s.get_manifest("r", &d(10)).await.unwrap().is_some(),
        "get_manifest: by digest"
    );
    let mut child = manifest("r", &d12, &[], None, None);
    child.required_manifests = vec![d(99)];
    assert!(
        matches!(
            s.put_manifest(&child).await,
            Err(StoreError::MissingReferences(_))
        ),
        "put_manifest: missing child manifests are refused"
    );

    // Tags move, are deleted alone, and go with their manifest.
    let s = make();
    let ab = vec!["a".to_string(), "b".to_string()];
    s.put_manifest(&manifest("r", &d(1), &ab, None, None))
        .await
        .unwrap();
    s.put_manifest(&manifest("r", &d(2), &["b".to_string()], None, None))
        .await
        .unwrap();
    assert_eq!(
        s.get_manifest("r", "b").await.unwrap().unwrap().digest,
        d(2),
        "put_manifest: re-tagging moves the tag"
    );
    assert!(
        s.delete_tag("r", "a").await.unwrap(),
        "delete_tag: true when present"
    );
    assert!(
        !s.delete_tag("r", "a").await.unwrap(),
        "delete_tag: false when absent"
    );
    assert!(
        s.get_manifest("r", &d(1)).await.unwrap().is_some(),
        "delete_tag: the manifest stays"
    );
    s.put_manifest(&manifest("r", &d(2), &["c".to_string()], None, None))
        .await
        .expect("put_manifest: pushing again is idempotent");
    assert!(
        s.delete_manifest("r", &d(2)).await.unwrap(),
        "delete_manifest: true when present"
    );
    assert!(
        s.get_manifest("r", "b").await.unwrap().is_none()
            && s.get_manifest("r", "c").await.unwrap().is_none(),
        "delete_manifest: its tags go with it"
    );
    assert!(
        !s.delete_manifest("r", &d(2)).await.unwrap(),
        "delete_manifest: false when absent"
    );

    // Shared content: deleting in one repository keeps the other.
    s.put_manifest(&manifest("other", &d(1), &["x".to_string()], None, None))
        .await
        .unwrap();
    assert!(s.delete_manifest("r", &d(1)).await.unwrap());
    assert_eq!(
        s.get_manifest("other", "x").await.unwrap().map(|m| m.bytes),
        Some(d(1).into_bytes()),
        "delete_manifest: other repositories keep shared content"
    );

    // Tag pages: byte order, keyset after `last`, `more` flag, unknown repository.
    let s = make();
    let tags: Vec<String> = ["b", "A", "a", "c", "B", "_z", "1"]
        .iter()
        .map(|t| t.to_string())
        .collect();
    s.put_manifest(&manifest("t", &d(1), &tags, None, None))
        .await
        .unwrap();
    let mut sorted = tags.clone();
    sorted.sort();
    let mut seen = Vec::new();
    let mut last: Option<String> = None;
    for _ in 0..10 {
        let p = s
            .list_tags("t", last.as_deref(), 3)
            .await
            .unwrap()
            .expect("list_tags: known repository");
        assert!(p.items.len() <= 3, "list_tags: at most n");
        seen.extend(p.items.clone());
        last = p.items.last().cloned();
        if !p.more {
            break;
        }
        assert_eq!(
            p.items.len(),
            3,
            "list_tags: a page with more after it is full"
        );
    }
    assert_eq!(
        seen, sorted,
        "list_tags: pages walk every tag once in byte order"
    );
    assert!(
        s.list_tags("nope", None, 3).await.unwrap().is_none(),
        "list_tags: None for an unknown repository"
    );
    assert!(
        s.list_tags("t", None, 0)
            .await
            .unwrap()
            .unwrap()
            .items
            .is_empty(),
        "list_tags: n = 0 gives nothing"
    );

    // Referrers: the subject index, the artifact type filter, paging.
    let s = make();
    let subject = d(1000);
    for i in 0..7 {
        let t = if i % 2 == 0 { "even" } else { "odd" };
        s.put_manifest(&manifest("r", &d(i), &[], Some(&subject), Some(t)))
            .await
            .unwrap();
    }
    s.put_manifest(&manifest("r", &d(50), &[], Some(&d(2000)), Some("even")))
        .await
        .unwrap();
    let mut all = Vec::new();
    let mut last: Option<String> = None;
    for _ in 0..10 {
        let p = s
            .referrers("r", &subject, None, last.as_deref(), 3)
            .await
            .unwrap();
        all.extend(p.items.iter().map(|r| r.digest.clone()));
        last = p.items.last().map(|r| r.digest.clone());
        if !p.more {
            break;
        }
    }
    let mut want: Vec<String> = (0..7).map(d).collect();
    want.sort();
    assert_eq!(
        all, want,
        "referrers: pages list every referrer of the subject once, in digest order"
    );
    let even = s
        .referrers("r", &subject, Some("even"), None, 100)
        .await
        .unwrap();
    assert_eq!(even.items.len(), 4, "referrers: the artifact type filter");
    assert!(
        even.items
            .iter()
            .all(|r| r.artifact_type.as_deref() == Some("even")),
        "referrers: filtered items have the type"
    );
    assert!(
        s.referrers("elsewhere", &subject, None, None, 10)
            .await
            .unwrap()
            .items
            .is_empty(),
        "referrers: per repository"
    );
    s.delete_manifest("r", &d(0)).await.unwrap();
    assert_eq!(
        s.referrers("r", &subject, None, None, 100)
            .await
            .unwrap()
            .items
            .len(),
        6,
        "referrers: a deleted referrer is gone"
    );

    // Catalog: repositories with manifests, paged.
    let s = make();
    for name in ["b/x", "a", "c", "a/b"] {
        s.put_manifest(&manifest(name, &d(1), &[], None, None))
            .await
            .unwrap();
    }
    s.link_blob("blobs-only", &d(5), 1, &here).await.unwrap();
    let p1 = s.catalog(None, 2).await.unwrap();
    assert_eq!(
        (p1.items.clone(), p1.more),
        (vec!["a".to_string(), "a/b".into()], true),
        "catalog: first page"
    );
    let p2 = s.catalog(Some("a/b"), 10).await.unwrap();
    assert_eq!(
        (p2.items.clone(), p2.more),
        (vec!["b/x".to_string(), "c".into()], false),
        "catalog: next page after last"
    );
    s.delete_manifest("c", &d(1)).await.unwrap();
    assert!(
        !s.catalog(None, 10)
            .await
            .unwrap()
            .items
            .contains(&"c".to_string()),
        "catalog: emptied repositories disappear"
    );
    check_upload_records(&*make()).await;
}

/// Upload sessions: recorded, advanced only from the size they hold, listed
/// when stale, forgotten.
async fn check_upload_records(s: &dyn MetadataStore) {
    let mut u = UploadRecord {
        id: "0123456789abcdef0123456789abcdef".into(),
        repo: "team/app".into(),
        algorithm: "sha256".into(),
        size: 0,
        hash_state: vec![1, 2, 3],
        staging: vec![],
        updated_at: 0,
    };
    assert_eq!(
        s.upload(&u.id).await.unwrap(),
        None,
        "upload: none before create"
    );
    let before = now_ms();
    s.create_upload(&u).await.unwrap();
    let got = s
        .upload(&u.id)
        .await
        .unwrap()
        .expect("upload: sees a created session");
    assert_eq!(
        (&got.repo, &got.algorithm, got.size, &got.hash_state),
        (&u.repo, &u.algorithm, 0, &u.hash_state),
        "upload: reads back what was created"
    );
    assert!(
        got.updated_at >= before - 1000,
        "create_upload: dates the session now, not {}",
        got.updated_at
    );
    assert!(
        s.create_upload(&u).await.is_err(),
        "create_upload: an id is used once"
    );
    u.size = 10;
    u.hash_state = vec![9; 40];
    u.staging = b"parts".to_vec();
    assert!(
        s.advance_upload(&u, 0).await.unwrap(),
        "advance_upload: from the size held"
    );
    let mut other = u.clone();
    other.size = 15;
    assert!(
        !s.advance_upload(&other, 0).await.unwrap(),
        "advance_upload: refused from a size the session no longer holds"
    );
    let got = s.upload(&u.id).await.unwrap().unwrap();
    assert_eq!(
        (got.size, &got.hash_state, &got.staging),
        (10, &u.hash_state, &u.staging),
        "advance_upload: a refused advance changes nothing"
    );
    assert_eq!(
        s.stale_uploads(got.updated_at + 1, 10).await.unwrap(),
        vec![u.id.clone()],
        "stale_uploads: lists a session last advanced before the cutoff"
    );
    assert!(
        s.stale_uploads(got.updated_at, 10)
            .await
            .unwrap()
            .is_empty(),
        "stale_uploads: not one advanced at the cutoff"
    );
    assert!(
        !s.take_empty_upload(&u.id, &u.repo).await.unwrap(),
        "take_empty_upload: not a session holding bytes"
    );
    assert!(
        s.remove_upload(&u.id).await.unwrap(),
        "remove_upload: forgets it"
    );
    let mut empty = u.clone();
    empty.id = format!("{}-empty", u.id);
    (empty.size, empty.staging) = (0, Vec::new());
    s.create_upload(&empty).await.unwrap();
    assert!(
        !s.take_empty_upload(&empty.id, "another/repository")
            .await
            .unwrap(),
        "take_empty_upload: not another repository's session"
    );
    assert!(
        s.take_empty_upload(&empty.id, &empty.repo).await.unwrap(),
        "take_empty_upload: takes an empty session of its repository"
    );
    assert!(
        !s.take_empty_upload(&empty.id, &empty.repo).await.unwrap(),
        "take_empty_upload: once"
    );
    assert_eq!(s.upload(&empty.id).await.unwrap(), None);
    assert!(
        !s.remove_upload(&u.id).await.unwrap(),
        "remove_upload: then it is gone"
    );
    assert!(
        !s.advance_upload(&u, 10).await.unwrap(),
        "advance_upload: a removed session does not come back"
    );
    assert_eq!(s.upload(&u.id).await.unwrap(), None);
    check_sessions_without_records(s).await;
}

/// Sessions opened without a record: recorded at their first chunk, closed
/// once, their closed ids forgotten by time; the key that signs them.
async fn check_sessions_without_records(s: &dyn MetadataStore) {
    let record = |id: &str| UploadRecord {
        id: id.into(),
        repo: "team/app".into(),
        algorithm: "sha256".into(),
        size: 0,
        hash_state: vec![4, 5],
        staging: vec![],
        updated_at: 0,
    };
    let key = s.upload_key().await.unwrap();
    assert!(key.len() >= 16, "upload_key: {} bytes", key.len());
    assert_eq!(s.upload_key().await.unwrap(), key, "upload_key: made once");

    // Opened at the first chunk, once.
    let first = record("0000000000010aaaaaaaaaaaaaaaaaaa-first");
    assert!(!s.upload_closed(&first.id).await.unwrap());
    assert!(s.open_upload(&first).await.unwrap(), "open_upload: records");
    let got = s
        .upload(&first.id)
        .await
        .unwrap()
        .expect("open_upload: readable");
    assert_eq!((got.size, &got.hash_state), (0, &first.hash_state));
    let mut again = first.clone();
    again.hash_state = vec![9];
    assert!(
        !s.open_upload(&again).await.unwrap(),
        "open_upload: not over a record"
    );
    assert_eq!(
        s.upload(&first.id).await.unwrap().unwrap().hash_state,
        vec![4, 5]
    );
    assert!(s.remove_upload(&first.id).await.unwrap());
    assert!(
        s.upload_closed(&first.id).await.unwrap(),
        "remove_upload: keeps the id closed"
    );
    assert!(
        !s.open_upload(&first).await.unwrap(),
        "open_upload: not once closed"
    );
    assert_eq!(s.upload(&first.id).await.unwrap(), None);

    // Closed with no record by one whole body.
    let whole = record("0000000000010aaaaaaaaaaaaaaaaaaa-whole");
    assert!(
        s.take_empty_upload(&whole.id, &whole.repo).await.unwrap(),
        "take_empty_upload: closes an id never recorded"
    );
    assert!(s.upload_closed(&whole.id).await.unwrap());
    assert!(
        !s.take_empty_upload(&whole.id, &whole.repo).await.unwrap(),
        "take_empty_upload: an id never recorded, once"
    );
    assert!(!s.open_upload(&whole).await.unwrap());

    // Not a recorded session of another repository, nor one holding bytes.
    let held = record("0000000000010aaaaaaaaaaaaaaaaaaa-held");
    assert!(s.open_upload(&held).await.unwrap());
    assert!(!s.take_empty_upload(&held.id, "team/other").await.unwrap());
    let mut more = held.clone();
    more.size = 4;
    assert!(s.advance_upload(&more, 0).await.unwrap());
    assert!(!s.take_empty_upload(&held.id, &held.repo).await.unwrap());
    assert!(
        !s.upload_closed(&held.id).await.unwrap(),
        "take_empty_upload: a refusal closes nothing"
    );
    assert_eq!(s.upload(&held.id).await.unwrap().unwrap().size, 4);
    assert!(s.remove_upload(&held.id).await.unwrap());

    // Closed ids are forgotten by the time they were closed.
    let closed_at = now_ms();
    assert_eq!(
        s.forget_closed_uploads(closed_at - 60_000).await.unwrap(),
        0,
        "forget_closed_uploads: not ids closed after the cutoff"
    );
    assert!(s.forget_closed_uploads(closed_at + 60_000).await.unwrap() >= 3);
    for id in [&first.id, &whole.id, &held.id] {
        assert!(!s.upload_closed(id).await.unwrap(), "forgotten: {id}");
    }
}
