//! The embedded pages: every file of `web/` is compiled in and served with its content type and
//! cache validators; the customer page answers at `/` and at the link `/s/{token}`; every
//! translation catalog has exactly the keys of the English one.

use crate::common;

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

fn web_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("web")
}

fn catalog(code: &str) -> serde_json::Map<String, serde_json::Value> {
    let path = web_dir().join("i18n").join(format!("{code}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    match serde_json::from_str(&text) {
        Ok(serde_json::Value::Object(map)) => map,
        other => panic!("{path:?} is not a JSON object: {other:?}"),
    }
}

/// The `{name}` placeholders of a text.
fn placeholders(text: &str) -> BTreeSet<String> {
    text.split('{')
        .skip(1)
        .filter_map(|rest| rest.split_once('}').map(|(name, _)| name.to_owned()))
        .collect()
}

#[test]
fn every_catalog_has_every_key_with_the_same_placeholders() {
    let english = catalog("en");
    assert!(english.len() > 100, "the English catalog looks truncated");
    for code in lens::web::LANGUAGES {
        let other = catalog(code);
        let missing: Vec<&String> = english.keys().filter(|k| !other.contains_key(*k)).collect();
        let extra: Vec<&String> = other.keys().filter(|k| !english.contains_key(*k)).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "{code}: missing {missing:?}, unknown {extra:?}"
        );
        for (key, value) in &other {
            let text = value
                .as_str()
                .unwrap_or_else(|| panic!("{code}: {key} is not a string"));
            assert!(!text.trim().is_empty(), "{code}: {key} is empty");
            let wanted = placeholders(english[key].as_str().unwrap());
            assert_eq!(
                placeholders(text),
                wanted,
                "{code}: {key} has other placeholders than English"
            );
        }
    }
}

/// Every key the pages name literally (`data-i18n="..."`, `aria-label:...`, `t("...")`) is in the
/// English catalog, so no page shows a raw key.
#[test]
fn every_key_the_pages_use_is_in_the_catalog() {
    let english = catalog("en");
    let mut used = BTreeSet::new();
    let mut sources = vec![];
    for name in ["customer.html", "console.html", "admin.html"] {
        sources.push(std::fs::read_to_string(web_dir().join(name)).unwrap());
    }
    for entry in std::fs::read_dir(web_dir().join("js")).unwrap() {
        sources.push(std::fs::read_to_string(entry.unwrap().path()).unwrap());
    }
    for text in &sources {
        for start in ["data-i18n=\"", "\"data-i18n\": \"", "t(\""] {
            for (at, _) in text.match_indices(start) {
                // `t("` must be the function `t`, not the end of `split("`.
                let before = text[..at].chars().next_back().unwrap_or(' ');
                if start.starts_with('t') && (before.is_alphanumeric() || "_.$".contains(before)) {
                    continue;
                }
                if let Some((key, _)) = text[at + start.len()..].split_once('"') {
                    used.insert(key.to_owned());
                }
            }
        }
        for piece in text.split("data-i18n-attr=\"").skip(1) {
            let attrs = piece.split('"').next().unwrap_or_default();
            for pair in attrs.split(';') {
                if let Some((_, key)) = pair.split_once(':') {
                    used.insert(key.trim().to_owned());
                }
            }
        }
    }
    assert!(used.len() > 100, "found only {} keys: {used:?}", used.len());
    let missing: Vec<&String> = used.iter().filter(|k| !english.contains_key(*k)).collect();
    assert!(
        missing.is_empty(),
        "keys used but not in en.json: {missing:?}"
    );
}

/// The language menu of the pages (js/i18n.js) lists exactly the catalogs.
#[test]
fn the_language_menu_lists_the_twelve_catalogs() {
    let script = std::fs::read_to_string(web_dir().join("js/i18n.js")).unwrap();
    let menu: BTreeSet<&str> = script
        .split("  [\"")
        .skip(1)
        .filter_map(|s| s.split_once('"').map(|(code, _)| code))
        .collect();
    let catalogs: BTreeSet<&str> = lens::web::LANGUAGES.iter().copied().collect();
    assert_eq!(menu, catalogs);
    assert_eq!(catalogs.len(), 12);
}
