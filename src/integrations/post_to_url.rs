//! Post-to-URL (the guide's "Sending Session Data to a URL"): on the triggers a technician group
//! chooses, the session's data goes to the group's URL as an HTML form or as XML.
//!
//! The hub never waits for any of it: it hands a [`PostTrigger`] to a channel. The builder task
//! reads the session from the store, writes the delivery (body, signature, idempotency key) into
//! `post_deliveries` — the durable outbox — and only then does the sender task try it, retrying with
//! back-off until the receiver answers 2xx. A delivery is sent at least once; every repeat carries
//! the same `Idempotency-Key`. A session's deliveries go out in order.

use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::sync::{Notify, Semaphore, mpsc};

use crate::api::rfc3339;
use crate::config::IntegrationsConfig;
use crate::sessions::Hub;
use crate::sessions::timings::timings;
use crate::settings::group::{ExportFormat, ExportTriggers};
use crate::store::integrations::{NewPostDelivery, PostDelivery};
use crate::store::{Store, now_ms};

/// Why session data is posted: the guide's five options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// Each time the session enters Active (pickup, resume from hold, after a transfer).
    EachActive,
    /// Only the first time the session enters Active.
    FirstActive,
    /// The session ended (a final status) after it had been picked up.
    Ended,
    /// Put on hold or transferred.
    Suspended,
    /// The technician's console was refreshed or closed while the session was Active or On Hold.
    ConsoleRefreshedOrClosed,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::EachActive => "each_active",
            Trigger::FirstActive => "first_active",
            Trigger::Ended => "ended",
            Trigger::Suspended => "suspended",
            Trigger::ConsoleRefreshedOrClosed => "console_refreshed_or_closed",
        }
    }

    fn chosen(self, t: &ExportTriggers) -> bool {
        match self {
            Trigger::EachActive => t.each_active,
            Trigger::FirstActive => t.first_active,
            Trigger::Ended => t.ended,
            Trigger::Suspended => t.suspended,
            Trigger::ConsoleRefreshedOrClosed => t.console_refreshed_or_closed,
        }
    }
}

/// A moment that may post session data; the group's settings decide whether it does.
#[derive(Debug, Clone)]
pub struct PostTrigger {
    pub session_id: i64,
    pub trigger: Trigger,
    pub technician_id: Option<i64>,
    pub group_id: i64,
    pub at: i64,
    /// How many of the session's chat lines had been handed to the store at the trigger.
    pub chat_lines: i64,
}

/// Turns triggers into stored deliveries, in the order the hub made them.
pub async fn run_builder(
    hub: Arc<Hub>,
    mut triggers: mpsc::UnboundedReceiver<PostTrigger>,
    wake: Arc<Notify>,
) {
    while let Some(t) = triggers.recv().await {
        // What the hub decided before this trigger (events, chat) is in the store first.
        hub.flush().await;
        match build(hub.store(), &t).await {
            Ok(Some(id)) => {
                tracing::debug!(
                    session_id = t.session_id,
                    delivery = id,
                    trigger = t.trigger.as_str(),
                    "post to URL: queued"
                );
                wake.notify_one();
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!(session_id = t.session_id, trigger = t.trigger.as_str(), error = %e, "post to URL: cannot queue the delivery")
            }
        }
    }
}

/// Builds and stores the delivery for a trigger, when the group posts on it.
async fn build(store: &Store, t: &PostTrigger) -> anyhow::Result<Option<i64>> {
    let settings = crate::api::settings::load_group(store, t.group_id)
        .await
        .map_err(|e| anyhow::anyhow!("group settings: {}", e.message))?;
    let ex = &settings.exporting_session_data;
    let Some(url) = ex.url.clone().filter(|_| t.trigger.chosen(&ex.triggers)) else {
        return Ok(None);
    };
    let session = store.session(t.session_id).await?;
    let technician = match t.technician_id.or(session.technician_id) {
        Some(id) => store.user_any(id).await.ok(),
        None => None,
    };
    // The session as it was at the trigger: the builder may run a little later.
    let mut events = store.session_events(t.session_id).await?;
    events.retain(|e| e.at <= t.at);
    let times = timings(&events, t.at);
    // ChatLog: the lines after those the session's previous post covered, up to the trigger.
    let upto = store.post_chat_upto(t.session_id).await?;
    let all = store.chat_after(t.session_id, 0).await?;
    let end = usize::try_from(t.chat_lines).unwrap_or(0).min(all.len());
    let start = usize::try_from(upto).unwrap_or(0).min(end);
    let chat = &all[start..end];
    let chat_upto = upto.max(end as i64);
    let chatlog: Vec<String> = chat
        .iter()
        .filter(|(_, _, sender, _, _)| !ex.omit_chat_text_from_post || sender == "system")
        .map(|(_, at, _, name, text)| format!("[{}] {name}: {text}", rfc3339(*at)))
        .collect();
    let notes: Vec<String> = store
        .notes_of(t.session_id)
        .await?
        .into_iter()
        .map(|(_, _, text)| text)
        .collect();
    let tech =
        |f: fn(&crate::store::User) -> String| technician.as_ref().map(f).unwrap_or_default();
    let time = |ms: Option<i64>| ms.map(rfc3339).unwrap_or_default();
    let mut fields: Vec<(String, String)> = vec![
        ("SessionID".into(), session.id.to_string()),
        ("TechID".into(), tech(|u| u.id.to_string())),
        ("TechSSOID".into(), tech(|u| u.sso_id.clone())),
        ("TechName".into(), tech(|u| u.name.clone())),
        ("TechEmail".into(), tech(|u| u.email.clone())),
        ("TechDescr".into(), tech(|u| u.description.clone())),
        ("CField0".into(), session.name.clone()),
    ];
    for (i, v) in session.custom_fields.iter().enumerate() {
        fields.push((format!("CField{}", i + 1), v.clone()));
    }
    fields.extend([
        ("Tracking0".into(), session.tracking_id.clone()),
        ("ChatLog".into(), chatlog.join("\n")),
        ("Notes".into(), notes.join("\n")),
        (
            "WaitingTime".into(),
            times
                .waiting_seconds
                .map(|s| s.to_string())
                .unwrap_or_default(),
        ),
        ("PickupTime".into(), time(times.pickup_at)),
        ("ClosingTime".into(), time(times.closing_at)),
        ("WorkTime".into(), times.work_seconds.to_string()),
        ("LastActionTime".into(), time(Some(session.last_activity))),
        ("Transmitted".into(), session.transmitted_bytes.to_string()),
        ("Platform".into(), session.device.platform.clone()),
    ]);
    // TSurveyN: the technician survey's N-th enabled question's answer, when the technician
    // submitted it before this delivery was built (the end-of-session delivery usually precedes it).
    let tsurvey = store
        .session_survey(t.session_id, "technician")
        .await?
        .map(|s| s.answers)
        .unwrap_or_default();
    for i in 0..10 {
        let answer = tsurvey.get(i).map(|(_, a)| a.clone()).unwrap_or_default();
        fields.push((format!("TSurvey{i}"), answer));
    }
    let (format, content_type, body) = match ex.format {
        ExportFormat::HtmlForm => (
            "html_form",
            "application/x-www-form-urlencoded",
            html_form(&fields),
        ),
        ExportFormat::Xml => ("xml", "text/xml; charset=utf-8", xml(&fields)),
    };
    let signature = match store.post_secret(t.group_id).await? {
        Some((secret, _)) => sign(&secret, &body),
        None => String::new(),
    };
    let key: [u8; 16] = rand::random();
    let id = store
        .insert_post_delivery(
            &NewPostDelivery {
                session_id: t.session_id,
                group_id: t.group_id,
                technician_id: technician.as_ref().map(|u| u.id),
                trigger: t.trigger.as_str().into(),
                url,
                format: format.into(),
                content_type: content_type.into(),
                body,
                signature,
                idempotency_key: hex::encode(key),
                chat_upto,
            },
            now_ms(),
        )
        .await?;
    Ok(Some(id))
}

/// The HTML form body: the guide's variable names, in its order.
pub fn html_form(fields: &[(String, String)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .finish()
}

/// The XML body: the guide's element names (the variable names in lower case) under `<session>`.
/// Custom fields appear twice: as the guide spells them (`cfiield0`…), which is what a parser
/// written from the guide looks for, and as `cfield0`…, the spelling of the form variables.
pub fn xml(fields: &[(String, String)]) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<session>");
    for (name, value) in fields {
        let element = name.to_ascii_lowercase();
        let value = xml_escape(value);
        if let Some(n) = element.strip_prefix("cfield") {
            out.push_str(&format!("<cfiield{n}>{value}</cfiield{n}>"));
        }
        out.push_str(&format!("<{element}>{value}</{element}>"));
    }
    out.push_str("</session>\n");
    out
}

fn xml_escape(s: &str) -> String {
    // Control characters are not allowed in XML 1.0 at all: dropped rather than sent broken.
    let allowed: String = s
        .chars()
        .filter(|&c| (c as u32) >= 0x20 || matches!(c, '\n' | '\r' | '\t'))
        .collect();
    quick_xml::escape::escape(allowed.as_str()).into_owned()
}

/// `X-Lens-Signature` value: HMAC-SHA256 of the body with the group's secret, lower-case hex.
pub fn sign(secret: &str, body: &str) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return String::new();
    };
    mac.update(body.as_bytes());
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Deliveries in flight at once (a receiver that hangs holds one slot until its time-out).
const CONCURRENT_SENDS: usize = 16;

/// Sends due deliveries, forever.
pub async fn run_sender(store: Store, config: IntegrationsConfig, wake: Arc<Notify>) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let timeout = Duration::from_secs(u64::from(config.post_timeout_seconds));
    let client = match reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        // A redirect could carry the basic-auth credentials elsewhere.
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("LensRelay/", env!("CARGO_PKG_VERSION")))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "post to URL: cannot build the HTTP client; deliveries stay queued");
            return;
        }
    };
    let slots = Arc::new(Semaphore::new(CONCURRENT_SENDS));
    let config = Arc::new(config);
    loop {
        let now = now_ms();
        let due = store
            .due_post_deliveries(now, CONCURRENT_SENDS as i64)
            .await
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "post to URL: cannot read pending deliveries");
                vec![]
            });
        for d in due {
            // Leased for longer than one attempt can take, so nobody else sends it meanwhile.
            let lease = now + timeout.as_millis() as i64 + 5_000;
            match store
                .claim_post_delivery(d.id, d.next_attempt_at, lease)
                .await
            {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "post to URL: cannot claim a delivery");
                    continue;
                }
            }
            let Ok(permit) = slots.clone().acquire_owned().await else {
                return;
            };
            let (store, client, config, wake) =
                (store.clone(), client.clone(), config.clone(), wake.clone());
            tokio::spawn(async move {
                attempt(&store, &client, &config, &d).await;
                drop(permit);
                // The session's next delivery may now be due.
                wake.notify_one();
            });
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = wake.notified() => {}
        }
    }
}

/// One attempt at one delivery; records the outcome.
async fn attempt(
    store: &Store,
    client: &reqwest::Client,
    config: &IntegrationsConfig,
    d: &PostDelivery,
) {
    let outcome = send(client, d).await;
    let now = now_ms();
    let stored = match outcome {
        Ok(code) => {
            tracing::info!(delivery = d.id, session_id = d.session_id, trigger = %d.trigger, status = code, "post to URL: delivered");
            store.post_delivery_sent(d.id, i64::from(code), now).await
        }
        Err((code, error)) => {
            let attempts = d.attempts + 1;
            let retry = (attempts < i64::from(config.post_max_attempts))
                .then(|| now + retry_delay_ms(config, attempts));
            tracing::warn!(delivery = d.id, session_id = d.session_id, attempts, gave_up = retry.is_none(), %error, "post to URL: delivery failed");
            store
                .post_delivery_failed(d.id, code.map(i64::from), &error, retry)
                .await
        }
    };
    if let Err(e) = stored {
        tracing::error!(delivery = d.id, error = %e, "post to URL: cannot record the outcome");
    }
}

/// Back-off after `attempts` failures: the first retry delay, doubled each time, capped.
pub fn retry_delay_ms(config: &IntegrationsConfig, attempts: i64) -> i64 {
    let first = i64::from(config.post_first_retry_seconds) * 1000;
    let max = i64::from(config.post_max_retry_seconds) * 1000;
    let shift = u32::try_from((attempts - 1).clamp(0, 30)).unwrap_or(30);
    first.saturating_mul(1i64 << shift).min(max)
}

/// The HTTP POST. `Ok(status)` on 2xx; otherwise the status (if any) and a reason without secrets.
async fn send(client: &reqwest::Client, d: &PostDelivery) -> Result<u16, (Option<u16>, String)> {
    let mut url = url::Url::parse(&d.url).map_err(|e| (None, format!("bad URL: {e}")))?;
    // Credentials in the URL become basic auth (the guide: http://[username]:[password]@host/path).
    let user = percent_decode(url.username());
    let password = url.password().map(percent_decode);
    let _ = url.set_username("");
    let _ = url.set_password(None);
    let mut request = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, &d.content_type)
        .header("Idempotency-Key", &d.idempotency_key)
        .header("X-Lens-Delivery", d.id.to_string())
        .header("X-Lens-Trigger", &d.trigger)
        .body(d.body.clone());
    if !d.signature.is_empty() {
        request = request.header("X-Lens-Signature", &d.signature);
    }
    if !user.is_empty() {
        request = request.basic_auth(user, password);
    }
    match request.send().await {
        Ok(resp) if resp.status().is_success() => Ok(resp.status().as_u16()),
        Ok(resp) => Err((
            Some(resp.status().as_u16()),
            format!("the receiver answered {}", resp.status()),
        )),
        Err(e) => Err((None, crate::notify::error_chain(&e.without_url()))),
    }
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_uses_the_guides_element_names_and_escapes() {
        let f = vec![
            ("SessionID".to_string(), "7".to_string()),
            ("CField0".to_string(), "Ann & <Bob>".to_string()),
            ("TSurvey9".to_string(), String::new()),
        ];
        let x = xml(&f);
        assert!(x.contains("<sessionid>7</sessionid>"), "{x}");
        assert!(
            x.contains("<cfiield0>Ann &amp; &lt;Bob&gt;</cfiield0>"),
            "{x}"
        );
        assert!(
            x.contains("<cfield0>Ann &amp; &lt;Bob&gt;</cfield0>"),
            "{x}"
        );
        assert!(x.contains("<tsurvey9></tsurvey9>"), "{x}");
    }

    #[test]
    fn signatures_are_hmac_sha256() {
        // RFC 4231 test case 2.
        assert_eq!(
            sign("Jefe", "what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn back_off_doubles_up_to_the_cap() {
        let c = IntegrationsConfig {
            post_first_retry_seconds: 5,
            post_max_retry_seconds: 60,
            ..IntegrationsConfig::default()
        };
        let d: Vec<i64> = (1..=6).map(|a| retry_delay_ms(&c, a) / 1000).collect();
        assert_eq!(d, [5, 10, 20, 40, 60, 60]);
    }

    #[test]
    fn url_credentials_are_percent_decoded() {
        assert_eq!(percent_decode("p%40ss%3Aw+rd"), "p@ss:w+rd");
    }
}
