//! Sending a session link to a customer: by SMS ([`SmsProvider`]), by email through an SMTP server
//! ([`Mailer`], "email via servers") or through the technician's own mail program ([`mailto_link`],
//! "email via default client").
//!
//! Configuration comes from the `[sms]` and `[smtp]` sections ([`SmsConfig`], [`SmtpConfig`]).
//! Secrets in them (passwords, tokens, header and field templates) never reach logs or error
//! messages: the `Debug` impls redact them and error texts are scrubbed of them.

pub mod email;
pub mod sms;

use std::time::Duration;

pub use email::{Mailer, SmtpConfig, SmtpSecurity, check_email_address, mailto_link};
pub use sms::{
    HttpSmsGateway, SmsBodyFormat, SmsConfig, SmsHttpMethod, SmsProvider, SmsProviderKind,
    SmsReceipt,
};

/// Why a message could not be sent. The texts are meant for the technician or administrator and
/// never contain credentials.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// The channel is switched off in the configuration (e.g. `smtp.host` is empty).
    #[error("{0}")]
    NotConfigured(String),
    /// A configuration value is unusable; `key` is the dotted configuration key.
    #[error("invalid configuration value for `{key}`: {reason}")]
    Config { key: &'static str, reason: String },
    /// The phone number or email address given for the customer is not usable.
    #[error("invalid recipient {to:?}: {reason}")]
    InvalidRecipient { to: String, reason: String },
    /// The message itself cannot be sent (empty text, a character a header cannot carry, ...).
    #[error("invalid message: {0}")]
    InvalidMessage(String),
    /// No answer in time. The message may or may not have been delivered.
    #[error("{what} did not answer within {} s", .after.as_secs_f32())]
    Timeout { what: &'static str, after: Duration },
    /// The SMS gateway answered with a non-2xx status; `body` is its first 256 bytes.
    #[error("SMS gateway answered HTTP {status}: {body}")]
    GatewayStatus { status: u16, body: String },
    /// The SMS gateway could not be reached or its answer could not be read.
    #[error("SMS gateway request failed: {0}")]
    Gateway(String),
    /// The SMTP server could not be reached, refused the message or failed the TLS handshake.
    #[error("SMTP delivery failed: {0}")]
    Smtp(String),
}

impl NotifyError {
    /// A stable, machine-readable code for API error bodies.
    pub fn code(&self) -> &'static str {
        match self {
            NotifyError::NotConfigured(_) => "not_configured",
            NotifyError::Config { .. } => "invalid_configuration",
            NotifyError::InvalidRecipient { .. } => "invalid_recipient",
            NotifyError::InvalidMessage(_) => "invalid_message",
            NotifyError::Timeout { .. } => "timeout",
            NotifyError::GatewayStatus { .. } | NotifyError::Gateway(_) => "sms_gateway_error",
            NotifyError::Smtp(_) => "smtp_error",
        }
    }

    /// True when the caller (technician) can fix it by changing the recipient or text; false for
    /// configuration and delivery problems.
    pub fn is_caller_error(&self) -> bool {
        matches!(
            self,
            NotifyError::InvalidRecipient { .. } | NotifyError::InvalidMessage(_)
        )
    }
}

/// Replaces every occurrence of each non-empty secret with `***`. Applied to any text that comes
/// from a remote server or library error before it goes into a [`NotifyError`], because servers
/// sometimes echo request headers or credentials back.
pub(crate) fn scrub(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_owned();
    for s in secrets.iter().filter(|s| !s.is_empty()) {
        out = out.replace(s.as_str(), "***");
    }
    out
}

/// Formats an error and its source chain on one line ("a: b: c"); top-level library errors are
/// often too terse alone ("error sending request").
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        // Libraries often repeat their source's text, or prefix it again: keep the longer form once.
        if parts.iter().any(|p| p.contains(&text)) {
            // Already said.
        } else if let Some(last) = parts.last_mut().filter(|l| text.contains(l.as_str())) {
            *last = text;
        } else {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

/// Percent-encodes everything except RFC 3986 unreserved characters and the bytes in `keep`.
/// Spaces become `%20` (never `+`), which is right in mailto URIs and in any URL part.
pub(crate) fn percent_encode(s: &str, keep: &[u8], out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) || keep.contains(&b) {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
    }
}

/// For `Debug` impls: `***` for a set secret, empty for an unset one (worth seeing when debugging).
pub(crate) fn redacted(secret: &str) -> &'static str {
    if secret.is_empty() { "" } else { "***" }
}
