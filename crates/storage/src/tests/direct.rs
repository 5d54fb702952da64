//! Monolithic uploads over a driver whose writes appear only on commit (memory here, S3
//! in production): the bytes go straight to the blob's path, which shows nothing until
//! the digest is checked, and nothing stays there after any failure.

use std::sync::Arc;

use berth_core::{Algorithm, ByteStream, Chunk, Digest, Error, Registry};
use berth_driver::{InMemoryDriver, StorageDriver};
use bytes::Bytes;

use super::{body, opts, read_blob, repo, stat};
use crate::StorageRegistry;

fn blob_data(d: &Digest) -> String {
    format!(
        "/docker/registry/v2/blobs/sha256/{}/{}/data",
        &d.hex()[..2],
        d.hex()
    )
}

/// Whether the blob's `data` is on storage.
async fn stored(driver: &dyn StorageDriver, d: &Digest) -> bool {
    match driver.stat(&blob_data(d)).await {
        Ok(_) => true,
        Err(e) if e.is_not_found() => false,
        Err(e) => panic!("stat: {e}"),
    }
}

/// `data`'s first half, then a read error.
fn broken_body(data: &[u8]) -> ByteStream {
    let half = Bytes::copy_from_slice(&data[..data.len() / 2]);
    Box::pin(futures::stream::iter([
        Ok(half),
        Err(std::io::Error::other("client went away")),
    ]))
}

#[tokio::test]
async fn a_monolithic_upload_appears_only_once_verified() {
    let driver: Arc<dyn StorageDriver> = Arc::new(InMemoryDriver::new());
    assert!(driver.writes_appear_on_commit());
    let r = StorageRegistry::new(driver.clone(), opts());
    let name = repo("direct");
    let rp = r.repository(name.clone());
    let data = vec![7u8; 300_000];
    let right = Digest::of(Algorithm::Sha256, &data);

    // Wrong bytes: refused, nothing stored, the session ended.
    let up = rp.start_upload(Algorithm::Sha256).await.unwrap();
    let wrong = Digest::of(Algorithm::Sha256, b"other");
    let err = rp
        .finish_upload(&up.id, &wrong, Some(Chunk::stream(body(&data))))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::DigestInvalid(_)), "{err:?}");
    for d in [&wrong, &right] {
        assert!(!stored(&*driver, d).await, "bytes stored");
    }
    assert!(matches!(
        rp.upload_status(&up.id).await,
        Err(Error::BlobUploadUnknown(_))
    ));

    // A body cut short: nothing stored, the session stays empty, and a retry works.
    let up = rp.start_upload(Algorithm::Sha256).await.unwrap();
    let err = rp
        .finish_upload(&up.id, &right, Some(Chunk::stream(broken_body(&data))))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::BodyRead(_)), "{err:?}");
    assert!(!stored(&*driver, &right).await, "bytes stored");
    assert_eq!(rp.upload_status(&up.id).await.unwrap().offset, 0);
    // A declared length the body does not have: refused, nothing stored.
    let short = Chunk {
        start: None,
        length: Some(data.len() as u64 + 1),
        body: body(&data),
    };
    let err = rp
        .finish_upload(&up.id, &right, Some(short))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::SizeInvalid(_)), "{err:?}");
    assert!(!stored(&*driver, &right).await, "bytes stored");
    // A range that does not start at the session's (empty) end.
    let late = Chunk {
        start: Some(5),
        length: None,
        body: body(&data),
    };
    let err = rp
        .finish_upload(&up.id, &right, Some(late))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::ChunkOutOfOrder {
                offset: 0,
                start: 5
            }
        ),
        "{err:?}"
    );
    let size = rp
        .finish_upload(&up.id, &right, Some(Chunk::stream(body(&data))))
        .await
        .unwrap();
    assert_eq!(size, data.len() as u64);
    assert_eq!(read_blob(&r, &name, &right).await, data);
    assert!(matches!(
        rp.upload_status(&up.id).await,
        Err(Error::BlobUploadUnknown(_))
    ));

    // The same bytes into another repository: linked, the stored copy left as it is.
    let written = driver.stat(&blob_data(&right)).await.unwrap().modified;
    let other = repo("other");
    let up = r
        .repository(other.clone())
        .start_upload(Algorithm::Sha256)
        .await
        .unwrap();
    r.repository(other.clone())
        .finish_upload(&up.id, &right, Some(Chunk::stream(body(&data))))
        .await
        .unwrap();
    assert_eq!(stat(&r, &other, &right).await.unwrap(), data.len() as u64);
    assert_eq!(
        driver.stat(&blob_data(&right)).await.unwrap().modified,
        written,
        "a stored blob is not written again"
    );
    assert!(
        driver
            .list("/docker/registry/v2/repositories/other/_uploads")
            .await
            .unwrap_or_default()
            .is_empty()
    );
}

#[tokio::test]
async fn a_session_with_bytes_still_commits_through_its_data_file() {
    let driver: Arc<dyn StorageDriver> = Arc::new(InMemoryDriver::new());
    let r = StorageRegistry::new(driver, opts());
    let name = repo("chunked");
    let rp = r.repository(name.clone());
    let data: Vec<u8> = (0..50_000u32).map(|i| (i % 251) as u8).collect();
    let d = Digest::of(Algorithm::Sha256, &data);
    let up = rp.start_upload(Algorithm::Sha256).await.unwrap();
    rp.upload_chunk(&up.id, Chunk::stream(body(&data[..20_000])))
        .await
        .unwrap();
    rp.finish_upload(&up.id, &d, Some(Chunk::stream(body(&data[20_000..]))))
        .await
        .unwrap();
    assert_eq!(read_blob(&r, &name, &d).await, data);
}
