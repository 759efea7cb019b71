//! Integrations (the guide's chapter "Integration and API"): Post-to-URL, single sign-on, API keys
//! for apps that embed the customer side, and per-user API tokens for CRMs. The HTTP routes live in
//! `src/api/integrations.rs`; this module holds the parts that run on their own.

pub mod api_keys;
pub mod post_to_url;
