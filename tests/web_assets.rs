//! The embedded pages: every file of `web/` is compiled in and served with its content type and
//! cache validators; the customer page answers at `/` and at the link `/s/{token}`; every
//! translation catalog has exactly the keys of the English one.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::*;

fn files_under(root: &Path, dir: &Path, out: &mut BTreeSet<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files_under(root, &path, out);
        } else {
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            out.insert(rel);
        }
    }
}

#[test]
fn every_file_of_web_is_embedded() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("web");
    let mut on_disk = BTreeSet::new();
    files_under(&root, &root, &mut on_disk);
    let embedded: BTreeSet<String> = lens::web::asset_paths()
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(
        on_disk, embedded,
        "web/ and the ASSETS list of src/web.rs differ"
    );
}

/// GET `path`, optionally revalidating with an ETag.
async fn fetch(s: &TestServer, path: &str, etag: Option<&str>) -> reqwest::Response {
    let mut request = s.http.get(format!("{}{path}", s.base));
    if let Some(etag) = etag {
        request = request.header("if-none-match", etag);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn pages_and_assets_are_served_with_their_types_and_validators() {
    let s = start().await;
    for (path, kind) in [
        ("/", "text/html; charset=utf-8"),
        ("/s/Zq3xLinkToken", "text/html; charset=utf-8"),
        ("/console", "text/html; charset=utf-8"),
        ("/admin", "text/html; charset=utf-8"),
        ("/assets/js/customer.js", "text/javascript; charset=utf-8"),
        ("/assets/css/lens.css", "text/css; charset=utf-8"),
        ("/assets/i18n/en.json", "application/json"),
        ("/assets/icon.svg", "image/svg+xml"),
    ] {
        let r = fetch(&s, path, None).await;
        assert_eq!(r.status(), 200, "{path}");
        let h = r.headers().clone();
        assert_eq!(h["content-type"], kind, "{path}");
        assert_eq!(h["cache-control"], "no-cache", "{path}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        if kind.starts_with("text/html") {
            let csp = h["content-security-policy"].to_str().unwrap();
            assert!(csp.contains("script-src 'self'"), "{path}: {csp}");
        }
        let etag = h["etag"].to_str().unwrap().to_owned();
        let again = fetch(&s, path, Some(&etag)).await;
        assert_eq!(again.status(), 304, "{path} with If-None-Match");
    }
    let page = fetch(&s, "/", None).await.text().await.unwrap();
    assert!(page.contains("/assets/js/customer.js"), "{page}");
    for path in [
        "/assets/nope.js",
        "/assets/customer.html",
        "/assets/../Cargo.toml",
        "/assets/%2e%2e/Cargo.toml",
    ] {
        let r = fetch(&s, path, None).await;
        assert_eq!(r.status(), 404, "{path}");
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "not_found", "{path}");
    }
}
