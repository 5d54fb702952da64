//! Management category: deleting tags, manifests and blobs when the registry allows
//! deletes; otherwise, that a manifest DELETE is refused with 405 UNSUPPORTED.

use berth_client::Method;

use crate::data::{self, Content, OCI_CONFIG, OCI_LAYER};
use crate::ops::{fetch_manifest, get_blob, push_blob, push_blobs, push_manifest};
use crate::{Ctx, Recorder};

/// Runs the management checks.
pub async fn run(ctx: &Ctx, rec: &mut Recorder<'_>) {
    let repo = ctx.repo("manage");
    if !ctx.opts.delete_enabled {
        rec.record(
            "manifest DELETE when disabled -> 405 UNSUPPORTED",
            disabled(ctx, &repo).await,
        );
        return;
    }
    rec.record(
        "DELETE tag -> 202, tag gone, manifest kept",
        delete_tag(ctx, &repo).await,
    );
    rec.record(
        "DELETE manifest by digest -> 202, digest and its tags gone",
        delete_manifest(ctx, &repo).await,
    );
    rec.record(
        "DELETE blob -> 202, blob gone",
        delete_blob(ctx, &repo).await,
    );
    rec.record(
        "DELETE unknown blob -> 404",
        delete_unknown_blob(ctx, &repo).await,
    );
}

/// Pushes a fresh image and tags it with every tag in `tags`.
async fn image(ctx: &Ctx, repo: &str, tags: &[&str]) -> Result<Content, String> {
    let (config, layer) =
        ctx.with_gen(|g| (data::config(g, OCI_CONFIG), data::layer(g, 300, OCI_LAYER)));
    push_blobs(ctx, repo, &[&config, &layer]).await?;
    let m = data::oci_manifest(&config, &[&layer]);
    push_manifest(ctx, repo, &m.digest, &m).await?;
    for tag in tags {
        push_manifest(ctx, repo, tag, &m).await?;
    }
    Ok(m)
}

/// Fails unless GET of the manifest answers `status`.
async fn manifest_status(
    ctx: &Ctx,
    repo: &str,
    reference: &str,
    status: u16,
) -> Result<(), String> {
    let resp = fetch_manifest(ctx, Method::GET, repo, reference).await?;
    resp.require_status(status)
        .map_err(|e| format!("GET manifest {reference}: {e}"))
}

async fn disabled(ctx: &Ctx, repo: &str) -> Result<(), String> {
    let m = image(ctx, repo, &[]).await?;
    let resp = ctx.client.delete_manifest(repo, &m.digest).await?;
    Ok(resp.require_error(405, "UNSUPPORTED")?)
}

async fn delete_tag(ctx: &Ctx, repo: &str) -> Result<(), String> {
    let m = image(ctx, repo, &["doomed"]).await?;
    let resp = ctx.client.delete_manifest(repo, "doomed").await?;
    resp.require_status(202)?;
    manifest_status(ctx, repo, "doomed", 404).await?;
    manifest_status(ctx, repo, &m.digest, 200).await
}

async fn delete_manifest(ctx: &Ctx, repo: &str) -> Result<(), String> {
    let tags = ["gone-a", "gone-b"];
    let m = image(ctx, repo, &tags).await?;
    let resp = ctx.client.delete_manifest(repo, &m.digest).await?;
    resp.require_status(202)?;
    manifest_status(ctx, repo, &m.digest, 404).await?;
    for tag in tags {
        manifest_status(ctx, repo, tag, 404).await?;
    }
    Ok(())
}

async fn delete_blob(ctx: &Ctx, repo: &str) -> Result<(), String> {
    let b = ctx.with_gen(|g| data::layer(g, 400, OCI_LAYER));
    push_blob(ctx, repo, &b).await?;
    let resp = ctx.client.delete_blob(repo, &b.digest).await?;
    resp.require_status(202)?;
    let resp = get_blob(ctx, repo, &b.digest, None).await?;
    resp.require_status(404)
        .map_err(|e| format!("GET after delete: {e}"))
}

async fn delete_unknown_blob(ctx: &Ctx, repo: &str) -> Result<(), String> {
    let digest = ctx.with_gen(|g| g.unknown_digest());
    let resp = ctx.client.delete_blob(repo, &digest).await?;
    Ok(resp.require_status(404)?)
}
