//! Lens Relay server: configuration, store, authentication, organization tree, settings, audit and
//! the REST API. The `lens` binary (`main.rs`) is a thin command line over this library; tests use
//! the library to start real servers on 127.0.0.1.

pub mod api;
pub mod app;
pub mod auth;
pub mod cluster;
pub mod config;
pub mod error;
pub mod integrations;
pub mod ipfilter;
pub mod media;
pub mod metrics;
pub mod notify;
pub mod org;
pub mod recorder;
pub mod reports;
pub mod sessions;
pub mod settings;
pub mod store;
pub mod strict_json;
pub mod turn;
pub mod web;
