//! The configuration loader as `check-config` and `serve` run it (`Config::from_yaml`:
//! YAML, `REGISTRY_*` overrides, typing, validation). Input: YAML text, then after a NUL
//! byte one `NAME=value` per line (`REGISTRY_` is added to names without it). Loading
//! is deterministic and what it accepts is within the documented bounds. Documents that
//! name TLS files are skipped: validation reads them, and a fuzzer naming /dev/zero
//! would test the disk, not the parser.

#![no_main]

use berth_server::Config;
use berth_server::config::{Document, env};
use libfuzzer_sys::fuzz_target;
use yaml_serde::Value;

fn names_tls_files(yaml: &str, vars: &[(String, String)]) -> bool {
    let Ok(mut root) = yaml_serde::from_str::<Value>(yaml) else {
        return false;
    };
    if root.is_null() {
        root = Value::Mapping(Default::default());
    }
    env::apply(&mut root, vars.iter().cloned());
    match Document::from_tree(root) {
        Ok(doc) => doc.http.tls.certificate.is_some() || doc.http.tls.key.is_some(),
        Err(_) => false,
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (yaml, env_text) = text.split_once('\0').unwrap_or((text, ""));
    let vars: Vec<(String, String)> = env_text
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| {
            let k = if k.starts_with("REGISTRY_") {
                k.to_owned()
            } else {
                format!("REGISTRY_{k}")
            };
            (k, v.to_owned())
        })
        .collect();
    if names_tls_files(yaml, &vars) {
        return;
    }
    let first = Config::from_yaml(yaml, vars.clone());
    let second = Config::from_yaml(yaml, vars);
    match (first, second) {
        (Ok((a, wa)), Ok((b, wb))) => {
            assert_eq!(wa, wb);
            assert_eq!(a.limits, b.limits);
            assert_eq!(a.storage.driver, b.storage.driver);
            let l = &a.limits;
            assert!((1024..=1024 * 1024).contains(&l.max_header_bytes));
            assert!(l.header_read_timeout.is_none_or(|d| !d.is_zero()));
            assert!(l.idle_timeout.is_none_or(|d| !d.is_zero()));
            for b in [l.rate_limit.per_client, l.rate_limit.per_user]
                .into_iter()
                .flatten()
            {
                assert!(b.rate.is_finite() && b.rate > 0.0 && b.burst >= 1);
            }
            assert!(a.storage.descriptor_cache.is_none_or(|n| n > 0));
            assert!(
                !a.storage.upload_purging.enabled || !a.storage.upload_purging.interval.is_zero()
            );
        }
        (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
        (a, b) => panic!("two loads disagree: {:?} / {:?}", a.is_ok(), b.is_ok()),
    }
});
