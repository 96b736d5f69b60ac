//! The README's curl walkthrough, run as written against the real binary. Only the
//! server address and the data directory are pointed at this test's own.

use std::process::{Command, Stdio};

use crate::helpers::{free_port, spawn_binary, wait_for};

fn walkthrough() -> String {
    let readme = include_str!("../../README.md");
    let start = readme
        .find("<!-- walkthrough:start -->")
        .expect("walkthrough start marker");
    let end = readme
        .find("<!-- walkthrough:end -->")
        .expect("walkthrough end marker");
    let section = &readme[start..end];
    let open = section.find("```sh\n").expect("sh block") + "```sh\n".len();
    let close = section[open..].find("```").expect("end of sh block") + open;
    section[open..close].to_owned()
}

#[tokio::test]
async fn the_walkthrough_works_verbatim() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut server = spawn_binary(port, dir.path(), Stdio::null());
    let url = format!("http://127.0.0.1:{port}");
    assert!(
        wait_for(port, "/health/live", "").await.is_some(),
        "server did not start"
    );

    let script = walkthrough();
    assert!(
        script.contains("URL=http://127.0.0.1:8080")
            && script.contains("cat data/bootstrap-admin.key")
    );
    let script = script
        .replace("URL=http://127.0.0.1:8080", &format!("URL={url}"))
        .replace(
            "cat data/bootstrap-admin.key",
            &format!("cat {}/bootstrap-admin.key", dir.path().display()),
        );
    let out = tokio::task::spawn_blocking(move || {
        Command::new("bash")
            .args(["-euo", "pipefail", "-c", &script])
            .output()
    })
    .await
    .unwrap()
    .unwrap();
    let _ = server.kill();
    let _ = server.wait();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "walkthrough failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    for expected in [
        r#""name":"notes","dim":4,"distance":"cosine","points_count":0"#,
        r#"{"collection":"notes","upserted":3}"#,
        r#"{"hits":[{"id":1,"#,
        r#""payload":{"topic":"rust","year":2024}},{"id":3,"#,
        r#"{"status":"created"}"#,
        r#""depth":2,"path":["KNOWS","KNOWS"]"#,
        r#"{"columns":["reachable"],"rows":[["alan"],["grace"]],"truncated":false}"#,
        r#"{"id":"institute","status":"processed","operation":"upsert","collection":"documents","chunks":1,"entities":3"#,
        r#""path":["Marie Curie"]"#,
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected} in:\n{stdout}"
        );
    }
}

#[test]
fn the_readme_links_every_doc_and_the_docs_match_the_code() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let read = |p: &str| std::fs::read_to_string(root.join(p)).unwrap();
    let readme = read("README.md");
    for doc in [
        "API",
        "DEPLOYMENT",
        "OPERATIONS",
        "SECURITY",
        "ARCHITECTURE",
        "PERFORMANCE",
    ] {
        let path = format!("docs/{doc}.md");
        assert!(
            readme.contains(&format!("({path})")),
            "README does not link {path}"
        );
        assert!(root.join(&path).exists(), "{path} is missing");
    }
    // The metrics catalogue lists every exported family.
    let operations = read("docs/OPERATIONS.md");
    for name in ragbrain::metrics::Metrics::new().names() {
        assert!(
            operations.contains(&format!("`{name}`")),
            "{name} is not documented"
        );
    }
    // The rate-limit table lists every class.
    let api = read("docs/API.md");
    for class in ragbrain::domain::quota::Class::ALL {
        assert!(
            api.contains(&format!("| `{}` |", class.as_str())),
            "{class:?} is not documented"
        );
    }
}
