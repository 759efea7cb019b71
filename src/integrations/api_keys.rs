//! API keys of apps that embed the customer side (the guide's "Managing API Keys for the In-App
//! Support SDK"): a key is bound to one app identifier; a customer `join` that presents a key must
//! present an enabled key created for the `app_id` it sends.

use base64::Engine;

use crate::store::{Store, StoreError};

/// A new key: `lk_` and 256 random bits, URL-safe. Returns (key, its hash, its display prefix).
pub fn new_key() -> (String, String, String) {
    let bytes: [u8; 32] = rand::random();
    let key = format!(
        "lk_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    );
    let prefix = key.chars().take(10).collect();
    let hash = crate::auth::token_hash(&key);
    (key, hash, prefix)
}

/// Why a presented key is refused (the text of the `api_key_invalid` error).
pub async fn check(store: &Store, key: &str, app_id: Option<&str>) -> Result<i64, &'static str> {
    let found = match store.api_key_by_hash(&crate::auth::token_hash(key)).await {
        Ok(k) => k,
        Err(StoreError::NotFound) => return Err("unknown API key"),
        Err(e) => {
            tracing::error!(error = %e, "cannot read API keys");
            return Err("the API key cannot be checked now; try again");
        }
    };
    if !found.enabled {
        return Err("this API key is disabled");
    }
    match app_id {
        None => Err("an API key must come with the app identifier (app_id) it was created for"),
        Some(a) if a != found.app_id => Err("this API key belongs to another app identifier"),
        Some(_) => Ok(found.id),
    }
}

/// An app identifier: an Android package name or an iOS bundle ID (letters, digits, `.`, `_`, `-`).
pub fn valid_app_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}
