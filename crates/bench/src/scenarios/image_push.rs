//! image-push: several images pushed in parallel the way `docker push` does it (per
//! blob: `HEAD`, `POST`, one streamed `PATCH`, `PUT ?digest=`; then the schema2
//! manifest), each into its own repository. While it runs, the server's RSS can be
//! sampled (the memory scenario's peak). Manifests are read back afterwards (untimed).

use std::sync::Arc;
use std::time::Instant;

use rand::Rng;

use crate::data::{Blob, Manifest, docker_manifest, rng};
use crate::line::Line;
use crate::ops;
use crate::rss::Sampler;
use crate::scenarios::{Ctx, Stop, memory, parallel};
use crate::stats::Recorder;

/// Scenario name.
pub const NAME: &str = "image-push";

struct Image {
    repo: String,
    blobs: Vec<Blob>,
    manifest: Manifest,
}

fn images(ctx: &Ctx) -> Vec<Image> {
    let mut sizes = rng(ctx.seed, "image-push-sizes");
    let (low, high) = ctx.size.layer_bytes;
    (0..ctx.size.images)
        .map(|i| {
            let config = Blob::config(&format!("image-push-{i}"));
            let layers: Vec<Blob> = (0..ctx.size.layers)
                .map(|l| {
                    let len = sizes.random_range(low..=high.max(low));
                    ctx.random_blob(&format!("image-push-{i}-{l}"), len)
                })
                .collect();
            let manifest = docker_manifest(&config, &layers.iter().collect::<Vec<_>>());
            // docker pushes the layers, then the config.
            let mut blobs = layers;
            blobs.push(config);
            Image {
                repo: format!("images/i{i}"),
                blobs,
                manifest,
            }
        })
        .collect()
}

/// Pushes the images; answers the image-push line if `report_push` and the memory
/// peak line if `sample_memory` (and a server pid is known).
pub async fn run(ctx: &Ctx, report_push: bool, sample_memory: bool) -> Vec<Line> {
    let images = Arc::new(images(ctx));
    let sampler = match (sample_memory, ctx.pid) {
        (true, Some(pid)) => Some(Sampler::start(pid, memory::SAMPLE_EVERY)),
        _ => None,
    };
    let reg = ctx.reg.clone();
    let work = Arc::clone(&images);
    let cpu = ctx.server_cpu();
    let started = Instant::now();
    let mut rec = parallel(images.len(), Stop::After(images.len()), move |i| {
        let (reg, work) = (reg.clone(), Arc::clone(&work));
        async move {
            let mut rec = Recorder::new();
            let image = &work[i];
            let result = async {
                for blob in &image.blobs {
                    ops::push_docker_style(&reg, &mut rec, &image.repo, blob).await?;
                }
                ops::put_manifest(&reg, &mut rec, &image.repo, "latest", &image.manifest).await
            }
            .await;
            if rec.check(result).is_some() {
                rec.ops += 1;
                rec.bytes += image.blobs.iter().map(Blob::len).sum::<u64>();
            }
            rec
        }
    })
    .await;
    let seconds = started.elapsed().as_secs_f64();
    let cpu_after = ctx.server_cpu();
    let peak = match sampler {
        Some(s) => Some(s.stop().await),
        None => None,
    };

    let mut check = Recorder::new();
    for image in images.iter() {
        let result =
            ops::get_manifest(&ctx.reg, &mut check, &image.repo, "latest", &image.manifest).await;
        check.check(result);
    }
    rec.merge_errors(check);

    let mut lines = Vec::new();
    if report_push {
        let mut line = ctx.line(NAME, "docker-style");
        rec.fill(&mut line, seconds);
        line.set_server_cpu(cpu, cpu_after);
        lines.push(line);
    }
    if let Some(peak) = peak {
        lines.push(memory::peak_line(ctx, seconds, peak));
    }
    lines
}
