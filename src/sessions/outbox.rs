//! Delivers the outbox (SMS and email): a message is written to the store first, then sent by this
//! worker, retried with back-off, and marked sent only when the provider accepted it.

use std::sync::Arc;
use std::time::Duration;

use super::Hub;
use crate::notify::{Mailer, SmsProvider};
use crate::store::now_ms;

/// Back-off after each failed attempt; after the last one the message is marked failed.
const RETRY_AFTER_SECONDS: [i64; 6] = [10, 60, 300, 900, 3600, 6 * 3600];

pub async fn run(hub: Arc<Hub>, sms: SmsProvider, mailer: Option<Mailer>) {
    loop {
        let due = match hub.store().due_outbox(now_ms(), 50).await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "outbox: cannot read pending messages");
                vec![]
            }
        };
        for item in &due {
            let result = match item.kind.as_str() {
                "sms" => sms
                    .send(&item.recipient, &item.body)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string()),
                "email" => match &mailer {
                    Some(m) => m
                        .send(&item.recipient, &item.subject, &item.body)
                        .await
                        .map_err(|e| e.to_string()),
                    None => Err("no SMTP server is configured ([smtp] host)".to_string()),
                },
                other => Err(format!("unknown outbox kind {other}")),
            };
            let now = now_ms();
            let stored = match result {
                Ok(()) => {
                    tracing::info!(outbox_id = item.id, kind = %item.kind, session_id = ?item.session_id, "outbox: sent");
                    hub.store().outbox_sent(item.id, now).await
                }
                Err(error) => {
                    let attempt = usize::try_from(item.attempts).unwrap_or(usize::MAX);
                    let retry = RETRY_AFTER_SECONDS.get(attempt).map(|s| now + s * 1000);
                    tracing::warn!(outbox_id = item.id, kind = %item.kind, attempt = attempt + 1, gave_up = retry.is_none(), %error, "outbox: delivery failed");
                    hub.store().outbox_failed(item.id, &error, retry).await
                }
            };
            if let Err(e) = stored {
                tracing::error!(error = %e, "outbox: cannot record a delivery");
            }
        }
        if due.len() < 50 {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                _ = hub.outbox_wake.notified() => {}
            }
        }
    }
}
