//! The committed CRD YAML (crds/ and the chart's crds/) and the CRD reference (docs/crds.md)
//! must equal what the Rust types generate. Regenerate with `make generate`.

use contiguity_operator::crd;
use std::path::Path;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn check(path: &Path, expected: &str) {
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed == expected,
        "{} differs from what src/crd generates: run `make generate` and commit the result",
        path.display()
    );
}

#[test]
fn committed_crds_match_the_rust_types() {
    let crds = crd::all();
    assert_eq!(crds.len(), 2);
    for dir in ["crds", "charts/contiguity-operator/crds"] {
        let mut expected_files = Vec::new();
        for c in &crds {
            let name = crd::file_name(c);
            check(&root().join(dir).join(&name), &crd::to_yaml(c).expect("yaml"));
            expected_files.push(name);
        }
        let mut present: Vec<String> = std::fs::read_dir(root().join(dir))
            .expect("read dir")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".yaml"))
            .collect();
        present.sort();
        expected_files.sort();
        assert_eq!(present, expected_files, "stale or extra CRD files in {dir}");
    }
}

#[test]
fn the_crd_reference_matches_the_schemas() {
    check(&root().join("docs/crds.md"), &crd::reference::markdown(&crd::all()));
}

#[test]
fn the_crd_reference_documents_every_spec_field() {
    let doc = crd::reference::markdown(&crd::all());
    for field in [
        "spec.number",
        "spec.billingMethod",
        "spec.deletionPolicy",
        "spec.managementPolicy",
        "spec.adoption",
        "spec.credentialsSecretRef.name",
        "spec.leaseRef.name",
        "spec.enabled",
        "spec.mode",
        "spec.numbers",
        "status.leaseId",
        "status.conditions",
        "status.applied",
    ] {
        assert!(doc.contains(&format!("`{field}`")), "docs/crds.md lacks {field}");
    }
}
