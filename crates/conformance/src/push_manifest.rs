//! Push category, manifests: OCI image manifest by tag and by digest, missing blob
//! rejection, OCI index (also nested), Docker schema2 manifest and manifest list, OCI
//! artifact with the empty config, unknown fields kept byte-exact, `?tag=` multi-tag
//! push, and the 413 for an oversized manifest.

use berth_client::Method;
use serde_json::json;

use crate::data::{
    self, Content, DOCKER_CONFIG, DOCKER_LAYER, DOCKER_LIST, OCI_CONFIG, OCI_INDEX, OCI_LAYER,
    OCI_MANIFEST,
};
use crate::ops::{
    check_digest_header, check_manifest_body, fetch_manifest, push_blobs, push_manifest,
    put_manifest,
};
use crate::{Ctx, Recorder};

/// Size of the manifest that must be refused with 413.
const HUGE_MANIFEST: usize = 5 * 1024 * 1024;

/// Blobs pushed once for the manifest checks.
struct Fixture {
    repo: String,
    config: Content,
    layers: [Content; 2],
}

/// Runs the manifest push checks.
pub async fn run(ctx: &Ctx, rec: &mut Recorder<'_>) {
    let fx = setup(ctx).await;
    rec.record(
        "manifest fixture blobs (config, 2 layers)",
        fx.as_ref().map(|_| ()).map_err(Clone::clone),
    );
    let fx = fx
        .as_ref()
        .map_err(|e| format!("skipped: fixture push failed: {e}"));
    rec.record(
        "image manifest PUT by tag -> 201, Location, digest",
        by_tag(ctx, fx.clone()).await,
    );
    rec.record(
        "manifest with a missing blob -> 400 MANIFEST_BLOB_UNKNOWN",
        missing_blob(ctx, fx.clone()).await,
    );
    rec.record(
        "image index of pushed manifests",
        oci_index(ctx, fx.clone()).await,
    );
    rec.record("nested image index", nested_index(ctx, fx.clone()).await);
    rec.record(
        "Docker schema2 manifest and manifest list",
        docker(ctx, fx.clone()).await,
    );
    rec.record(
        "OCI artifact: artifactType, empty config, no layers",
        artifact(ctx, fx.clone()).await,
    );
    rec.record(
        "unknown manifest fields stored byte-exact",
        unknown_fields(ctx, fx.clone()).await,
    );
    rec.record("manifest PUT by digest", by_digest(ctx, fx.clone()).await);
    rec.record(
        "PUT by digest with ?tag=a&tag=b tags both",
        multi_tag(ctx, fx.clone()).await,
    );
    rec.record("5 MiB manifest -> 413", huge(ctx, fx).await);
}

async fn setup(ctx: &Ctx) -> Result<Fixture, String> {
    let repo = ctx.repo("push");
    let (config, l0, l1) = ctx.with_gen(|g| {
        let (a, b) = (g.size(1000, 3000), g.size(1000, 3000));
        (
            data::config(g, OCI_CONFIG),
            data::layer(g, a, OCI_LAYER),
            data::layer(g, b, OCI_LAYER),
        )
    });
    push_blobs(ctx, &repo, &[&config, &l0, &l1, &data::empty_config()]).await?;
    Ok(Fixture {
        repo,
        config,
        layers: [l0, l1],
    })
}

/// Pushes `m` under `reference`, checks 201 + Location + digest, and reads it back
/// by digest byte-exact.
async fn push_and_verify(
    ctx: &Ctx,
    repo: &str,
    reference: &str,
    m: &Content,
) -> Result<(), String> {
    let resp = push_manifest(ctx, repo, reference, m).await?;
    resp.location()?;
    check_digest_header(&resp, &m.digest)?;
    let resp = fetch_manifest(ctx, Method::GET, repo, &m.digest).await?;
    check_manifest_body(&resp, m)?;
    if reference != m.digest {
        let resp = fetch_manifest(ctx, Method::GET, repo, reference).await?;
        check_manifest_body(&resp, m)?;
    }
    Ok(())
}

/// A fresh image manifest over the fixture config and one of its layers.
fn image(fx: &Fixture, layer: usize) -> Content {
    data::oci_manifest(&fx.config, &[&fx.layers[layer % 2]])
}

async fn by_tag(ctx: &Ctx, fx: Result<&Fixture, String>) -> Result<(), String> {
    let fx = fx?;
    let m = data::oci_manifest(&fx.config, &[&fx.layers[0], &fx.layers[1]]);
    push_and_verify(ctx, &fx.repo, "image", &m).await
}

async fn missing_blob(ctx: &Ctx, fx: Result<&Fixture, String>) -> Result<(), String> {
    let fx = fx?;
    let ghost = ctx.with_gen(|g| data::layer(g, 100, OCI_LAYER));
    let m = data::oci_manifest(&fx.config, &[&fx.layers[0], &ghost]);
    let resp = put_manifest(ctx, &fx.repo, "missing-blob", &m).await?;
    Ok(resp.require_error(400, "MANIFEST_BLOB_UNKNOWN")?)
}

async fn oci_index(ctx: &Ctx, fx: Result<&Fixture, String>) -> Result<(), String> {
    let fx = fx?;
    let (a, b) = (image(fx, 0), image(fx, 1));
    push_manifest(ctx, &fx.repo, &a.digest, &a).await?;
    push_manifest(ctx, &fx.repo, &b.digest, &b).await?;
    let idx = data::index(OCI_INDEX, &[&a, &b]);
    push_and_verify(ctx, &fx.repo, "index", &idx).await
}

async fn nested_index(ctx: &Ctx, fx: Result<&Fixture, String>) -> Result<(), String> {
    let fx = fx?;
    let a = image(fx, 0);
    push_manifest(ctx, &fx.repo, &a.digest, &a).await?;
    let inner = data::index(OCI_INDEX, &[&a]);
    push_manifest(ctx, &fx.repo, &inner.digest, &inner).await?;
    let outer = data::index(OCI_INDEX, &[&inner, &a]);
    push_and_verify(ctx, &fx.repo, "nested-index", &outer).await
}

async fn docker(ctx: &Ctx, fx: Result<&Fixture, String>) -> Result<(), String> {
    let fx = fx?;
    let (config, layer) = ctx.with_gen(|g| {
        let len = g.size(1000, 2000);
        (
            data::config(g, DOCKER_CONFIG),
            data::layer(g, len, DOCKER_LAYER),
        )
    });
    push_blobs(ctx, &fx.repo, &[&config, &layer]).await?;
    let a = data::docker_manifest(&config, &[&layer]);
    push_and_verify(ctx, &fx.repo, "docker", &a).await?;
    let b = data::docker_manifest(&config, &[]);
    push_and_verify(ctx, &fx.repo, "docker-nolayers", &b).await?;
    let list = data::index(DOCKER_LIST, &[&a, &b]);
    push_and_verify(ctx, &fx.repo, "docker-list", &list).await
}

async fn artifact(ctx: &Ctx, fx: Result<&Fixture, String>) -> Result<(), String> {
    let fx = fx?;
    let m = data::artifact("application/vnd.berth.conformance.test", &[], None, None);
    push_and_verify(ctx, &fx.repo, "artifact", &m).await
}

async fn unknown_fields(ctx: &Ctx, fx: Result<&Fixture, String>) -> Result<(), String> {
    let fx = fx?;
    let text = format!(
        "{{\n  \"schemaVersion\" : 2,\n  \"mediaType\": \"{OCI_MANIFEST}\",\n  \"config\": {},\n  \
         \"layers\": [ {} ],\n  \"x-berth-unknown\": {{\"nested\": [1, 2.50, true, null]}},\n  \
         \"annotations\": {{\"org.berth.note\": \"caf\\u00e9 \u{2603}\"}}\n}}\n",
        fx.config.descriptor(),
        fx.layers[0].descriptor()
    );
    let m = Content::new(text.into_bytes(), OCI_MANIFEST);
    push_and_verify(ctx, &fx.repo, "unknown-fields", &m).await
}

async fn by_digest(ctx: &Ctx, fx: Result<&Fixture, String>) -> Result<(), String> {
    let fx = fx?;
    let m = data::oci_manifest(&fx.config, &[&fx.layers[1], &fx.layers[0]]);
    push_and_verify(ctx, &fx.repo, &m.digest, &m).await
}

async fn multi_tag(ctx: &Ctx, fx: Result<&Fixture, String>) -> Result<(), String> {
    let fx = fx?;
    let m = data::oci_manifest(&fx.config, &[&fx.layers[1], &fx.layers[1]]);
    let resp = ctx
        .client
        .put_manifest(
            &fx.repo,
            &m.digest,
            &m.media_type,
            m.bytes.clone(),
            &["multi-a", "multi-b"],
        )
        .await?;
    resp.require_status(201)?;
    ctx.note_repo(&fx.repo);
    check_digest_header(&resp, &m.digest)?;
    let oci_tags: Vec<&str> = resp
        .header_all("OCI-Tag")
        .into_iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    if !oci_tags.is_empty() {
        ensure!(
            oci_tags.contains(&"multi-a") && oci_tags.contains(&"multi-b"),
            "OCI-Tag does not list both tags; {}",
            resp.describe()
        );
    }
    for tag in ["multi-a", "multi-b"] {
        let resp = fetch_manifest(ctx, Method::GET, &fx.repo, tag).await?;
        check_manifest_body(&resp, &m).map_err(|e| format!("tag {tag}: {e}"))?;
    }
    Ok(())
}

async fn huge(ctx: &Ctx, fx: Result<&Fixture, String>) -> Result<(), String> {
    let fx = fx?;
    let filler = ctx.with_gen(|g| g.token(HUGE_MANIFEST));
    let v = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": fx.config.descriptor(),
        "layers": [fx.layers[0].descriptor()],
        "annotations": {"org.berth.filler": filler},
    });
    let m = Content::json(&v, OCI_MANIFEST);
    let resp = put_manifest(ctx, &fx.repo, "huge", &m).await?;
    Ok(resp.require_status(413)?)
}
