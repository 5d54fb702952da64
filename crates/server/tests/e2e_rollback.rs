//! Rolling back to distribution 2.8.2, which has no referrers API: with
//! `berth.referrers.tagschema` on, berth keeps the referrers tag schema's `<alg>-<hex>`
//! index current, so clients that fall back to it still find a subject's signatures when
//! distribution serves the root berth wrote.

mod common;
#[path = "support/oci_layout.rs"]
mod oci_layout;

use oci_layout::sha256_digest;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// An image manifest over `config`, naming `subject` when given.
fn manifest(config: &str, artifact: &str, subject: Option<(&str, usize)>) -> String {
    let subject = subject
        .map(|(d, len)| {
            format!(r#","subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{d}","size":{len}}}"#)
        })
        .unwrap_or_default();
    format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","artifactType":"{artifact}","config":{{"mediaType":"application/vnd.oci.empty.v1+json","digest":"{config}","size":2}},"layers":[]{subject}}}"#
    )
}

/// The digests an index body lists.
fn listed(body: &[u8]) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_slice(body).expect("index JSON");
    v["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .map(|m| m["digest"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn referrers_stay_visible_after_a_switch_back_to_distribution() {
    if !common::have_tool("docker-registry") {
        return;
    }
    let work = tempfile::tempdir().expect("tempdir");
    let root = work.path().join("root");
    let berth = common::berth(
        &root,
        work.path(),
        "berth:\n  referrers:\n    tagschema: true\n",
    );
    let reg = berth.client();
    let repo = "team/app";
    let config = sha256_digest(b"{}");
    reg.run(|c| c.push_blob(repo, &config, &b"{}"[..]))
        .expect("push config");
    let subject = manifest(&config, "application/x.app", None);
    let subject_digest = sha256_digest(subject.as_bytes());
    let put = |reference: &str, body: &str| {
        let r = reg
            .run(|c| c.put_manifest(repo, reference, OCI_MANIFEST, body.to_owned(), &[]))
            .expect("put manifest");
        assert_eq!(r.status, 201, "{}", r.describe());
    };
    put("v1", &subject);
    let sig = manifest(
        &config,
        "application/x.sig",
        Some((&subject_digest, subject.len())),
    );
    let sbom = manifest(
        &config,
        "application/x.sbom",
        Some((&subject_digest, subject.len())),
    );
    let (sig_digest, sbom_digest) = (
        sha256_digest(sig.as_bytes()),
        sha256_digest(sbom.as_bytes()),
    );
    put(&sig_digest, &sig);
    put(&sbom_digest, &sbom);
    let schema_tag = subject_digest.replace(':', "-");

    // berth: the API lists each referrer once; the schema index lists both.
    let r = reg
        .run(|c| c.referrers(repo, &subject_digest, None))
        .expect("referrers");
    let mut api = listed(&r.body);
    api.sort();
    let mut both = vec![sig_digest.clone(), sbom_digest.clone()];
    both.sort();
    assert_eq!(api, both);
    let r = reg
        .run(|c| c.get_manifest(repo, &schema_tag, OCI_INDEX))
        .expect("schema index");
    assert_eq!(r.status, 200, "{}", r.describe());
    let mut schema = listed(&r.body);
    schema.sort();
    assert_eq!(schema, both);

    // A deleted referrer leaves the index.
    let r = reg
        .run(|c| c.delete_manifest(repo, &sbom_digest))
        .expect("delete");
    assert_eq!(r.status, 202, "{}", r.describe());
    let r = reg
        .run(|c| c.get_manifest(repo, &schema_tag, OCI_INDEX))
        .expect("schema index");
    assert_eq!(listed(&r.body), std::slice::from_ref(&sig_digest));
    berth.stop();

    // distribution on the same root serves the index clients fall back to.
    let distribution = common::distribution(&root, work.path());
    let r = distribution
        .client()
        .run(|c| c.get_manifest(repo, &schema_tag, OCI_INDEX))
        .expect("schema index from distribution");
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_eq!(listed(&r.body), [sig_digest]);
    let v: serde_json::Value = serde_json::from_slice(&r.body).expect("JSON");
    assert_eq!(v["manifests"][0]["artifactType"], "application/x.sig");
    distribution.stop();
}
