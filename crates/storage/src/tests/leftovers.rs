//! What a crash, another registry or a full disk may leave on storage (issue #9, findings
//! 5 and 6), planted directly: the registry serves only what is whole.

use std::sync::Arc;

use berth_core::{Error, Reference, Registry, Tag};
use berth_driver::{FilesystemDriver, InMemoryDriver, StorageDriver};
use bytes::Bytes;

use super::{image, opts, push_blob, repo};
use crate::StorageRegistry;
use crate::layout::StoragePath;

#[tokio::test]
async fn half_written_tags_and_damaged_manifests_are_not_served() {
    let dir = tempfile::tempdir().unwrap();
    let drivers: [Arc<dyn StorageDriver>; 2] = [
        Arc::new(InMemoryDriver::new()),
        Arc::new(FilesystemDriver::new(dir.path())),
    ];
    for driver in drivers {
        let r = StorageRegistry::new(driver.clone(), opts());
        let name = repo("left/overs");
        let cfg = push_blob(&r, &name, b"{}").await;
        let layer = push_blob(&r, &name, b"layer").await;
        let body = image(&cfg, &layer, None);
        let v1 = Tag::parse("v1").unwrap();
        let put = r
            .repository(name.clone())
            .put_manifest(&Reference::Tag(v1.clone()), None, body, &[])
            .await
            .unwrap();

        // A new tag whose index link reached storage but whose `current` did not, and
        // one whose `current` is empty.
        let half = Tag::parse("half").unwrap();
        let empty = Tag::parse("empty").unwrap();
        let index = StoragePath::TagIndexLink(&name, &half, &put.digest).path();
        driver
            .put_content(&index, Bytes::from(put.digest.to_string()))
            .await
            .unwrap();
        let current = StoragePath::TagCurrentLink(&name, &empty).path();
        driver.put_content(&current, Bytes::new()).await.unwrap();

        let restarted = StorageRegistry::new(driver.clone(), opts());
        let repo_view = restarted.repository(name.clone());
        for t in [&half, &empty] {
            assert!(matches!(
                repo_view.get_manifest(&Reference::Tag(t.clone())).await,
                Err(Error::ManifestUnknown(_))
            ));
        }

        // Manifest bytes emptied or overwritten (what a full disk can leave): refused,
        // never served as a 200 with the wrong body.
        for damage in [Bytes::new(), Bytes::from_static(b"{\"not\":\"it\"}")] {
            let data = StoragePath::BlobData(&put.digest).path();
            driver.put_content(&data, damage).await.unwrap();
            let fresh = StorageRegistry::new(driver.clone(), opts());
            let got = fresh
                .repository(name.clone())
                .get_manifest(&Reference::Tag(v1.clone()))
                .await;
            assert!(matches!(got, Err(Error::ManifestUnknown(_))), "{got:?}");
        }
    }
}
