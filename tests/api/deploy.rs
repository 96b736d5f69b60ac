//! The deployment files, validated statically (no Docker engine or cluster here) by
//! `scripts/deploy-check/validate.py` (Kubernetes, Compose and GitHub workflow schemas),
//! then checked against the real server: probe and health-check paths answer, ports
//! match, and every metric the dashboard and alerts use is one the server exports.

use std::process::Command;

use serde_json::Value;

use crate::helpers::{spawn_app, test_python};

/// The validator's summary, or `None` (with the reason printed) when the Python tools
/// are not installed; under `CI=true` that is a failure.
fn validate() -> Option<Value> {
    let python = test_python()?;
    let out = Command::new(python)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scripts/deploy-check/validate.py"
        ))
        .output()
        .expect("the validator runs");
    assert!(
        out.status.success(),
        "deployment files are invalid:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(serde_json::from_slice(&out.stdout).expect("a JSON summary"))
}

#[tokio::test]
async fn deployment_files_are_valid_and_match_the_server() {
    let Some(summary) = validate() else { return };
    let app = spawn_app().await;

    let probes = summary["probes"].as_array().unwrap();
    assert!(probes.len() >= 6, "{probes:?}");
    for probe in probes {
        let path = probe["path"].as_str().unwrap();
        let r = app.get(path).await;
        assert_eq!(r.status(), 200, "{probe}");
    }
    let default_port = ragbrain::config::Settings::load(None).unwrap().server.port;
    assert_eq!(summary["ports"], serde_json::json!([default_port]));
    let exported = ragbrain::metrics::Metrics::new().names();
    let used = summary["metrics"].as_array().unwrap();
    assert!(
        used.len() >= 8,
        "the dashboard covers the metrics: {used:?}"
    );
    for metric in used {
        let name = metric.as_str().unwrap();
        assert!(exported.iter().any(|e| e == name), "{name} is not exported");
    }
}
