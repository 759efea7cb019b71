//! The HTTP SMS gateway against a real HTTP server (axum) on 127.0.0.1.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use base64::Engine;
use lens::notify::{
    NotifyError, SmsBodyFormat, SmsConfig, SmsHttpMethod, SmsProvider, SmsProviderKind,
};

#[derive(Debug, Clone)]
struct Received {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
}

#[derive(Clone)]
struct Gateway {
    received: Arc<Mutex<Vec<Received>>>,
    status: StatusCode,
    answer: String,
    delay: Duration,
}

async fn handle(
    State(g): State<Gateway>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    g.received.lock().unwrap().push(Received {
        method,
        uri,
        headers,
        body,
    });
    tokio::time::sleep(g.delay).await;
    (g.status, g.answer.clone())
}

/// Starts a gateway answering every request with `status` and `answer`; returns its base URL.
async fn start_gateway(
    status: u16,
    answer: &str,
    delay: Duration,
) -> (String, Arc<Mutex<Vec<Received>>>) {
    let received = Arc::new(Mutex::new(Vec::new()));
    let state = Gateway {
        received: received.clone(),
        status: StatusCode::from_u16(status).unwrap(),
        answer: answer.to_owned(),
        delay,
    };
    let app = Router::new().fallback(handle).with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), received)
}

fn http_config(url: String) -> SmsConfig {
    SmsConfig {
        provider: SmsProviderKind::Http,
        url,
        from: "LensRelay".into(),
        ..SmsConfig::default()
    }
}

fn only(received: &Arc<Mutex<Vec<Received>>>) -> Received {
    let r = received.lock().unwrap();
    assert_eq!(r.len(), 1, "expected exactly one request: {r:?}");
    r[0].clone()
}

const TEXT: &str = "Your link: https://lens.example.com/c/123456?a=1&b=2 \"quoted\" ü €\nline 2";

#[tokio::test]
async fn form_post_with_basic_auth_headers_and_message_id() {
    let (base, received) = start_gateway(201, r#"{"data":{"id":"msg-42"}}"#, Duration::ZERO).await;
    let mut c = http_config(format!("{base}/api/send"));
    c.username = "acct".into();
    c.password = "p@ss:word&=".into();
    c.headers = BTreeMap::from([
        ("X-Api-Key".to_owned(), "key-123".to_owned()),
        ("X-Recipient".to_owned(), "to={to}".to_owned()),
    ]);
    c.message_id_pointer = "/data/id".into();
    let sms = SmsProvider::from_config(&c).unwrap();
    let receipt = sms.send("+1 555 0100", TEXT).await.unwrap();
    assert_eq!(receipt.provider, "http");
    assert_eq!(receipt.message_id.as_deref(), Some("msg-42"));

    let r = only(&received);
    assert_eq!(r.method, Method::POST);
    assert_eq!(r.uri.path(), "/api/send");
    assert_eq!(
        r.headers["content-type"],
        "application/x-www-form-urlencoded"
    );
    assert_eq!(r.headers["x-api-key"], "key-123");
    assert_eq!(r.headers["x-recipient"], "to=+1 555 0100");
    let auth = r.headers["authorization"].to_str().unwrap();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(auth.strip_prefix("Basic ").unwrap())
        .unwrap();
    assert_eq!(decoded, b"acct:p@ss:word&=");
    let pairs: BTreeMap<String, String> =
        url::form_urlencoded::parse(&r.body).into_owned().collect();
    let expected: BTreeMap<String, String> =
        [("to", "+1 555 0100"), ("text", TEXT), ("from", "LensRelay")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
    assert_eq!(pairs, expected);
}

#[tokio::test]
async fn json_put_with_bearer_token_and_custom_fields() {
    let (base, received) = start_gateway(200, "OK, not JSON", Duration::ZERO).await;
    let mut c = http_config(format!("{base}/v2/messages"));
    c.method = SmsHttpMethod::Put;
    c.format = SmsBodyFormat::Json;
    c.bearer_token = "tok-secret-value".into();
    c.fields = BTreeMap::from([
        ("To".to_owned(), "{to}".to_owned()),
        ("Body".to_owned(), "Hi! {text}".to_owned()),
        ("From".to_owned(), "{from}".to_owned()),
        ("Literal".to_owned(), "{\"x\": 1} {}".to_owned()),
    ]);
    // Configured but absent from a non-JSON answer: still a success, just no id.
    c.message_id_pointer = "/sid".into();
    let sms = SmsProvider::from_config(&c).unwrap();
    let receipt = sms.send("+441234567890", TEXT).await.unwrap();
    assert_eq!(receipt.message_id, None);

    let r = only(&received);
    assert_eq!(r.method, Method::PUT);
    assert_eq!(r.headers["content-type"], "application/json");
    assert_eq!(r.headers["authorization"], "Bearer tok-secret-value");
    let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({
            "To": "+441234567890",
            "Body": format!("Hi! {TEXT}"),
            "From": "LensRelay",
            "Literal": "{\"x\": 1} {}",
        })
    );
}

#[tokio::test]
async fn get_puts_fields_in_the_query_and_escapes_url_templates() {
    let (base, received) = start_gateway(200, r#"{"id": 7}"#, Duration::ZERO).await;
    let mut c = http_config(format!("{base}/send/{{to}}?api_key=abc&sender={{from}}"));
    c.method = SmsHttpMethod::Get;
    c.fields = BTreeMap::from([("msg".to_owned(), "{text}".to_owned())]);
    c.message_id_pointer = "/id".into();
    c.from = "Lens & Co".into();
    let sms = SmsProvider::from_config(&c).unwrap();
    let receipt = sms.send("+1 555 0100", TEXT).await.unwrap();
    assert_eq!(receipt.message_id.as_deref(), Some("7"));

    let r = only(&received);
    assert_eq!(r.method, Method::GET);
    assert!(r.body.is_empty());
    assert!(r.headers.get("content-type").is_none());
    assert_eq!(r.uri.path(), "/send/%2B1%20555%200100");
    let query: BTreeMap<String, String> =
        url::form_urlencoded::parse(r.uri.query().unwrap().as_bytes())
            .into_owned()
            .collect();
    let expected: BTreeMap<String, String> =
        [("api_key", "abc"), ("sender", "Lens & Co"), ("msg", TEXT)]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
    assert_eq!(query, expected);
}

#[tokio::test]
async fn error_status_carries_status_and_first_256_bytes_without_secrets() {
    let answer = format!("denied for password hunter2-pass; {}", "x".repeat(1000));
    let (base, _) = start_gateway(403, &answer, Duration::ZERO).await;
    let mut c = http_config(format!("{base}/send"));
    c.username = "acct".into();
    c.password = "hunter2-pass".into();
    let err = SmsProvider::from_config(&c)
        .unwrap()
        .send("+15550100", "hi")
        .await
        .unwrap_err();
    match &err {
        NotifyError::GatewayStatus { status, body } => {
            assert_eq!(*status, 403);
            assert!(body.starts_with("denied for password ***;"), "{body}");
            assert!(body.len() <= 256, "{}", body.len());
        }
        other => panic!("unexpected: {other:?}"),
    }
    let text = format!("{err} {err:?}");
    assert!(text.contains("HTTP 403"), "{text}");
    eprintln!("status: {err}");
    assert!(!text.contains("hunter2-pass"), "{text}");

    // 5xx and redirects are errors too (redirects are not followed).
    for status in [500, 302] {
        let (base, received) = start_gateway(status, "", Duration::ZERO).await;
        let err = SmsProvider::from_config(&http_config(format!("{base}/send")))
            .unwrap()
            .send("+15550100", "hi")
            .await
            .unwrap_err();
        assert!(
            matches!(err, NotifyError::GatewayStatus { status: s, .. } if s == status),
            "{err:?}"
        );
        assert_eq!(received.lock().unwrap().len(), 1);
    }
}

#[tokio::test]
async fn slow_gateway_times_out() {
    let (base, _) = start_gateway(200, "", Duration::from_secs(5)).await;
    let mut c = http_config(format!("{base}/send"));
    c.timeout_seconds = 1;
    let sms = SmsProvider::from_config(&c).unwrap();
    let started = Instant::now();
    let err = sms.send("+15550100", "hi").await.unwrap_err();
    let took = started.elapsed();
    assert!(matches!(err, NotifyError::Timeout { .. }), "{err:?}");
    assert_eq!(err.code(), "timeout");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "{took:?}"
    );
    assert!(err.to_string().contains("1 s"), "{err}");
}

#[tokio::test]
async fn unreachable_gateway_error_hides_url_and_credentials() {
    // Bind and drop, so that nothing listens on the port.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut c = http_config(format!(
        "http://127.0.0.1:{port}/send?api_key=query-secret-123"
    ));
    c.bearer_token = "bearer-secret-123".into();
    let err = SmsProvider::from_config(&c)
        .unwrap()
        .send("+15550100", "hi")
        .await
        .unwrap_err();
    assert!(matches!(err, NotifyError::Gateway(_)), "{err:?}");
    eprintln!("unreachable: {err}");
    let text = format!("{err} {err:?}");
    assert!(!text.contains("query-secret-123"), "{text}");
    assert!(!text.contains("bearer-secret-123"), "{text}");
}

#[tokio::test]
async fn log_provider_and_input_checks() {
    let sms = SmsProvider::from_config(&SmsConfig::default()).unwrap();
    assert_eq!(sms.name(), "log");
    let receipt = sms.send("+15550100", "hello").await.unwrap();
    assert_eq!(receipt.provider, "log");
    assert_eq!(receipt.message_id, None);
    let err = sms.send("call me", "hello").await.unwrap_err();
    assert!(
        err.is_caller_error() && err.code() == "invalid_recipient",
        "{err:?}"
    );
    let err = sms.send("+15550100", "  ").await.unwrap_err();
    assert_eq!(err.code(), "invalid_message");

    // A header value that cannot be carried is a clear error, not a panic or a broken request.
    let (base, received) = start_gateway(200, "", Duration::ZERO).await;
    let mut c = http_config(format!("{base}/send"));
    c.headers = BTreeMap::from([("X-Text".to_owned(), "{text}".to_owned())]);
    let err = SmsProvider::from_config(&c)
        .unwrap()
        .send("+15550100", "two\nlines")
        .await
        .unwrap_err();
    assert_eq!(err.code(), "invalid_message", "{err:?}");
    assert!(received.lock().unwrap().is_empty());
}
