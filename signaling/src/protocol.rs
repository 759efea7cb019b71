//! The WebSocket protocol's message types: what phones (`/ws/customer`) and technician consoles
//! (`/ws/console`) send, what the server sends back, and the checks every incoming frame passes.
//!
//! The full, normative description (transport, lifecycle, statuses, every field and error code, and a
//! complete example exchange) is `signaling/PROTOCOL.md`; `tests/protocol_doc.rs` parses every example
//! frame in it with the types below.
//!
//! Entry points: [`parse_customer`] and [`parse_console`] turn one text frame into a request or a
//! [`ProtocolError`] (whose [`ProtocolError::frame`] is the `error` frame to send). They never panic.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The protocol version clients put in `join.v` / `hello.v`.
pub const PROTOCOL_VERSION: u32 = 1;

/// The largest text frame the server parses (bytes of UTF-8). Larger frames get `frame_too_large`.
pub const MAX_FRAME_BYTES: usize = 64 * 1024;

/// Length limits checked by the `validate` functions. `*_CHARS` count Unicode scalar values,
/// `*_BYTES` count UTF-8 bytes.
pub mod limits {
    /// Request `id`s (1..=64 characters).
    pub const ID_CHARS: usize = 64;
    /// `join.code` (PIN or link token).
    pub const CODE_CHARS: usize = 128;
    /// `hello.token`, `resume.resume_token`.
    pub const TOKEN_CHARS: usize = 128;
    /// `join.api_key`, `join.app_id`.
    pub const API_KEY_CHARS: usize = 128;
    /// Every `device` field except `device_id`.
    pub const DEVICE_FIELD_CHARS: usize = 64;
    /// `device.device_id`.
    pub const DEVICE_ID_CHARS: usize = 128;
    /// An SDP offer or answer.
    pub const SDP_BYTES: usize = 32 * 1024;
    /// An ICE candidate line.
    pub const CANDIDATE_BYTES: usize = 1024;
    /// `sdp_mid`.
    pub const SDP_MID_CHARS: usize = 64;
    /// Chat text.
    pub const CHAT_CHARS: usize = 2000;
    /// Technician note text.
    pub const NOTE_CHARS: usize = 1024;
    /// Transfer comment.
    pub const COMMENT_CHARS: usize = 256;
    /// `create_session.name` (the guide's name field: 128 characters).
    pub const NAME_CHARS: usize = 128;
    /// Number of custom field values.
    pub const CUSTOM_FIELDS: usize = 5;
    /// One custom field value (the guide: 64 characters).
    pub const CUSTOM_FIELD_CHARS: usize = 64;
    /// `create_session.tracking_id` (the guide: 256 characters).
    pub const TRACKING_ID_CHARS: usize = 256;
    /// `create_session.email`.
    pub const EMAIL_CHARS: usize = 254;
    /// `create_session.phone` as sent (before spaces and dashes are stripped).
    pub const PHONE_CHARS: usize = 32;
    /// Points of a pen stroke (`annotate`); an arrow has exactly 2.
    pub const STROKE_POINTS: usize = crate::tools::MAX_POINTS_PER_STROKE;
    /// `send_url.url`.
    pub const URL_CHARS: usize = crate::tools::MAX_URL_CHARS;
    /// Longest serde message quoted in an `invalid_message` error.
    pub const ERROR_MESSAGE_CHARS: usize = 300;
}

// ------------------------------------------------------------------ shared --

/// A media kind, for `mute`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaKind {
    Audio,
    Video,
}

/// What the customer's device reports about itself in `join`. All fields optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceInfo {
    /// Operating system, e.g. `"Android 15"`, `"iOS 18.2"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// Device model, e.g. `"Pixel 8"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// App name and version, e.g. `"lens-web/1.0"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    /// BCP 47 language tag, e.g. `"en-US"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
    /// A stable identifier of the device (the Session report's Device ID, ≤ 128 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    /// Browser name and version when the customer uses the mobile web page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub browser: Option<String>,
}

/// How the code of a private session reaches the customer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CodeMethod {
    Pin,
    Link,
    Sms,
    Email,
}

/// For `method: email`: open the technician's default mail client, or have the server send it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EmailVia {
    DefaultClient,
    Servers,
}

/// An annotation tool (`annotate.tool`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnnotationTool {
    /// A free-hand line through every point.
    Pen,
    /// A straight arrow from the first point (tail) to the second (head).
    Arrow,
}

/// A point of a stroke: `[x, y]`, each 0–1, normalised to the video frame as the phone sends
/// it (0,0 = top left, 1,1 = bottom right), so it lands on the same spot on any screen.
pub type Point = [f64; 2];

/// The technician's console status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TechnicianStatus {
    Available,
    Busy,
    Away,
}

/// Whose media a console `mute` applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MuteTarget {
    /// The technician's own microphone (`"self"`).
    #[serde(rename = "self")]
    OwnMicrophone,
    /// The customer's audio or video, as received by the technician.
    Customer,
}

/// A new private session: the `create_session` console request and the JSON body of
/// `POST /api/v1/sessions`. [`CreateSession::validate`] checks shapes only; group rules (allowed
/// methods, mandatory fields, drop-down choices) are the server's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateSession {
    pub method: CodeMethod,
    /// The guide's name field (by default the customer's name); may be empty unless the group
    /// makes it mandatory.
    #[serde(default)]
    pub name: String,
    /// Custom field values: index `i` is custom field `i + 1`; at most 5.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub custom_fields: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracking_id: Option<String>,
    /// Required for `sms`: optional `+`, 6–15 digits; spaces and dashes allowed (stripped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// Required for `email`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Only for `email`; the group setting decides when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_via: Option<EmailVia>,
}

/// Field names of [`CreateSession`] (used to refuse unknown fields in `create_session`, where the
/// body is flattened next to `type` and `id`).
const CREATE_SESSION_FIELDS: &[&str] = &[
    "method",
    "name",
    "custom_fields",
    "tracking_id",
    "phone",
    "email",
    "email_via",
];

impl CreateSession {
    /// Checks lengths and shapes: name ≤ 128 characters, ≤ 5 custom field values of ≤ 64
    /// characters, tracking id ≤ 256, a valid `phone` for `sms`, a valid `email` for `email`
    /// (and valid ones whenever given). Errors have code `validation_failed` and no id.
    pub fn validate(&self) -> Result<(), ProtocolError> {
        let fail = |m: String| Err(ProtocolError::new(ErrorCode::ValidationFailed, m));
        if let Err(m) = check_chars("name", &self.name, limits::NAME_CHARS) {
            return fail(m);
        }
        if self.custom_fields.len() > limits::CUSTOM_FIELDS {
            return fail(format!(
                "`custom_fields` has {} values; at most {} are allowed",
                self.custom_fields.len(),
                limits::CUSTOM_FIELDS
            ));
        }
        for (i, v) in self.custom_fields.iter().enumerate() {
            if let Err(m) = check_chars(
                &format!("custom_fields[{i}]"),
                v,
                limits::CUSTOM_FIELD_CHARS,
            ) {
                return fail(m);
            }
        }
        if let Some(t) = &self.tracking_id
            && let Err(m) = check_chars("tracking_id", t, limits::TRACKING_ID_CHARS)
        {
            return fail(m);
        }
        match &self.phone {
            Some(p) if normalize_phone(p).is_none() => {
                return fail(
                    "`phone` must be a phone number: optional +, 6 to 15 digits, spaces and dashes allowed"
                        .into(),
                );
            }
            None if self.method == CodeMethod::Sms => {
                return fail("`phone` is required for method `sms`".into());
            }
            _ => {}
        }
        match &self.email {
            Some(e) if !is_valid_email(e) => {
                return fail("`email` must be an email address".into());
            }
            None if self.method == CodeMethod::Email => {
                return fail("`email` is required for method `email`".into());
            }
            _ => {}
        }
        if self.email_via.is_some() && self.method != CodeMethod::Email {
            return fail("`email_via` is only allowed with method `email`".into());
        }
        Ok(())
    }

    /// The phone number with spaces and dashes stripped (`+` kept), if one was given and is valid.
    pub fn normalized_phone(&self) -> Option<String> {
        self.phone.as_deref().and_then(normalize_phone)
    }
}

/// Strips spaces and dashes; `Some` when what remains is an optional `+` and 6–15 ASCII digits.
pub fn normalize_phone(raw: &str) -> Option<String> {
    if raw.chars().count() > limits::PHONE_CHARS {
        return None;
    }
    let s: String = raw
        .trim()
        .chars()
        .filter(|c| *c != ' ' && *c != '-')
        .collect();
    let digits = s.strip_prefix('+').unwrap_or(&s);
    if (6..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) {
        Some(s)
    } else {
        None
    }
}

/// A deliberately simple email shape check: `local@domain.tld`, no whitespace or control
/// characters, one `@`, at most 254 characters.
pub fn is_valid_email(s: &str) -> bool {
    if s.chars().count() > limits::EMAIL_CHARS
        || s.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return false;
    }
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..")
}

// --------------------------------------------------------- customer side --

/// A frame a customer (phone app or mobile web page) sends on `/ws/customer`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum CustomerRequest {
    /// First frame: present a PIN or link token.
    Join {
        id: String,
        v: u32,
        code: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        device: Option<DeviceInfo>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        api_key: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        app_id: Option<String>,
    },
    /// Camera (and microphone) granted, app up.
    Ready { id: String },
    /// SDP offer (video sendonly; audio sendrecv when the session has audio).
    Offer { id: String, sdp: String },
    /// Trickle ICE; `candidate: null` (or absent) = end of candidates.
    Candidate {
        #[serde(default)]
        candidate: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sdp_mid: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sdp_mline_index: Option<u16>,
    },
    /// Mute the microphone or pause the video.
    Mute {
        id: String,
        kind: MediaKind,
        muted: bool,
    },
    /// A chat line; with an `id` the server acknowledges it.
    Chat {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        text: String,
    },
    /// The customer ends the session.
    End { id: String },
    /// The customer declines the session (before it starts).
    Decline { id: String },
    /// First frame on a new socket after a drop.
    Resume { id: String, resume_token: String },
    /// Keep-alive; answered with `pong`.
    Ping { id: String },
}

const CUSTOMER_TYPES: &[&str] = &[
    "join",
    "ready",
    "offer",
    "candidate",
    "mute",
    "chat",
    "end",
    "decline",
    "resume",
    "ping",
];

impl CustomerRequest {
    /// The request id, when the message carries one.
    pub fn id(&self) -> Option<&str> {
        match self {
            Self::Join { id, .. }
            | Self::Ready { id }
            | Self::Offer { id, .. }
            | Self::Mute { id, .. }
            | Self::End { id }
            | Self::Decline { id }
            | Self::Resume { id, .. }
            | Self::Ping { id } => Some(id),
            Self::Chat { id, .. } => id.as_deref(),
            Self::Candidate { .. } => None,
        }
    }

    /// The wire `type`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Join { .. } => "join",
            Self::Ready { .. } => "ready",
            Self::Offer { .. } => "offer",
            Self::Candidate { .. } => "candidate",
            Self::Mute { .. } => "mute",
            Self::Chat { .. } => "chat",
            Self::End { .. } => "end",
            Self::Decline { .. } => "decline",
            Self::Resume { .. } => "resume",
            Self::Ping { .. } => "ping",
        }
    }

    /// Field checks beyond types (lengths, version). Errors carry the request id.
    pub fn validate(&self) -> Result<(), ProtocolError> {
        let id = echo_id(self.id());
        self.check().map_err(|e| e.with_id_opt(id))
    }

    fn check(&self) -> Result<(), ProtocolError> {
        if let Some(id) = self.id() {
            check_id(id)?;
        }
        match self {
            Self::Join {
                v,
                code,
                device,
                api_key,
                app_id,
                ..
            } => {
                check_version(*v)?;
                invalid(check_nonempty("code", code, limits::CODE_CHARS))?;
                if let Some(d) = device {
                    check_device(d)?;
                }
                invalid(check_opt("api_key", api_key, limits::API_KEY_CHARS))?;
                invalid(check_opt("app_id", app_id, limits::API_KEY_CHARS))
            }
            Self::Offer { sdp, .. } => check_sdp(sdp),
            Self::Candidate {
                candidate, sdp_mid, ..
            } => check_candidate(candidate, sdp_mid),
            Self::Chat { text, .. } => invalid(check_nonempty("text", text, limits::CHAT_CHARS)),
            Self::Resume { resume_token, .. } => invalid(check_nonempty(
                "resume_token",
                resume_token,
                limits::TOKEN_CHARS,
            )),
            Self::Ready { .. }
            | Self::Mute { .. }
            | Self::End { .. }
            | Self::Decline { .. }
            | Self::Ping { .. } => Ok(()),
        }
    }
}

// ---------------------------------------------------------- console side --

/// A frame a technician console sends on `/ws/console`.
// Not `Eq`: strokes carry floating-point coordinates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ConsoleRequest {
    /// First frame (also on a reconnect): authenticate with a bearer token.
    Hello { id: String, v: u32, token: String },
    /// Take a `Waiting` session → `Active`.
    Pickup { id: String, session_id: i64 },
    /// `Active` → `On Hold`.
    Hold { id: String, session_id: i64 },
    /// `On Hold` → `Active`.
    Resume { id: String, session_id: i64 },
    /// Close the session (`Closed by technician`).
    End { id: String, session_id: i64 },
    /// Transfer to exactly one of a technician or a technician group.
    Transfer {
        id: String,
        session_id: i64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to_technician_id: Option<i64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to_group_id: Option<i64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        comment: Option<String>,
    },
    /// The console's SDP answer to the server's `offer`.
    Answer { session_id: i64, sdp: String },
    /// Trickle ICE; `candidate: null` (or absent) = end of candidates.
    Candidate {
        session_id: i64,
        #[serde(default)]
        candidate: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sdp_mid: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sdp_mline_index: Option<u16>,
    },
    /// Mute the technician's microphone (`target: "self"`, `kind: "audio"`) or the customer's
    /// audio/video as received by the technician (`target: "customer"`).
    Mute {
        id: String,
        session_id: i64,
        target: MuteTarget,
        kind: MediaKind,
        muted: bool,
    },
    /// A chat line to the customer; with an `id` the server acknowledges it.
    Chat {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        session_id: i64,
        text: String,
    },
    /// A technician note on the session (not shown to the customer).
    Note {
        id: String,
        session_id: i64,
        text: String,
    },
    /// Set the technician's console status.
    Status { id: String, value: TechnicianStatus },
    /// A finished stroke over the live picture, relayed to the customer (never stored).
    Annotate {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        session_id: i64,
        tool: AnnotationTool,
        /// `#rrggbb`.
        color: String,
        points: Vec<Point>,
    },
    /// Remove every stroke, on both sides.
    AnnotationClear { id: String, session_id: i64 },
    /// Freeze (`true`) the picture on the current frame on both sides, or return to live video.
    Freeze {
        id: String,
        session_id: i64,
        frozen: bool,
    },
    /// Send the customer a link (http or https) to open with a tap.
    SendUrl {
        id: String,
        session_id: i64,
        url: String,
    },
    /// Create a private session; the body is the same as `POST /api/v1/sessions`.
    /// Unknown fields are refused by [`parse_console`] (serde cannot with `flatten`).
    CreateSession {
        id: String,
        #[serde(flatten)]
        session: CreateSession,
    },
    /// Keep-alive; answered with `pong`.
    Ping { id: String },
}

const CONSOLE_TYPES: &[&str] = &[
    "hello",
    "pickup",
    "hold",
    "resume",
    "end",
    "transfer",
    "answer",
    "candidate",
    "mute",
    "chat",
    "note",
    "status",
    "create_session",
    "ping",
    "annotate",
    "annotation_clear",
    "freeze",
    "send_url",
];

impl ConsoleRequest {
    /// The request id, when the message carries one.
    pub fn id(&self) -> Option<&str> {
        match self {
            Self::Hello { id, .. }
            | Self::Pickup { id, .. }
            | Self::Hold { id, .. }
            | Self::Resume { id, .. }
            | Self::End { id, .. }
            | Self::Transfer { id, .. }
            | Self::Mute { id, .. }
            | Self::Note { id, .. }
            | Self::Status { id, .. }
            | Self::CreateSession { id, .. }
            | Self::AnnotationClear { id, .. }
            | Self::Freeze { id, .. }
            | Self::SendUrl { id, .. }
            | Self::Ping { id } => Some(id),
            Self::Chat { id, .. } | Self::Annotate { id, .. } => id.as_deref(),
            Self::Answer { .. } | Self::Candidate { .. } => None,
        }
    }

    /// The session the request is about, if any.
    pub fn session_id(&self) -> Option<i64> {
        match self {
            Self::Pickup { session_id, .. }
            | Self::Hold { session_id, .. }
            | Self::Resume { session_id, .. }
            | Self::End { session_id, .. }
            | Self::Transfer { session_id, .. }
            | Self::Answer { session_id, .. }
            | Self::Candidate { session_id, .. }
            | Self::Mute { session_id, .. }
            | Self::Chat { session_id, .. }
            | Self::Note { session_id, .. }
            | Self::Annotate { session_id, .. }
            | Self::AnnotationClear { session_id, .. }
            | Self::Freeze { session_id, .. }
            | Self::SendUrl { session_id, .. } => Some(*session_id),
            Self::Hello { .. }
            | Self::Status { .. }
            | Self::CreateSession { .. }
            | Self::Ping { .. } => None,
        }
    }

    /// The wire `type`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Hello { .. } => "hello",
            Self::Pickup { .. } => "pickup",
            Self::Hold { .. } => "hold",
            Self::Resume { .. } => "resume",
            Self::End { .. } => "end",
            Self::Transfer { .. } => "transfer",
            Self::Answer { .. } => "answer",
            Self::Candidate { .. } => "candidate",
            Self::Mute { .. } => "mute",
            Self::Chat { .. } => "chat",
            Self::Note { .. } => "note",
            Self::Status { .. } => "status",
            Self::CreateSession { .. } => "create_session",
            Self::Ping { .. } => "ping",
            Self::Annotate { .. } => "annotate",
            Self::AnnotationClear { .. } => "annotation_clear",
            Self::Freeze { .. } => "freeze",
            Self::SendUrl { .. } => "send_url",
        }
    }

    /// The session body of a `create_session` request.
    pub fn create_session(&self) -> Option<&CreateSession> {
        match self {
            Self::CreateSession { session, .. } => Some(session),
            _ => None,
        }
    }

    /// Field checks beyond types (lengths, version, transfer target, mute combination, the
    /// `create_session` body). Errors carry the request id.
    pub fn validate(&self) -> Result<(), ProtocolError> {
        let id = echo_id(self.id());
        self.check().map_err(|e| e.with_id_opt(id))
    }

    fn check(&self) -> Result<(), ProtocolError> {
        if let Some(id) = self.id() {
            check_id(id)?;
        }
        match self {
            Self::Hello { v, token, .. } => {
                check_version(*v)?;
                invalid(check_nonempty("token", token, limits::TOKEN_CHARS))
            }
            Self::Transfer {
                to_technician_id,
                to_group_id,
                comment,
                ..
            } => {
                if to_technician_id.is_some() == to_group_id.is_some() {
                    return Err(ProtocolError::new(
                        ErrorCode::InvalidMessage,
                        "`transfer` needs exactly one of `to_technician_id` and `to_group_id`",
                    ));
                }
                invalid(check_opt("comment", comment, limits::COMMENT_CHARS))
            }
            Self::Answer { sdp, .. } => check_sdp(sdp),
            Self::Candidate {
                candidate, sdp_mid, ..
            } => check_candidate(candidate, sdp_mid),
            Self::Mute { target, kind, .. } => {
                if *target == MuteTarget::OwnMicrophone && *kind != MediaKind::Audio {
                    return Err(ProtocolError::new(
                        ErrorCode::InvalidMessage,
                        "`target: \"self\"` only takes `kind: \"audio\"` (the console sends no video)",
                    ));
                }
                Ok(())
            }
            Self::Chat { text, .. } => invalid(check_nonempty("text", text, limits::CHAT_CHARS)),
            Self::Note { text, .. } => invalid(check_nonempty("text", text, limits::NOTE_CHARS)),
            Self::CreateSession { session, .. } => session.validate(),
            Self::Annotate {
                tool,
                color,
                points,
                ..
            } => check_stroke(*tool, color, points),
            Self::SendUrl { url, .. } => {
                crate::tools::url_host(url)
                    .map_err(|m| ProtocolError::new(ErrorCode::InvalidUrl, m))?;
                Ok(())
            }
            Self::AnnotationClear { .. } | Self::Freeze { .. } => Ok(()),
            Self::Pickup { .. }
            | Self::Hold { .. }
            | Self::Resume { .. }
            | Self::End { .. }
            | Self::Status { .. }
            | Self::Ping { .. } => Ok(()),
        }
    }
}

// ----------------------------------------------------------- server side --

/// Who wrote a chat line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChatFrom {
    Technician,
    Customer,
    System,
}

/// The technician as the customer sees them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TechnicianRef {
    pub nickname: String,
}

/// A session as a console sees it (`session` frames, `hello`'s `sessions`). Times are RFC 3339 UTC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionView {
    pub id: i64,
    /// The status as the guide spells it (`"Waiting"`, `"On Hold"`, ...), see PROTOCOL.md.
    pub status: String,
    pub method: CodeMethod,
    pub name: String,
    #[serde(default)]
    pub custom_fields: Vec<String>,
    #[serde(default)]
    pub tracking_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub technician_id: Option<i64>,
    pub group_id: i64,
    pub created_at: String,
    pub status_since: String,
    /// Seconds in `Waiting` so far (only while waiting).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_seconds: Option<u64>,
    /// CSS colour of the waiting alarm once the group's alarm threshold has passed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alarm_color: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<DeviceInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_ip: Option<String>,
    /// The PIN while the code is unused (`Pending`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin: Option<String>,
    /// The link while the code is unused (`Pending`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// Whether VoIP audio is enabled for this session (group setting).
    pub audio: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer_comment: Option<String>,
}

/// One ICE server (the shape of WebRTC's `RTCIceServer`), in the `join`/`resume`/`hello` replies
/// and the console's `offer`. TURN credentials are short-lived (PROTOCOL.md §5).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceServer {
    pub urls: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// The credential is a secret for as long as it is valid: kept out of logs.
impl std::fmt::Debug for IceServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IceServer")
            .field("urls", &self.urls)
            .field("username", &self.username)
            .field("credential", &self.credential.as_ref().map(|_| "***"))
            .finish()
    }
}

/// The body of the `ok` reply to a customer `join` or `resume`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinOk {
    pub session_id: i64,
    pub resume_token: String,
    pub audio: bool,
    pub ice_servers: Vec<IceServer>,
    /// `"relay"` when the server wants TURN only (`RTCConfiguration.iceTransportPolicy`); absent:
    /// `"all"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ice_transport_policy: Option<String>,
    pub status: String,
}

/// The technician in the `ok` reply to `hello`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TechnicianInfo {
    pub id: i64,
    pub name: String,
    pub nickname: String,
    pub group_id: i64,
    pub status: TechnicianStatus,
}

/// The body of the `ok` reply to `hello`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HelloOk {
    pub technician: TechnicianInfo,
    pub sessions: Vec<SessionView>,
    /// As in [`JoinOk`]; every `offer` also brings fresh ones (a console lives for hours).
    pub ice_servers: Vec<IceServer>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ice_transport_policy: Option<String>,
}

/// The body of the `ok` reply to `create_session` (HTTP returns the same with `id` for
/// `session_id`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateSessionOk {
    pub session_id: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    pub expires_at: String,
    /// Email via the technician's default client: the `mailto:` link to open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mailto: Option<String>,
}

/// A frame the server sends, on either socket. Clients should ignore fields they do not know.
// Frames are built and serialized at once, never stored in bulk: `Session` stays unboxed so the
// variant reads as the protocol does.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    /// Success reply to the request with this `id`; `body` holds the reply's other fields.
    Ok {
        id: String,
        #[serde(flatten)]
        body: Map<String, Value>,
    },
    /// Failure reply (`id` when the request's id could be read), or an unsolicited error.
    Error {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        code: ErrorCode,
        message: String,
        /// Seconds to wait before trying again (`too_many_attempts`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after: Option<u64>,
    },
    /// The session's status changed (customer socket; `session_id` absent there).
    Status {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session_id: Option<i64>,
        status: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        technician: Option<TechnicianRef>,
    },
    /// A session appeared in or changed in the technician's list (console socket).
    Session { session: SessionView },
    /// A session left the technician's list (console socket).
    SessionRemoved { session_id: i64 },
    /// The server's SDP offer to the console, with fresh ICE servers for the peer connection
    /// that answers it (TURN credentials minted now: those of `hello` may have expired).
    Offer {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session_id: Option<i64>,
        sdp: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ice_servers: Option<Vec<IceServer>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ice_transport_policy: Option<String>,
    },
    /// A server ICE candidate; `candidate` absent/null = end of candidates.
    Candidate {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session_id: Option<i64>,
        #[serde(default)]
        candidate: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sdp_mid: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sdp_mline_index: Option<u16>,
    },
    /// What is flowing (`true`) and what is muted (`false`).
    MuteState {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session_id: Option<i64>,
        customer_audio: bool,
        customer_video: bool,
        technician_audio: bool,
    },
    /// A chat line (including the sender's own lines, echoed).
    Chat {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session_id: Option<i64>,
        from: ChatFrom,
        name: String,
        text: String,
        at: String,
    },
    /// The session reached a final status.
    Ended {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session_id: Option<i64>,
        status: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        survey: Option<Value>,
        /// Customer side, `Aborted: no technician available`: the page to show (group setting).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        redirect_url: Option<String>,
    },
    /// A technician's stroke to draw over the video (customer socket).
    Annotation {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session_id: Option<i64>,
        tool: AnnotationTool,
        color: String,
        points: Vec<Point>,
    },
    /// Remove every stroke drawn so far (customer socket).
    AnnotationClear {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session_id: Option<i64>,
    },
    /// Show the current frame as a still (`true`) or return to live video (customer socket).
    Freeze {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session_id: Option<i64>,
        frozen: bool,
    },
    /// A link from the technician, shown as a card to open with a tap (customer socket); `host`
    /// is the server's reading of the URL's host name, the one to show.
    Url {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session_id: Option<i64>,
        url: String,
        host: String,
        at: String,
    },
    /// The session's media room now lives on another node (customer socket): close the old peer
    /// connection and offer again from a new one, keeping the socket, camera and microphone.
    Reoffer { reason: ReofferReason },
    /// Reply to `ping`.
    Pong { id: String },
}

/// Why a customer is asked to offer again (`reoffer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReofferReason {
    /// A draining node moved the session to this one.
    NodeMoved,
    /// The node that held the session died; this one took it over.
    NodeFailed,
}

impl ServerFrame {
    /// An `ok` reply. An object `body` becomes the reply's fields (its `type` and `id` keys, if
    /// any, are dropped); `null` means no fields; any other value is put under `"value"`.
    pub fn ok(id: impl Into<String>, body: Value) -> Self {
        let body = match body {
            Value::Object(mut m) => {
                m.remove("type");
                m.remove("id");
                m
            }
            Value::Null => Map::new(),
            other => {
                let mut m = Map::new();
                m.insert("value".into(), other);
                m
            }
        };
        Self::Ok {
            id: id.into(),
            body,
        }
    }

    /// An `ok` reply whose fields are a serializable struct (e.g. [`JoinOk`]).
    pub fn ok_with<T: Serialize>(id: impl Into<String>, body: &T) -> Self {
        Self::ok(id, serde_json::to_value(body).unwrap_or(Value::Null))
    }

    /// An `error` frame.
    pub fn error(id: Option<String>, code: ErrorCode, message: impl Into<String>) -> Self {
        Self::Error {
            id,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// The JSON text to send.
    pub fn to_text(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| {
            r#"{"type":"error","code":"internal","message":"could not serialize a frame"}"#.into()
        })
    }
}

// ---------------------------------------------------------------- errors --

/// The `code` of an `error` frame. See PROTOCOL.md for when each is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    MalformedJson,
    UnknownType,
    InvalidMessage,
    FrameTooLarge,
    UnsupportedVersion,
    NotAuthenticated,
    AlreadyAuthenticated,
    InvalidToken,
    ApiKeyInvalid,
    IpRestricted,
    CodeInvalid,
    CodeExpired,
    TooManyAttempts,
    SessionNotFound,
    NotAllowed,
    OneActiveSession,
    MethodNotAllowed,
    ValidationFailed,
    ResumeInvalid,
    SessionEnded,
    InvalidStroke,
    InvalidUrl,
    RateLimited,
    AnnotationLimit,
    NodeUnavailable,
    Internal,
}

impl ErrorCode {
    /// Every code, in documentation order.
    pub const ALL: &'static [ErrorCode] = &[
        Self::MalformedJson,
        Self::UnknownType,
        Self::InvalidMessage,
        Self::FrameTooLarge,
        Self::UnsupportedVersion,
        Self::NotAuthenticated,
        Self::AlreadyAuthenticated,
        Self::InvalidToken,
        Self::ApiKeyInvalid,
        Self::IpRestricted,
        Self::CodeInvalid,
        Self::CodeExpired,
        Self::TooManyAttempts,
        Self::SessionNotFound,
        Self::NotAllowed,
        Self::OneActiveSession,
        Self::MethodNotAllowed,
        Self::ValidationFailed,
        Self::ResumeInvalid,
        Self::SessionEnded,
        Self::InvalidStroke,
        Self::InvalidUrl,
        Self::RateLimited,
        Self::AnnotationLimit,
        Self::NodeUnavailable,
        Self::Internal,
    ];

    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MalformedJson => "malformed_json",
            Self::UnknownType => "unknown_type",
            Self::InvalidMessage => "invalid_message",
            Self::FrameTooLarge => "frame_too_large",
            Self::UnsupportedVersion => "unsupported_version",
            Self::NotAuthenticated => "not_authenticated",
            Self::AlreadyAuthenticated => "already_authenticated",
            Self::InvalidToken => "invalid_token",
            Self::ApiKeyInvalid => "api_key_invalid",
            Self::IpRestricted => "ip_restricted",
            Self::CodeInvalid => "code_invalid",
            Self::CodeExpired => "code_expired",
            Self::TooManyAttempts => "too_many_attempts",
            Self::SessionNotFound => "session_not_found",
            Self::NotAllowed => "not_allowed",
            Self::OneActiveSession => "one_active_session",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::ValidationFailed => "validation_failed",
            Self::ResumeInvalid => "resume_invalid",
            Self::SessionEnded => "session_ended",
            Self::InvalidStroke => "invalid_stroke",
            Self::InvalidUrl => "invalid_url",
            Self::RateLimited => "rate_limited",
            Self::AnnotationLimit => "annotation_limit",
            Self::NodeUnavailable => "node_unavailable",
            Self::Internal => "internal",
        }
    }

    /// The HTTP status the REST API uses for the same condition.
    pub fn http_status(self) -> u16 {
        match self {
            Self::MalformedJson
            | Self::UnknownType
            | Self::InvalidMessage
            | Self::UnsupportedVersion => 400,
            Self::FrameTooLarge => 413,
            Self::NotAuthenticated
            | Self::InvalidToken
            | Self::ApiKeyInvalid
            | Self::ResumeInvalid => 401,
            Self::IpRestricted | Self::MethodNotAllowed => 403,
            Self::CodeInvalid | Self::SessionNotFound => 404,
            Self::CodeExpired | Self::SessionEnded => 410,
            Self::AlreadyAuthenticated | Self::NotAllowed | Self::OneActiveSession => 409,
            Self::ValidationFailed | Self::InvalidStroke | Self::InvalidUrl => 422,
            Self::TooManyAttempts | Self::RateLimited | Self::AnnotationLimit => 429,
            Self::NodeUnavailable => 503,
            Self::Internal => 500,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refused frame or request: becomes an `error` frame via [`ProtocolError::frame`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolError {
    pub id: Option<String>,
    pub code: ErrorCode,
    pub message: String,
}

impl ProtocolError {
    /// An error without a request id.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            id: None,
            code,
            message: message.into(),
        }
    }

    /// The same error, echoing request id `id`.
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    fn with_id_opt(mut self, id: Option<String>) -> Self {
        if self.id.is_none() {
            self.id = id;
        }
        self
    }

    /// The `error` frame to send.
    pub fn frame(&self) -> ServerFrame {
        ServerFrame::error(self.id.clone(), self.code, self.message.clone())
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for ProtocolError {}

// --------------------------------------------------------------- parsing --

/// Parses and validates one text frame from `/ws/customer`.
pub fn parse_customer(text: &str) -> Result<CustomerRequest, ProtocolError> {
    let (obj, id) = preparse(text, CUSTOMER_TYPES, &["join"])?;
    let req: CustomerRequest = serde_json::from_value(Value::Object(obj))
        .map_err(|e| serde_error(e).with_id_opt(id.clone()))?;
    req.validate().map_err(|e| e.with_id_opt(id))?;
    Ok(req)
}

/// Parses and validates one text frame from `/ws/console`.
pub fn parse_console(text: &str) -> Result<ConsoleRequest, ProtocolError> {
    let (obj, id) = preparse(text, CONSOLE_TYPES, &["hello"])?;
    if obj.get("type").and_then(Value::as_str) == Some("create_session")
        && let Some(unknown) = obj
            .keys()
            .find(|k| *k != "type" && *k != "id" && !CREATE_SESSION_FIELDS.contains(&k.as_str()))
    {
        let mut expected = vec!["id"];
        expected.extend_from_slice(CREATE_SESSION_FIELDS);
        return Err(ProtocolError {
            id,
            code: ErrorCode::InvalidMessage,
            message: truncate(
                &format!(
                    "unknown field `{unknown}`, expected one of `{}`",
                    expected.join("`, `")
                ),
                limits::ERROR_MESSAGE_CHARS,
            ),
        });
    }
    let req: ConsoleRequest = serde_json::from_value(Value::Object(obj))
        .map_err(|e| serde_error(e).with_id_opt(id.clone()))?;
    req.validate().map_err(|e| e.with_id_opt(id))?;
    Ok(req)
}

/// Size, JSON, object, id and type checks shared by both endpoints. Returns the object and the
/// request id to echo (a string of 1..=64 characters, else none).
fn preparse(
    text: &str,
    known: &[&str],
    versioned: &[&str],
) -> Result<(Map<String, Value>, Option<String>), ProtocolError> {
    if text.len() > MAX_FRAME_BYTES {
        return Err(ProtocolError::new(
            ErrorCode::FrameTooLarge,
            format!(
                "frame is {} bytes; the limit is {MAX_FRAME_BYTES}",
                text.len()
            ),
        ));
    }
    let value: Value = serde_json::from_str(text).map_err(|e| {
        ProtocolError::new(
            ErrorCode::MalformedJson,
            truncate(&format!("not JSON: {e}"), limits::ERROR_MESSAGE_CHARS),
        )
    })?;
    let Value::Object(obj) = value else {
        return Err(ProtocolError::new(
            ErrorCode::MalformedJson,
            "a frame must be one JSON object",
        ));
    };
    let id = echo_id(obj.get("id").and_then(Value::as_str));
    let err = |code, message: String| ProtocolError {
        id: id.clone(),
        code,
        message,
    };
    let ty = match obj.get("type") {
        None => return Err(err(ErrorCode::UnknownType, "missing `type`".into())),
        Some(Value::String(t)) => t.as_str(),
        Some(_) => {
            return Err(err(
                ErrorCode::UnknownType,
                "`type` must be a string".into(),
            ));
        }
    };
    if !known.contains(&ty) {
        return Err(err(
            ErrorCode::UnknownType,
            truncate(
                &format!(
                    "unknown message type `{ty}` on this endpoint; known: {}",
                    known.join(", ")
                ),
                limits::ERROR_MESSAGE_CHARS,
            ),
        ));
    }
    // A different version's fields may not match ours: report the version first.
    if versioned.contains(&ty)
        && let Some(v) = obj.get("v").filter(|v| v.is_number())
        && v.as_u64() != Some(u64::from(PROTOCOL_VERSION))
    {
        return Err(err(
            ErrorCode::UnsupportedVersion,
            format!("protocol version {v} is not supported; this server speaks {PROTOCOL_VERSION}"),
        ));
    }
    Ok((obj, id))
}

/// The id an error may echo: a valid request id (1..=64 characters).
fn echo_id(id: Option<&str>) -> Option<String> {
    id.filter(|s| check_id(s).is_ok()).map(str::to_owned)
}

fn serde_error(e: serde_json::Error) -> ProtocolError {
    ProtocolError::new(
        ErrorCode::InvalidMessage,
        truncate(&e.to_string(), limits::ERROR_MESSAGE_CHARS),
    )
}

/// At most `max` characters of `s`, with `…` appended when cut.
fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        None => s.to_owned(),
        Some((i, _)) => format!("{}…", &s[..i]),
    }
}

fn check_chars(field: &str, value: &str, max: usize) -> Result<(), String> {
    if value.chars().nth(max).is_some() {
        Err(format!("`{field}` is longer than {max} characters"))
    } else {
        Ok(())
    }
}

fn check_nonempty(field: &str, value: &str, max: usize) -> Result<(), String> {
    if value.is_empty() {
        return Err(format!("`{field}` must not be empty"));
    }
    check_chars(field, value, max)
}

fn check_opt(field: &str, value: &Option<String>, max: usize) -> Result<(), String> {
    value
        .as_deref()
        .map_or(Ok(()), |v| check_chars(field, v, max))
}

fn invalid(r: Result<(), String>) -> Result<(), ProtocolError> {
    r.map_err(|m| ProtocolError::new(ErrorCode::InvalidMessage, m))
}

fn check_id(id: &str) -> Result<(), ProtocolError> {
    invalid(check_nonempty("id", id, limits::ID_CHARS))
}

fn check_version(v: u32) -> Result<(), ProtocolError> {
    if v == PROTOCOL_VERSION {
        Ok(())
    } else {
        Err(ProtocolError::new(
            ErrorCode::UnsupportedVersion,
            format!("protocol version {v} is not supported; this server speaks {PROTOCOL_VERSION}"),
        ))
    }
}

fn check_device(d: &DeviceInfo) -> Result<(), ProtocolError> {
    let m = limits::DEVICE_FIELD_CHARS;
    invalid(check_opt("device.platform", &d.platform, m))?;
    invalid(check_opt("device.model", &d.model, m))?;
    invalid(check_opt("device.app", &d.app, m))?;
    invalid(check_opt("device.locale", &d.locale, m))?;
    invalid(check_opt("device.browser", &d.browser, m))?;
    invalid(check_opt(
        "device.device_id",
        &d.device_id,
        limits::DEVICE_ID_CHARS,
    ))
}

fn check_sdp(sdp: &str) -> Result<(), ProtocolError> {
    if sdp.is_empty() {
        return invalid(Err("`sdp` must not be empty".into()));
    }
    if sdp.len() > limits::SDP_BYTES {
        return invalid(Err(format!(
            "`sdp` is longer than {} bytes",
            limits::SDP_BYTES
        )));
    }
    Ok(())
}

fn check_candidate(
    candidate: &Option<String>,
    sdp_mid: &Option<String>,
) -> Result<(), ProtocolError> {
    if let Some(c) = candidate
        && c.len() > limits::CANDIDATE_BYTES
    {
        return invalid(Err(format!(
            "`candidate` is longer than {} bytes",
            limits::CANDIDATE_BYTES
        )));
    }
    invalid(check_opt("sdp_mid", sdp_mid, limits::SDP_MID_CHARS))
}

/// A stroke's shape: a known colour form, the tool's number of points, every coordinate a finite
/// number from 0 to 1. (JSON has no NaN or infinity: `NaN`, `Infinity` and numbers that overflow a
/// double, such as `1e400`, are already `malformed_json`; strings and `null` are `invalid_message`.)
fn check_stroke(tool: AnnotationTool, color: &str, points: &[Point]) -> Result<(), ProtocolError> {
    let fail = |m: String| Err(ProtocolError::new(ErrorCode::InvalidStroke, m));
    let hex = color.strip_prefix('#').unwrap_or_default();
    if hex.len() != 6 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return fail("`color` must be #rrggbb".into());
    }
    match tool {
        AnnotationTool::Arrow if points.len() != 2 => {
            return fail(format!(
                "an arrow has exactly 2 points (tail, head), not {}",
                points.len()
            ));
        }
        AnnotationTool::Pen if points.is_empty() || points.len() > limits::STROKE_POINTS => {
            return fail(format!(
                "a pen stroke has 1 to {} points, not {}",
                limits::STROKE_POINTS,
                points.len()
            ));
        }
        _ => {}
    }
    for (i, [x, y]) in points.iter().enumerate() {
        if !(x.is_finite() && y.is_finite() && (0.0..=1.0).contains(x) && (0.0..=1.0).contains(y)) {
            return fail(format!(
                "points[{i}] must be two finite numbers from 0 to 1"
            ));
        }
    }
    Ok(())
}

// ----------------------------------------------------------------- tests --

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cust_err(text: &str) -> ProtocolError {
        parse_customer(text).expect_err(text)
    }

    fn cons_err(text: &str) -> ProtocolError {
        parse_console(text).expect_err(text)
    }

    #[test]
    fn join_parses_with_and_without_optionals() {
        let r = parse_customer(r#"{"type":"join","id":"1","v":1,"code":"123456"}"#).unwrap();
        assert_eq!(
            r,
            CustomerRequest::Join {
                id: "1".into(),
                v: 1,
                code: "123456".into(),
                device: None,
                api_key: None,
                app_id: None
            }
        );
        let r = parse_customer(
            r#"{"type":"join","id":"1","v":1,"code":"x","device":{"platform":"Android 15","model":"Pixel 8","app":"a","locale":"en-US","device_id":"d","browser":null},"api_key":null,"app_id":"com.example"}"#,
        )
        .unwrap();
        let CustomerRequest::Join { device, app_id, .. } = r else {
            panic!()
        };
        assert_eq!(device.unwrap().model.as_deref(), Some("Pixel 8"));
        assert_eq!(app_id.as_deref(), Some("com.example"));
    }

    #[test]
    fn every_customer_type_parses() {
        for text in [
            r#"{"type":"ready","id":"a"}"#,
            r#"{"type":"offer","id":"a","sdp":"v=0"}"#,
            r#"{"type":"candidate","candidate":"candidate:1 1 udp 1 1.2.3.4 5 typ host","sdp_mid":"0","sdp_mline_index":0}"#,
            r#"{"type":"candidate","candidate":null}"#,
            r#"{"type":"candidate"}"#,
            r#"{"type":"mute","id":"a","kind":"video","muted":true}"#,
            r#"{"type":"chat","text":"hi"}"#,
            r#"{"type":"chat","id":"a","text":"hi"}"#,
            r#"{"type":"end","id":"a"}"#,
            r#"{"type":"decline","id":"a"}"#,
            r#"{"type":"resume","id":"a","resume_token":"t"}"#,
            r#"{"type":"ping","id":"a"}"#,
        ] {
            let r = parse_customer(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            // Round trip: what we serialize parses back to the same request.
            let again = parse_customer(&serde_json::to_string(&r).unwrap()).unwrap();
            assert_eq!(r, again);
            let ty = serde_json::from_str::<Value>(text).unwrap()["type"].clone();
            assert_eq!(r.type_name(), ty.as_str().unwrap());
        }
    }

    #[test]
    fn every_console_type_parses() {
        for text in [
            r#"{"type":"hello","id":"a","v":1,"token":"t"}"#,
            r#"{"type":"pickup","id":"a","session_id":1}"#,
            r#"{"type":"hold","id":"a","session_id":1}"#,
            r#"{"type":"resume","id":"a","session_id":1}"#,
            r#"{"type":"end","id":"a","session_id":1}"#,
            r#"{"type":"transfer","id":"a","session_id":1,"to_group_id":3,"comment":"c"}"#,
            r#"{"type":"transfer","id":"a","session_id":1,"to_technician_id":3}"#,
            r#"{"type":"answer","session_id":1,"sdp":"v=0"}"#,
            r#"{"type":"candidate","session_id":1,"candidate":null}"#,
            r#"{"type":"mute","id":"a","session_id":1,"target":"self","kind":"audio","muted":true}"#,
            r#"{"type":"mute","id":"a","session_id":1,"target":"customer","kind":"video","muted":false}"#,
            r#"{"type":"chat","session_id":1,"text":"hi"}"#,
            r#"{"type":"note","id":"a","session_id":1,"text":"n"}"#,
            r#"{"type":"status","id":"a","value":"away"}"#,
            r#"{"type":"create_session","id":"a","method":"pin","name":"Ann"}"#,
            r#"{"type":"create_session","id":"a","method":"sms","name":"Ann","custom_fields":["x"],"tracking_id":"T","phone":"+1 555-123-4567"}"#,
            r#"{"type":"create_session","id":"a","method":"email","name":"","email":"a@b.co","email_via":"servers"}"#,
            r#"{"type":"ping","id":"a"}"#,
            r##"{"type":"annotate","session_id":1,"tool":"pen","color":"#ff3b30","points":[[0.0,0.0],[0.5,0.25],[1.0,1.0]]}"##,
            r##"{"type":"annotate","id":"a","session_id":1,"tool":"arrow","color":"#FFCC00","points":[[0.1,0.2],[0.3,0.4]]}"##,
            r#"{"type":"annotation_clear","id":"a","session_id":1}"#,
            r#"{"type":"freeze","id":"a","session_id":1,"frozen":true}"#,
            r#"{"type":"send_url","id":"a","session_id":1,"url":"https://example.com/manual"}"#,
        ] {
            let r = parse_console(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            let again = parse_console(&serde_json::to_string(&r).unwrap()).unwrap();
            assert_eq!(r, again);
            let ty = serde_json::from_str::<Value>(text).unwrap()["type"].clone();
            assert_eq!(r.type_name(), ty.as_str().unwrap());
        }
    }

    #[test]
    fn create_session_body_is_flattened() {
        let r = parse_console(
            r#"{"type":"create_session","id":"a","method":"link","name":"Ann","custom_fields":["1","2"]}"#,
        )
        .unwrap();
        let s = r.create_session().unwrap();
        assert_eq!(s.method, CodeMethod::Link);
        assert_eq!(s.custom_fields, ["1", "2"]);
        assert_eq!(r.id(), Some("a"));
        assert!(
            parse_console(r#"{"type":"ping","id":"a"}"#)
                .unwrap()
                .create_session()
                .is_none()
        );
    }

    #[test]
    fn create_session_refuses_unknown_fields() {
        let e =
            cons_err(r#"{"type":"create_session","id":"a","method":"pin","name":"x","bogus":1}"#);
        assert_eq!(e.code, ErrorCode::InvalidMessage);
        assert_eq!(e.id.as_deref(), Some("a"));
        assert!(e.message.contains("bogus"), "{}", e.message);
        let e = cons_err(r#"{"type":"create_session","id":"a","name":"x"}"#);
        assert_eq!(e.code, ErrorCode::InvalidMessage);
        assert!(e.message.contains("method"), "{}", e.message);
    }

    #[test]
    fn create_session_validation() {
        let ok = |j: Value| {
            serde_json::from_value::<CreateSession>(j)
                .unwrap()
                .validate()
        };
        assert!(ok(json!({"method":"pin","name":"Ann"})).is_ok());
        assert!(ok(json!({"method":"pin"})).is_ok());
        let e = ok(json!({"method":"sms","name":"Ann"})).unwrap_err();
        assert_eq!(e.code, ErrorCode::ValidationFailed);
        assert!(ok(json!({"method":"sms","phone":"12345"})).is_err());
        assert!(ok(json!({"method":"sms","phone":"+12 3456"})).is_ok());
        assert!(ok(json!({"method":"sms","phone":"1234567890123456"})).is_err());
        assert!(ok(json!({"method":"sms","phone":"555-CALL-NOW"})).is_err());
        assert!(ok(json!({"method":"email"})).is_err());
        assert!(ok(json!({"method":"email","email":"nope"})).is_err());
        assert!(
            ok(json!({"method":"email","email":"a@b.example","email_via":"default_client"}))
                .is_ok()
        );
        assert!(ok(json!({"method":"pin","email_via":"servers"})).is_err());
        assert!(ok(json!({"method":"pin","name":"n".repeat(128)})).is_ok());
        assert!(ok(json!({"method":"pin","name":"n".repeat(129)})).is_err());
        assert!(ok(json!({"method":"pin","custom_fields":["a","b","c","d","e"]})).is_ok());
        assert!(ok(json!({"method":"pin","custom_fields":["a","b","c","d","e","f"]})).is_err());
        assert!(ok(json!({"method":"pin","custom_fields":["é".repeat(64)]})).is_ok());
        assert!(ok(json!({"method":"pin","custom_fields":["é".repeat(65)]})).is_err());
        assert!(ok(json!({"method":"pin","tracking_id":"t".repeat(257)})).is_err());
        // Through the console parser the error carries the request id.
        let e = cons_err(r#"{"type":"create_session","id":"r1","method":"sms","name":"x"}"#);
        assert_eq!(
            (e.code, e.id.as_deref()),
            (ErrorCode::ValidationFailed, Some("r1"))
        );
        // The HTTP body refuses unknown fields too.
        assert!(serde_json::from_value::<CreateSession>(json!({"method":"pin","x":1})).is_err());
    }

    #[test]
    fn phone_and_email_helpers() {
        assert_eq!(
            normalize_phone("+1 555-123-4567").as_deref(),
            Some("+15551234567")
        );
        assert_eq!(normalize_phone("123456").as_deref(), Some("123456"));
        assert_eq!(normalize_phone("+"), None);
        assert_eq!(normalize_phone("++123456"), None);
        assert_eq!(normalize_phone("１２３４５６"), None);
        assert!(is_valid_email("a.b+c@example.org"));
        for bad in [
            "", "@a.b", "a@", "a@b", "a@@b.c", "a b@c.d", "a@.b", "a@b.", "a@b..c",
        ] {
            assert!(!is_valid_email(bad), "{bad}");
        }
    }

    #[test]
    fn frame_errors() {
        let big = format!(
            r#"{{"type":"chat","id":"x","text":"{}"}}"#,
            "a".repeat(MAX_FRAME_BYTES)
        );
        assert_eq!(cust_err(&big).code, ErrorCode::FrameTooLarge);
        assert_eq!(cons_err(&big).code, ErrorCode::FrameTooLarge);
        for bad in [
            "",
            "{",
            "nope",
            "[1]",
            "null",
            "\"join\"",
            "{\"type\":\"ping\",\"id\":\"a\"} x",
        ] {
            assert_eq!(cust_err(bad).code, ErrorCode::MalformedJson, "{bad}");
            assert_eq!(cons_err(bad).code, ErrorCode::MalformedJson, "{bad}");
        }
        let e = cust_err(r#"{"id":"q"}"#);
        assert_eq!(
            (e.code, e.id.as_deref()),
            (ErrorCode::UnknownType, Some("q"))
        );
        let e = cust_err(r#"{"type":7,"id":"q"}"#);
        assert_eq!(
            (e.code, e.id.as_deref()),
            (ErrorCode::UnknownType, Some("q"))
        );
        let e = cust_err(r#"{"type":"fly","id":"q"}"#);
        assert_eq!(
            (e.code, e.id.as_deref()),
            (ErrorCode::UnknownType, Some("q"))
        );
        // Each endpoint knows only its own messages.
        assert_eq!(
            cust_err(r#"{"type":"hello","id":"q","v":1,"token":"t"}"#).code,
            ErrorCode::UnknownType
        );
        assert_eq!(
            cons_err(r#"{"type":"join","id":"q","v":1,"code":"1"}"#).code,
            ErrorCode::UnknownType
        );
    }

    #[test]
    fn invalid_messages_echo_the_id() {
        for (text, needle) in [
            (r#"{"type":"join","id":"q","v":1}"#, "code"),
            (
                r#"{"type":"join","id":"q","v":1,"code":"1","extra":true}"#,
                "extra",
            ),
            (
                r#"{"type":"join","id":"q","v":1,"code":"1","device":{"os":"x"}}"#,
                "os",
            ),
            (
                r#"{"type":"join","id":"q","v":"1","code":"1"}"#,
                "invalid type",
            ),
            (
                r#"{"type":"mute","id":"q","kind":"smell","muted":true}"#,
                "smell",
            ),
            (
                r#"{"type":"candidate","sdp_mline_index":70000,"id":"q"}"#,
                "id",
            ),
        ] {
            let e = cust_err(text);
            assert_eq!(e.code, ErrorCode::InvalidMessage, "{text}");
            assert!(e.message.contains(needle), "{text}: {}", e.message);
        }
        let e = cust_err(r#"{"type":"ready","id":"q","x":1}"#);
        assert_eq!(e.id.as_deref(), Some("q"));
        let e = cust_err(r#"{"type":"candidate","sdp_mline_index":-1}"#);
        assert_eq!((e.code, e.id), (ErrorCode::InvalidMessage, None));
        // Non-string or over-long ids are not echoed.
        let e = cust_err(r#"{"type":"ready","id":5}"#);
        assert_eq!((e.code, e.id), (ErrorCode::InvalidMessage, None));
        let long = format!(r#"{{"type":"ready","id":"{}"}}"#, "i".repeat(65));
        let e = cust_err(&long);
        assert_eq!((e.code, e.id), (ErrorCode::InvalidMessage, None));
        let e = cust_err(r#"{"type":"ready","id":""}"#);
        assert_eq!((e.code, e.id), (ErrorCode::InvalidMessage, None));
        // serde messages quoting long input are cut.
        let e = cust_err(&format!(
            r#"{{"type":"join","id":"q","v":1,"code":5,"device":"{}"}}"#,
            "d".repeat(5000)
        ));
        assert!(e.message.chars().count() <= limits::ERROR_MESSAGE_CHARS + 1);
    }

    #[test]
    fn versions() {
        let e = cust_err(r#"{"type":"join","id":"q","v":2,"code":"1","newfield":1}"#);
        assert_eq!(
            (e.code, e.id.as_deref()),
            (ErrorCode::UnsupportedVersion, Some("q"))
        );
        let e = cons_err(r#"{"type":"hello","id":"q","v":0,"token":"t"}"#);
        assert_eq!(e.code, ErrorCode::UnsupportedVersion);
        let e = cons_err(r#"{"type":"hello","id":"q","v":1.5,"token":"t"}"#);
        assert_eq!(e.code, ErrorCode::UnsupportedVersion);
        let e = cons_err(r#"{"type":"hello","id":"q","token":"t"}"#);
        assert_eq!(e.code, ErrorCode::InvalidMessage);
    }

    #[test]
    fn length_limits() {
        let chat = |n: usize| format!(r#"{{"type":"chat","id":"c","text":"{}"}}"#, "ü".repeat(n));
        assert!(parse_customer(&chat(2000)).is_ok());
        let e = cust_err(&chat(2001));
        assert_eq!(
            (e.code, e.id.as_deref()),
            (ErrorCode::InvalidMessage, Some("c"))
        );
        assert_eq!(cust_err(&chat(0)).code, ErrorCode::InvalidMessage);
        let note = |n: usize| {
            format!(
                r#"{{"type":"note","id":"c","session_id":1,"text":"{}"}}"#,
                "n".repeat(n)
            )
        };
        assert!(parse_console(&note(1024)).is_ok());
        assert!(parse_console(&note(1025)).is_err());
        let sdp = |n: usize| format!(r#"{{"type":"offer","id":"o","sdp":"{}"}}"#, "s".repeat(n));
        assert!(parse_customer(&sdp(32 * 1024)).is_ok());
        assert!(parse_customer(&sdp(32 * 1024 + 1)).is_err());
        assert!(parse_customer(&sdp(0)).is_err());
        let cand = |n: usize| format!(r#"{{"type":"candidate","candidate":"{}"}}"#, "c".repeat(n));
        assert!(parse_customer(&cand(1024)).is_ok());
        assert!(parse_customer(&cand(1025)).is_err());
        let code = |n: usize| {
            format!(
                r#"{{"type":"join","id":"j","v":1,"code":"{}"}}"#,
                "1".repeat(n)
            )
        };
        assert!(parse_customer(&code(128)).is_ok());
        assert!(parse_customer(&code(129)).is_err());
        assert!(parse_customer(&code(0)).is_err());
        let token = |n: usize| {
            format!(
                r#"{{"type":"hello","id":"h","v":1,"token":"{}"}}"#,
                "t".repeat(n)
            )
        };
        assert!(parse_console(&token(128)).is_ok());
        assert!(parse_console(&token(129)).is_err());
        let rt = |n: usize| {
            format!(
                r#"{{"type":"resume","id":"h","resume_token":"{}"}}"#,
                "t".repeat(n)
            )
        };
        assert!(parse_customer(&rt(128)).is_ok());
        assert!(parse_customer(&rt(129)).is_err());
        let comment = |n: usize| {
            format!(
                r#"{{"type":"transfer","id":"t","session_id":1,"to_group_id":2,"comment":"{}"}}"#,
                "c".repeat(n)
            )
        };
        assert!(parse_console(&comment(256)).is_ok());
        assert!(parse_console(&comment(257)).is_err());
        let dev = |field: &str, n: usize| {
            format!(
                r#"{{"type":"join","id":"j","v":1,"code":"1","device":{{"{field}":"{}"}}}}"#,
                "d".repeat(n)
            )
        };
        assert!(parse_customer(&dev("model", 64)).is_ok());
        assert!(parse_customer(&dev("model", 65)).is_err());
        assert!(parse_customer(&dev("device_id", 128)).is_ok());
        assert!(parse_customer(&dev("device_id", 129)).is_err());
        let id = |n: usize| format!(r#"{{"type":"ping","id":"{}"}}"#, "i".repeat(n));
        assert!(parse_customer(&id(64)).is_ok());
        assert!(parse_customer(&id(65)).is_err());
    }

    #[test]
    fn console_semantic_checks() {
        let e = cons_err(r#"{"type":"transfer","id":"t","session_id":1}"#);
        assert_eq!(
            (e.code, e.id.as_deref()),
            (ErrorCode::InvalidMessage, Some("t"))
        );
        let e = cons_err(
            r#"{"type":"transfer","id":"t","session_id":1,"to_group_id":2,"to_technician_id":3}"#,
        );
        assert_eq!(e.code, ErrorCode::InvalidMessage);
        let e = cons_err(
            r#"{"type":"mute","id":"m","session_id":1,"target":"self","kind":"video","muted":true}"#,
        );
        assert_eq!(e.code, ErrorCode::InvalidMessage);
        let e = cons_err(r#"{"type":"status","id":"s","value":"sleeping"}"#);
        assert_eq!(e.code, ErrorCode::InvalidMessage);
        let e = cons_err(r#"{"type":"pickup","id":"p","session_id":"1"}"#);
        assert_eq!(e.code, ErrorCode::InvalidMessage);
    }

    #[test]
    fn strokes_are_finite_points_in_the_frame() {
        let stroke = |tool: &str, points: &str| {
            format!(
                r##"{{"type":"annotate","id":"s","session_id":1,"tool":"{tool}","color":"#00aaff","points":{points}}}"##
            )
        };
        assert!(parse_console(&stroke("pen", "[[0.5,0.5]]")).is_ok());
        // JSON has no NaN or infinity: what a client can send instead is refused before typing.
        for bad in [
            "[[NaN,0.5]]",
            "[[Infinity,0.5]]",
            "[[-Infinity,0.5]]",
            "[[1e400,0.5]]",
        ] {
            assert_eq!(
                cons_err(&stroke("pen", bad)).code,
                ErrorCode::MalformedJson,
                "{bad}"
            );
        }
        for bad in [
            r#"[["NaN",0.5]]"#,
            "[[null,0.5]]",
            "[[0.5]]",
            "[[0.5,0.5,0.5]]",
            "[{}]",
            "7",
        ] {
            let e = cons_err(&stroke("pen", bad));
            assert_eq!(
                (e.code, e.id.as_deref()),
                (ErrorCode::InvalidMessage, Some("s")),
                "{bad}"
            );
        }
        for bad in [
            "[[1.0000001,0.5]]",
            "[[-0.0001,0.5]]",
            "[[0.5,2]]",
            "[[0.5,1e308]]",
            "[]",
        ] {
            let e = cons_err(&stroke("pen", bad));
            assert_eq!(
                (e.code, e.id.as_deref()),
                (ErrorCode::InvalidStroke, Some("s")),
                "{bad}"
            );
        }
        assert!(
            cons_err(&stroke("pen", "[[0.5,2]]"))
                .message
                .contains("points[0]")
        );
        let pen = |n: usize| stroke("pen", &format!("[{}]", vec!["[0.5,0.5]"; n].join(",")));
        assert!(parse_console(&pen(1000)).is_ok());
        assert_eq!(cons_err(&pen(1001)).code, ErrorCode::InvalidStroke);
        assert!(parse_console(&stroke("arrow", "[[0.1,0.1],[0.9,0.9]]")).is_ok());
        assert_eq!(
            cons_err(&stroke("arrow", "[[0.1,0.1]]")).code,
            ErrorCode::InvalidStroke
        );
        assert_eq!(
            cons_err(&stroke("arrow", "[[0.1,0.1],[0.2,0.2],[0.3,0.3]]")).code,
            ErrorCode::InvalidStroke
        );
        for color in ["red", "#fff", "#12345g", "", "#1234567"] {
            let text = stroke("pen", "[[0.5,0.5]]").replace("#00aaff", color);
            assert_eq!(cons_err(&text).code, ErrorCode::InvalidStroke, "{color}");
        }
        assert_eq!(
            cons_err(&stroke("laser", "[[0.5,0.5]]")).code,
            ErrorCode::InvalidMessage
        );
    }

    #[test]
    fn only_http_and_https_urls_are_sent() {
        let send = |url: &str| {
            format!(
                r#"{{"type":"send_url","id":"u","session_id":1,"url":{}}}"#,
                Value::String(url.into())
            )
        };
        assert!(parse_console(&send("https://example.com/a?b=c")).is_ok());
        for bad in [
            "javascript:alert(1)",
            "data:text/html,hi",
            "mailto:a@b.c",
            "",
        ] {
            let e = cons_err(&send(bad));
            assert_eq!(
                (e.code, e.id.as_deref()),
                (ErrorCode::InvalidUrl, Some("u")),
                "{bad}"
            );
        }
        let long = format!("https://example.com/{}", "a".repeat(2100));
        assert_eq!(cons_err(&send(&long)).code, ErrorCode::InvalidUrl);
    }

    #[test]
    fn server_frames_serialize_as_documented() {
        let f = ServerFrame::ok("1", json!({"session_id": 7, "id": "x", "type": "y"}));
        assert_eq!(f.to_text(), r#"{"type":"ok","id":"1","session_id":7}"#);
        assert_eq!(
            ServerFrame::ok("1", Value::Null).to_text(),
            r#"{"type":"ok","id":"1"}"#
        );
        assert_eq!(
            ServerFrame::ok("1", json!(5)).to_text(),
            r#"{"type":"ok","id":"1","value":5}"#
        );
        let f = ServerFrame::Status {
            session_id: None,
            status: "Waiting".into(),
            technician: None,
        };
        assert_eq!(f.to_text(), r#"{"type":"status","status":"Waiting"}"#);
        let f = ServerFrame::Candidate {
            session_id: None,
            candidate: None,
            sdp_mid: None,
            sdp_mline_index: None,
        };
        assert_eq!(f.to_text(), r#"{"type":"candidate","candidate":null}"#);
        let f = ServerFrame::MuteState {
            session_id: None,
            customer_audio: true,
            customer_video: true,
            technician_audio: false,
        };
        assert_eq!(
            f.to_text(),
            r#"{"type":"mute_state","customer_audio":true,"customer_video":true,"technician_audio":false}"#
        );
        let f = ServerFrame::SessionRemoved { session_id: 3 };
        assert_eq!(f.to_text(), r#"{"type":"session_removed","session_id":3}"#);
        let e = ProtocolError::new(ErrorCode::TooManyAttempts, "slow down").with_id("j");
        assert_eq!(
            e.frame().to_text(),
            r#"{"type":"error","id":"j","code":"too_many_attempts","message":"slow down"}"#
        );
        let f = ServerFrame::Error {
            id: None,
            code: ErrorCode::TooManyAttempts,
            message: "m".into(),
            retry_after: Some(42),
        };
        assert_eq!(
            f.to_text(),
            r#"{"type":"error","code":"too_many_attempts","message":"m","retry_after":42}"#
        );
        // Typed ok bodies.
        let j = JoinOk {
            session_id: 7,
            resume_token: "r".into(),
            audio: true,
            ice_servers: vec![IceServer {
                urls: vec!["stun:stun.example.org:3478".into()],
                username: None,
                credential: None,
            }],
            ice_transport_policy: Some("relay".into()),
            status: "Connecting".into(),
        };
        let text = ServerFrame::ok_with("j1", &j).to_text();
        let ServerFrame::Ok { id, body } = serde_json::from_str(&text).unwrap() else {
            panic!("{text}")
        };
        assert_eq!(id, "j1");
        assert_eq!(
            serde_json::from_value::<JoinOk>(Value::Object(body)).unwrap(),
            j
        );
    }

    #[test]
    fn server_frames_round_trip() {
        let view = SessionView {
            id: 1,
            status: "Waiting".into(),
            method: CodeMethod::Pin,
            name: "Ann".into(),
            custom_fields: vec!["a".into()],
            tracking_id: String::new(),
            technician_id: Some(2),
            group_id: 3,
            created_at: "2026-01-01T00:00:00Z".into(),
            status_since: "2026-01-01T00:00:05Z".into(),
            waiting_seconds: Some(5),
            alarm_color: None,
            device: Some(DeviceInfo::default()),
            customer_ip: None,
            pin: None,
            link: None,
            audio: true,
            transfer_comment: None,
        };
        for f in [
            ServerFrame::Session { session: view },
            ServerFrame::Offer {
                session_id: Some(1),
                sdp: "v=0".into(),
                ice_servers: None,
                ice_transport_policy: None,
            },
            ServerFrame::Offer {
                session_id: Some(1),
                sdp: "v=0".into(),
                ice_servers: Some(vec![IceServer {
                    urls: vec!["turns:turn.example.org:443?transport=tcp".into()],
                    username: Some("1746352200:u7".into()),
                    credential: Some("c".into()),
                }]),
                ice_transport_policy: Some("relay".into()),
            },
            ServerFrame::Chat {
                session_id: None,
                from: ChatFrom::System,
                name: "".into(),
                text: "t".into(),
                at: "2026-01-01T00:00:00Z".into(),
            },
            ServerFrame::Ended {
                session_id: None,
                status: "Closed by technician".into(),
                survey: Some(json!({"url": "https://example.org/s"})),
                redirect_url: None,
            },
            ServerFrame::Reoffer {
                reason: ReofferReason::NodeMoved,
            },
            ServerFrame::Pong { id: "p".into() },
        ] {
            let back: ServerFrame = serde_json::from_str(&f.to_text()).unwrap();
            assert_eq!(back, f);
        }
    }

    #[test]
    fn reoffer_reads_as_agreed() {
        let f = ServerFrame::Reoffer {
            reason: ReofferReason::NodeFailed,
        };
        assert_eq!(f.to_text(), r#"{"type":"reoffer","reason":"node_failed"}"#);
    }

    #[test]
    fn error_codes_spell_as_serde_does() {
        for code in ErrorCode::ALL {
            assert_eq!(
                serde_json::to_value(code).unwrap(),
                Value::String(code.as_str().into())
            );
            assert!(code.http_status() >= 400);
        }
        assert_eq!(ErrorCode::TooManyAttempts.http_status(), 429);
    }

    #[test]
    fn nothing_panics_on_odd_input() {
        let deep = "[".repeat(10_000);
        let deep_obj = format!(r#"{{"type":"chat","text":{}}}"#, "[".repeat(10_000));
        for text in [
            deep.as_str(),
            deep_obj.as_str(),
            "\u{0}",
            r#"{"type":"join","id":"\ud800","v":1,"code":"1"}"#,
            r#"{"type":"join","id":"a","v":18446744073709551616,"code":"1"}"#,
            r#"{"type":"join","id":"a","v":-1,"code":"1"}"#,
            r#"{"type":"pickup","id":"a","session_id":9223372036854775808}"#,
            r#"{"type":"chat","text":"a","text":"b"}"#,
            r#"{"type":"create_session","id":"a","method":"pin","type":"create_session"}"#,
        ] {
            let _ = parse_customer(text).map_err(|e| e.frame().to_text());
            let _ = parse_console(text).map_err(|e| e.frame().to_text());
        }
    }
}
