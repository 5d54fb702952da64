//! The conformance suite against berth in-process (real sockets, the real router and
//! storage), on both drivers, with deletes enabled and disabled.

use berth_conformance::{Options, failures, run};
use berth_server::{Config, Server};

async fn serve(yaml: &str) -> (String, tokio::task::JoinHandle<()>) {
    let (config, warnings) = Config::from_yaml(yaml, Vec::new()).expect("config");
    assert!(warnings.is_empty(), "{warnings:?}");
    let server = Server::bind(&config).expect("bind");
    let url = format!("http://{}", server.local_addr().expect("addr"));
    let task = tokio::spawn(async move {
        let _ = server.run(std::future::pending()).await;
    });
    (url, task)
}

async fn check(yaml: &str, delete_enabled: bool) {
    let (url, task) = serve(yaml).await;
    let outcomes = run(&Options {
        base_url: url,
        namespace: "conformance".into(),
        delete_enabled,
    })
    .await;
    task.abort();
    let failed = failures(&outcomes);
    assert!(outcomes.len() > 40, "only {} checks ran", outcomes.len());
    assert!(
        failed.is_empty(),
        "{} of {} checks failed:\n{}",
        failed.len(),
        outcomes.len(),
        failed.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_filesystem_with_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "version: 0.1\nstorage:\n  filesystem: {{rootdirectory: {}}}\n  delete: {{enabled: true}}\n  cache: {{blobdescriptor: inmemory}}\nhttp: {{addr: 127.0.0.1:0}}\n",
        dir.path().display()
    );
    check(&yaml, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_inmemory_without_deletes() {
    check(
        "version: 0.1\nstorage: {inmemory: {}}\nhttp: {addr: 127.0.0.1:0}\n",
        false,
    )
    .await;
}
