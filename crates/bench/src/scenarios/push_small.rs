//! push-small: many pushes of one small blob (`POST` + `PUT`) and a manifest over it,
//! tagged, over a fixed number of concurrent workers. Every 50th manifest is read back
//! afterwards (untimed).

use std::sync::Arc;
use std::time::Instant;

use crate::data::{Blob, Manifest, oci_manifest, rng};
use crate::line::Line;
use crate::ops;
use crate::scenarios::{Ctx, Stop, parallel};
use crate::stats::Recorder;

/// Scenario name.
pub const NAME: &str = "push-small";
const REPO: &str = "bench/small";

/// One push: the layer and the manifest that references it.
struct Push {
    layer: Blob,
    manifest: Manifest,
}

fn tag(i: usize) -> String {
    format!("s{i:05}")
}

/// Runs the scenario.
pub async fn run(ctx: &Ctx) -> Vec<Line> {
    let mut line = ctx.line(NAME, "blob+manifest");
    let mut setup = Recorder::new();
    let config = Blob::config("push-small");
    let mut r = rng(ctx.seed, "push-small");
    let pushes: Arc<Vec<Push>> = Arc::new(
        (0..ctx.size.small_pushes)
            .map(|_| {
                let layer = Blob::random(&mut r, ctx.size.small_blob);
                let manifest = oci_manifest(&config, &[&layer]);
                Push { layer, manifest }
            })
            .collect(),
    );
    let ready = ops::ensure_blob(&ctx.reg, &mut setup, REPO, &config).await;
    if setup.check(ready).is_none() {
        setup.fill(&mut line, 0.0);
        return vec![line];
    }

    let reg = ctx.reg.clone();
    let work = Arc::clone(&pushes);
    let cpu = ctx.server_cpu();
    let started = Instant::now();
    let mut rec = parallel(ctx.size.push_workers, Stop::After(pushes.len()), move |i| {
        let (reg, work) = (reg.clone(), Arc::clone(&work));
        async move {
            let mut rec = Recorder::new();
            let push = &work[i];
            let result = async {
                ops::push_monolithic(&reg, &mut rec, REPO, &push.layer).await?;
                ops::put_manifest(&reg, &mut rec, REPO, &tag(i), &push.manifest).await
            }
            .await;
            if rec.check(result).is_some() {
                rec.ops += 1;
                rec.bytes += push.layer.len() + push.manifest.body.len() as u64;
            }
            rec
        }
    })
    .await;
    let seconds = started.elapsed().as_secs_f64();
    line.set_server_cpu(cpu, ctx.server_cpu());

    let mut check = Recorder::new();
    for (i, push) in pushes.iter().enumerate().step_by(50) {
        let result = ops::get_manifest(&ctx.reg, &mut check, REPO, &tag(i), &push.manifest).await;
        check.check(result);
    }
    rec.merge_errors(check);
    rec.merge_errors(setup);
    rec.fill(&mut line, seconds);
    vec![line]
}
