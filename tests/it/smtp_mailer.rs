//! The SMTP mailer against a real SMTP server (Python's aiosmtpd) on 127.0.0.1.
//!
//! The server is started by each test (plain, AUTH, STARTTLS or implicit TLS) from the Python in
//! `LENS_TEST_SMTP_PYTHON` (scripts/lib/smtp.sh exports the test venv's), else `python3`. Without
//! aiosmtpd the tests are skipped, except under `CI=true`, where they fail.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lens::notify::{Mailer, NotifyError, SmtpConfig, SmtpSecurity};
use mail_parser::MessageParser;

/// A Maildir-writing SMTP server. Prints `READY <port>` once it accepts connections and exits when
/// its stdin closes (so it cannot outlive a killed test run).
const SINK: &str = r#"
import argparse, logging, os, socket, ssl, sys, warnings
from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox
from aiosmtpd.smtp import AuthResult

p = argparse.ArgumentParser()
p.add_argument("--dir", required=True)
p.add_argument("--auth")                      # user:password required for AUTH
p.add_argument("--starttls", nargs=2)         # cert key: offer (and require) STARTTLS
p.add_argument("--tls", nargs=2)              # cert key: TLS from the first byte
a = p.parse_args()
# Quiet: rejected handshakes and AUTH-without-TLS are what some tests are about.
warnings.filterwarnings("ignore")
logging.getLogger("mail.log").setLevel(logging.CRITICAL)

def context(cert_key):
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(*cert_key)
    return ctx

kwargs = {}
if a.auth:
    user, password = a.auth.split(":", 1)
    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = auth_data.login.decode() == user and auth_data.password.decode() == password
        return AuthResult(success=ok, handled=False)
    kwargs.update(authenticator=authenticator, auth_require_tls=bool(a.starttls), auth_required=True)
if a.starttls:
    kwargs.update(tls_context=context(a.starttls), require_starttls=True)

s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
controller = Controller(Mailbox(a.dir), hostname="127.0.0.1", port=port,
                        ssl_context=context(a.tls) if a.tls else None, **kwargs)
controller.start()
print("READY", port, flush=True)
sys.stdin.read()
controller.stop()
os._exit(0)
"#;

struct SmtpSink {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    _tmp: tempfile::TempDir,
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn python() -> String {
    std::env::var("LENS_TEST_SMTP_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// `None` (test skipped) when aiosmtpd is missing outside CI.
fn start_sink(args: &[&str]) -> Option<SmtpSink> {
    let py = python();
    let has_aiosmtpd = Command::new(&py)
        .args(["-c", "import aiosmtpd"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !has_aiosmtpd {
        let msg = format!(
            "aiosmtpd not importable by {py} (pip install aiosmtpd, or set LENS_TEST_SMTP_PYTHON)"
        );
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{msg}");
        }
        eprintln!("SKIPPED: {msg}");
        return None;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("maildir");
    let mut child = Command::new(&py)
        .args(["-c", SINK, "--dir"])
        .arg(&dir)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line
        .strip_prefix("READY ")
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("SMTP sink did not start: {line:?}"));
    Some(SmtpSink {
        child: Some(child),
        port,
        dir,
        _tmp: tmp,
    })
}

/// The messages in a Maildir (`new/`), raw.
fn messages(dir: &Path) -> Vec<Vec<u8>> {
    let Ok(entries) = std::fs::read_dir(dir.join("new")) else {
        return Vec::new();
    };
    entries
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect()
}

fn config(port: u16, security: SmtpSecurity) -> SmtpConfig {
    SmtpConfig {
        host: "127.0.0.1".into(),
        port,
        security,
        from: "Lens Relay <lens@example.com>".into(),
        timeout_seconds: 5,
        ..SmtpConfig::default()
    }
}

const SUBJECT: &str = "Your support session — Lens";
const BODY: &str = "Hello Jöhn,\r\n\r\nopen https://lens.example.com/c/123456?token=abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz to start the video session.\r\n\r\n.\r\nA line with a lone dot above.\r\n";

fn assert_delivered(sink: &SmtpSink, to: &str) {
    let all = messages(&sink.dir);
    assert_eq!(all.len(), 1, "expected one message");
    let raw = &all[0];
    let msg = MessageParser::default().parse(raw).unwrap();
    assert_eq!(msg.subject(), Some(SUBJECT));
    let to_addr = msg.to().and_then(|a| a.first()).and_then(|a| a.address());
    assert_eq!(to_addr, Some(to));
    let from = msg.from().and_then(|a| a.first()).unwrap();
    assert_eq!(from.address(), Some("lens@example.com"));
    assert_eq!(from.name(), Some("Lens Relay"));
    let body = msg.body_text(0).unwrap();
    // The transfer adds a final line break.
    assert_eq!(
        body.replace("\r\n", "\n").trim_end(),
        BODY.replace("\r\n", "\n").trim_end()
    );
    // aiosmtpd's Mailbox handler records the envelope recipient.
    let rcpt = msg.header_raw("X-RcptTo").unwrap_or_default();
    assert!(rcpt.contains(to), "{rcpt}");
}

fn write_cert(dir: &Path) -> (PathBuf, PathBuf) {
    let cert =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    let (c, k) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&c, cert.cert.pem()).unwrap();
    std::fs::write(&k, cert.signing_key.serialize_pem()).unwrap();
    (c, k)
}

#[tokio::test]
async fn plain_smtp_delivers_to_subject_and_body() {
    let Some(sink) = start_sink(&[]) else { return };
    let mailer = Mailer::from_config(&config(sink.port, SmtpSecurity::None)).unwrap();
    mailer
        .send("john.doe@example.org", SUBJECT, BODY)
        .await
        .unwrap();
    assert_delivered(&sink, "john.doe@example.org");
}

#[tokio::test]
async fn auth_with_username_and_password() {
    let Some(sink) = start_sink(&["--auth", "lens:s3cret-pass"]) else {
        return;
    };
    let mut c = config(sink.port, SmtpSecurity::None);
    c.username = "lens".into();
    c.password = "wrong-pass-123".into();
    let err = Mailer::from_config(&c)
        .unwrap()
        .send("john@example.org", SUBJECT, BODY)
        .await
        .unwrap_err();
    assert!(matches!(err, NotifyError::Smtp(_)), "{err:?}");
    let text = format!("{err} {err:?}");
    eprintln!("bad auth: {err}");
    assert!(!text.contains("wrong-pass-123"), "{text}");
    assert!(text.contains("127.0.0.1"), "{text}");
    assert!(messages(&sink.dir).is_empty());

    c.password = "s3cret-pass".into();
    Mailer::from_config(&c)
        .unwrap()
        .send("john@example.org", SUBJECT, BODY)
        .await
        .unwrap();
    assert_delivered(&sink, "john@example.org");
}

#[tokio::test]
async fn starttls_with_private_ca_and_auth() {
    let tmp = tempfile::tempdir().unwrap();
    let (cert, key) = write_cert(tmp.path());
    let (cert_s, key_s) = (cert.to_str().unwrap(), key.to_str().unwrap());
    let Some(sink) = start_sink(&["--starttls", cert_s, key_s, "--auth", "lens:pw-123456"]) else {
        return;
    };
    let mut c = config(sink.port, SmtpSecurity::Starttls);
    c.username = "lens".into();
    c.password = "pw-123456".into();
    // Not trusted without the CA file.
    let err = Mailer::from_config(&c)
        .unwrap()
        .send("john@example.org", SUBJECT, BODY)
        .await
        .unwrap_err();
    assert!(matches!(err, NotifyError::Smtp(_)), "{err:?}");
    eprintln!("untrusted: {err}");
    assert!(messages(&sink.dir).is_empty());

    c.ca_file = cert_s.into();
    Mailer::from_config(&c)
        .unwrap()
        .send("john@example.org", SUBJECT, BODY)
        .await
        .unwrap();
    assert_delivered(&sink, "john@example.org");
}

#[tokio::test]
async fn starttls_required_fails_when_server_does_not_offer_it() {
    let Some(sink) = start_sink(&[]) else { return };
    let err = Mailer::from_config(&config(sink.port, SmtpSecurity::Starttls))
        .unwrap()
        .send("john@example.org", SUBJECT, BODY)
        .await
        .unwrap_err();
    assert!(matches!(err, NotifyError::Smtp(_)), "{err:?}");
    eprintln!("no starttls: {err}");
    assert!(messages(&sink.dir).is_empty(), "sent in clear text");
}

#[tokio::test]
async fn implicit_tls_with_private_ca() {
    let tmp = tempfile::tempdir().unwrap();
    let (cert, key) = write_cert(tmp.path());
    let (cert_s, key_s) = (cert.to_str().unwrap(), key.to_str().unwrap());
    let Some(sink) = start_sink(&["--tls", cert_s, key_s]) else {
        return;
    };
    let mut c = config(sink.port, SmtpSecurity::Tls);
    c.ca_file = cert_s.into();
    Mailer::from_config(&c)
        .unwrap()
        .send("john@example.org", SUBJECT, BODY)
        .await
        .unwrap();
    assert_delivered(&sink, "john@example.org");
}

#[tokio::test]
async fn silent_server_times_out() {
    // Accepts the connection and never sends the SMTP greeting.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    let mut c = config(port, SmtpSecurity::None);
    c.timeout_seconds = 1;
    let started = Instant::now();
    let err = Mailer::from_config(&c)
        .unwrap()
        .send("john@example.org", SUBJECT, BODY)
        .await
        .unwrap_err();
    assert!(matches!(err, NotifyError::Timeout { .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn bad_input_and_unreachable_server() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mailer = Mailer::from_config(&config(port, SmtpSecurity::None)).unwrap();
    let err = mailer.send("not-an-address", "s", "b").await.unwrap_err();
    assert_eq!(err.code(), "invalid_recipient");
    assert!(err.to_string().contains("not-an-address"), "{err}");
    let err = mailer
        .send("john@example.org", "two\nlines", "b")
        .await
        .unwrap_err();
    assert_eq!(err.code(), "invalid_message");
    let err = mailer.send("john@example.org", "s", "b").await.unwrap_err();
    eprintln!("unreachable: {err}");
    assert!(matches!(err, NotifyError::Smtp(_)), "{err:?}");
}
