//! SMS: a `log` provider for development and a generic HTTP SMS gateway client.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};

use super::{NotifyError, error_chain, percent_encode, redacted, scrub};

/// Largest success body read (for the message id); gateways answer with a few hundred bytes.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;
/// How much of an error body goes into [`NotifyError::GatewayStatus`].
const ERROR_BODY_BYTES: usize = 256;

/// `[sms]`: how SMS messages carrying session links are sent.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SmsConfig {
    /// `log`: nothing is sent, each message is written to the log (development). `http`: a generic
    /// HTTP SMS gateway configured by the keys below.
    pub provider: SmsProviderKind,
    /// Gateway URL. May contain `{to}`, `{text}`, `{from}` (percent-encoded when substituted).
    pub url: String,
    /// `POST`, `PUT` or `GET`. With `GET` the fields go into the URL query instead of a body.
    pub method: SmsHttpMethod,
    /// Body format for `POST`/`PUT`: `form` (application/x-www-form-urlencoded) or `json` (an object
    /// of string fields).
    pub format: SmsBodyFormat,
    /// Sender id or number substituted for `{from}`.
    pub from: String,
    /// Body (or, with `GET`, query) fields: name → template. Empty: `to`, `text`, `from` as
    /// `{to}`, `{text}`, `{from}`. A field whose template renders empty is still sent.
    pub fields: BTreeMap<String, String>,
    /// Extra request headers: name → template (e.g. an API key header).
    pub headers: BTreeMap<String, String>,
    /// HTTP basic auth user name; empty: no basic auth.
    pub username: String,
    /// HTTP basic auth password.
    pub password: String,
    /// Bearer token (`Authorization: Bearer ...`); empty: none. Not together with `username`.
    pub bearer_token: String,
    /// Time allowed for the whole request, in seconds.
    pub timeout_seconds: u64,
    /// RFC 6901 JSON pointer to the gateway's message id in a JSON answer, e.g. `/sid` or
    /// `/messages/0/id`. Empty: no message id is recorded.
    pub message_id_pointer: String,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SmsProviderKind {
    #[default]
    Log,
    Http,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub enum SmsHttpMethod {
    #[default]
    #[serde(rename = "POST", alias = "post")]
    Post,
    #[serde(rename = "PUT", alias = "put")]
    Put,
    #[serde(rename = "GET", alias = "get")]
    Get,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SmsBodyFormat {
    #[default]
    Form,
    Json,
}

impl Default for SmsConfig {
    fn default() -> Self {
        SmsConfig {
            provider: SmsProviderKind::Log,
            url: String::new(),
            method: SmsHttpMethod::Post,
            format: SmsBodyFormat::Form,
            from: String::new(),
            fields: BTreeMap::new(),
            headers: BTreeMap::new(),
            username: String::new(),
            password: String::new(),
            bearer_token: String::new(),
            timeout_seconds: 10,
            message_id_pointer: String::new(),
        }
    }
}

// Header and field templates may hold API keys, and the URL may carry one in its query: only names
// are shown.
impl fmt::Debug for SmsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmsConfig")
            .field("provider", &self.provider)
            .field("url", &redact_url(&self.url))
            .field("method", &self.method)
            .field("format", &self.format)
            .field("from", &self.from)
            .field("fields", &self.fields.keys().collect::<Vec<_>>())
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("username", &self.username)
            .field("password", &redacted(&self.password))
            .field("bearer_token", &redacted(&self.bearer_token))
            .field("timeout_seconds", &self.timeout_seconds)
            .field("message_id_pointer", &self.message_id_pointer)
            .finish()
    }
}

/// The URL without user info and query, for `Debug`.
fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            let had_query = u.query().is_some();
            u.set_query(None);
            let _ = u.set_password(None);
            let _ = u.set_username("");
            let mut s = u.to_string();
            if had_query {
                s.push_str("?***");
            }
            s
        }
        Err(_) if url.is_empty() => String::new(),
        Err(_) => "<unparsable URL>".to_owned(),
    }
}

/// What a successful send reports, for the server's SMS outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmsReceipt {
    /// `log` or `http`.
    pub provider: &'static str,
    /// The gateway's message id, when `message_id_pointer` is set and found in the answer.
    pub message_id: Option<String>,
}

/// The configured way of sending SMS.
#[derive(Debug, Clone)]
pub enum SmsProvider {
    Log,
    Http(HttpSmsGateway),
}

impl SmsProvider {
    pub fn from_config(config: &SmsConfig) -> Result<SmsProvider, NotifyError> {
        Ok(match config.provider {
            SmsProviderKind::Log => SmsProvider::Log,
            SmsProviderKind::Http => SmsProvider::Http(HttpSmsGateway::from_config(config)?),
        })
    }

    /// `log` or `http`.
    pub fn name(&self) -> &'static str {
        match self {
            SmsProvider::Log => "log",
            SmsProvider::Http(_) => "http",
        }
    }

    /// Sends `text` to the phone number `to`. Both are checked first, for every provider, so that
    /// a development setup rejects what production would.
    pub async fn send(&self, to: &str, text: &str) -> Result<SmsReceipt, NotifyError> {
        check_phone_number(to)?;
        if text.trim().is_empty() {
            return Err(NotifyError::InvalidMessage("the SMS text is empty".into()));
        }
        match self {
            SmsProvider::Log => {
                tracing::info!(target: "lens::notify::sms", to, text, "SMS not sent (sms.provider = log)");
                Ok(SmsReceipt {
                    provider: "log",
                    message_id: None,
                })
            }
            SmsProvider::Http(gateway) => gateway.send(to, text).await,
        }
    }
}

/// Accepts `+`, digits and the usual separators (space, `-`, `.`, parentheses), 3 to 20 digits.
/// Gateways differ in what they accept, so this only rejects what no gateway would.
pub fn check_phone_number(to: &str) -> Result<(), NotifyError> {
    let bad = |reason: &str| {
        Err(NotifyError::InvalidRecipient {
            to: to.to_owned(),
            reason: reason.to_owned(),
        })
    };
    let t = to.trim();
    if t.is_empty() {
        return bad("the phone number is empty");
    }
    let rest = t.strip_prefix('+').unwrap_or(t);
    if !rest
        .chars()
        .all(|c| c.is_ascii_digit() || " -.()".contains(c))
    {
        return bad(
            "a phone number may contain only digits, a leading '+', spaces, '-', '.', '(' and ')'",
        );
    }
    let digits = rest.chars().filter(char::is_ascii_digit).count();
    if !(3..=20).contains(&digits) {
        return bad("a phone number has 3 to 20 digits");
    }
    Ok(())
}

enum Auth {
    None,
    Basic { username: String, password: String },
    Bearer(String),
}

/// A generic HTTP SMS gateway, built once from [`SmsConfig`] and reused (it holds a connection
/// pool). Cloning is cheap.
#[derive(Clone)]
pub struct HttpSmsGateway(Arc<Gateway>);

struct Gateway {
    client: reqwest::Client,
    url: String,
    method: SmsHttpMethod,
    format: SmsBodyFormat,
    from: String,
    fields: Vec<(String, String)>,
    headers: Vec<(HeaderName, String)>,
    auth: Auth,
    timeout: Duration,
    message_id_pointer: Option<String>,
    /// Everything that must not appear in an error text.
    secrets: Vec<String>,
}

impl fmt::Debug for HttpSmsGateway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let g = &self.0;
        let auth = match &g.auth {
            Auth::None => "none",
            Auth::Basic { .. } => "basic ***",
            Auth::Bearer(_) => "bearer ***",
        };
        f.debug_struct("HttpSmsGateway")
            .field("url", &redact_url(&g.url))
            .field("method", &g.method)
            .field("format", &g.format)
            .field("from", &g.from)
            .field(
                "fields",
                &g.fields.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .field(
                "headers",
                &g.headers.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .field("auth", &auth)
            .field("timeout", &g.timeout)
            .field("message_id_pointer", &g.message_id_pointer)
            .finish()
    }
}

/// Values substituted into templates.
struct Vars<'a> {
    to: &'a str,
    text: &'a str,
    from: &'a str,
}

impl HttpSmsGateway {
    pub fn from_config(c: &SmsConfig) -> Result<HttpSmsGateway, NotifyError> {
        let bad = |key: &'static str, reason: String| NotifyError::Config { key, reason };
        if c.url.trim().is_empty() {
            return Err(bad(
                "sms.url",
                "required when sms.provider is \"http\"".into(),
            ));
        }
        check_template(&c.url).map_err(|r| bad("sms.url", r))?;
        // Render with sample values so that a bad URL is reported at start-up, not at first use.
        let sample = Vars {
            to: "+15550100",
            text: "test",
            from: &c.from,
        };
        let sample_url = render(&c.url, &sample, Escape::Url);
        match url::Url::parse(&sample_url) {
            Ok(u) if u.scheme() == "http" || u.scheme() == "https" => {}
            Ok(u) => {
                return Err(bad(
                    "sms.url",
                    format!("scheme must be http or https, not {:?}", u.scheme()),
                ));
            }
            Err(e) => return Err(bad("sms.url", e.to_string())),
        }

        let fields: Vec<(String, String)> = if c.fields.is_empty() {
            [("to", "{to}"), ("text", "{text}"), ("from", "{from}")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect()
        } else {
            c.fields
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        };
        for (name, template) in &fields {
            check_template(template).map_err(|r| bad("sms.fields", format!("{name}: {r}")))?;
        }

        let mut headers = Vec::new();
        for (name, template) in &c.headers {
            let header = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| bad("sms.headers", format!("{name:?} is not a header name")))?;
            check_template(template).map_err(|r| bad("sms.headers", format!("{name}: {r}")))?;
            headers.push((header, template.clone()));
        }

        let auth = match (
            c.username.is_empty(),
            c.password.is_empty(),
            c.bearer_token.is_empty(),
        ) {
            (true, true, true) => Auth::None,
            (true, true, false) => Auth::Bearer(c.bearer_token.clone()),
            (false, _, true) => Auth::Basic {
                username: c.username.clone(),
                password: c.password.clone(),
            },
            (true, false, _) => {
                return Err(bad("sms.password", "set sms.username too".into()));
            }
            (false, _, false) => {
                return Err(bad(
                    "sms.bearer_token",
                    "use either sms.username/sms.password or sms.bearer_token, not both".into(),
                ));
            }
        };

        if c.timeout_seconds == 0 {
            return Err(bad("sms.timeout_seconds", "must be at least 1".into()));
        }
        let timeout = Duration::from_secs(c.timeout_seconds);

        let message_id_pointer = match c.message_id_pointer.as_str() {
            "" => None,
            p if p.starts_with('/') => Some(p.to_owned()),
            _ => {
                return Err(bad(
                    "sms.message_id_pointer",
                    "a JSON pointer starts with '/', e.g. \"/sid\"".into(),
                ));
            }
        };

        // reqwest is built without its own crypto provider (the server uses ring); install ring
        // as the process default unless something else already did. Without one reqwest panics.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            // A gateway API does not redirect; following one could resend credentials elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| NotifyError::Gateway(error_chain(&e.without_url())))?;

        // Constant header and field values are often API keys; short ones ("sms", "1") are not
        // worth scrubbing and would mangle error texts.
        let mut secrets = vec![c.password.clone(), c.bearer_token.clone()];
        secrets.extend(
            c.headers
                .values()
                .chain(c.fields.values())
                .filter(|v| v.len() >= 8 && !v.contains('{'))
                .cloned(),
        );

        Ok(HttpSmsGateway(Arc::new(Gateway {
            client,
            url: c.url.clone(),
            method: c.method,
            format: c.format,
            from: c.from.clone(),
            fields,
            headers,
            auth,
            timeout,
            message_id_pointer,
            secrets,
        })))
    }

    async fn send(&self, to: &str, text: &str) -> Result<SmsReceipt, NotifyError> {
        self.0.send(to, text).await
    }
}

impl Gateway {
    async fn send(&self, to: &str, text: &str) -> Result<SmsReceipt, NotifyError> {
        let vars = Vars {
            to,
            text,
            from: &self.from,
        };
        let mut url = url::Url::parse(&render(&self.url, &vars, Escape::Url)).map_err(|e| {
            NotifyError::InvalidMessage(format!("the gateway URL became invalid: {e}"))
        })?;
        let fields: Vec<(&str, String)> = self
            .fields
            .iter()
            .map(|(k, t)| (k.as_str(), render(t, &vars, Escape::None)))
            .collect();

        let method = match self.method {
            SmsHttpMethod::Post => reqwest::Method::POST,
            SmsHttpMethod::Put => reqwest::Method::PUT,
            SmsHttpMethod::Get => reqwest::Method::GET,
        };
        if self.method == SmsHttpMethod::Get {
            url.query_pairs_mut()
                .extend_pairs(fields.iter().map(|(k, v)| (*k, v.as_str())));
        }
        let mut request = self.client.request(method, url);
        if self.method != SmsHttpMethod::Get {
            let (content_type, body) = match self.format {
                SmsBodyFormat::Form => {
                    let body = url::form_urlencoded::Serializer::new(String::new())
                        .extend_pairs(fields.iter().map(|(k, v)| (*k, v.as_str())))
                        .finish();
                    ("application/x-www-form-urlencoded", body)
                }
                SmsBodyFormat::Json => {
                    let object: serde_json::Map<String, serde_json::Value> = fields
                        .into_iter()
                        .map(|(k, v)| (k.to_owned(), serde_json::Value::String(v)))
                        .collect();
                    (
                        "application/json",
                        serde_json::Value::Object(object).to_string(),
                    )
                }
            };
            request = request
                .header(CONTENT_TYPE, HeaderValue::from_static(content_type))
                .body(body);
        }
        for (name, template) in &self.headers {
            let mut value =
                HeaderValue::from_str(&render(template, &vars, Escape::None)).map_err(|_| {
                    NotifyError::InvalidMessage(format!(
                        "header {name} would contain characters an HTTP header cannot carry"
                    ))
                })?;
            value.set_sensitive(true);
            request = request.header(name.clone(), value);
        }
        request = match &self.auth {
            Auth::None => request,
            Auth::Basic { username, password } => request.basic_auth(username, Some(password)),
            Auth::Bearer(token) => request.bearer_auth(token),
        };

        let mut response = request.send().await.map_err(|e| self.request_error(e))?;
        let status = response.status();
        let limit = if status.is_success() {
            MAX_RESPONSE_BYTES
        } else {
            ERROR_BODY_BYTES
        };
        let mut body = Vec::new();
        while body.len() < limit {
            match response.chunk().await {
                Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                Ok(None) => break,
                // A broken error body still leaves the status to report.
                Err(_) if !status.is_success() => break,
                Err(e) => return Err(self.request_error(e)),
            }
        }
        if !status.is_success() {
            body.truncate(ERROR_BODY_BYTES);
            let text = String::from_utf8_lossy(&body);
            return Err(NotifyError::GatewayStatus {
                status: status.as_u16(),
                body: scrub(text.trim(), &self.secrets),
            });
        }
        Ok(SmsReceipt {
            provider: "http",
            message_id: self.message_id(&body),
        })
    }

    fn message_id(&self, body: &[u8]) -> Option<String> {
        let pointer = self.message_id_pointer.as_deref()?;
        let id = serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| match v.pointer(pointer)? {
                serde_json::Value::String(s) => Some(s.clone()),
                serde_json::Value::Number(n) => Some(n.to_string()),
                _ => None,
            });
        if id.is_none() {
            // The message went out; a missing id is worth a note, not a failure.
            tracing::warn!(target: "lens::notify::sms", pointer, "SMS gateway answer has no message id at sms.message_id_pointer");
        }
        id
    }

    fn request_error(&self, e: reqwest::Error) -> NotifyError {
        if e.is_timeout() {
            return NotifyError::Timeout {
                what: "the SMS gateway",
                after: self.timeout,
            };
        }
        // without_url: the URL may carry an API key in its query.
        NotifyError::Gateway(scrub(&error_chain(&e.without_url()), &self.secrets))
    }
}

#[derive(Clone, Copy)]
enum Escape {
    /// Raw: the caller's serializer (form, JSON, query) escapes.
    None,
    /// Percent-encoded, for values put straight into the URL template.
    Url,
}

/// Substitutes `{to}`, `{text}` and `{from}`; any other text, braces included, is copied as is.
fn render(template: &str, vars: &Vars<'_>, escape: Escape) -> String {
    let mut out = String::with_capacity(template.len() + vars.text.len());
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let tail = &rest[start..];
        let (value, len) = if tail.starts_with("{to}") {
            (Some(vars.to), 4)
        } else if tail.starts_with("{text}") {
            (Some(vars.text), 6)
        } else if tail.starts_with("{from}") {
            (Some(vars.from), 6)
        } else {
            (None, 1)
        };
        match (value, escape) {
            (Some(v), Escape::None) => out.push_str(v),
            (Some(v), Escape::Url) => percent_encode(v, &[], &mut out),
            (None, _) => out.push('{'),
        }
        rest = &tail[len..];
    }
    out.push_str(rest);
    out
}

/// Rejects `{word}` placeholders other than the three known ones: a typo such as `{phone}` would
/// otherwise be sent literally.
fn check_template(template: &str) -> Result<(), String> {
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        let tail = &rest[start + 1..];
        if let Some(end) = tail.find('}') {
            let name = &tail[..end];
            if !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !matches!(name, "to" | "text" | "from")
            {
                return Err(format!(
                    "unknown placeholder {{{name}}} (known: {{to}}, {{text}}, {{from}})"
                ));
            }
        }
        rest = tail;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Vars<'static> {
        Vars {
            to: "+1 555",
            text: "a&b=c ü\"",
            from: "Lens",
        }
    }

    #[test]
    fn render_substitutes_and_keeps_other_braces() {
        assert_eq!(
            render("{\"x\":\"{to}\"} {text}{from}{", &vars(), Escape::None),
            "{\"x\":\"+1 555\"} a&b=c ü\"Lens{"
        );
        assert_eq!(
            render("https://h/send/{to}?m={text}", &vars(), Escape::Url),
            "https://h/send/%2B1%20555?m=a%26b%3Dc%20%C3%BC%22"
        );
    }

    #[test]
    fn unknown_placeholders_are_rejected() {
        assert!(check_template("{to} {text} {from} {\"a\": 1} {}").is_ok());
        let err = check_template("{phone}").unwrap_err();
        assert!(err.contains("{phone}"), "{err}");
    }

    #[test]
    fn phone_numbers() {
        for ok in ["+1 (555) 010-0100", "0611223344", "+44.20.7946.0958"] {
            assert!(check_phone_number(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "  ",
            "12",
            "+1555abc",
            "1555\n1234",
            "+123456789012345678901",
        ] {
            assert!(check_phone_number(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn config_errors_name_the_key() {
        let mut c = SmsConfig {
            provider: SmsProviderKind::Http,
            ..SmsConfig::default()
        };
        let e = SmsProvider::from_config(&c).unwrap_err().to_string();
        assert!(e.contains("`sms.url`"), "{e}");
        c.url = "ftp://example.com/".into();
        let e = SmsProvider::from_config(&c).unwrap_err().to_string();
        assert!(e.contains("scheme"), "{e}");
        c.url = "https://example.com/send".into();
        c.username = "u".into();
        c.bearer_token = "t0ken-secret".into();
        let e = SmsProvider::from_config(&c).unwrap_err().to_string();
        assert!(
            e.contains("`sms.bearer_token`") && !e.contains("t0ken-secret"),
            "{e}"
        );
        c.bearer_token.clear();
        c.headers.insert("bad header".into(), "x".into());
        let e = SmsProvider::from_config(&c).unwrap_err().to_string();
        assert!(e.contains("`sms.headers`"), "{e}");
    }

    #[test]
    fn debug_redacts_secrets() {
        let c = SmsConfig {
            provider: SmsProviderKind::Http,
            url: "https://user:urlpass@example.com/send?api_key=querysecret".into(),
            username: "acct".into(),
            password: "pw-secret".into(),
            bearer_token: String::new(),
            headers: [("X-Api-Key".to_owned(), "header-secret".to_owned())].into(),
            fields: [("api_key".to_owned(), "field-secret".to_owned())].into(),
            ..SmsConfig::default()
        };
        let gateway = SmsProvider::from_config(&c).unwrap();
        for text in [format!("{c:?}"), format!("{gateway:?}")] {
            for secret in [
                "urlpass",
                "querysecret",
                "pw-secret",
                "header-secret",
                "field-secret",
            ] {
                assert!(!text.contains(secret), "{secret} leaked: {text}");
            }
            assert!(
                text.contains("X-Api-Key") || text.contains("x-api-key"),
                "{text}"
            );
        }
    }
}
