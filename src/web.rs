//! The browser pages, embedded in the binary: the customer page (`/`, and `/s/{token}`, the link a
//! technician sends), the technician console (`/console`) and the admin center (`/admin`), with
//! their scripts, style sheet and translation catalogs under `/assets/`.
//!
//! The files are hand-written ES modules in `web/` (no build step: the README's run command needs
//! no node). They are compiled in with `include_bytes!`; `tests/it/web_assets.rs` checks that every
//! file of `web/` is listed here. Each response carries an `ETag` (a hash of the content) and
//! `Cache-Control: no-cache`, so browsers revalidate and a new binary's pages are picked up at once.

use std::sync::OnceLock;

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};

use crate::app::AppState;

/// One embedded file: its path under `web/` and its bytes.
struct Asset {
    path: &'static str,
    bytes: &'static [u8],
}

macro_rules! assets {
    ($($path:literal),* $(,)?) => {
        &[$(Asset { path: $path, bytes: include_bytes!(concat!("../web/", $path)) }),*]
    };
}

/// Every file of `web/` (checked by `tests/it/web_assets.rs`).
static ASSETS: &[Asset] = assets![
    "customer.html",
    "console.html",
    "admin.html",
    "css/lens.css",
    "js/admin.js",
    "js/annotate.js",
    "js/api.js",
    "js/console.js",
    "js/customer.js",
    "js/dom.js",
    "js/forms.js",
    "js/i18n.js",
    "js/login.js",
    "js/media.js",
    "js/recordings.js",
    "js/reports.js",
    "js/socket.js",
    "js/survey.js",
    "js/tools.js",
    "i18n/de.json",
    "i18n/en.json",
    "i18n/es.json",
    "i18n/fr.json",
    "i18n/it.json",
    "i18n/ja.json",
    "i18n/ko.json",
    "i18n/nl.json",
    "i18n/pt-br.json",
    "i18n/th.json",
    "i18n/zh.json",
    "i18n/zh-TW.json",
    "icon.svg",
];

/// The paths of the embedded files, for the test that compares them with `web/`.
pub fn asset_paths() -> Vec<&'static str> {
    ASSETS.iter().map(|a| a.path).collect()
}

/// The language codes with a catalog (`i18n/<code>.json`): the guide's twelve web languages.
pub const LANGUAGES: &[&str] = &[
    "de", "en", "es", "fr", "it", "ja", "ko", "nl", "pt-br", "th", "zh", "zh-TW",
];

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next() {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("json") => "application/json",
        Some("svg") => "image/svg+xml",
        _ => "application/octet-stream",
    }
}

fn etags() -> &'static [String] {
    static ETAGS: OnceLock<Vec<String>> = OnceLock::new();
    ETAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| format!("\"{}\"", &hex::encode(Sha256::digest(a.bytes))[..20]))
            .collect()
    })
}

/// The pages may use only this server: no CDN, no inline script, media from the camera (blob:).
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; \
                   media-src 'self' blob: mediastream:; connect-src 'self'; frame-ancestors 'none'; \
                   base-uri 'none'; form-action 'self'";

fn serve(path: &str, headers: &HeaderMap) -> Response {
    let Some(index) = ASSETS.iter().position(|a| a.path == path) else {
        return crate::error::ApiError::not_found("file").into_response();
    };
    let asset = &ASSETS[index];
    let etag = &etags()[index];
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, content_type(path))], asset.bytes).into_response()
    };
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(v) = HeaderValue::from_str(etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if path.ends_with(".html") {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        );
        h.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
        // The camera and microphone are for this origin only.
        h.insert(
            "permissions-policy",
            HeaderValue::from_static("camera=(self), microphone=(self), geolocation=()"),
        );
    }
    response
}

async fn customer(headers: HeaderMap) -> Response {
    serve("customer.html", &headers)
}

/// `/s/{token}`: the link of link, SMS and email sessions. The page reads the token from its own
/// address and presents it in `join`; the code is checked there (and its guessing throttled).
async fn customer_link(Path(_token): Path<String>, headers: HeaderMap) -> Response {
    serve("customer.html", &headers)
}

async fn console(headers: HeaderMap) -> Response {
    serve("console.html", &headers)
}

async fn admin(headers: HeaderMap) -> Response {
    serve("admin.html", &headers)
}

async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    // Pages are served at their own routes, not as assets.
    if path.ends_with(".html") {
        return crate::error::ApiError::not_found("file").into_response();
    }
    serve(&path, &headers)
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(customer))
        .route("/s/{token}", get(customer_link))
        .route("/console", get(console))
        .route("/admin", get(admin))
        .route("/assets/{*path}", get(asset))
}
