//! Every scenario at smoke size against berth started in-process (real sockets, real
//! router and filesystem storage): the tool must run and see no errors, and the report
//! must turn its lines into a table.

use berth_bench::report::{self, Labels};
use berth_bench::{RunOptions, Scenario, Size};
use berth_server::{Config, Server};

async fn start_berth(root: &std::path::Path) -> String {
    start_berth_with(root, "").await
}

/// berth with `extra` YAML appended to the benchmark's configuration.
async fn start_berth_with(root: &std::path::Path, extra: &str) -> String {
    let yaml = format!(
        "version: 0.1\nlog: {{level: error, accesslog: {{disabled: true}}}}\nstorage:\n  filesystem: {{rootdirectory: {}}}\n  delete: {{enabled: true}}\n  cache: {{blobdescriptor: inmemory}}\nhttp: {{addr: 127.0.0.1:0}}\n{extra}",
        root.display()
    );
    let (config, _warnings) = Config::from_yaml(&yaml, Vec::new()).expect("config");
    let server = Server::bind(&config).expect("bind");
    let url = format!("http://{}", server.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = server.run(std::future::pending()).await;
    });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scenario_runs_without_errors() {
    let root = tempfile::tempdir().expect("tempdir");
    let url = start_berth(root.path()).await;
    let opts = RunOptions {
        url,
        scenarios: Scenario::ALL.to_vec(),
        size: Size::smoke(),
        // The server runs in this process, so this process's RSS is sampled.
        pid: Some(std::process::id()),
        label: "berth".into(),
        seed: 7,
        authorization: None,
        upstream: None,
        follow_redirects: false,
        populated: None,
        scale_fetches: None,
        scale_later: None,
    };
    let mut printed = 0;
    let lines = berth_bench::run(&opts, |_| printed += 1)
        .await
        .expect("run");
    assert_eq!(printed, lines.len());

    let failures: Vec<String> = lines
        .iter()
        .filter(|l| l.errors > 0)
        .map(|l| {
            format!(
                "{} {}: {} errors, first: {:?}",
                l.scenario, l.variant, l.errors, l.first_error
            )
        })
        .collect();
    assert!(failures.is_empty(), "errors:\n{}", failures.join("\n"));

    let seen = |scenario: &str, variant: &str| {
        lines
            .iter()
            .any(|l| l.scenario == scenario && l.variant == variant)
    };
    for (scenario, variant) in [
        ("memory", "idle"),
        ("push-large", "monolithic"),
        ("push-large", "chunked"),
        ("pull-large", "full"),
        ("pull-large", "range"),
        ("push-small", "blob+manifest"),
        ("pull-small", "manifest+head"),
        ("tags-list", "paged-n20"),
        ("tags-list", "unpaged"),
        ("catalog", "paged-n10"),
        ("catalog", "paged-n100"),
        ("image-push", "docker-style"),
        ("memory", "peak-image-push"),
        ("catalog-scale", "page-at-30"),
        ("catalog-scale", "page-at-300"),
        ("push-chunked-2g", "4MiB-patches"),
    ] {
        assert!(seen(scenario, variant), "no line for {scenario} {variant}");
    }
    let push = lines
        .iter()
        .find(|l| l.scenario == "push-large" && l.variant == "monolithic")
        .expect("push-large line");
    assert_eq!(push.bytes, Some(1024 * 1024));
    assert!(push.mib_per_s.is_some_and(|v| v > 0.0));
    let pulls = lines
        .iter()
        .find(|l| l.scenario == "pull-small")
        .expect("pull-small line");
    assert!(pulls.requests.is_some_and(|n| n > 0) && pulls.p99_ms.is_some());
    // pull-small runs a full second of load in this process: its CPU time is recorded.
    assert!(pulls.server_cpu_s.is_some_and(|s| s > 0.0), "{pulls:?}");
    // push-chunked-2g moves the whole blob and samples the server's peak RSS.
    let huge = lines
        .iter()
        .find(|l| l.scenario == "push-chunked-2g")
        .expect("push-chunked-2g line");
    assert_eq!(huge.bytes, Some(24 * 1024 * 1024 + 5));
    assert!(huge.rss_mib.is_some_and(|m| m > 0.0), "{huge:?}");

    // Every line survives the JSON round trip, and the report renders them.
    let text: String = lines.iter().map(|l| l.to_json() + "\n").collect();
    let (parsed, warnings) = report::parse(&text);
    assert!(warnings.is_empty(), "{warnings:?}");
    // Floats may come back one ulp apart (serde_json's fast float parsing), so compare
    // what identifies a line and its counts.
    let key = |l: &berth_bench::line::Line| {
        (
            l.label.clone(),
            l.scenario.clone(),
            l.variant.clone(),
            l.requests,
            l.errors,
        )
    };
    assert_eq!(
        parsed.iter().map(key).collect::<Vec<_>>(),
        lines.iter().map(key).collect::<Vec<_>>()
    );
    let rows = report::rows(&parsed, &Labels::default());
    let table = report::render(&rows, &Labels::default());
    assert!(
        table.contains("| push-large | monolithic | MiB/s |"),
        "{table}"
    );
}

/// Auth mode: with a token from `berth-bench token`, the auth-mode scenarios run without
/// errors against a registry that checks tokens; without it, every request is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_mode_runs_with_a_token_and_fails_without_one() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = tempfile::tempdir().expect("tempdir");
    let (key, cert) = (dir.path().join("t.key"), dir.path().join("t.crt"));
    let made = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-nodes", "-days", "1", "-newkey", "rsa:2048",
        ])
        .args(["-subj", "/CN=bench", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl (scripts/test.sh installs it)");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let url = start_berth_with(
        root.path(),
        &format!(
            "auth:\n  token:\n    realm: https://auth.invalid/token\n    service: s\n    issuer: i\n    rootcertbundle: {}\n",
            cert.display()
        ),
    )
    .await;
    let token = berth_bench::token::mint(&berth_bench::cli::TokenOptions {
        key: key.display().to_string(),
        cert: cert.display().to_string(),
        issuer: "i".into(),
        service: "s".into(),
        repositories: berth_bench::scenarios::AUTH_MODE_REPOSITORIES
            .map(str::to_owned)
            .to_vec(),
        expires: 600,
    })
    .expect("token");
    let run = |authorization: Option<String>| {
        let opts = RunOptions {
            url: url.clone(),
            scenarios: vec![
                Scenario::PushLarge,
                Scenario::PullLarge,
                Scenario::PullSmall,
            ],
            size: Size::smoke(),
            pid: None,
            label: "berth".into(),
            seed: 3,
            authorization,
            upstream: None,
            follow_redirects: false,
            populated: None,
            scale_fetches: None,
            scale_later: None,
        };
        async move { berth_bench::run(&opts, |_| {}).await.expect("run") }
    };
    let lines = run(Some(format!("Bearer {token}"))).await;
    assert!(!lines.is_empty());
    for l in &lines {
        assert_eq!(
            l.errors, 0,
            "{} {}: {:?}",
            l.scenario, l.variant, l.first_error
        );
    }
    let refused = run(None).await;
    assert!(
        refused.iter().all(|l| l.errors > 0),
        "a run without the token got through"
    );
}
