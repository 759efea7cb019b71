//! Email: "email via servers" (SMTP with lettre) and "email via default client" (a `mailto:` link
//! the technician's browser opens in their own mail program).

use std::fmt;
use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Message};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use serde::{Deserialize, Serialize};

use super::{NotifyError, error_chain, percent_encode, redacted, scrub};

/// `[smtp]`: the server used for "email via servers".
#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SmtpConfig {
    /// SMTP server host name. Empty: email via servers is not available.
    pub host: String,
    /// Port; 0: the usual one for `security` (25 none, 587 starttls, 465 tls).
    pub port: u16,
    /// `none` (plain text), `starttls` (upgrade required before anything is sent) or `tls`
    /// (TLS from the first byte, "SMTPS").
    pub security: SmtpSecurity,
    /// User name for SMTP AUTH; empty: no authentication.
    pub username: String,
    /// Password for SMTP AUTH.
    pub password: String,
    /// Sender, `support@example.com` or `Support <support@example.com>`. Required with `host`.
    pub from: String,
    /// Time allowed for one delivery (connect, TLS, AUTH, message), in seconds.
    pub timeout_seconds: u64,
    /// PEM file of extra CA certificates to trust (a private CA); empty: the system's roots only.
    pub ca_file: String,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    None,
    #[default]
    Starttls,
    Tls,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        SmtpConfig {
            host: String::new(),
            port: 0,
            security: SmtpSecurity::Starttls,
            username: String::new(),
            password: String::new(),
            from: String::new(),
            timeout_seconds: 10,
            ca_file: String::new(),
        }
    }
}

impl fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("username", &self.username)
            .field("password", &redacted(&self.password))
            .field("from", &self.from)
            .field("timeout_seconds", &self.timeout_seconds)
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

/// Sends plain-text emails through the configured SMTP server. Built once; each `send` opens its
/// own connection (volumes are a few messages a minute, so no pool). Cloning is cheap.
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    timeout: Duration,
    endpoint: String,
    secrets: Vec<String>,
}

impl fmt::Debug for Mailer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mailer")
            .field("endpoint", &self.endpoint)
            .field("from", &self.from.to_string())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Mailer {
    /// Fails with [`NotifyError::NotConfigured`] when `smtp.host` is empty, so callers can keep
    /// the error and show it when a technician asks for email via servers.
    pub fn from_config(c: &SmtpConfig) -> Result<Mailer, NotifyError> {
        let bad = |key: &'static str, reason: String| NotifyError::Config { key, reason };
        let host = c.host.trim();
        if host.is_empty() {
            return Err(NotifyError::NotConfigured(
                "email via servers is not available: no SMTP server is configured (smtp.host)"
                    .into(),
            ));
        }
        if c.from.trim().is_empty() {
            return Err(bad("smtp.from", "required when smtp.host is set".into()));
        }
        let from: Mailbox = c.from.trim().parse().map_err(|e| {
            bad(
                "smtp.from",
                format!("{:?} is not an email address: {e}", c.from),
            )
        })?;
        if c.timeout_seconds == 0 {
            return Err(bad("smtp.timeout_seconds", "must be at least 1".into()));
        }
        if c.username.is_empty() && !c.password.is_empty() {
            return Err(bad("smtp.password", "set smtp.username too".into()));
        }
        let timeout = Duration::from_secs(c.timeout_seconds);
        let port = match (c.port, c.security) {
            (0, SmtpSecurity::None) => 25,
            (0, SmtpSecurity::Starttls) => 587,
            (0, SmtpSecurity::Tls) => 465,
            (p, _) => p,
        };

        let tls = match c.security {
            SmtpSecurity::None => Tls::None,
            SmtpSecurity::Starttls | SmtpSecurity::Tls => {
                let mut params = TlsParameters::builder(host.to_owned());
                if !c.ca_file.is_empty() {
                    let pem = std::fs::read(&c.ca_file)
                        .map_err(|e| bad("smtp.ca_file", format!("{}: {e}", c.ca_file)))?;
                    let cert = Certificate::from_pem(&pem)
                        .map_err(|e| bad("smtp.ca_file", format!("{}: {e}", c.ca_file)))?;
                    params = params.add_root_certificate(cert);
                }
                let params = params
                    .build_rustls()
                    .map_err(|e| bad("smtp.host", format!("TLS set-up failed: {e}")))?;
                if c.security == SmtpSecurity::Tls {
                    Tls::Wrapper(params)
                } else {
                    // Required, not Opportunistic: a server that does not offer STARTTLS must not
                    // get the credentials or the link in clear text.
                    Tls::Required(params)
                }
            }
        };

        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(port)
            .tls(tls)
            .timeout(Some(timeout));
        if !c.username.is_empty() {
            builder = builder.credentials(Credentials::new(c.username.clone(), c.password.clone()));
        }
        Ok(Mailer {
            transport: builder.build(),
            from,
            timeout,
            endpoint: format!("{host}:{port} ({:?})", c.security).to_lowercase(),
            secrets: vec![c.password.clone()],
        })
    }

    /// Sends a plain-text (UTF-8) message to one recipient.
    pub async fn send(&self, to: &str, subject: &str, body: &str) -> Result<(), NotifyError> {
        let to = check_email_address(to)?;
        if subject.contains(['\r', '\n']) {
            return Err(NotifyError::InvalidMessage(
                "the subject must be a single line".into(),
            ));
        }
        let message = Message::builder()
            .from(self.from.clone())
            .to(Mailbox::new(None, to))
            .subject(subject)
            .header(ContentType::TEXT_PLAIN)
            .body(body.to_owned())
            .map_err(|e| NotifyError::InvalidMessage(e.to_string()))?;
        // lettre's own time-out is per network operation; this bounds the whole delivery.
        match tokio::time::timeout(self.timeout, self.transport.send(message)).await {
            Err(_) => Err(self.timed_out()),
            Ok(Err(e)) if e.is_timeout() => Err(self.timed_out()),
            Ok(Err(e)) => Err(NotifyError::Smtp(format!(
                "{}: {}",
                self.endpoint,
                scrub(&error_chain(&e), &self.secrets)
            ))),
            Ok(Ok(_)) => Ok(()),
        }
    }

    fn timed_out(&self) -> NotifyError {
        NotifyError::Timeout {
            what: "the SMTP server",
            after: self.timeout,
        }
    }
}

/// Parses one plain email address (`name@example.com`, no display name) with lettre's rules.
pub fn check_email_address(to: &str) -> Result<Address, NotifyError> {
    to.trim()
        .parse::<Address>()
        .map_err(|e| NotifyError::InvalidRecipient {
            to: to.to_owned(),
            reason: format!("not an email address ({e})"),
        })
}

/// A `mailto:` URI (RFC 6068) that opens the technician's mail program with the message filled
/// in. Everything but unreserved characters is percent-encoded (spaces as `%20`, not `+`), and
/// line breaks become `%0D%0A` as the RFC requires.
pub fn mailto_link(to: &str, subject: &str, body: &str) -> String {
    let mut out = String::from("mailto:");
    // '@' separates local part and domain and must stay literal.
    percent_encode(to.trim(), b"@", &mut out);
    let mut sep = '?';
    for (name, value) in [("subject", subject), ("body", body)] {
        if value.is_empty() {
            continue;
        }
        out.push(sep);
        sep = '&';
        out.push_str(name);
        out.push('=');
        percent_encode(&crlf(value), &[], &mut out);
    }
    out
}

/// Normalizes `\n`, `\r` and `\r\n` to `\r\n`.
fn crlf(s: &str) -> String {
    s.replace("\r\n", "\n")
        .replace('\r', "\n")
        .replace('\n', "\r\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mailto_encodes_per_rfc_6068() {
        assert_eq!(
            mailto_link(
                "jane.doe+lens@example.com",
                "Your support session",
                "Hello Jane,\nopen https://lens.example.com/c/123456?x=1&y=2\n\nThanks & bye"
            ),
            "mailto:jane.doe%2Blens@example.com?subject=Your%20support%20session\
             &body=Hello%20Jane%2C%0D%0Aopen%20https%3A%2F%2Flens.example.com%2Fc%2F123456%3Fx%3D1%26y%3D2\
             %0D%0A%0D%0AThanks%20%26%20bye"
        );
    }

    #[test]
    fn mailto_handles_crlf_utf8_and_empty_parts() {
        assert_eq!(
            mailto_link("a@b.c", "", "x\r\ny\rz"),
            "mailto:a@b.c?body=x%0D%0Ay%0D%0Az"
        );
        assert_eq!(
            mailto_link("a@b.c", "Grüße 100%", ""),
            "mailto:a@b.c?subject=Gr%C3%BC%C3%9Fe%20100%25"
        );
        assert_eq!(mailto_link("a@b.c", "", ""), "mailto:a@b.c");
        // '?', '&' and '#' in the address cannot start the header part or a fragment.
        assert_eq!(
            mailto_link("we?ird&#@b.c", "s", ""),
            "mailto:we%3Fird%26%23@b.c?subject=s"
        );
    }

    #[test]
    fn addresses_are_checked() {
        assert!(check_email_address(" jane@example.com ").is_ok());
        for bad in [
            "",
            "jane",
            "jane@",
            "@example.com",
            "Jane <jane@example.com>",
            "a b@c.d",
        ] {
            let e = check_email_address(bad).unwrap_err();
            assert_eq!(e.code(), "invalid_recipient", "{bad}");
        }
    }

    #[test]
    fn config_checks() {
        let e = Mailer::from_config(&SmtpConfig::default()).unwrap_err();
        assert!(matches!(e, NotifyError::NotConfigured(_)));
        assert!(e.to_string().contains("smtp.host"), "{e}");
        let mut c = SmtpConfig {
            host: "127.0.0.1".into(),
            ..SmtpConfig::default()
        };
        let e = Mailer::from_config(&c).unwrap_err().to_string();
        assert!(e.contains("`smtp.from`"), "{e}");
        c.from = "not an address".into();
        let e = Mailer::from_config(&c).unwrap_err().to_string();
        assert!(e.contains("`smtp.from`"), "{e}");
        c.from = "Lens Relay <lens@example.com>".into();
        c.password = "hunter2-secret".into();
        c.username = "lens".into();
        let m = Mailer::from_config(&c).unwrap();
        assert!(!format!("{m:?}{c:?}").contains("hunter2-secret"));
        assert!(format!("{m:?}").contains("127.0.0.1:587"), "{m:?}");
        c.ca_file = "/nonexistent/ca.pem".into();
        let e = Mailer::from_config(&c).unwrap_err().to_string();
        assert!(e.contains("`smtp.ca_file`"), "{e}");
    }
}
