//! The referrers tag schema, maintained by berth when `berth.referrers.tagschema` is on:
//! for each subject, an OCI index tagged `<alg>-<hex>` listing the manifests that name
//! it. Clients fall back to that tag on registries without the referrers API, so with it
//! a root served by berth keeps its signatures and attestations visible after a switch
//! back to distribution 2.8. The cost is one more manifest write (bytes, revision link,
//! tag links) per referrer pushed or deleted.

use berth_core::manifest::Manifest;
use berth_core::{Descriptor, Digest, Error, Reference, Repository, Result, Tag, media};
use bytes::Bytes;

use crate::repository::StorageRepository;

/// The tag the schema gives a subject's index: `<alg>-<hex>`, the hex cut to 64
/// characters (a tag's limit is 128).
pub(crate) fn schema_tag(subject: &Digest) -> Option<Tag> {
    let hex = subject.hex();
    Tag::parse(&format!(
        "{}-{}",
        subject.algorithm(),
        &hex[..hex.len().min(64)]
    ))
    .ok()
}

impl StorageRepository {
    /// The entries of a subject's schema index (empty when there is none).
    pub(crate) async fn schema_entries(&self, subject: &Digest) -> Result<Vec<Descriptor>> {
        let Some(tag) = schema_tag(subject) else {
            return Ok(Vec::new());
        };
        let stored = match self.get_manifest(&Reference::Tag(tag)).await {
            Ok(m) => m,
            Err(Error::ManifestUnknown(_)) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        Ok(match Manifest::parse(None, &stored.body) {
            Ok(index) if index.kind.is_index() => index.manifests,
            _ => Vec::new(),
        })
    }

    /// Adds `referrer` to (`Some`) or removes `digest` from (`None`) the subject's schema
    /// index, rewriting it; the tag goes when nothing is left. Serialised per subject
    /// (across the fleet too), so concurrent referrers of one subject are all kept.
    pub(crate) async fn update_schema(
        &self,
        subject: &Digest,
        digest: &Digest,
        referrer: Option<Descriptor>,
    ) -> Result<()> {
        let Some(tag) = schema_tag(subject) else {
            return Ok(());
        };
        let stores = self.stores();
        let _held = stores
            .schema_locks
            .lock((self.name().clone(), subject.clone()))
            .await?;
        let mut entries = Vec::new();
        for entry in self.schema_entries(subject).await? {
            // Entries whose manifest has gone are dropped: an index may only name
            // manifests the repository has.
            if entry.digest != *digest && stores.manifests.has(self.name(), &entry.digest).await? {
                entries.push(entry);
            }
        }
        entries.extend(referrer);
        if entries.is_empty() {
            stores.tags.remove(self.name(), &tag, None).await?;
            return Ok(());
        }
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": media::OCI_INDEX,
            "manifests": entries,
        });
        let body = serde_json::to_vec(&index)
            .map_err(|e| Error::internal_from("encoding a referrers tag schema index", e))?;
        self.put_manifest(
            &Reference::Tag(tag),
            Some(media::OCI_INDEX),
            Bytes::from(body),
            &[],
        )
        .await
        .map(|_| ())
    }
}
