//! Wiring: shared state, the router, start-up (migrations, bootstrap) and serving (HTTP or HTTPS).

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::auth::throttle::Throttle;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::settings::global::GlobalSettings;
use crate::store::{NewUser, Role, Store};

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Store,
    pub metrics: Metrics,
    pub logins_by_address: Arc<Throttle>,
    pub logins_by_account: Arc<Throttle>,
    /// Global settings are read on every request (IP restrictions), so they are cached here and
    /// refreshed on every local write and every few seconds (other nodes may write them).
    pub global: Arc<RwLock<Arc<GlobalSettings>>>,
    pub hub: Arc<crate::sessions::Hub>,
    pub recorder: Arc<crate::recorder::RecorderService>,
    /// This server in the node registry (issue 15).
    pub node: Arc<crate::cluster::Node>,
    /// One permit per report file being written (`reports.max_concurrent_exports`).
    pub exports: Arc<tokio::sync::Semaphore>,
}

impl AppState {
    pub async fn new(config: Config, store: Store) -> anyhow::Result<AppState> {
        let config = Arc::new(config);
        let auth = &config.auth;
        let metrics = Metrics::new();
        let global = Arc::new(RwLock::new(Arc::new(GlobalSettings::default())));
        let media = crate::media::SfuMediaPlan::start(&config)?;
        metrics.register_media(media.sfu().clone());
        let node = crate::cluster::Node::new(
            &config,
            store.backend(),
            media.sfu().candidate_addr(),
            media.sfu().tcp_candidate_addr().map(|a| a.port()),
            &metrics.registry,
        );
        let recorder = crate::recorder::RecorderService::start(
            config.clone(),
            store.clone(),
            media.sfu().clone(),
            &metrics.registry,
            &node,
        )
        .await?;
        media.set_recorder(recorder.clone());
        let hub = crate::sessions::Hub::new(
            store.clone(),
            config.clone(),
            metrics.clone(),
            Arc::new(media),
            node.clone(),
        );
        let state = AppState {
            exports: Arc::new(tokio::sync::Semaphore::new(
                config.reports.max_concurrent_exports,
            )),
            logins_by_address: Arc::new(Throttle::new(
                auth.max_failed_logins_per_address_per_minute,
                Duration::from_secs(60),
            )),
            logins_by_account: Arc::new(Throttle::new(
                auth.max_failed_logins_per_account_per_15_minutes,
                Duration::from_secs(15 * 60),
            )),
            config,
            store,
            metrics,
            global,
            hub,
            recorder,
            node,
        };
        state.reload_global().await?;
        Ok(state)
    }

    pub fn global(&self) -> Arc<GlobalSettings> {
        self.global
            .read()
            .map(|g| g.clone())
            .unwrap_or_else(|e| e.into_inner().clone())
    }

    pub async fn reload_global(&self) -> anyhow::Result<()> {
        let settings = crate::api::settings::load_global(&self.store).await?;
        let mut slot = self.global.write().unwrap_or_else(|e| e.into_inner());
        *slot = Arc::new(settings);
        Ok(())
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Lens Relay API",
        description = "Administration, organization, settings and sessions of a Lens Relay server. \
                       Errors are `{\"error\": {\"code\", \"message\"}}`."
    ),
    modifiers(&SecurityAddon),
    tags(
        (name = "auth", description = "Login, logout, password"),
        (name = "org", description = "The organization tree and its members"),
        (name = "settings", description = "Technician group settings and Global Settings"),
        (name = "audit", description = "The audit log"),
        (name = "integrations", description = "Post-to-URL, API keys, API tokens, single sign-on"),
        (name = "recordings", description = "Screen recordings of sessions and their uploads"),
        (name = "ops", description = "Health, metrics, this document"),
    )
)]
struct ApiDoc;

struct SecurityAddon;

impl utoipa::Modify for SecurityAddon {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        if let Some(components) = openapi.components.as_mut() {
            components.add_security_scheme(
                "bearer",
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
            );
        }
    }
}

pub fn router(state: AppState) -> Router {
    let (api, openapi) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(crate::api::routes())
        .split_for_parts();
    let openapi_json = Arc::new(
        serde_json::to_string_pretty(&crate::api::openapi::finish(&openapi)).unwrap_or_default(),
    );
    let body_limit = state.config.http.max_body_bytes;
    api.route(
        "/api/v1/openapi.json",
        get(move || {
            let doc = openapi_json.clone();
            async move {
                (
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    (*doc).clone(),
                )
            }
        }),
    )
    .route("/metrics", get(crate::metrics::metrics_handler))
    .route("/ws/customer", get(crate::sessions::customer::upgrade))
    .route("/ws/console", get(crate::sessions::console::upgrade))
    .merge(crate::web::routes())
    .fallback(crate::api::not_found)
    .layer(axum::middleware::from_fn_with_state(
        state.clone(),
        crate::metrics::track,
    ))
    .layer(DefaultBodyLimit::max(body_limit))
    .with_state(state)
}

/// Creates the first master administrator when the store holds no user at all.
pub async fn bootstrap(state: &AppState) -> anyhow::Result<()> {
    bootstrap_store(&state.store, &state.config.bootstrap).await
}

/// `bootstrap` on a store alone (also `lens dev seed`, which runs no server): the master
/// administrator from `LENS_BOOTSTRAP_*`, or one with a generated password, printed once.
pub async fn bootstrap_store(
    store: &Store,
    boot: &crate::config::BootstrapConfig,
) -> anyhow::Result<()> {
    if store.count_users().await? > 0 {
        return Ok(());
    }
    let email = if boot.email.is_empty() {
        "admin@localhost".to_string()
    } else {
        boot.email.clone()
    };
    let (password, generated) = if boot.password.is_empty() {
        (crate::auth::generate_password(), true)
    } else {
        (boot.password.clone(), false)
    };
    create_master(store, &email, &password, generated).await?;
    if generated {
        // Printed once, on purpose: this is how the operator gets in for the first time.
        println!(
            "\n  First start: created master administrator\n    email:    {email}\n    password: {password}\n  \
             The password must be changed at first login.\n"
        );
        tracing::warn!(%email, "created the first master administrator with a generated password (printed on stdout)");
    } else {
        tracing::info!(%email, "created the first master administrator from LENS_BOOTSTRAP_*");
    }
    Ok(())
}

/// Creates a master administrator (bootstrap and `lens admin create-master`).
pub async fn create_master(
    store: &Store,
    email: &str,
    password: &str,
    must_change: bool,
) -> anyhow::Result<i64> {
    crate::api::users::check_email(email).map_err(|e| anyhow::anyhow!(e.message))?;
    let hash = crate::auth::hash_password(password.to_string()).await?;
    let mut tx = store.begin().await?;
    let id = crate::store::users::insert_user(
        &mut tx,
        &NewUser {
            role: Role::MasterAdministrator,
            name: email.split('@').next().unwrap_or("Master").to_string(),
            nickname: String::new(),
            email: email.to_string(),
            sso_id: String::new(),
            description: String::new(),
            password_hash: hash,
            must_change_password: must_change,
            enabled: true,
            group_id: None,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(id)
}

/// Starts the background work of a server: the session scheduler, the outbox worker, the chatlog
/// purge, and the sessions that were live when the server last stopped.
pub async fn start_background(state: &AppState) -> anyhow::Result<()> {
    state.node.register(&state.store).await?;
    tokio::spawn(
        state
            .node
            .clone()
            .run_heartbeat(state.store.clone(), state.hub.clone()),
    );
    if state.node.shares_store() {
        // Several nodes on one PostgreSQL: signaling is routed to each session's owner node.
        state
            .hub
            .set_router(crate::sessions::route::Router::start(state));
    }
    let restored = state.hub.restore().await?;
    if restored > 0 {
        tracing::info!(restored, "restored live sessions");
    }
    tokio::spawn(state.hub.clone().run_scheduler());
    tokio::spawn(state.hub.clone().run_media_events());
    let sms = crate::notify::SmsProvider::from_config(&state.config.sms)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mailer = match crate::notify::Mailer::from_config(&state.config.smtp) {
        Ok(m) => Some(m),
        // No SMTP server: "email via servers" fails with a clear error per message.
        Err(crate::notify::NotifyError::NotConfigured(_)) => None,
        Err(e) => return Err(anyhow::anyhow!("{e}")),
    };
    tokio::spawn(crate::sessions::outbox::run(state.hub.clone(), sms, mailer));
    if let Some(triggers) = state.hub.take_post_triggers() {
        use crate::integrations::post_to_url;
        tokio::spawn(post_to_url::run_builder(
            state.hub.clone(),
            triggers,
            state.hub.post_wake.clone(),
        ));
        tokio::spawn(post_to_url::run_sender(
            state.store.clone(),
            state.config.integrations.clone(),
            state.hub.post_wake.clone(),
        ));
    }
    tokio::spawn(crate::api::reports::run_chatlog_purge(state.clone()));
    // Sessions that ended before the reports stored their times (migration 0007).
    let store = state.store.clone();
    tokio::spawn(async move {
        match store.backfill_session_timings().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(sessions = n, "stored the report times of ended sessions"),
            Err(e) => tracing::warn!(error = %e, "storing the report times of ended sessions"),
        }
    });
    Ok(())
}

pub async fn serve(config: Config) -> anyhow::Result<()> {
    let store = Store::open(&config.database_url()).await?;
    std::fs::create_dir_all(config.recordings_dir())?;
    let state = AppState::new(config.clone(), store).await?;
    bootstrap(&state).await?;
    start_background(&state).await?;
    let refresher = state.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            if let Err(e) = refresher.reload_global().await {
                tracing::warn!(error = %e, "could not refresh global settings");
            }
        }
    });
    let stopping = state.clone();
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    let addr = config.listen;
    if config.tls_enabled() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let tls = axum_server::tls_rustls::RustlsConfig::from_pem_file(
            &config.tls.cert_path,
            &config.tls.key_path,
        )
        .await
        .map_err(|e| anyhow::anyhow!("tls.cert_path / tls.key_path: {e}"))?;
        tracing::info!(%addr, "listening (HTTPS)");
        let handle = axum_server::Handle::new();
        let shutdown = handle.clone();
        tokio::spawn(async move {
            crate::cluster::until_stopped(stopping).await;
            shutdown.graceful_shutdown(Some(Duration::from_secs(10)));
        });
        // TCP_NODELAY: a reply and the event after it must not wait for a delayed ACK (Nagle).
        let acceptor = axum_server::tls_rustls::RustlsAcceptor::new(tls)
            .acceptor(axum_server::accept::NoDelayAcceptor::new());
        axum_server::bind(addr)
            .acceptor(acceptor)
            .handle(handle)
            .serve(app)
            .await?;
    } else {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {addr} (listen): {e}"))?;
        tracing::info!(addr = %listener.local_addr()?, "listening (HTTP)");
        // TCP_NODELAY: a reply and the event after it must not wait for a delayed ACK (Nagle);
        // left on, it cost ~40 ms per protocol step (benches/session_setup.rs).
        use axum::serve::ListenerExt;
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        axum::serve(listener, app)
            .with_graceful_shutdown(crate::cluster::until_stopped(stopping))
            .await?;
    }
    Ok(())
}
