//! pull-small: for a fixed time, many connections each `GET` a manifest by tag (body
//! hashed and compared) and `HEAD` its layer (length checked), as a client checking for
//! updates does.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::data::{Blob, Manifest, oci_manifest, rng};
use crate::line::Line;
use crate::ops;
use crate::scenarios::populate;
use crate::scenarios::{Ctx, Stop, parallel};
use crate::stats::Recorder;

/// Scenario name.
pub const NAME: &str = "pull-small";
pub const REPO: &str = "bench/pull-small";

struct Image {
    tag: String,
    layer: Blob,
    manifest: Manifest,
}

/// Runs the scenario.
pub async fn run(ctx: &Ctx) -> Vec<Line> {
    let mut line = ctx.line(NAME, "manifest+head");
    let config = Blob::config("pull-small");
    let mut r = rng(ctx.seed, "pull-small");
    let images: Vec<Image> = (0..ctx.size.pull_images.max(1))
        .map(|i| {
            let layer = Blob::random(&mut r, ctx.size.small_blob);
            let manifest = oci_manifest(&config, &[&layer]);
            Image {
                tag: format!("p{i:04}"),
                layer,
                manifest,
            }
        })
        .collect();
    let mut setup = Recorder::new();
    for image in &images {
        let pushed =
            populate::image(ctx, &mut setup, REPO, &image.tag, &config, &[&image.layer]).await;
        setup.check(pushed);
    }
    if setup.errors > 0 {
        setup.fill(&mut line, 0.0);
        return vec![line];
    }

    let images = Arc::new(images);
    let reg = ctx.reg.clone();
    let cpu = ctx.server_cpu();
    let started = Instant::now();
    let stop = Stop::At(started + ctx.size.pull_duration);
    let rec = parallel(ctx.size.pull_connections, stop, move |i| {
        let (reg, images) = (reg.clone(), Arc::clone(&images));
        async move {
            let mut rec = Recorder::new();
            // A stride that is coprime with most counts spreads workers over the tags.
            let image = &images[(i * 7919) % images.len()];
            let result = async {
                ops::get_manifest(&reg, &mut rec, REPO, &image.tag, &image.manifest).await?;
                match ops::head_blob(&reg, &mut rec, REPO, &image.layer.digest).await? {
                    Some(len) if len == image.layer.len() => Ok(()),
                    other => Err(format!(
                        "HEAD {REPO} {}: {other:?}, want Some({})",
                        image.layer.digest,
                        image.layer.len()
                    )),
                }
            }
            .await;
            if rec.check(result).is_some() {
                rec.ops += 1;
                rec.bytes += image.manifest.body.len() as u64;
            } else {
                // Do not spin on a registry that refuses at once.
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            rec
        }
    })
    .await;
    let seconds = started.elapsed().as_secs_f64();
    line.set_server_cpu(cpu, ctx.server_cpu());
    rec.fill(&mut line, seconds);
    vec![line]
}
