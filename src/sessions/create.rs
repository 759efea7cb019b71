//! Creating a Lens session: the technician's group decides which connection methods, custom fields
//! and time-outs apply; the server issues a PIN code or an unguessable link and, for SMS and email,
//! queues the message in the durable outbox.

use signaling::protocol::{CodeMethod, CreateSession, EmailVia, ErrorCode, ProtocolError};
use signaling::status::Status;

use super::{Hub, SessionPolicy};
use crate::settings::group::{
    CustomFieldKind, NoTechnicianBehavior, SurveyMode, SurveySettings, TechnicianGroupSettings,
};
use crate::store::sessions::SessionRow;
use crate::store::{Role, StoreError, User};

/// What the creator gets back.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Created {
    pub id: i64,
    /// PIN code sessions: the 6 digits the customer enters.
    pub pin: Option<String>,
    /// Link, SMS and email sessions: the link that opens the customer page.
    pub link: Option<String>,
    /// RFC 3339 UTC: when the code stops working (the group's private code validity period).
    pub expires_at: String,
    /// Email via the default client: a `mailto:` link with the group's subject and text.
    pub mailto: Option<String>,
    /// SMS and email via servers: the outbox entry that carries the message.
    pub outbox_id: Option<i64>,
}

fn invalid(message: impl Into<String>) -> ProtocolError {
    ProtocolError::new(ErrorCode::ValidationFailed, message)
}

impl Hub {
    /// `node_unavailable` while this node takes no new session (draining, fenced, or its store
    /// down: then asked before anything waits on the store).
    pub fn taking_sessions(&self) -> Result<(), ProtocolError> {
        if self.node.accepting() {
            return Ok(());
        }
        Err(ProtocolError::new(
            ErrorCode::NodeUnavailable,
            format!(
                "this server takes no new sessions ({}); connect again to reach another",
                self.node.health().as_str()
            ),
        ))
    }

    /// Creates a session. `reply`: the console socket and request id to answer `ok` on before the
    /// new session is announced to the consoles (PROTOCOL.md §1: replies come before events).
    pub async fn create_session(
        &self,
        technician: &User,
        body: &CreateSession,
        reply: Option<(&super::Outbound, &str)>,
    ) -> Result<Created, ProtocolError> {
        if technician.role != Role::Technician {
            return Err(ProtocolError::new(
                ErrorCode::NotAllowed,
                "only technicians create sessions",
            ));
        }
        let group_id = technician.group_id.ok_or_else(|| {
            ProtocolError::new(ErrorCode::NotAllowed, "you are in no technician group")
        })?;
        body.validate()?;
        self.taking_sessions()?;
        let settings = crate::api::settings::load_group(self.store(), group_id)
            .await
            .map_err(|_| {
                ProtocolError::new(ErrorCode::Internal, "cannot read the group's settings")
            })?;
        let methods = &settings.connection_methods;
        let email_via = match body.method {
            CodeMethod::Email => Some(match body.email_via {
                Some(v) => v,
                None if methods.email_via_servers => EmailVia::Servers,
                None => EmailVia::DefaultClient,
            }),
            _ => None,
        };
        let allowed = match (body.method, email_via) {
            (CodeMethod::Pin, _) => methods.pin_code,
            (CodeMethod::Link, _) => methods.link,
            (CodeMethod::Sms, _) => methods.sms,
            (CodeMethod::Email, Some(EmailVia::Servers)) => methods.email_via_servers,
            (CodeMethod::Email, _) => methods.email_via_default_client,
        };
        if !allowed {
            return Err(ProtocolError::new(
                ErrorCode::MethodNotAllowed,
                "your technician group does not allow this connection method",
            ));
        }
        let custom_fields = check_custom_fields(&settings, &body.custom_fields)?;
        let now = self.now();
        let policy = policy_of(&settings, self.config().sessions.reconnect_grace_seconds);
        let expires = now + policy.code_validity_ms;
        let link_token = (body.method != CodeMethod::Pin).then(|| {
            let bytes: [u8; 16] = rand::random();
            hex::encode(bytes)
        });
        let link = link_token
            .as_ref()
            .map(|t| format!("{}/s/{t}", self.config().public_url()));
        let mut row = SessionRow {
            created_by: technician.id,
            technician_id: Some(technician.id),
            group_id,
            method: method_name(body.method).into(),
            pin: None,
            link_token_hash: link_token.as_deref().map(crate::auth::token_hash),
            code_expires_at: expires,
            name: body.name.trim().to_string(),
            custom_fields,
            tracking_id: body.tracking_id.clone().unwrap_or_default(),
            phone: body.normalized_phone().unwrap_or_default(),
            email: body.email.clone().unwrap_or_default(),
            status: Status::Pending.as_str().into(),
            status_since: now,
            last_activity: now,
            policy: serde_json::to_string(&policy).unwrap_or_default(),
            created_at: now,
            ..SessionRow::default()
        };
        // A PIN is unique among live codes; the store's unique index settles races between nodes.
        let mut attempt = 0;
        let id = loop {
            if body.method == CodeMethod::Pin {
                row.pin = Some(self.fresh_pin());
            }
            match self
                .store()
                .insert_session_on(&row, Some(&self.node.id))
                .await
            {
                Ok(id) => break id,
                Err(StoreError::Conflict("pin_taken")) if attempt < 20 => attempt += 1,
                Err(e) => {
                    tracing::error!(error = %e, "cannot store a new session");
                    return Err(ProtocolError::new(
                        ErrorCode::Internal,
                        "cannot create the session",
                    ));
                }
            }
        };
        row.id = id;
        let mut policy = policy;
        // The surveys carry the session id (self-hosted survey URLs), known only now.
        policy.customer_survey = survey_of(&settings.customer_survey, id, &row);
        policy.technician_survey = survey_of(&settings.technician_survey, id, &row);
        if policy.customer_survey.is_some() || policy.technician_survey.is_some() {
            // The survey routes check answers against the questions stored with the session.
            let stored = serde_json::to_string(&policy).unwrap_or_default();
            if let Err(e) = self.store().set_session_policy(id, &stored).await {
                tracing::error!(session_id = id, error = %e, "cannot store the session's surveys");
            }
        }
        tracing::info!(
            session_id = id,
            technician = technician.id,
            method = method_name(body.method),
            "session created"
        );

        let subject = settings.connection_methods.connection_email_subject.clone();
        let text = format!(
            "{}\n\n{}",
            settings.connection_methods.connection_email_text,
            link.clone().unwrap_or_default()
        );
        let mut mailto = None;
        let mut outbox_id = None;
        match (body.method, email_via) {
            (CodeMethod::Sms, _) => {
                let sms = format!(
                    "{}: {}",
                    "Your support session",
                    link.clone().unwrap_or_default()
                );
                outbox_id = self.queue(id, "sms", &row.phone, "", &sms).await?;
            }
            (CodeMethod::Email, Some(EmailVia::Servers)) => {
                outbox_id = self.queue(id, "email", &row.email, &subject, &text).await?;
            }
            (CodeMethod::Email, _) => {
                mailto = Some(crate::notify::mailto_link(&row.email, &subject, &text));
            }
            _ => {}
        }
        let created = Created {
            id,
            pin: row.pin.clone(),
            link: link.clone(),
            expires_at: crate::api::rfc3339(expires),
            mailto,
            outbox_id,
        };
        if let Some((tx, request)) = reply {
            let ok = signaling::protocol::CreateSessionOk {
                session_id: id,
                pin: created.pin.clone(),
                link: created.link.clone(),
                expires_at: created.expires_at.clone(),
                mailto: created.mailto.clone(),
            };
            super::send(tx, &signaling::protocol::ServerFrame::ok_with(request, &ok));
        }
        self.register(&row, policy, link);
        Ok(created)
    }

    async fn queue(
        &self,
        id: i64,
        kind: &str,
        to: &str,
        subject: &str,
        body: &str,
    ) -> Result<Option<i64>, ProtocolError> {
        let provider = match kind {
            "sms" => match self.config().sms.provider {
                crate::notify::SmsProviderKind::Log => "log".to_string(),
                crate::notify::SmsProviderKind::Http => "http".to_string(),
            },
            _ => "smtp".to_string(),
        };
        let outbox = self
            .store()
            .enqueue_outbox(kind, Some(id), to, subject, body, &provider)
            .await
            .map_err(|_| ProtocolError::new(ErrorCode::Internal, "cannot queue the message"))?;
        self.outbox_wake.notify_one();
        Ok(Some(outbox))
    }

    fn fresh_pin(&self) -> String {
        let inner = self.lock();
        loop {
            let pin = format!("{:06}", rand::random_range(0..1_000_000u32));
            if !inner.pins.contains_key(&pin) {
                return pin;
            }
        }
    }
}

pub fn method_name(m: CodeMethod) -> &'static str {
    match m {
        CodeMethod::Pin => "pin",
        CodeMethod::Link => "link",
        CodeMethod::Sms => "sms",
        CodeMethod::Email => "email",
    }
}

/// The group's custom field rules: enabled, mandatory, open text or drop-down choices.
fn check_custom_fields(
    settings: &TechnicianGroupSettings,
    values: &[String],
) -> Result<[String; 5], ProtocolError> {
    let mut out: [String; 5] = Default::default();
    for (i, rule) in settings.custom_fields.iter().enumerate() {
        let value = values.get(i).map(|v| v.trim()).unwrap_or_default();
        let n = i + 1;
        if !rule.enabled {
            if !value.is_empty() {
                return Err(invalid(format!(
                    "custom_fields[{i}]: custom field {n} is not enabled for your group"
                )));
            }
            continue;
        }
        if value.is_empty() {
            if rule.mandatory {
                return Err(invalid(format!(
                    "custom_fields[{i}]: custom field {n} is mandatory"
                )));
            }
            continue;
        }
        if rule.kind == CustomFieldKind::DropDown && !rule.choices.iter().any(|c| c == value) {
            return Err(invalid(format!(
                "custom_fields[{i}]: not one of the choices of custom field {n}"
            )));
        }
        out[i] = value.to_string();
    }
    if values.len() > 5 {
        return Err(invalid("custom_fields: at most 5 values"));
    }
    Ok(out)
}

pub fn policy_of(
    settings: &TechnicianGroupSettings,
    reconnect_grace_seconds: u32,
) -> SessionPolicy {
    let t = &settings.timeouts;
    SessionPolicy {
        audio: settings.audio.enabled,
        auto_start: settings.auto_start_private_sessions,
        code_validity_ms: i64::from(t.private_code_validity_minutes) * 60_000,
        connecting_ms: i64::from(t.connecting_seconds) * 1000,
        waiting_ms: i64::from(t.waiting_minutes) * 60_000,
        active_idle_ms: i64::from(t.active_idle_minutes) * 60_000,
        reconnect_grace_ms: i64::from(reconnect_grace_seconds) * 1000,
        no_technician: match settings.no_technician_available.behavior {
            NoTechnicianBehavior::KeepAlive => "keep_alive",
            NoTechnicianBehavior::NotifyByEmail => "notify_by_email",
            NoTechnicianBehavior::AbortAndShowUrl => "abort_and_show_url",
        }
        .into(),
        no_technician_url: settings.no_technician_available.url.clone(),
        alarms: t
            .alarms
            .iter()
            .map(|a| {
                let kind = match a.kind {
                    crate::settings::group::AlarmKind::Connecting => "connecting",
                    crate::settings::group::AlarmKind::Waiting => "waiting",
                };
                (kind.to_string(), a.after_seconds, a.color.clone())
            })
            .collect(),
        omit_chat_from_storage: settings.exporting_session_data.omit_chat_from_storage,
        customer_survey: None,
        technician_survey: None,
    }
}

/// The survey shown at session end: the built-in questions, or the self-hosted URL (with the
/// session id and custom fields when "add session details" is on).
fn survey_of(s: &SurveySettings, id: i64, row: &SessionRow) -> Option<serde_json::Value> {
    match s.mode {
        SurveyMode::None => None,
        SurveyMode::BuiltIn => Some(serde_json::json!({
            "questions": s.questions.iter().enumerate().filter(|(_, q)| q.enabled).map(|(i, q)| serde_json::json!({
                "index": i,
                "text": q.text,
                "kind": q.kind,
                "answers": q.answers,
                "mandatory": q.mandatory,
            })).collect::<Vec<_>>()
        })),
        SurveyMode::SelfHosted => {
            let cfields: [String; 6] = std::array::from_fn(|i| match i {
                0 => row.name.clone(),
                n => row.custom_fields[n - 1].clone(),
            });
            s.redirect_url(&id.to_string(), &cfields)
                .map(|url| serde_json::json!({ "url": url }))
        }
    }
}
