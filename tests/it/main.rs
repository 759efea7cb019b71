//! This crate's integration tests as one test binary, each file a module (README "Layout").

mod common;

mod api_auth;
mod api_console;
mod api_org;
mod api_settings;
mod cluster;
mod integrations_api_keys;
mod integrations_crm;
mod integrations_post;
mod integrations_restart;
mod integrations_sso;
mod media;
mod openapi;
mod protocol_example;
mod report_exports;
mod reports;
mod restart;
mod session_tools;
mod sessions;
mod sessions_time;
mod sms_gateway;
mod smtp_mailer;
mod store;
mod surveys;
mod web_assets;
