//! The Helm chart, rendered by the real Helm and checked against the Kubernetes schemas and
//! against this build's own configuration check (`deploy/helm/test_chart.py`; its Python
//! packages: `deploy/helm/requirements-test.txt`, which `scripts/test.sh` installs). No
//! Kubernetes cluster runs on the build machine: nothing is applied.

use std::path::Path;
use std::process::Command;

#[test]
fn the_helm_chart_renders_valid_objects_that_the_services_accept() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = Command::new("python3")
        .args(["-m", "unittest", "-v", "deploy/helm/test_chart.py"])
        .current_dir(&root)
        .env("MANTIS_BIN", env!("CARGO_BIN_EXE_mantis"))
        .output()
        .expect("python3 runs");
    let report = String::from_utf8_lossy(&out.stderr);
    println!("{report}");
    assert!(out.status.success(), "the chart's tests failed:\n{report}");
    assert!(
        !report.contains("skipped"),
        "every chart test must run here:\n{report}"
    );
}
