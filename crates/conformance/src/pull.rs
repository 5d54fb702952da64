//! Pull category: the API version check, blob GET/HEAD (with ranges), manifest GET/HEAD
//! by tag and by digest, and the errors for unknown content, invalid digests and
//! invalid repository names.

use berth_client::{ByteRange, Method};

use crate::data::{self, Content, OCI_CONFIG, OCI_LAYER};
use crate::ops::{
    check_content_length, check_digest_header, check_manifest_body, fetch_manifest, get_blob,
    push_blobs, push_manifest,
};
use crate::{Ctx, Recorder};

/// Content pushed once for the pull checks.
struct Fixture {
    repo: String,
    layer: Content,
    manifest: Content,
}

/// Tag the fixture manifest is pushed under.
const TAG: &str = "latest";

/// Runs the pull checks.
pub async fn run(ctx: &Ctx, rec: &mut Recorder<'_>) {
    rec.record("GET /v2/ answers 200", api_version(ctx).await);
    let fx = setup(ctx).await;
    rec.record(
        "fixture push (config, layer, manifest)",
        fx.as_ref().map(|_| ()).map_err(Clone::clone),
    );
    let fx = fx
        .as_ref()
        .map_err(|e| format!("skipped: fixture push failed: {e}"));
    rec.record("blob GET", blob_get(ctx, fx.clone()).await);
    rec.record("blob HEAD", blob_head(ctx, fx.clone()).await);
    rec.record("blob range bytes=0-9", blob_range(ctx, fx.clone()).await);
    rec.record(
        "blob suffix range bytes=-5",
        blob_suffix_range(ctx, fx.clone()).await,
    );
    rec.record(
        "blob unsatisfiable range -> 416",
        blob_bad_range(ctx, fx.clone()).await,
    );
    rec.record(
        "blob range ending before its start -> 416",
        blob_reversed_range(ctx, fx.clone()).await,
    );
    rec.record(
        "unknown blob -> 404 BLOB_UNKNOWN",
        unknown_blob(ctx, fx.clone()).await,
    );
    for (method, by) in [
        (Method::GET, "tag"),
        (Method::HEAD, "tag"),
        (Method::GET, "digest"),
        (Method::HEAD, "digest"),
    ] {
        let name = format!("manifest {method} by {by}");
        rec.record(&name, manifest(ctx, fx.clone(), method, by == "tag").await);
    }
    rec.record(
        "unknown manifest tag -> 404 MANIFEST_UNKNOWN",
        unknown_manifest(ctx, fx.clone(), true).await,
    );
    rec.record(
        "unknown manifest digest -> 404 MANIFEST_UNKNOWN",
        unknown_manifest(ctx, fx.clone(), false).await,
    );
    rec.record(
        "invalid digest in blob path -> 400 DIGEST_INVALID",
        invalid_digest(ctx, fx).await,
    );
    rec.record(
        "invalid repository name -> 400 NAME_INVALID",
        invalid_name(ctx).await,
    );
}

async fn api_version(ctx: &Ctx) -> Result<(), String> {
    Ok(ctx.client.ping().await?.require_status(200)?)
}

async fn setup(ctx: &Ctx) -> Result<Fixture, String> {
    let repo = ctx.repo("pull");
    let (layer, config) = ctx.with_gen(|g| {
        let len = g.size(3000, 5000);
        (data::layer(g, len, OCI_LAYER), data::config(g, OCI_CONFIG))
    });
    push_blobs(ctx, &repo, &[&config, &layer]).await?;
    let manifest = data::oci_manifest(&config, &[&layer]);
    push_manifest(ctx, &repo, TAG, &manifest).await?;
    Ok(Fixture {
        repo,
        layer,
        manifest,
    })
}

async fn blob_get(ctx: &Ctx, fx: Result<&Fixture, String>) -> Result<(), String> {
    let fx = fx?;
    let resp = get_blob(ctx, &fx.repo, &fx.layer.digest, None).await?;
    resp.require_status(200)?;
    ensure!(
        data::sha256(&resp.body) == fx.layer.digest,
        "body does not hash to {}; {}",
        fx.layer.digest,
        resp.describe()
    );
    check_content_length(&resp, fx.layer.bytes.len())?;
    check_digest_header(&resp, &fx.layer.digest)
}

async fn blob_head(ctx: &Ctx, fx: Result<&Fixture, String>) -> Result<(), String> {
    let fx = fx?;
    let resp = ctx.client.head_blob(&fx.repo, &fx.layer.digest).await?;
    resp.require_status(200)?;
    ensure!(
        resp.body.is_empty(),
        "HEAD answered a body; {}",
        resp.describe()
    );
    check_content_length(&resp, fx.layer.bytes.len())?;
    check_digest_header(&resp, &fx.layer.digest)
}

/// GETs a range and checks 206, `Content-Range: bytes a-b/size` and the exact bytes.
async fn expect_range(
    ctx: &Ctx,
    fx: &Fixture,
    range: ByteRange,
    start: usize,
    end: usize,
) -> Result<(), String> {
    let size = fx.layer.bytes.len();
    let resp = get_blob(ctx, &fx.repo, &fx.layer.digest, Some(range)).await?;
    resp.require_status(206)?;
    let want = format!("bytes {start}-{end}/{size}");
    let got = resp.require_header("Content-Range")?;
    ensure!(
        got == want,
        "Content-Range is {got:?}, expected {want:?}; {}",
        resp.describe()
    );
    ensure!(
        resp.body == fx.layer.bytes[start..=end],
        "body is not bytes {start}-{end} of the blob; {}",
        resp.describe()
    );
    Ok(())
}

async fn blob_range(ctx: &Ctx, fx: Result<&Fixture, String>) -> Result<(), String> {
    expect_range(ctx, fx?, ByteRange::Span(0, 9), 0, 9).await
}

async fn blob_suffix_range(ctx: &Ctx, fx: Result<&Fixture, String>) -> Result<(), String> {
    let fx = fx?;
    let size = fx.layer.bytes.len();
    expect_range(ctx, fx, ByteRange::Suffix(5), size - 5, size - 1).await
}

async fn blob_bad_range(ctx: &Ctx, fx: Result<&Fixture, String>) -> Result<(), String> {
    let fx = fx?;
    let size = fx.layer.bytes.len();
    let range = ByteRange::Span(size as u64 + 10, size as u64 + 20);
    let resp = get_blob(ctx, &fx.repo, &fx.layer.digest, Some(range)).await?;
    Ok(resp.require_status(416)?)
}

/// `bytes=9-2` names no bytes at all (RFC 9110 calls it invalid). A server may ignore
/// such a header, but distribution refuses it, and answering the whole blob would hide
/// the client's mistake: 416 with the blob's size in `Content-Range`.
async fn blob_reversed_range(ctx: &Ctx, fx: Result<&Fixture, String>) -> Result<(), String> {
    let fx = fx?;
    let resp = get_blob(ctx, &fx.repo, &fx.layer.digest, Some(ByteRange::Span(9, 2))).await?;
    resp.require_status(416)?;
    let want = format!("bytes */{}", fx.layer.bytes.len());
    let got = resp.require_header("Content-Range")?;
    ensure!(
        got == want,
        "Content-Range is {got:?}, expected {want:?}; {}",
        resp.describe()
    );
    Ok(())
}

async fn unknown_blob(ctx: &Ctx, fx: Result<&Fixture, String>) -> Result<(), String> {
    let fx = fx?;
    let digest = ctx.with_gen(|g| g.unknown_digest());
    let resp = get_blob(ctx, &fx.repo, &digest, None).await?;
    resp.require_error(404, "BLOB_UNKNOWN")?;
    let resp = ctx.client.head_blob(&fx.repo, &digest).await?;
    Ok(resp.require_status(404)?)
}

async fn manifest(
    ctx: &Ctx,
    fx: Result<&Fixture, String>,
    method: Method,
    by_tag: bool,
) -> Result<(), String> {
    let fx = fx?;
    let reference = if by_tag {
        TAG
    } else {
        fx.manifest.digest.as_str()
    };
    let resp = fetch_manifest(ctx, method.clone(), &fx.repo, reference).await?;
    if method == Method::GET {
        return check_manifest_body(&resp, &fx.manifest);
    }
    resp.require_status(200)?;
    ensure!(
        resp.body.is_empty(),
        "HEAD answered a body; {}",
        resp.describe()
    );
    ensure!(
        resp.content_type() == Some(fx.manifest.media_type.as_str()),
        "Content-Type is not {}; {}",
        fx.manifest.media_type,
        resp.describe()
    );
    check_content_length(&resp, fx.manifest.bytes.len())?;
    check_digest_header(&resp, &fx.manifest.digest)
}

async fn unknown_manifest(
    ctx: &Ctx,
    fx: Result<&Fixture, String>,
    by_tag: bool,
) -> Result<(), String> {
    let fx = fx?;
    let reference = if by_tag {
        format!("missing-{}", ctx.with_gen(|g| g.token(8)))
    } else {
        ctx.with_gen(|g| g.unknown_digest())
    };
    let resp = fetch_manifest(ctx, Method::GET, &fx.repo, &reference).await?;
    resp.require_error(404, "MANIFEST_UNKNOWN")?;
    let resp = fetch_manifest(ctx, Method::HEAD, &fx.repo, &reference).await?;
    Ok(resp.require_status(404)?)
}

async fn invalid_digest(ctx: &Ctx, fx: Result<&Fixture, String>) -> Result<(), String> {
    let fx = fx?;
    // A sha256 digest whose hex part has the wrong length (62 instead of 64).
    let digest = format!("sha256:{}", ctx.with_gen(|g| g.token(62)));
    let resp = get_blob(ctx, &fx.repo, &digest, None).await?;
    Ok(resp.require_error(400, "DIGEST_INVALID")?)
}

async fn invalid_name(ctx: &Ctx) -> Result<(), String> {
    let resp = ctx.client.tags_list("Upper/Case", None, None).await?;
    Ok(resp.require_error(400, "NAME_INVALID")?)
}
