//! `berth-bench populate-s3` against Ceph's radosgw (the test run's gateway, see
//! `crates/server/tests/support/rgw.rs`): what it writes is a registry's catalog, read
//! by berth started over the bucket, and catalog-scale's `--populated` page finds its
//! repositories there. Skipped when radosgw is missing, unless `BERTH_E2E_REQUIRED=1`.

#[path = "../../server/tests/support/rgw.rs"]
mod rgw;

use berth_bench::populate_s3::{PopulateOptions, populate};
use berth_bench::{RunOptions, Scenario, Size};
use berth_server::{Config, Server};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn populated_repositories_are_the_catalog() {
    let Some(gw) = rgw::Rgw::shared() else {
        return;
    };
    let bucket = gw.create_bucket("populate");
    let mut o = PopulateOptions {
        endpoint: gw.endpoint.clone(),
        bucket: bucket.clone(),
        region: "us-east-1".into(),
        access_key: gw.access_key.clone(),
        secret_key: gw.secret_key.clone(),
        root: "/bench".into(),
        from: 0,
        to: 20,
        workers: 4,
        seed: 1,
    };
    assert_eq!(populate(&o).await.unwrap(), 21, "the blob and 20 links");
    // Grown in a second pass, as the benchmark does.
    o.from = 20;
    o.to = 60;
    populate(&o).await.unwrap();
    let last = berth_bench::scenarios::populate::catalog_repo(59);
    let keys = gw.keys(
        &bucket,
        &format!("bench/docker/registry/v2/repositories/{last}/"),
    );
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert!(keys[0].ends_with("/link") && keys[0].contains("/_layers/sha256/"));

    let yaml = format!(
        "version: 0.1\nlog: {{level: error}}\nstorage:\n  s3:\n{}  redirect:\n    disable: true\nhttp: {{addr: 127.0.0.1:0}}\n",
        gw.s3_yaml(&bucket, "/bench")
    );
    let (config, _warnings) = Config::from_yaml(&yaml, Vec::new()).expect("config");
    let server = Server::bind(&config).expect("bind");
    let url = format!("http://{}", server.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = server.run(std::future::pending()).await;
    });
    let opts = RunOptions {
        url,
        scenarios: vec![Scenario::CatalogScale],
        size: Size::smoke(),
        pid: None,
        label: "berth".into(),
        seed: 1,
        authorization: None,
        upstream: None,
        follow_redirects: false,
        populated: Some(60),
        scale_fetches: None,
        scale_later: Some(1),
    };
    let lines = berth_bench::run(&opts, |_| {}).await.expect("run");
    let variants: Vec<&str> = lines.iter().map(|l| l.variant.as_str()).collect();
    assert_eq!(
        variants,
        ["first-page-at-60", "page-at-60", "page-later-at-60"]
    );
    for l in &lines {
        assert_eq!(l.errors, 0, "{l:?}");
    }
    assert_eq!(lines[1].repositories, Some(60));
    assert_eq!(lines[1].ops, Some(Size::smoke().scale_fetches as u64));
}
