//! Discovery category: tag listing (order, `n`/`last` paging with `Link`, `n=0`, unknown
//! repository), the `_catalog` listing with paging, and the referrers API (`OCI-Subject`,
//! listing with artifactType and annotations, `artifactType` filter, unknown digest,
//! missing subject).

use berth_client::{Error, Response};
use serde_json::{Value, json};

use crate::data::{self, Content, OCI_CONFIG, OCI_INDEX, OCI_LAYER, OCI_MANIFEST};
use crate::ops::{push_blobs, push_manifest, put_manifest};
use crate::{Ctx, Recorder};

/// Tags pushed for the listing checks, in push order (not sorted).
const TAGS: [&str; 5] = ["v2", "latest", "a-b", "v10", "v1"];

/// Most pages any paging check follows before giving up.
const MAX_PAGES: usize = 50;

/// The artifact types of the two referrers.
const SIG_TYPE: &str = "application/vnd.berth.conformance.signature";
const SBOM_TYPE: &str = "application/vnd.berth.conformance.sbom";

/// Runs the discovery checks.
pub async fn run(ctx: &Ctx, rec: &mut Recorder<'_>) {
    let repo = ctx.repo("tags");
    let tagged = tag_setup(ctx, &repo).await;
    rec.record("tag fixture push", tagged.clone());
    let fx = tagged
        .map(|_| repo.as_str())
        .map_err(|e| format!("skipped: {e}"));
    rec.record(
        "tags/list lists every tag with the repository name",
        tags_complete(ctx, fx.clone()).await,
    );
    rec.record(
        "tags/list is in lexical order",
        tags_sorted(ctx, fx.clone()).await,
    );
    rec.record(
        "tags/list?n=2 pages with Link rel=next",
        tags_paged(ctx, fx.clone()).await,
    );
    rec.record(
        "tags/list?last= excludes the last tag",
        tags_last(ctx, fx.clone()).await,
    );
    rec.record("tags/list?n=0 -> empty list", tags_zero(ctx, fx).await);
    rec.record(
        "tags/list of unknown repository -> 404 NAME_UNKNOWN",
        tags_unknown(ctx).await,
    );

    let refs = referrers_setup(ctx).await;
    rec.record(
        "referrer fixture push (image + 2 artifacts with subject)",
        refs.as_ref().map(|_| ()).map_err(Clone::clone),
    );
    let refs = refs.as_ref().map_err(|e| format!("skipped: {e}"));
    rec.record(
        "manifest PUT with subject answers OCI-Subject",
        oci_subject(refs.clone()),
    );
    rec.record(
        "referrers lists artifacts with artifactType and annotations",
        referrers_list(ctx, refs.clone()).await,
    );
    rec.record(
        "referrers ?artifactType= filters, OCI-Filters-Applied",
        referrers_filter(ctx, refs.clone()).await,
    );
    rec.record(
        "referrers of an unknown digest -> 200 empty index",
        referrers_unknown(ctx, refs.clone()).await,
    );
    rec.record(
        "manifest whose subject does not exist is accepted",
        missing_subject(ctx, refs).await,
    );

    rec.record("_catalog lists the pushed repositories", catalog(ctx).await);
    rec.record(
        "_catalog?n=1 pages with Link rel=next",
        catalog_paged(ctx).await,
    );
}

async fn tag_setup(ctx: &Ctx, repo: &str) -> Result<(), String> {
    let (config, layer) =
        ctx.with_gen(|g| (data::config(g, OCI_CONFIG), data::layer(g, 500, OCI_LAYER)));
    push_blobs(ctx, repo, &[&config, &layer]).await?;
    let m = data::oci_manifest(&config, &[&layer]);
    for tag in TAGS {
        push_manifest(ctx, repo, tag, &m).await?;
    }
    Ok(())
}

fn sorted_tags() -> Vec<String> {
    let mut tags: Vec<String> = TAGS.iter().map(|t| (*t).to_owned()).collect();
    tags.sort();
    tags
}

/// Reads a listing page (`tags/list` or `_catalog`, by `names`): expects 200 and
/// returns the answer and its names (`null` or missing counts as empty).
fn listed(
    resp: Response,
    names: fn(&Response) -> Result<Vec<String>, Error>,
) -> Result<(Response, Vec<String>), String> {
    resp.require_status(200)?;
    let items = names(&resp)?;
    Ok((resp, items))
}

/// Follows a `Link` target to the next listing page.
async fn next_page(
    ctx: &Ctx,
    link: &str,
    names: fn(&Response) -> Result<Vec<String>, Error>,
) -> Result<(Response, Vec<String>), String> {
    listed(ctx.client.get(link).await?, names)
}

async fn tags_complete(ctx: &Ctx, repo: Result<&str, String>) -> Result<(), String> {
    let repo = repo?;
    let (resp, mut tags) = listed(
        ctx.client.tags_list(repo, None, None).await?,
        Response::tag_names,
    )?;
    let body = resp.json()?;
    ensure!(
        body.get("name").and_then(Value::as_str) == Some(repo),
        "name is not {repo}; {}",
        resp.describe()
    );
    tags.sort();
    ensure!(
        tags == sorted_tags(),
        "tags are {tags:?} (sorted here), expected {:?}",
        sorted_tags()
    );
    Ok(())
}

async fn tags_sorted(ctx: &Ctx, repo: Result<&str, String>) -> Result<(), String> {
    let repo = repo?;
    let (_, tags) = listed(
        ctx.client.tags_list(repo, None, None).await?,
        Response::tag_names,
    )?;
    ensure!(tags.is_sorted(), "tags are not in lexical order: {tags:?}");
    Ok(())
}

async fn tags_paged(ctx: &Ctx, repo: Result<&str, String>) -> Result<(), String> {
    let repo = repo?;
    let want = sorted_tags();
    let mut link: Option<String> = None;
    let mut all = Vec::new();
    for page in 0..MAX_PAGES {
        let (resp, tags) = match &link {
            None => listed(
                ctx.client.tags_list(repo, Some(2), None).await?,
                Response::tag_names,
            )?,
            Some(l) => next_page(ctx, l, Response::tag_names).await?,
        };
        ensure!(
            tags.len() <= 2,
            "page {page} has {} tags: {tags:?}",
            tags.len()
        );
        if page == 0 {
            ensure!(
                tags == want[..2],
                "first page is {tags:?}, expected {:?}",
                &want[..2]
            );
        }
        all.extend(tags);
        match resp.next_link() {
            Some(next) => link = Some(next),
            None if page == 0 => {
                return Err(format!(
                    "no Link rel=next on the first page; {}",
                    resp.describe()
                ));
            }
            None => break,
        }
    }
    ensure!(
        all == want,
        "pages together hold {all:?}, expected {want:?}"
    );
    Ok(())
}

async fn tags_last(ctx: &Ctx, repo: Result<&str, String>) -> Result<(), String> {
    let repo = repo?;
    let (_, tags) = listed(
        ctx.client.tags_list(repo, Some(10), Some("v1")).await?,
        Response::tag_names,
    )?;
    ensure!(
        tags == ["v10", "v2"],
        "tags after v1 are {tags:?}, expected [\"v10\", \"v2\"]"
    );
    Ok(())
}

async fn tags_zero(ctx: &Ctx, repo: Result<&str, String>) -> Result<(), String> {
    let repo = repo?;
    let (resp, tags) = listed(
        ctx.client.tags_list(repo, Some(0), None).await?,
        Response::tag_names,
    )?;
    ensure!(tags.is_empty(), "n=0 gave {tags:?}; {}", resp.describe());
    ensure!(
        resp.next_link().is_none(),
        "n=0 answered a Link; {}",
        resp.describe()
    );
    Ok(())
}

async fn tags_unknown(ctx: &Ctx) -> Result<(), String> {
    let repo = ctx.repo("never-pushed");
    let resp = ctx.client.tags_list(&repo, None, None).await?;
    Ok(resp.require_error(404, "NAME_UNKNOWN")?)
}

/// The referrers fixture: the subject image and the two artifacts' PUT answers.
struct Referrers {
    repo: String,
    subject: Content,
    sig: Content,
    sbom: Content,
    puts: Vec<Response>,
}

fn annotated(artifact_type: &str, kind: &str, subject: &Content) -> Content {
    let empty = data::empty_config();
    data::artifact(
        artifact_type,
        &[&empty],
        Some(subject),
        Some(json!({"org.berth.kind": kind})),
    )
}

async fn referrers_setup(ctx: &Ctx) -> Result<Referrers, String> {
    let repo = ctx.repo("referrers");
    let (config, layer) =
        ctx.with_gen(|g| (data::config(g, OCI_CONFIG), data::layer(g, 700, OCI_LAYER)));
    push_blobs(ctx, &repo, &[&config, &layer, &data::empty_config()]).await?;
    let subject = data::oci_manifest(&config, &[&layer]);
    push_manifest(ctx, &repo, "subject", &subject).await?;
    let sig = annotated(SIG_TYPE, "signature", &subject);
    let sbom = annotated(SBOM_TYPE, "sbom", &subject);
    let mut puts = Vec::new();
    for m in [&sig, &sbom] {
        puts.push(push_manifest(ctx, &repo, &m.digest, m).await?);
    }
    Ok(Referrers {
        repo,
        subject,
        sig,
        sbom,
        puts,
    })
}

fn oci_subject(fx: Result<&Referrers, String>) -> Result<(), String> {
    let fx = fx?;
    for resp in &fx.puts {
        let got = resp.require_header("OCI-Subject")?;
        ensure!(
            got == fx.subject.digest,
            "OCI-Subject is {got}, expected {}; {}",
            fx.subject.digest,
            resp.describe()
        );
    }
    Ok(())
}

/// GETs the referrers of `digest` and returns the answer and its `manifests`.
async fn referrers(
    ctx: &Ctx,
    repo: &str,
    digest: &str,
    artifact_type: Option<&str>,
) -> Result<(Response, Vec<Value>), String> {
    let resp = ctx.client.referrers(repo, digest, artifact_type).await?;
    resp.require_status(200)?;
    ensure!(
        resp.content_type() == Some(OCI_INDEX),
        "Content-Type is not {OCI_INDEX}; {}",
        resp.describe()
    );
    let body = resp.json()?;
    ensure!(
        body.get("schemaVersion") == Some(&json!(2)),
        "schemaVersion is not 2; {}",
        resp.describe()
    );
    let manifests = body
        .get("manifests")
        .and_then(Value::as_array)
        .cloned()
        .ok_or_else(|| format!("no manifests array; {}", resp.describe()))?;
    Ok((resp, manifests))
}

/// Fails unless `entries` describes exactly `want` (digest, size, media type,
/// artifactType and the annotation).
fn check_entries(entries: &[Value], want: &[(&Content, &str, &str)]) -> Result<(), String> {
    ensure!(
        entries.len() == want.len(),
        "expected {} referrers, got {}: {entries:?}",
        want.len(),
        entries.len()
    );
    for (m, artifact_type, kind) in want {
        let entry = entries
            .iter()
            .find(|e| e.get("digest").and_then(Value::as_str) == Some(m.digest.as_str()))
            .ok_or_else(|| format!("{} is not listed: {entries:?}", m.digest))?;
        let expect = json!({
            "mediaType": OCI_MANIFEST,
            "size": m.bytes.len(),
            "artifactType": artifact_type,
        });
        for (k, v) in expect.as_object().into_iter().flatten() {
            ensure!(
                entry.get(k) == Some(v),
                "{k} of {} is not {v}: {entry}",
                m.digest
            );
        }
        ensure!(
            entry.pointer("/annotations/org.berth.kind") == Some(&json!(kind)),
            "annotations of {} lack org.berth.kind={kind}: {entry}",
            m.digest
        );
    }
    Ok(())
}

async fn referrers_list(ctx: &Ctx, fx: Result<&Referrers, String>) -> Result<(), String> {
    let fx = fx?;
    let (_, entries) = referrers(ctx, &fx.repo, &fx.subject.digest, None).await?;
    check_entries(
        &entries,
        &[
            (&fx.sig, SIG_TYPE, "signature"),
            (&fx.sbom, SBOM_TYPE, "sbom"),
        ],
    )
}

async fn referrers_filter(ctx: &Ctx, fx: Result<&Referrers, String>) -> Result<(), String> {
    let fx = fx?;
    let (resp, entries) = referrers(ctx, &fx.repo, &fx.subject.digest, Some(SBOM_TYPE)).await?;
    let applied = resp.require_header("OCI-Filters-Applied")?;
    ensure!(
        applied.split(',').any(|f| f.trim() == "artifactType"),
        "OCI-Filters-Applied is {applied:?}; {}",
        resp.describe()
    );
    check_entries(&entries, &[(&fx.sbom, SBOM_TYPE, "sbom")])
}

async fn referrers_unknown(ctx: &Ctx, fx: Result<&Referrers, String>) -> Result<(), String> {
    let fx = fx?;
    let digest = ctx.with_gen(|g| g.unknown_digest());
    let (resp, entries) = referrers(ctx, &fx.repo, &digest, None).await?;
    ensure!(
        entries.is_empty(),
        "expected no referrers; {}",
        resp.describe()
    );
    Ok(())
}

async fn missing_subject(ctx: &Ctx, fx: Result<&Referrers, String>) -> Result<(), String> {
    let fx = fx?;
    let ghost = ctx.with_gen(|g| Content::new(g.bytes(64), OCI_MANIFEST));
    let m = annotated(SIG_TYPE, "orphan", &ghost);
    let resp = put_manifest(ctx, &fx.repo, &m.digest, &m).await?;
    Ok(resp.require_status(201)?)
}

/// `<namespace>/<run id>`: every repository of this run starts with it plus `/`.
fn run_prefix(ctx: &Ctx) -> String {
    ctx.repo("").trim_end_matches('/').to_owned()
}

async fn catalog(ctx: &Ctx) -> Result<(), String> {
    let want = ctx.pushed_repos();
    ensure!(
        !want.is_empty(),
        "no repository was pushed by earlier checks"
    );
    let prefix = run_prefix(ctx);
    let under = format!("{prefix}/");
    let mut link: Option<String> = None;
    let mut found = Vec::new();
    for _ in 0..MAX_PAGES {
        let (resp, repos) = match &link {
            None => listed(
                ctx.client.catalog(Some(100), Some(&prefix)).await?,
                Response::repository_names,
            )?,
            Some(l) => next_page(ctx, l, Response::repository_names).await?,
        };
        let past = repos
            .iter()
            .any(|r| r.as_str() > under.as_str() && !r.starts_with(&under));
        found.extend(repos.into_iter().filter(|r| r.starts_with(&under)));
        match resp.next_link() {
            Some(next) if !past => link = Some(next),
            _ => break,
        }
    }
    let missing: Vec<&String> = want.iter().filter(|r| !found.contains(r)).collect();
    ensure!(
        missing.is_empty(),
        "_catalog lacks {missing:?}; found {found:?}"
    );
    ensure!(found.is_sorted(), "_catalog is not sorted: {found:?}");
    Ok(())
}

async fn catalog_paged(ctx: &Ctx) -> Result<(), String> {
    let prefix = run_prefix(ctx);
    let (resp, first) = listed(
        ctx.client.catalog(Some(1), Some(&prefix)).await?,
        Response::repository_names,
    )?;
    ensure!(first.len() == 1, "n=1 gave {first:?}; {}", resp.describe());
    let link = resp
        .next_link()
        .ok_or_else(|| format!("no Link rel=next; {}", resp.describe()))?;
    let (resp, second) = next_page(ctx, &link, Response::repository_names).await?;
    ensure!(
        second.len() == 1,
        "next page gave {second:?}; {}",
        resp.describe()
    );
    ensure!(
        second[0] > first[0],
        "next page {second:?} does not follow {first:?}"
    );
    Ok(())
}
