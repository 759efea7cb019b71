//! STUN and TURN servers for clients (`media.ice_servers`): checking the configuration at start and
//! minting what a client gets in `ice_servers` (PROTOCOL.md §5).
//!
//! Shared-secret TURN credentials follow the "TURN REST API" convention
//! (draft-uberti-behave-turn-rest-00) that coturn implements with `use-auth-secret` +
//! `static-auth-secret`: username = `<expiry unix time>:<who>`, credential =
//! base64(HMAC-SHA1(secret, username)). coturn recomputes the credential from the username and
//! refuses it once the expiry has passed, so lens and coturn share nothing but the secret.

use std::fmt;

use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use signaling::protocol::IceServer;

/// A configured secret: printed as `***` by `Debug` so that no log line carries it. Serialized as
/// the plain string (the configuration layers need it); `lens config` masks it itself.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl Secret {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { "***" })
    }
}

/// How an `ice_servers` entry authenticates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IceAuth {
    /// No credentials (STUN).
    #[default]
    None,
    /// The entry's `username` and `credential`, the same for every client.
    Static,
    /// Minted per session / technician from `media.turn_secret`, valid for
    /// `media.turn_credential_ttl_seconds`.
    Secret,
}

/// One `[[media.ice_servers]]` entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IceServerConfig {
    /// `stun:host[:port]`, `turn:host[:port][?transport=udp|tcp]`, `turns:host[:port][?transport=tcp]`.
    pub urls: Vec<String>,
    #[serde(default)]
    pub auth: IceAuth,
    /// Only with `auth = "static"`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub username: String,
    #[serde(default, skip_serializing_if = "Secret::is_empty")]
    pub credential: Secret,
}

/// `RTCConfiguration.iceTransportPolicy` handed to clients.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IceTransportPolicy {
    #[default]
    All,
    /// Clients use relay (TURN) candidates only: for networks where only the TURN server may be
    /// reached, or to hide client addresses from the media server.
    Relay,
}

impl IceTransportPolicy {
    /// What goes into `ice_transport_policy` of a frame: nothing for the browsers' default.
    pub fn for_clients(self) -> Option<String> {
        match self {
            IceTransportPolicy::All => None,
            IceTransportPolicy::Relay => Some("relay".into()),
        }
    }
}

/// Checks one ICE server URL (RFC 7064 / RFC 7065); the error says what is wrong with it.
pub fn check_url(url: &str) -> Result<(), String> {
    let (scheme, rest) = url
        .split_once(':')
        .ok_or("has no scheme (stun:, stuns:, turn: or turns:)")?;
    let turn = match scheme {
        "stun" | "stuns" => false,
        "turn" | "turns" => true,
        _ => {
            return Err(format!(
                "scheme `{scheme}:` is not stun:, stuns:, turn: or turns:"
            ));
        }
    };
    if rest.starts_with("//") {
        return Err("has `//` after the scheme (write `turn:host:port`, not `turn://host`)".into());
    }
    let (hostport, query) = match rest.split_once('?') {
        Some((h, q)) => (h, Some(q)),
        None => (rest, None),
    };
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (addr, after) = v6.split_once(']').ok_or("has an unclosed `[`")?;
        addr.parse::<std::net::Ipv6Addr>()
            .map_err(|_| format!("`[{addr}]` is not an IPv6 address"))?;
        match after {
            "" => (addr, None),
            p => (addr, Some(p.strip_prefix(':').ok_or("has junk after `]`")?)),
        }
    } else {
        match hostport.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    if host.is_empty()
        || !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b':')
    {
        return Err(format!("host `{host}` is not a host name or IP address"));
    }
    if let Some(p) = port
        && !matches!(p.parse::<u16>(), Ok(n) if n > 0)
    {
        return Err(format!("port `{p}` is not 1 to 65535"));
    }
    match query {
        None => Ok(()),
        Some(_) if !turn => Err("stun: URLs take no `?transport=`".into()),
        Some("transport=tcp") => Ok(()),
        Some("transport=udp") if scheme == "turns" => {
            Err("turns: over UDP (DTLS) is not supported by browsers; use `?transport=tcp`".into())
        }
        Some("transport=udp") => Ok(()),
        Some(q) => Err(format!(
            "query `?{q}` is not `?transport=udp` or `?transport=tcp`"
        )),
    }
}

/// Checks `media.ice_servers` against the secret it may need; the error names the entry.
pub fn check_config(servers: &[IceServerConfig], secret: &Secret) -> Result<(), String> {
    for (i, s) in servers.iter().enumerate() {
        let entry = format!("media.ice_servers[{i}]");
        if s.urls.is_empty() {
            return Err(format!("{entry}: `urls` is empty"));
        }
        for url in &s.urls {
            check_url(url).map_err(|why| format!("{entry}: URL `{url}` {why}"))?;
        }
        let has_turn = s.urls.iter().any(|u| u.starts_with("turn"));
        let has_static = !s.username.is_empty() || !s.credential.is_empty();
        match s.auth {
            IceAuth::None if has_turn => {
                return Err(format!(
                    "{entry}: TURN URLs need credentials: auth = \"secret\" or \"static\""
                ));
            }
            IceAuth::None | IceAuth::Secret if has_static => {
                return Err(format!(
                    "{entry}: `username` / `credential` are only for auth = \"static\""
                ));
            }
            IceAuth::Static if s.username.is_empty() || s.credential.is_empty() => {
                return Err(format!(
                    "{entry}: auth = \"static\" needs `username` and `credential`"
                ));
            }
            IceAuth::Secret if secret.is_empty() => {
                return Err(format!(
                    "{entry}: auth = \"secret\" needs media.turn_secret (LENS_MEDIA_TURN_SECRET)"
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

/// The TURN REST API credential for `username`: base64(HMAC-SHA1(secret, username)).
pub fn credential(secret: &str, username: &str) -> String {
    let mut mac =
        Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(username.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// What a client gets in `ice_servers`: `subject` names it in minted usernames (`s<session id>`
/// for a customer, `u<user id>` for a technician's console); `now_unix`: the wall clock (coturn
/// compares the expiry with its own).
pub fn mint(
    servers: &[IceServerConfig],
    secret: &Secret,
    ttl_seconds: u32,
    subject: &str,
    now_unix: u64,
) -> Vec<IceServer> {
    servers
        .iter()
        .map(|s| {
            let (username, credential) = match s.auth {
                IceAuth::None => (None, None),
                IceAuth::Static => (Some(s.username.clone()), Some(s.credential.0.clone())),
                IceAuth::Secret => {
                    let username = format!("{}:{subject}", now_unix + u64::from(ttl_seconds));
                    let credential = credential(&secret.0, &username);
                    (Some(username), Some(credential))
                }
            };
            IceServer {
                urls: s.urls.clone(),
                username,
                credential,
            }
        })
        .collect()
}

/// Wall-clock seconds since the Unix epoch.
pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_is_base64_hmac_sha1() {
        // RFC 2202 test case 2: HMAC-SHA1("Jefe", "what do ya want for nothing?")
        // = effcdf6ae5eb2fa2d27416d5f184df9c259a7c79.
        assert_eq!(
            credential("Jefe", "what do ya want for nothing?"),
            "7/zfauXrL6LSdBbV8YTfnCWafHk="
        );
        // A TURN REST API username, checked with
        // `printf %s 1746352200:s1042 | openssl dgst -sha1 -hmac north-wind -binary | base64`.
        assert_eq!(credential("north-wind", "1746352200:s1042"), OPENSSL_VECTOR);
    }

    const OPENSSL_VECTOR: &str = "egMAVEsUJmV/B5vvHepYan8m/N8=";

    fn secret_entry() -> IceServerConfig {
        IceServerConfig {
            urls: vec![
                "turn:turn.example.com:3478?transport=udp".into(),
                "turns:turn.example.com:443?transport=tcp".into(),
            ],
            auth: IceAuth::Secret,
            ..Default::default()
        }
    }

    #[test]
    fn minted_usernames_carry_expiry_and_subject() {
        let stun = IceServerConfig {
            urls: vec!["stun:stun.example.com:3478".into()],
            ..Default::default()
        };
        let fixed = IceServerConfig {
            urls: vec!["turn:10.0.0.1".into()],
            auth: IceAuth::Static,
            username: "lens".into(),
            credential: Secret("pw".into()),
        };
        let secret = Secret("north-wind".into());
        let out = mint(
            &[stun, secret_entry(), fixed],
            &secret,
            3600,
            "s1042",
            1_746_348_600,
        );
        assert_eq!(out[0].username, None);
        assert_eq!(out[0].credential, None);
        assert_eq!(out[1].username.as_deref(), Some("1746352200:s1042"));
        assert_eq!(out[1].credential.as_deref(), Some(OPENSSL_VECTOR));
        assert_eq!(out[1].urls.len(), 2);
        assert_eq!(out[2].username.as_deref(), Some("lens"));
        assert_eq!(out[2].credential.as_deref(), Some("pw"));
        // The credential never shows in Debug output.
        assert!(!format!("{:?}", out).contains(OPENSSL_VECTOR));
        assert!(!format!("{secret:?}").contains("north"));
    }

    #[test]
    fn urls_are_checked() {
        for good in [
            "stun:stun.example.com",
            "stun:stun.example.com:3478",
            "stun:[2001:db8::1]:3478",
            "turn:127.0.0.1:3478",
            "turn:turn.example.com:3478?transport=udp",
            "turn:turn.example.com:3478?transport=tcp",
            "turns:turn.example.com:443?transport=tcp",
            "turns:turn.example.com",
        ] {
            assert_eq!(check_url(good), Ok(()), "{good}");
        }
        for (bad, why) in [
            ("turn.example.com:3478", "scheme"),
            ("http://turn.example.com", "scheme"),
            ("turn://turn.example.com", "`//`"),
            ("turn:", "host"),
            ("turn:turn example.com", "host"),
            ("turn:turn.example.com:0", "port"),
            ("turn:turn.example.com:70000", "port"),
            ("stun:stun.example.com?transport=udp", "no `?transport"),
            ("turn:turn.example.com?transport=sctp", "query"),
            ("turns:turn.example.com:443?transport=udp", "DTLS"),
            ("turn:[::1", "unclosed"),
        ] {
            let err = check_url(bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn entries_are_checked_against_their_auth() {
        let none = Secret::default();
        let set = Secret("s".into());
        assert_eq!(check_config(&[secret_entry()], &set), Ok(()));
        let err = check_config(&[secret_entry()], &none).unwrap_err();
        assert!(err.contains("media.turn_secret"), "{err}");
        let mut bare = secret_entry();
        bare.auth = IceAuth::None;
        let err = check_config(&[bare], &set).unwrap_err();
        assert!(err.contains("need credentials"), "{err}");
        let mut half = secret_entry();
        half.auth = IceAuth::Static;
        half.username = "u".into();
        let err = check_config(&[half], &set).unwrap_err();
        assert!(err.contains("needs `username` and `credential`"), "{err}");
        let mut mixed = secret_entry();
        mixed.username = "u".into();
        let err = check_config(&[mixed], &set).unwrap_err();
        assert!(err.contains("only for auth = \"static\""), "{err}");
        let empty = IceServerConfig::default();
        let err = check_config(&[secret_entry(), empty], &set).unwrap_err();
        assert!(err.contains("media.ice_servers[1]"), "{err}");
    }
}
