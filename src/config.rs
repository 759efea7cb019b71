//! Server configuration: one documented struct with defaults (see `config/lens.toml`).
//!
//! Layers, lowest first: built-in defaults < TOML file (`--config` or `LENS_CONFIG`) < environment.
//! Every setting `a.b_c` can be set as `LENS_A_B_C`; top-level keys drop the section
//! (`listen` → `LENS_LISTEN`). An unknown key or a bad value stops start-up with an error naming the key.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// HTTP (and WebSocket) listen address.
    pub listen: SocketAddr,
    /// Folder for the SQLite file, recordings and the upload spool.
    pub data_dir: PathBuf,
    /// Empty: SQLite at `<data_dir>/lens.db`. `sqlite://...` or `postgres://...` otherwise.
    pub database_url: String,
    /// Empty: `<data_dir>/recordings`.
    pub recordings_dir: String,
    /// Public base URL used in links sent to customers. Empty: derived from `listen`.
    pub public_url: String,
    pub tls: TlsConfig,
    pub http: HttpConfig,
    pub auth: AuthConfig,
    pub bootstrap: BootstrapConfig,
    pub media: MediaConfig,
    pub sessions: SessionsConfig,
    pub recording: RecordingConfig,
    pub sms: crate::notify::SmsConfig,
    pub smtp: crate::notify::SmtpConfig,
    pub integrations: IntegrationsConfig,
    pub cluster: ClusterConfig,
    pub reports: ReportsConfig,
}

/// Reports (the admin center's Reports tab and `GET /api/v1/reports/{area}`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ReportsConfig {
    /// Report files (HTML, SpreadsheetML, TSV, XLSX) written at once; further requests answer
    /// 429 with Retry-After. Each streams its rows in chunks (a few MB of memory) and keeps one
    /// database connection busy while it reads.
    pub max_concurrent_exports: usize,
    /// A report file whose client takes nothing for this long (it stopped reading) is ended,
    /// freeing its slot: seconds, 1 to 3600.
    pub export_stall_seconds: u64,
}

impl Default for ReportsConfig {
    fn default() -> Self {
        ReportsConfig {
            max_concurrent_exports: 2,
            export_stall_seconds: 60,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM certificate chain. TLS is on when both `cert_path` and `key_path` are set.
    pub cert_path: String,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_path: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Largest accepted JSON request body, in bytes.
    pub max_body_bytes: usize,
    /// Take the client address from the last `X-Forwarded-For` hop, for deployments behind a reverse
    /// proxy. Off by default: a client could otherwise choose its own address and dodge IP restrictions.
    pub trust_forwarded_for: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Lifetime of a login token, in minutes.
    pub token_ttl_minutes: u32,
    /// Failed logins allowed per client address per minute before 429.
    pub max_failed_logins_per_address_per_minute: u32,
    /// Failed logins allowed per account per 15 minutes before 429.
    pub max_failed_logins_per_account_per_15_minutes: u32,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BootstrapConfig {
    /// First master administrator on an empty store. Empty: `admin@localhost`.
    pub email: String,
    /// Its password. Empty: a generated one, printed once, that must be changed at first login.
    pub password: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MediaConfig {
    /// UDP port shared by all WebRTC peers.
    pub udp_port: u16,
    /// Address advertised in ICE candidates (for NAT). Empty: the listen address's IP.
    pub public_ip: String,
    /// Kernel receive / send buffer sizes asked for on the media socket, in bytes (0 = the
    /// kernel's default). Linux caps them at net.core.rmem_max / wmem_max.
    pub udp_recv_buffer_bytes: usize,
    pub udp_send_buffer_bytes: usize,
    /// Media engine shards (threads), each forwarding a share of the sessions; 0 = one per
    /// available core. All share `udp_port`.
    pub shards: usize,
    /// How busy a shard may be (share of one core, 0 to 1) and still take new sessions; the
    /// first shard (which reads `udp_port`) is filled first. 0 = spread from the first session.
    pub shard_fill: f64,
    /// STUN / TURN servers handed to clients in `ice_servers` (see `crate::turn`).
    pub ice_servers: Vec<crate::turn::IceServerConfig>,
    /// coturn's `static-auth-secret`, for entries with `auth = "secret"`. Never returned or logged.
    pub turn_secret: crate::turn::Secret,
    /// Lifetime of minted TURN credentials, in seconds.
    pub turn_credential_ttl_seconds: u32,
    /// `iceTransportPolicy` handed to clients: `all` or `relay` (TURN only).
    pub ice_transport_policy: crate::turn::IceTransportPolicy,
    /// ICE-TCP: the TCP port of the passive candidate offered next to the UDP one, for networks
    /// that block UDP. -1 (the default) = the same number as `udp_port`; 0 = off.
    pub tcp_port: i32,
    /// Seconds without anything (RTP, RTCP, STUN) from a connected peer after which its media
    /// counts as lost: the session goes to Reconnecting (`customer_media_lost` /
    /// `technician_media_lost`) until packets flow again.
    pub lost_after: f64,
    /// Video codecs the server prefers, most wanted first (`vp8`, `vp9`, `h264`); empty: the
    /// phone's own order. The phone is answered with one codec: the first it offers by this order.
    pub video_codecs: Vec<String>,
}

impl MediaConfig {
    /// The TCP port for ICE-TCP, or `None` when it is off.
    pub fn tcp_port(&self) -> Option<u16> {
        match self.tcp_port {
            -1 => Some(self.udp_port),
            0 => None,
            p => u16::try_from(p).ok(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SessionsConfig {
    /// How long a dropped customer or console may take to come back before the session ends as
    /// Disconnected, in seconds.
    pub reconnect_grace_seconds: u32,
    /// Wrong PIN codes or links accepted per client address per minute before answers become
    /// `too_many_attempts` (HTTP 429).
    pub max_failed_code_attempts_per_address_per_minute: u32,
}

/// This server as one node of several on one PostgreSQL store (README "Running several nodes").
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// The node's name in the registry (`GET /api/v1/nodes`), unique among the nodes. It must stay
    /// the same across restarts: a restarted node takes back the live sessions it held. Empty: the
    /// host name and the listen port (`host-8080`).
    pub node_id: String,
    /// Where the other nodes reach this node's HTTP API. Empty: `http://<listen>`.
    pub internal_url: String,
    /// A draining node (SIGTERM with PostgreSQL, or `POST /api/v1/nodes/{id}/drain`) moves its live
    /// sessions to the serving nodes and exits once it holds none or after this many seconds,
    /// whichever comes first.
    pub drain_limit_seconds: u32,
    /// Where a new session (and its room) goes: `least_loaded` (the serving node with the fewest
    /// live sessions; ties stay on the node that was asked) or `local` (always the node asked, for
    /// a load balancer that already spreads the technicians).
    pub placement: Placement,
}

/// See [`ClusterConfig::placement`].
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Placement {
    #[default]
    LeastLoaded,
    Local,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            node_id: String::new(),
            internal_url: String::new(),
            drain_limit_seconds: 600,
            placement: Placement::LeastLoaded,
        }
    }
}

/// Post-to-URL deliveries and single sign-on.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct IntegrationsConfig {
    /// How long one Post-to-URL attempt may take (connect, send, answer), in seconds.
    pub post_timeout_seconds: u32,
    /// Wait before the first retry of a failed Post-to-URL delivery, in seconds; it doubles after
    /// every further failure up to `post_max_retry_seconds`.
    pub post_first_retry_seconds: u32,
    pub post_max_retry_seconds: u32,
    /// Attempts before a delivery is given up (marked failed).
    pub post_max_attempts: u32,
    /// How long an SSO login ticket stays valid, in seconds (it is single-use in any case).
    pub sso_ticket_ttl_seconds: u32,
}

impl Default for IntegrationsConfig {
    fn default() -> Self {
        IntegrationsConfig {
            post_timeout_seconds: 10,
            post_first_retry_seconds: 5,
            post_max_retry_seconds: 3600,
            post_max_attempts: 30,
            sso_ticket_ttl_seconds: 60,
        }
    }
}

/// Screen recording (the group settings decide which sessions; these decide how).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RecordingConfig {
    /// File name (relative to the location; `/` makes folders) without the `.mp4`. Fields:
    /// `{date}` (YYYY-MM-DD, UTC), `{session_id}`, `{technician}`, `{start}` (YYYYMMDDTHHMMSSZ),
    /// `{group}`.
    pub file_name_pattern: String,
    /// Where `\\host\share\dir` locations are mounted on this server (`<root>/host/share/dir`).
    /// Empty: network locations are refused.
    pub network_mount_root: String,
    /// New spooled recordings are refused while the spool (`<recordings_dir>/spool`) holds this.
    pub spool_max_bytes: u64,
    /// Several nodes: a folder every node mounts (same path on each). Each node spools into
    /// `<dir>/<node id>` instead of `<recordings_dir>/spool`, and takes over the pending uploads of
    /// a node whose process is gone. Empty: each node's spool is its own.
    pub shared_spool_dir: String,
    /// Upload attempts before a recording is marked failed (an API retry starts over).
    pub upload_max_attempts: u32,
    /// First retry delay; doubles per attempt up to `upload_backoff_max_seconds`.
    pub upload_backoff_seconds: u64,
    pub upload_backoff_max_seconds: u64,
    /// Also upload FTP / HTTP(S) recordings while the session runs (FTP STOR, chunked PUT); the
    /// spooled copy is kept until the location confirmed it, else the deferred upload takes over.
    pub stream_uploads: bool,
    /// How long a signed recording link (`POST /api/v1/recordings/{id}/link`) plays, in minutes.
    pub link_minutes: u32,
}

impl Default for RecordingConfig {
    fn default() -> Self {
        RecordingConfig {
            file_name_pattern: "{date}/{session_id}_{technician}_{start}".into(),
            network_mount_root: String::new(),
            spool_max_bytes: 20 * 1024 * 1024 * 1024,
            shared_spool_dir: String::new(),
            upload_max_attempts: 10,
            upload_backoff_seconds: 30,
            upload_backoff_max_seconds: 3600,
            stream_uploads: false,
            link_minutes: 15,
        }
    }
}

impl Default for SessionsConfig {
    fn default() -> Self {
        SessionsConfig {
            reconnect_grace_seconds: 30,
            max_failed_code_attempts_per_address_per_minute: 10,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./data"),
            database_url: String::new(),
            recordings_dir: String::new(),
            public_url: String::new(),
            tls: TlsConfig::default(),
            http: HttpConfig::default(),
            auth: AuthConfig::default(),
            bootstrap: BootstrapConfig::default(),
            media: MediaConfig::default(),
            sessions: SessionsConfig::default(),
            recording: RecordingConfig::default(),
            sms: Default::default(),
            smtp: Default::default(),
            integrations: IntegrationsConfig::default(),
            cluster: ClusterConfig::default(),
            reports: ReportsConfig::default(),
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            max_body_bytes: 1024 * 1024,
            trust_forwarded_for: false,
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            token_ttl_minutes: 12 * 60,
            max_failed_logins_per_address_per_minute: 10,
            max_failed_logins_per_account_per_15_minutes: 10,
        }
    }
}

impl MediaConfig {
    /// `video_codecs` as the SFU takes them; an unknown name or a repeated one is an error.
    pub fn video_codec_preference(&self) -> Result<Vec<sfu::VideoCodec>, String> {
        let mut codecs: Vec<sfu::VideoCodec> = Vec::new();
        for name in &self.video_codecs {
            let codec: sfu::VideoCodec = name.parse()?;
            if codecs.contains(&codec) {
                return Err(format!("{codec} is listed twice"));
            }
            codecs.push(codec);
        }
        Ok(codecs)
    }
}

impl Default for MediaConfig {
    fn default() -> Self {
        MediaConfig {
            udp_port: 3478,
            public_ip: String::new(),
            udp_recv_buffer_bytes: sfu::DEFAULT_SOCKET_BUFFER_BYTES,
            udp_send_buffer_bytes: sfu::DEFAULT_SOCKET_BUFFER_BYTES,
            shards: 0,
            shard_fill: sfu::DEFAULT_SHARD_FILL,
            ice_servers: Vec::new(),
            turn_secret: Default::default(),
            turn_credential_ttl_seconds: 3600,
            ice_transport_policy: Default::default(),
            tcp_port: -1,
            lost_after: sfu::DEFAULT_LOST_AFTER.as_secs_f64(),
            video_codecs: Vec::new(),
        }
    }
}

/// Every leaf key, as a dotted path. The environment variable of `a.b_c` is `LENS_A_B_C`; the list
/// exists because `_` is both a separator and part of names. A test checks it against the struct and
/// against `config/lens.toml`, so a new setting cannot go undocumented.
pub const KEYS: &[&str] = &[
    "listen",
    "data_dir",
    "database_url",
    "recordings_dir",
    "public_url",
    "tls.cert_path",
    "tls.key_path",
    "http.max_body_bytes",
    "http.trust_forwarded_for",
    "auth.token_ttl_minutes",
    "auth.max_failed_logins_per_address_per_minute",
    "auth.max_failed_logins_per_account_per_15_minutes",
    "bootstrap.email",
    "bootstrap.password",
    "media.udp_port",
    "media.public_ip",
    "media.udp_recv_buffer_bytes",
    "media.udp_send_buffer_bytes",
    "media.shards",
    "media.shard_fill",
    "media.ice_servers",
    "media.turn_secret",
    "media.turn_credential_ttl_seconds",
    "media.ice_transport_policy",
    "media.tcp_port",
    "media.lost_after",
    "media.video_codecs",
    "sessions.reconnect_grace_seconds",
    "sessions.max_failed_code_attempts_per_address_per_minute",
    "recording.file_name_pattern",
    "recording.network_mount_root",
    "recording.spool_max_bytes",
    "recording.shared_spool_dir",
    "recording.upload_max_attempts",
    "recording.upload_backoff_seconds",
    "recording.upload_backoff_max_seconds",
    "recording.stream_uploads",
    "recording.link_minutes",
    "sms.provider",
    "sms.url",
    "sms.method",
    "sms.format",
    "sms.from",
    "sms.username",
    "sms.password",
    "sms.bearer_token",
    "sms.timeout_seconds",
    "sms.message_id_pointer",
    "smtp.host",
    "smtp.port",
    "smtp.security",
    "smtp.username",
    "smtp.password",
    "smtp.from",
    "smtp.timeout_seconds",
    "smtp.ca_file",
    "integrations.post_timeout_seconds",
    "integrations.post_first_retry_seconds",
    "integrations.post_max_retry_seconds",
    "integrations.post_max_attempts",
    "integrations.sso_ticket_ttl_seconds",
    "cluster.node_id",
    "cluster.internal_url",
    "cluster.drain_limit_seconds",
    "cluster.placement",
    "reports.max_concurrent_exports",
    "reports.export_stall_seconds",
];

pub fn env_name(key: &str) -> String {
    format!("LENS_{}", key.replace('.', "_").to_ascii_uppercase())
}

impl Config {
    /// Loads defaults, then `file` (if any), then `LENS_*` variables from `env`.
    pub fn load(
        file: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, String> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            if !path.exists() {
                return Err(format!(
                    "configuration file {} does not exist",
                    path.display()
                ));
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        // Environment values are parsed like TOML values (numbers, booleans) unless the setting is a
        // string, so that a numeric-looking password stays text. figment's own Env provider is not used
        // because it reads the process environment, which tests must not depend on.
        let defaults = Figment::from(Serialized::defaults(Config::default()));
        let mut overrides = figment::value::Dict::new();
        for key in KEYS {
            if let Some(raw) = env(&env_name(key)) {
                let is_text = matches!(
                    defaults.find_value(key),
                    Ok(figment::value::Value::String(..))
                );
                let is_list = matches!(
                    defaults.find_value(key),
                    Ok(figment::value::Value::Array(..))
                );
                let value: figment::value::Value = if is_text {
                    raw.into()
                } else if is_list && !raw.trim_start().starts_with('[') {
                    // A list also reads as comma-separated words: `h264,vp8`.
                    raw.split(',')
                        .map(|w| w.trim())
                        .filter(|w| !w.is_empty())
                        .map(figment::value::Value::from)
                        .collect::<Vec<_>>()
                        .into()
                } else {
                    raw.parse().unwrap_or_else(|_| raw.into())
                };
                insert_path(&mut overrides, key, value);
            }
        }
        figment = figment.merge(Serialized::defaults(overrides));
        let config: Config = figment.extract().map_err(|e| describe(&e, &env))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), String> {
        let bad =
            |key: &str, why: &str| Err(format!("invalid configuration value for `{key}`: {why}"));
        if !self.database_url.is_empty()
            && !self.database_url.starts_with("sqlite:")
            && !self.database_url.starts_with("postgres://")
            && !self.database_url.starts_with("postgresql://")
        {
            return bad("database_url", "must start with sqlite: or postgres://");
        }
        if self.tls.cert_path.is_empty() != self.tls.key_path.is_empty() {
            return bad(
                "tls.cert_path",
                "tls.cert_path and tls.key_path must be set together",
            );
        }
        if !self.media.public_ip.is_empty() && self.media.public_ip.parse::<IpAddr>().is_err() {
            return bad("media.public_ip", "not an IP address");
        }
        let id = &self.cluster.node_id;
        if id.len() > 64
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return bad(
                "cluster.node_id",
                "up to 64 letters, digits, `-`, `_` and `.`",
            );
        }
        let url = &self.cluster.internal_url;
        if !(url.is_empty() || url.starts_with("http://") || url.starts_with("https://")) {
            return bad(
                "cluster.internal_url",
                "must start with http:// or https://",
            );
        }
        if !(-1..=65535).contains(&self.media.tcp_port) {
            return bad("media.tcp_port", "-1 (same as udp_port), 0 (off) or a port");
        }
        if !(self.media.lost_after.is_finite() && (0.1..=3600.0).contains(&self.media.lost_after)) {
            return bad("media.lost_after", "seconds, from 0.1 to 3600");
        }
        if !(1..=1000).contains(&self.reports.max_concurrent_exports) {
            return bad("reports.max_concurrent_exports", "from 1 to 1000");
        }
        if !(1..=3600).contains(&self.reports.export_stall_seconds) {
            return bad("reports.export_stall_seconds", "from 1 to 3600");
        }
        if !(self.media.shard_fill.is_finite() && (0.0..=1.0).contains(&self.media.shard_fill)) {
            return bad("media.shard_fill", "a share of one core, from 0 to 1");
        }
        if self.media.shards > sfu::MAX_SHARDS {
            return bad("media.shards", &format!("at most {}", sfu::MAX_SHARDS));
        }
        crate::turn::check_config(&self.media.ice_servers, &self.media.turn_secret)
            .map_err(|why| format!("invalid configuration value for {why}"))?;
        if self.media.turn_credential_ttl_seconds < 60
            || self.media.turn_credential_ttl_seconds > 7 * 24 * 3600
        {
            return bad(
                "media.turn_credential_ttl_seconds",
                "must be 60 seconds to 7 days",
            );
        }
        if self.media.ice_transport_policy == crate::turn::IceTransportPolicy::Relay
            && !self
                .media
                .ice_servers
                .iter()
                .any(|s| s.urls.iter().any(|u| u.starts_with("turn")))
        {
            return bad(
                "media.ice_transport_policy",
                "\"relay\" needs a TURN server in media.ice_servers",
            );
        }
        if let Err(e) = self.media.video_codec_preference() {
            return bad("media.video_codecs", &e);
        }
        if !self.public_url.is_empty() {
            match url::Url::parse(&self.public_url) {
                Ok(u) if u.scheme() == "http" || u.scheme() == "https" => {}
                _ => return bad("public_url", "must be an http:// or https:// URL"),
            }
        }
        if self.auth.token_ttl_minutes == 0 {
            return bad("auth.token_ttl_minutes", "must be at least 1");
        }
        if self
            .recording
            .file_name_pattern
            .trim_matches('/')
            .is_empty()
            || self
                .recording
                .file_name_pattern
                .split('/')
                .any(|p| p == "..")
        {
            return bad(
                "recording.file_name_pattern",
                "must name a file and must not contain `..`",
            );
        }
        if self.recording.upload_max_attempts == 0 || self.recording.upload_backoff_seconds == 0 {
            return bad(
                "recording.upload_max_attempts / recording.upload_backoff_seconds",
                "must be at least 1",
            );
        }
        if self.recording.link_minutes == 0 || self.recording.link_minutes > 24 * 60 {
            return bad("recording.link_minutes", "must be 1 to 1440 (a day)");
        }
        if self.sessions.reconnect_grace_seconds == 0
            || self.sessions.reconnect_grace_seconds > 3600
        {
            return bad(
                "sessions.reconnect_grace_seconds",
                "must be 1 to 3600 seconds",
            );
        }
        if self.http.max_body_bytes < 1024 {
            return bad("http.max_body_bytes", "must be at least 1024");
        }
        let i = &self.integrations;
        for (key, value) in [
            ("integrations.post_timeout_seconds", i.post_timeout_seconds),
            (
                "integrations.post_first_retry_seconds",
                i.post_first_retry_seconds,
            ),
            ("integrations.post_max_attempts", i.post_max_attempts),
            (
                "integrations.sso_ticket_ttl_seconds",
                i.sso_ticket_ttl_seconds,
            ),
        ] {
            if value == 0 {
                return bad(key, "must be at least 1");
            }
        }
        if i.post_max_retry_seconds < i.post_first_retry_seconds {
            return bad(
                "integrations.post_max_retry_seconds",
                "must not be below integrations.post_first_retry_seconds",
            );
        }
        Ok(())
    }

    pub fn tls_enabled(&self) -> bool {
        !self.tls.cert_path.is_empty()
    }

    pub fn database_url(&self) -> String {
        if self.database_url.is_empty() {
            format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("lens.db").display()
            )
        } else {
            self.database_url.clone()
        }
    }

    pub fn recordings_dir(&self) -> PathBuf {
        if self.recordings_dir.is_empty() {
            self.data_dir.join("recordings")
        } else {
            PathBuf::from(&self.recordings_dir)
        }
    }

    pub fn public_url(&self) -> String {
        if self.public_url.is_empty() {
            let scheme = if self.tls_enabled() { "https" } else { "http" };
            format!("{scheme}://{}", self.listen)
        } else {
            self.public_url.trim_end_matches('/').to_string()
        }
    }
}

fn insert_path(dict: &mut figment::value::Dict, key: &str, value: figment::value::Value) {
    match key.split_once('.') {
        None => {
            dict.insert(key.to_string(), value);
        }
        Some((head, rest)) => {
            let entry = dict
                .entry(head.to_string())
                .or_insert_with(|| figment::value::Dict::new().into());
            if let figment::value::Value::Dict(_, inner) = entry {
                insert_path(inner, rest, value);
            }
        }
    }
}

/// One line per error, naming the key and where its value came from.
fn describe(error: &figment::Error, env: &impl Fn(&str) -> Option<String>) -> String {
    let mut out = Vec::new();
    for e in error.clone() {
        let key = e.path.join(".");
        let source = if !key.is_empty() && env(&env_name(&key)).is_some() {
            format!(" (from {})", env_name(&key))
        } else {
            match e.metadata.as_ref().and_then(|m| m.source.as_ref()) {
                Some(src) => format!(" (from {src})"),
                None => String::new(),
            }
        };
        if key.is_empty() {
            out.push(format!("invalid configuration{source}: {}", e.kind));
        } else {
            out.push(format!(
                "invalid configuration value for `{key}`{source}: {}",
                e.kind
            ));
        }
    }
    out.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let c = Config::load(None, env_of(&[])).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.data_dir, PathBuf::from("./data"));
        assert_eq!(c.database_url(), "sqlite://./data/lens.db?mode=rwc");
        assert_eq!(c.recordings_dir(), PathBuf::from("./data/recordings"));
        assert!(!c.tls_enabled());
    }

    #[test]
    fn environment_overrides_file_overrides_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("lens.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:9000\"\n[media]\nudp_port = 4000\npublic_ip = \"10.0.0.1\"\n",
        )
        .unwrap();
        let c = Config::load(Some(&file), env_of(&[])).unwrap();
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.media.udp_port, 4000);
        let c = Config::load(
            Some(&file),
            env_of(&[
                ("LENS_LISTEN", "127.0.0.1:9100"),
                ("LENS_MEDIA_UDP_PORT", "5000"),
                ("LENS_DATA_DIR", "/tmp/x"),
                ("LENS_DATABASE_URL", "postgres://a:b@127.0.0.1/db"),
                ("LENS_BOOTSTRAP_EMAIL", "boss@example.com"),
                ("LENS_BOOTSTRAP_PASSWORD", "12345678"),
                ("LENS_MEDIA_PUBLIC_IP", "192.0.2.1"),
            ]),
        )
        .unwrap();
        assert_eq!(c.listen.port(), 9100);
        assert_eq!(c.media.udp_port, 5000);
        assert_eq!(c.media.public_ip, "192.0.2.1");
        assert_eq!(c.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(c.database_url(), "postgres://a:b@127.0.0.1/db");
        assert_eq!(c.bootstrap.email, "boss@example.com");
        // A numeric-looking password stays a string.
        assert_eq!(c.bootstrap.password, "12345678");
    }

    #[test]
    fn a_bad_value_names_its_key() {
        let err = Config::load(None, env_of(&[("LENS_MEDIA_UDP_PORT", "lots")])).unwrap_err();
        assert!(err.contains("media.udp_port"), "{err}");
        let err = Config::load(None, env_of(&[("LENS_LISTEN", "nowhere")])).unwrap_err();
        assert!(err.contains("listen"), "{err}");
        let err = Config::load(None, env_of(&[("LENS_MEDIA_PUBLIC_IP", "x.y")])).unwrap_err();
        assert!(err.contains("media.public_ip"), "{err}");
        let err = Config::load(None, env_of(&[("LENS_MEDIA_SHARDS", "257")])).unwrap_err();
        assert!(err.contains("media.shards"), "{err}");
        let two = Config::load(None, env_of(&[("LENS_MEDIA_SHARDS", "2")])).unwrap();
        assert_eq!(two.media.shards, 2);
        assert_eq!(two.media.tcp_port(), Some(two.media.udp_port));
        let tcp = Config::load(
            None,
            env_of(&[
                ("LENS_MEDIA_TCP_PORT", "0"),
                ("LENS_MEDIA_LOST_AFTER", "1.5"),
            ]),
        )
        .unwrap();
        assert_eq!((tcp.media.tcp_port(), tcp.media.lost_after), (None, 1.5));
        let err = Config::load(None, env_of(&[("LENS_MEDIA_TCP_PORT", "70000")])).unwrap_err();
        assert!(err.contains("media.tcp_port"), "{err}");
        let err = Config::load(None, env_of(&[("LENS_MEDIA_LOST_AFTER", "0")])).unwrap_err();
        assert!(err.contains("media.lost_after"), "{err}");
        for bad in ["1.5", "-0.1", "nan", "half"] {
            let err = Config::load(None, env_of(&[("LENS_MEDIA_SHARD_FILL", bad)])).unwrap_err();
            assert!(err.contains("media.shard_fill"), "{bad}: {err}");
        }
        for (raw, fill) in [("0", 0.0), ("0.25", 0.25), ("1", 1.0)] {
            let c = Config::load(None, env_of(&[("LENS_MEDIA_SHARD_FILL", raw)])).unwrap();
            assert_eq!(c.media.shard_fill, fill, "{raw}");
        }
        // The setting it replaced is refused by name, not ignored.
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("old.toml");
        std::fs::write(&old, "[media]\nreader_rooms = 4\n").unwrap();
        let err = Config::load(Some(&old), env_of(&[])).unwrap_err();
        assert!(err.contains("reader_rooms"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("lens.toml");
        std::fs::write(&file, "[auth]\ntoken_ttl_minutes = \"soon\"\n").unwrap();
        let err = Config::load(Some(&file), env_of(&[])).unwrap_err();
        assert!(err.contains("auth.token_ttl_minutes"), "{err}");
        std::fs::write(&file, "[media]\nvideo_codecs = [\"h264\", \"vp8\"]\n").unwrap();
        let c = Config::load(Some(&file), env_of(&[])).unwrap();
        assert_eq!(
            c.media.video_codec_preference().unwrap(),
            [sfu::VideoCodec::H264, sfu::VideoCodec::Vp8]
        );
        for env in ["vp9, h264", "[\"vp9\", \"h264\"]"] {
            let c = Config::load(None, env_of(&[("LENS_MEDIA_VIDEO_CODECS", env)])).unwrap();
            assert_eq!(c.media.video_codecs, ["vp9", "h264"], "{env}");
        }
        for bad in ["theora", "vp8,vp8"] {
            let err = Config::load(None, env_of(&[("LENS_MEDIA_VIDEO_CODECS", bad)])).unwrap_err();
            assert!(err.contains("media.video_codecs"), "{err}");
        }
        std::fs::write(&file, "[media]\nudp_prot = 1\n").unwrap();
        let err = Config::load(Some(&file), env_of(&[])).unwrap_err();
        assert!(err.contains("udp_prot"), "{err}");
    }

    #[test]
    fn ice_servers_come_from_the_file_and_the_secret_from_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("lens.toml");
        std::fs::write(
            &file,
            r#"
[media]
ice_transport_policy = "relay"
turn_credential_ttl_seconds = 600

[[media.ice_servers]]
urls = ["stun:turn.example.com:3478"]

[[media.ice_servers]]
urls = ["turn:turn.example.com:3478?transport=udp", "turns:turn.example.com:443?transport=tcp"]
auth = "secret"
"#,
        )
        .unwrap();
        // Without the secret the entry cannot mint: start-up stops and says why.
        let err = Config::load(Some(&file), env_of(&[])).unwrap_err();
        assert!(
            err.contains("media.ice_servers[1]") && err.contains("LENS_MEDIA_TURN_SECRET"),
            "{err}"
        );
        let c = Config::load(
            Some(&file),
            env_of(&[("LENS_MEDIA_TURN_SECRET", "12345678901234567890")]),
        )
        .unwrap();
        assert_eq!(c.media.ice_servers.len(), 2);
        assert_eq!(c.media.ice_servers[1].auth, crate::turn::IceAuth::Secret);
        assert_eq!(c.media.turn_secret.0, "12345678901234567890");
        assert_eq!(c.media.turn_credential_ttl_seconds, 600);
        assert_eq!(
            c.media.ice_transport_policy,
            crate::turn::IceTransportPolicy::Relay
        );
        // The secret stays out of Debug output (logs).
        assert!(!format!("{c:?}").contains("12345678901234567890"));

        std::fs::write(
            &file,
            "[[media.ice_servers]]\nurls = [\"turn://turn.example.com\"]\nauth = \"secret\"\n",
        )
        .unwrap();
        let err =
            Config::load(Some(&file), env_of(&[("LENS_MEDIA_TURN_SECRET", "s")])).unwrap_err();
        assert!(
            err.contains("turn://turn.example.com") && err.contains("`//`"),
            "{err}"
        );
        std::fs::write(&file, "[media]\nice_transport_policy = \"relay\"\n").unwrap();
        let err = Config::load(Some(&file), env_of(&[])).unwrap_err();
        assert!(err.contains("media.ice_transport_policy"), "{err}");
        std::fs::write(&file, "[media]\nice_transport_policy = \"udp\"\n").unwrap();
        let err = Config::load(Some(&file), env_of(&[])).unwrap_err();
        assert!(err.contains("media.ice_transport_policy"), "{err}");
    }

    /// Every key is documented in `config/lens.toml`, and that file is itself a valid configuration.
    #[test]
    fn documented_configuration_covers_every_key() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/lens.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        // The sample is all comments; uncommenting it must give the defaults.
        let uncommented: String = text
            .lines()
            .filter_map(|l| l.strip_prefix("# ").or_else(|| l.strip_prefix("#")))
            .filter(|l| {
                let t = l.trim_start();
                t.starts_with('[') || t.contains(" = ")
            })
            .collect::<Vec<_>>()
            .join("\n");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("lens.toml");
        std::fs::write(&file, &uncommented).unwrap();
        let c = Config::load(Some(&file), env_of(&[])).unwrap();
        assert_eq!(c, Config::default());
        let value: toml::Value = toml::from_str(&uncommented).unwrap();
        let mut found = Vec::new();
        collect_keys(&value, "", &mut found);
        let mut expected: Vec<String> = KEYS.iter().map(|s| s.to_string()).collect();
        expected.sort();
        found.sort();
        assert_eq!(found, expected);
        let serialized = toml::Value::try_from(Config::default()).unwrap();
        let mut from_struct = Vec::new();
        collect_keys(&serialized, "", &mut from_struct);
        from_struct.sort();
        assert_eq!(from_struct, expected);
    }

    fn collect_keys(v: &toml::Value, prefix: &str, out: &mut Vec<String>) {
        if let toml::Value::Table(t) = v {
            for (k, v) in t {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                if v.is_table() {
                    collect_keys(v, &path, out);
                } else {
                    out.push(path);
                }
            }
        }
    }
}
