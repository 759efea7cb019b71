//! Per technician group settings: the guide's Settings tab for a Technician Group.
//!
//! The struct is the whole document. A PUT must send every section (no serde defaults, unknown
//! fields rejected), so a typo or a stale client cannot silently reset a setting. GET returns
//! [`TechnicianGroupSettings::masked`]; before validating a PUT body the server calls
//! [`TechnicianGroupSettings::merge_secrets`] with the stored value, so a masked password that came
//! back unchanged keeps the stored one.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{
    Diff, FieldChange, SettingsError, check_line, check_multiline, check_url, mask_opt_url,
    merge_url_secret,
};
use crate::ipfilter::IpRestrictions;

/// Number of group-configurable custom fields (CField1..CField5). The name field (CField0) is always
/// shown and is only named, in global settings, so it has no per-group entry here.
pub const CUSTOM_FIELD_COUNT: usize = 5;
pub const MAX_CUSTOM_FIELD_CHOICES: usize = 50;
/// Also the longest value a technician may type into an open-text custom field (guide: 64).
pub const MAX_CUSTOM_FIELD_TEXT: usize = 64;
pub const MAX_EMAIL_SUBJECT: usize = 256;
pub const MAX_EMAIL_TEXT: usize = 4000;
/// Guide: "up to ten questions, each with five possible predefined answers".
pub const MAX_SURVEY_QUESTIONS: usize = 10;
pub const MAX_SURVEY_ANSWERS: usize = 5;
pub const MAX_QUESTION_TEXT: usize = 256;
pub const MAX_ANSWER_TEXT: usize = 128;
pub const MAX_ALARMS: usize = 10;
/// Private code validity, minutes: 1 minute to 24 hours.
pub const PRIVATE_CODE_VALIDITY_MINUTES: std::ops::RangeInclusive<u32> = 1..=1440;
/// Connecting time-out, seconds: long enough for a slow phone to open the app, short enough that a
/// stuck session leaves the queue within the hour. Never 0: a connecting session must end.
pub const CONNECTING_SECONDS: std::ops::RangeInclusive<u32> = 10..=3600;
/// Waiting and active idle time-outs, minutes (guide: 1..999, 0 = never).
pub const MAX_TIMEOUT_MINUTES: u32 = 999;
/// Alarm thresholds, seconds: up to one day.
pub const ALARM_SECONDS: std::ops::RangeInclusive<u32> = 1..=86_400;
pub const MAX_PATH_LEN: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TechnicianGroupSettings {
    pub audio: AudioSettings,
    pub connection_methods: ConnectionMethods,
    /// "Technician Console" / "Auto-start incoming private sessions".
    pub auto_start_private_sessions: bool,
    pub no_technician_available: NoTechnicianAvailable,
    pub timeouts: Timeouts,
    /// Custom fields 1..5, in order.
    #[schema(min_items = 5, max_items = 5)]
    pub custom_fields: [CustomFieldSetting; CUSTOM_FIELD_COUNT],
    pub screen_recording: ScreenRecording,
    pub technician_survey: SurveySettings,
    pub customer_survey: SurveySettings,
    pub exporting_session_data: ExportingSessionData,
    pub console_ip_restrictions: IpRestrictions,
}

/// "Rescue Lens" section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AudioSettings {
    /// Lens sessions start with a VoIP connection (either side may mute).
    pub enabled: bool,
}

/// "Connection Method" section: what the Create New Session dialog offers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectionMethods {
    pub pin_code: bool,
    pub email_via_default_client: bool,
    pub email_via_servers: bool,
    /// Single line (it becomes a mail header), at most 256 characters.
    pub connection_email_subject: String,
    /// At most 4000 characters; line breaks allowed. The session link is appended by the server.
    pub connection_email_text: String,
    pub link: bool,
    pub sms: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NoTechnicianBehavior {
    KeepAlive,
    NotifyByEmail,
    AbortAndShowUrl,
}

impl NoTechnicianBehavior {
    fn label(self) -> &'static str {
        match self {
            Self::KeepAlive => "Keep sessions alive",
            Self::NotifyByEmail => "Notify technicians of pending sessions via email",
            Self::AbortAndShowUrl => "Abort sessions and show this webpage to the customer",
        }
    }
}

/// "No technician available" section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoTechnicianAvailable {
    pub behavior: NoTechnicianBehavior,
    /// http(s) page shown to the customer; required for `abort_and_show_url`, kept otherwise.
    #[serde(default)]
    pub url: Option<String>,
}

/// "Time-outs" section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Timeouts {
    /// How long a PIN code or link stays valid, 1..=1440 minutes.
    pub private_code_validity_minutes: u32,
    /// Connecting sessions leave the queue (as failed sessions) after this, 10..=3600 seconds.
    pub connecting_seconds: u32,
    /// 0 = never, else 1..=999 minutes.
    pub waiting_minutes: u32,
    /// 0 = never, else 1..=999 minutes. On Hold sessions never time out.
    pub active_idle_minutes: u32,
    /// At most 10, distinct by (kind, after_seconds).
    #[schema(max_items = 10)]
    pub alarms: Vec<TimeoutAlarm>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlarmKind {
    Connecting,
    Waiting,
}

/// Highlights a connecting or waiting session in the console once it has been in that status for
/// `after_seconds`; several alarms escalate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TimeoutAlarm {
    pub kind: AlarmKind,
    /// 1..=86400.
    pub after_seconds: u32,
    /// `#rrggbb`.
    #[schema(example = "#ff0000")]
    pub color: String,
}

impl TimeoutAlarm {
    fn describe(&self) -> String {
        let kind = match self.kind {
            AlarmKind::Connecting => "Connecting",
            AlarmKind::Waiting => "Waiting",
        };
        format!(
            "{kind} after {} seconds ({})",
            self.after_seconds, self.color
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CustomFieldKind {
    /// Free text, at most 64 characters.
    OpenText,
    DropDown,
}

/// One row of "Custom Fields (Private Sessions)".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomFieldSetting {
    pub enabled: bool,
    pub mandatory: bool,
    pub kind: CustomFieldKind,
    /// Drop-down: 1..=50 distinct non-empty choices, each at most 64 characters. Open text: empty.
    #[schema(max_items = 50)]
    pub choices: Vec<String>,
}

/// "Screen Recording" section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScreenRecording {
    /// Record every Lens session of the group. Requires a location.
    pub forced: bool,
    /// Absolute path on the server (`/srv/rec`), network path (`\\host\share\dir`, mounted under
    /// `recording.network_mount_root`), or `ftp://`, `http://`, `https://` URL, optionally with
    /// `user:pass@` (the password is a secret). Checked when saved with the recorder's parser.
    #[serde(default)]
    pub location: Option<String>,
    /// Spool locally and upload later; always in effect for FTP/HTTP(S), see
    /// [`ScreenRecording::effective_deferred_upload`].
    pub deferred_upload: bool,
}

/// Where [`ScreenRecording::location`] points.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RecordingLocationKind {
    Local,
    Network,
    Ftp,
    Http,
    Https,
}

impl ScreenRecording {
    /// Classifies the location (as the recorder reads it); `None` when unset or not a location.
    pub fn location_kind(&self) -> Option<RecordingLocationKind> {
        use recording::Location;
        Some(
            match Location::parse_form(self.location.as_deref()?).ok()? {
                Location::Folder { network: true, .. } => RecordingLocationKind::Network,
                Location::Folder { .. } => RecordingLocationKind::Local,
                Location::Ftp(_) => RecordingLocationKind::Ftp,
                Location::Http(u) if u.scheme() == "https" => RecordingLocationKind::Https,
                Location::Http(_) => RecordingLocationKind::Http,
            },
        )
    }

    /// The guide: FTP, HTTP or HTTPS locations always use deferred upload, whatever the checkbox says.
    pub fn effective_deferred_upload(&self) -> bool {
        self.deferred_upload
            || matches!(
                self.location_kind(),
                Some(
                    RecordingLocationKind::Ftp
                        | RecordingLocationKind::Http
                        | RecordingLocationKind::Https
                )
            )
    }

    fn validate(&self) -> Result<(), SettingsError> {
        match self.location.as_deref() {
            None => {
                if self.forced {
                    return Err(SettingsError::new(
                        "location",
                        "a screen recording location is required for forced screen recording",
                    ));
                }
            }
            Some(loc) => {
                if loc.contains("://") {
                    // Spaces, a masked password sent back for a new URL, malformed credentials.
                    check_url("location", loc, &["ftp", "http", "https"])?;
                } else {
                    check_line("location", loc, 1, MAX_PATH_LEN)?;
                }
                // What a location is, is the recorder's to say (one parser: recording::location).
                recording::Location::parse_form(loc)
                    .map_err(|e| SettingsError::new("location", e.to_string()))?;
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SurveyMode {
    /// No survey.
    None,
    /// The built-in survey form (questions below).
    BuiltIn,
    /// Redirect to `url` at session end.
    SelfHosted,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum QuestionKind {
    Open,
    DropDown,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SurveyQuestion {
    /// At most 256 characters; required when enabled.
    pub text: String,
    pub kind: QuestionKind,
    /// Drop-down: 1..=5 distinct non-empty answers of at most 128 characters. Open: empty.
    #[schema(max_items = 5)]
    pub answers: Vec<String>,
    pub mandatory: bool,
    pub enabled: bool,
}

/// "Technician Survey" or "Customer Survey" section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SurveySettings {
    pub mode: SurveyMode,
    /// http(s); required for `self_hosted`.
    #[serde(default)]
    pub url: Option<String>,
    /// "Add additional Rescue session details to this URL".
    pub add_session_details: bool,
    /// At most 10; `built_in` needs at least one enabled question.
    #[schema(max_items = 10)]
    pub questions: Vec<SurveyQuestion>,
}

impl SurveySettings {
    /// Where to send the surveyed party at session end, for a self-hosted survey.
    /// `cfields` are CField0 (the name field) to CField5.
    pub fn redirect_url(&self, session_id: &str, cfields: &[String; 6]) -> Option<String> {
        let base = self
            .url
            .as_deref()
            .filter(|_| self.mode == SurveyMode::SelfHosted)?;
        Some(if self.add_session_details {
            survey_url_with_details(base, session_id, cfields)
        } else {
            base.to_owned()
        })
    }

    fn validate(&self) -> Result<(), SettingsError> {
        if let Some(url) = &self.url {
            check_url("url", url, &["http", "https"])?;
        } else if self.mode == SurveyMode::SelfHosted {
            return Err(SettingsError::new(
                "url",
                "a survey URL is required for a self-hosted survey",
            ));
        }
        if self.questions.len() > MAX_SURVEY_QUESTIONS {
            return Err(SettingsError::new(
                "questions",
                format!("at most {MAX_SURVEY_QUESTIONS} questions are allowed"),
            ));
        }
        for (i, q) in self.questions.iter().enumerate() {
            q.validate()
                .map_err(|e| e.prefixed(&format!("questions[{i}]")))?;
        }
        if self.mode == SurveyMode::BuiltIn && !self.questions.iter().any(|q| q.enabled) {
            return Err(SettingsError::new(
                "questions",
                "the built-in survey needs at least one enabled question",
            ));
        }
        Ok(())
    }

    fn diff_into(&self, new: &Self, d: &mut Diff, who: &str) {
        let mode = |m: SurveyMode| match m {
            SurveyMode::None => format!("No {who} survey"),
            SurveyMode::BuiltIn => format!("Use Rescue {who} survey"),
            SurveyMode::SelfHosted => format!("Use self-hosted {who} survey"),
        };
        d.value("Survey", mode(self.mode), mode(new.mode))
            .url("URL", self.url.as_deref(), new.url.as_deref())
            .checkbox(
                "Add additional Rescue session details to this URL",
                self.add_session_details,
                new.add_session_details,
            );
        for i in 0..self.questions.len().max(new.questions.len()) {
            let label = format!("Question {}", i + 1);
            match (self.questions.get(i), new.questions.get(i)) {
                (Some(o), Some(n)) => o.diff_into(n, d, &label),
                (Some(o), None) => {
                    d.list(&label, std::slice::from_ref(&o.text), &[]);
                }
                (None, Some(n)) => {
                    d.list(&label, &[], std::slice::from_ref(&n.text));
                }
                (None, None) => {}
            }
        }
    }
}

impl SurveyQuestion {
    fn validate(&self) -> Result<(), SettingsError> {
        check_line(
            "text",
            &self.text,
            usize::from(self.enabled),
            MAX_QUESTION_TEXT,
        )?;
        match self.kind {
            QuestionKind::Open if !self.answers.is_empty() => Err(SettingsError::new(
                "answers",
                "an open-answer question has no predefined answers",
            )),
            QuestionKind::Open => Ok(()),
            QuestionKind::DropDown => check_choices(
                "answers",
                &self.answers,
                MAX_SURVEY_ANSWERS,
                MAX_ANSWER_TEXT,
            ),
        }
    }

    fn diff_into(&self, new: &Self, d: &mut Diff, label: &str) {
        let kind = |k: QuestionKind| match k {
            QuestionKind::Open => "open answer".to_owned(),
            QuestionKind::DropDown => "drop-down".to_owned(),
        };
        d.value(
            &format!("{label}: text"),
            self.text.clone(),
            new.text.clone(),
        )
        .value(&format!("{label}: type"), kind(self.kind), kind(new.kind))
        .list(&format!("{label}: answers"), &self.answers, &new.answers)
        .checkbox(
            &format!("{label}: mandatory"),
            self.mandatory,
            new.mandatory,
        )
        .checkbox(&format!("{label}: enable"), self.enabled, new.enabled);
    }
}

/// `base` plus `RescueSessionID=…&CField0=…&…&CField5=…`, form-encoded, after any query the
/// survey URL already has. Parameters of those names already in `base` are replaced, so a survey
/// never receives two conflicting values. An unparseable `base` (never stored) is returned as is.
pub fn survey_url_with_details(base: &str, session_id: &str, cfields: &[String; 6]) -> String {
    let Ok(mut url) = url::Url::parse(base) else {
        return base.to_owned();
    };
    let names: [String; 7] = std::array::from_fn(|i| match i {
        0 => "RescueSessionID".to_owned(),
        n => format!("CField{}", n - 1),
    });
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| !names.iter().any(|n| n == k))
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    {
        let mut q = url.query_pairs_mut();
        q.clear();
        for (k, v) in &kept {
            q.append_pair(k, v);
        }
        q.append_pair(&names[0], session_id);
        for (name, value) in names[1..].iter().zip(cfields) {
            q.append_pair(name, value);
        }
    }
    url.to_string()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExportFormat {
    /// "HTML Form parameters".
    HtmlForm,
    /// "XML data".
    Xml,
}

/// When session data is posted. Each maps to a guide option.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportTriggers {
    /// Each time a session enters Active.
    pub each_active: bool,
    /// Only the first time a session enters Active.
    pub first_active: bool,
    /// When a session ends (Closed).
    pub ended: bool,
    /// When a session is put on hold or transferred.
    pub suspended: bool,
    /// When the Technician Console is refreshed or closed.
    pub console_refreshed_or_closed: bool,
}

impl ExportTriggers {
    pub fn any(&self) -> bool {
        self.each_active
            || self.first_active
            || self.ended
            || self.suspended
            || self.console_refreshed_or_closed
    }
}

/// "Exporting session data" section (Post to URL).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportingSessionData {
    /// http(s), optionally `user:pass@` (the password is a secret). Required when a trigger is set.
    #[serde(default)]
    pub url: Option<String>,
    pub triggers: ExportTriggers,
    pub format: ExportFormat,
    pub omit_chat_text_from_post: bool,
    pub omit_chat_from_storage: bool,
}

impl Default for TechnicianGroupSettings {
    fn default() -> Self {
        let field = CustomFieldSetting {
            enabled: false,
            mandatory: false,
            kind: CustomFieldKind::OpenText,
            choices: Vec::new(),
        };
        let survey = SurveySettings {
            mode: SurveyMode::None,
            url: None,
            add_session_details: false,
            questions: Vec::new(),
        };
        Self {
            audio: AudioSettings { enabled: true },
            connection_methods: ConnectionMethods {
                pin_code: true,
                email_via_default_client: true,
                // Off until the operator has configured outgoing mail.
                email_via_servers: false,
                connection_email_subject: "Your live video support session".to_owned(),
                connection_email_text: "Your technician has invited you to a live video support \
                     session. Open the link below on your smartphone to start."
                    .to_owned(),
                link: true,
                sms: true,
            },
            auto_start_private_sessions: false,
            no_technician_available: NoTechnicianAvailable {
                behavior: NoTechnicianBehavior::KeepAlive,
                url: None,
            },
            timeouts: Timeouts {
                private_code_validity_minutes: 20,
                connecting_seconds: 300,
                waiting_minutes: 0,
                active_idle_minutes: 0,
                alarms: Vec::new(),
            },
            custom_fields: std::array::from_fn(|_| field.clone()),
            screen_recording: ScreenRecording {
                forced: false,
                location: None,
                deferred_upload: false,
            },
            technician_survey: survey.clone(),
            customer_survey: survey,
            exporting_session_data: ExportingSessionData {
                url: None,
                triggers: ExportTriggers {
                    each_active: false,
                    first_active: false,
                    ended: false,
                    suspended: false,
                    console_refreshed_or_closed: false,
                },
                format: ExportFormat::HtmlForm,
                omit_chat_text_from_post: false,
                omit_chat_from_storage: false,
            },
            console_ip_restrictions: IpRestrictions::default(),
        }
    }
}

fn check_choices(
    field: &str,
    items: &[String],
    max: usize,
    max_len: usize,
) -> Result<(), SettingsError> {
    if items.is_empty() || items.len() > max {
        return Err(SettingsError::new(
            field,
            format!("a drop-down needs 1 to {max} entries"),
        ));
    }
    for (i, item) in items.iter().enumerate() {
        check_line(&format!("{field}[{i}]"), item, 1, max_len)?;
        if item.trim().is_empty() {
            return Err(SettingsError::new(
                format!("{field}[{i}]"),
                "must not be blank",
            ));
        }
        if items[..i].contains(item) {
            return Err(SettingsError::new(
                format!("{field}[{i}]"),
                "duplicate entry",
            ));
        }
    }
    Ok(())
}

fn check_minutes_or_never(field: &str, v: u32) -> Result<(), SettingsError> {
    if v > MAX_TIMEOUT_MINUTES {
        return Err(SettingsError::new(
            field,
            format!("must be 0 (never) or 1 to {MAX_TIMEOUT_MINUTES} minutes"),
        ));
    }
    Ok(())
}

fn check_range(
    field: &str,
    v: u32,
    range: &std::ops::RangeInclusive<u32>,
    unit: &str,
) -> Result<(), SettingsError> {
    if !range.contains(&v) {
        return Err(SettingsError::new(
            field,
            format!("must be {} to {} {unit}", range.start(), range.end()),
        ));
    }
    Ok(())
}

impl Timeouts {
    fn validate(&self) -> Result<(), SettingsError> {
        check_range(
            "private_code_validity_minutes",
            self.private_code_validity_minutes,
            &PRIVATE_CODE_VALIDITY_MINUTES,
            "minutes",
        )?;
        check_range(
            "connecting_seconds",
            self.connecting_seconds,
            &CONNECTING_SECONDS,
            "seconds",
        )?;
        check_minutes_or_never("waiting_minutes", self.waiting_minutes)?;
        check_minutes_or_never("active_idle_minutes", self.active_idle_minutes)?;
        if self.alarms.len() > MAX_ALARMS {
            return Err(SettingsError::new(
                "alarms",
                format!("at most {MAX_ALARMS} alarms are allowed"),
            ));
        }
        for (i, a) in self.alarms.iter().enumerate() {
            let at = format!("alarms[{i}]");
            check_range(
                &format!("{at}.after_seconds"),
                a.after_seconds,
                &ALARM_SECONDS,
                "seconds",
            )?;
            let b = a.color.as_bytes();
            if b.len() != 7 || b[0] != b'#' || !b[1..].iter().all(u8::is_ascii_hexdigit) {
                return Err(SettingsError::new(
                    format!("{at}.color"),
                    "must be a colour like #ff0000",
                ));
            }
            if self.alarms[..i]
                .iter()
                .any(|o| o.kind == a.kind && o.after_seconds == a.after_seconds)
            {
                return Err(SettingsError::new(
                    format!("{at}.after_seconds"),
                    "another alarm of this kind already fires at this time",
                ));
            }
        }
        Ok(())
    }
}

impl CustomFieldSetting {
    fn validate(&self) -> Result<(), SettingsError> {
        match self.kind {
            CustomFieldKind::OpenText if !self.choices.is_empty() => Err(SettingsError::new(
                "choices",
                "an open-text field has no drop-down choices",
            )),
            CustomFieldKind::OpenText => Ok(()),
            CustomFieldKind::DropDown => check_choices(
                "choices",
                &self.choices,
                MAX_CUSTOM_FIELD_CHOICES,
                MAX_CUSTOM_FIELD_TEXT,
            ),
        }
    }
}

/// Renders a minutes value where 0 means "never".
fn minutes_or_never(v: u32) -> String {
    if v == 0 {
        "Never".to_owned()
    } else {
        format!("{v} minutes")
    }
}

impl TechnicianGroupSettings {
    /// Checks the whole document; the error names the first offending field by JSON path.
    pub fn validate(&self) -> Result<(), SettingsError> {
        let cm = &self.connection_methods;
        check_line(
            "connection_methods.connection_email_subject",
            &cm.connection_email_subject,
            0,
            MAX_EMAIL_SUBJECT,
        )?;
        check_multiline(
            "connection_methods.connection_email_text",
            &cm.connection_email_text,
            0,
            MAX_EMAIL_TEXT,
        )?;

        let nta = &self.no_technician_available;
        match &nta.url {
            Some(url) => {
                check_url("no_technician_available.url", url, &["http", "https"])?;
            }
            None if nta.behavior == NoTechnicianBehavior::AbortAndShowUrl => {
                return Err(SettingsError::new(
                    "no_technician_available.url",
                    "a webpage URL is required when sessions are aborted",
                ));
            }
            None => {}
        }

        self.timeouts
            .validate()
            .map_err(|e| e.prefixed("timeouts"))?;
        for (i, f) in self.custom_fields.iter().enumerate() {
            f.validate()
                .map_err(|e| e.prefixed(&format!("custom_fields[{i}]")))?;
        }
        self.screen_recording
            .validate()
            .map_err(|e| e.prefixed("screen_recording"))?;
        self.technician_survey
            .validate()
            .map_err(|e| e.prefixed("technician_survey"))?;
        self.customer_survey
            .validate()
            .map_err(|e| e.prefixed("customer_survey"))?;

        let ex = &self.exporting_session_data;
        match &ex.url {
            Some(url) => {
                check_url("exporting_session_data.url", url, &["http", "https"])?;
            }
            None if ex.triggers.any() => {
                return Err(SettingsError::new(
                    "exporting_session_data.url",
                    "a URL is required when session data is posted",
                ));
            }
            None => {}
        }

        self.console_ip_restrictions
            .validate()
            .map_err(|e| e.prefixed("console_ip_restrictions"))
    }

    fn url_fields_mut(&mut self) -> [&mut Option<String>; 5] {
        [
            &mut self.no_technician_available.url,
            &mut self.screen_recording.location,
            &mut self.technician_survey.url,
            &mut self.customer_survey.url,
            &mut self.exporting_session_data.url,
        ]
    }

    /// For API responses: every URL-like field with its password replaced by `********`.
    pub fn masked(&self) -> Self {
        let mut out = self.clone();
        for f in out.url_fields_mut() {
            *f = mask_opt_url(f);
        }
        out
    }

    /// Call on an incoming PUT body before `validate`: a field that still holds exactly the masked
    /// form of the stored value gets the stored value (and so its password) back.
    pub fn merge_secrets(&mut self, stored: &Self) {
        let mut stored = stored.clone();
        for (new, old) in self
            .url_fields_mut()
            .into_iter()
            .zip(stored.url_fields_mut())
        {
            merge_url_secret(new, old);
        }
    }

    /// Audit rows for every changed field; passwords only ever appear as Set / Not set.
    pub fn diff(&self, new: &Self) -> Vec<FieldChange> {
        let mut d = Diff::new();
        let (o, n) = (self, new);

        d.section("Rescue Lens")
            .toggle("Enable audio", o.audio.enabled, n.audio.enabled);

        let (oc, nc) = (&o.connection_methods, &n.connection_methods);
        d.section("Connection Method")
            .toggle("PIN Code", oc.pin_code, nc.pin_code)
            .toggle(
                "Allow email via default client",
                oc.email_via_default_client,
                nc.email_via_default_client,
            )
            .toggle(
                "Allow email via Rescue servers",
                oc.email_via_servers,
                nc.email_via_servers,
            )
            .value(
                "Connection email subject",
                oc.connection_email_subject.clone(),
                nc.connection_email_subject.clone(),
            )
            .value(
                "Connection email text",
                oc.connection_email_text.clone(),
                nc.connection_email_text.clone(),
            )
            .toggle("Link", oc.link, nc.link)
            .toggle("SMS", oc.sms, nc.sms);

        d.section("Technician Console").toggle(
            "Auto-start incoming private sessions",
            o.auto_start_private_sessions,
            n.auto_start_private_sessions,
        );

        let (on, nn) = (&o.no_technician_available, &n.no_technician_available);
        d.section("No technician available")
            .value(
                "Behavior",
                on.behavior.label().to_owned(),
                nn.behavior.label().to_owned(),
            )
            .url("Webpage URL", on.url.as_deref(), nn.url.as_deref());

        let (ot, nt) = (&o.timeouts, &n.timeouts);
        let alarms = |t: &Timeouts| {
            t.alarms
                .iter()
                .map(TimeoutAlarm::describe)
                .collect::<Vec<_>>()
        };
        d.section("Time-outs")
            .value(
                "Private code validity period",
                format!("{} minutes", ot.private_code_validity_minutes),
                format!("{} minutes", nt.private_code_validity_minutes),
            )
            .value(
                "Connecting sessions will time out",
                format!("{} seconds", ot.connecting_seconds),
                format!("{} seconds", nt.connecting_seconds),
            )
            .value(
                "Waiting sessions will time out",
                minutes_or_never(ot.waiting_minutes),
                minutes_or_never(nt.waiting_minutes),
            )
            .value(
                "Active session idle time-out",
                minutes_or_never(ot.active_idle_minutes),
                minutes_or_never(nt.active_idle_minutes),
            )
            .list("Time-out alarms", &alarms(ot), &alarms(nt));

        d.section("Custom Fields (Private Sessions)");
        let kind = |k: CustomFieldKind| match k {
            CustomFieldKind::OpenText => "Open text".to_owned(),
            CustomFieldKind::DropDown => "Drop-down".to_owned(),
        };
        for (i, (of, nf)) in o.custom_fields.iter().zip(&n.custom_fields).enumerate() {
            let label = format!("Custom Field {}", i + 1);
            d.toggle(&format!("{label}: Enabled"), of.enabled, nf.enabled)
                .checkbox(&format!("{label}: Mandatory"), of.mandatory, nf.mandatory)
                .value(&format!("{label}: Type"), kind(of.kind), kind(nf.kind))
                .list(
                    &format!("{label}: Drop-down choices"),
                    &of.choices,
                    &nf.choices,
                );
        }

        let (os, ns) = (&o.screen_recording, &n.screen_recording);
        d.section("Screen Recording")
            .toggle("Forced screen recording", os.forced, ns.forced)
            .url(
                "Screen recording location",
                os.location.as_deref(),
                ns.location.as_deref(),
            )
            .toggle(
                "Deferred Upload of Screen Recordings",
                os.deferred_upload,
                ns.deferred_upload,
            );

        d.section("Technician Survey");
        o.technician_survey
            .diff_into(&n.technician_survey, &mut d, "technician");
        d.section("Customer Survey");
        o.customer_survey
            .diff_into(&n.customer_survey, &mut d, "customer");

        let (oe, ne) = (&o.exporting_session_data, &n.exporting_session_data);
        let (otr, ntr) = (&oe.triggers, &ne.triggers);
        let format = |f: ExportFormat| match f {
            ExportFormat::HtmlForm => "HTML Form parameters".to_owned(),
            ExportFormat::Xml => "XML data".to_owned(),
        };
        d.section("Exporting session data")
            .url("URL", oe.url.as_deref(), ne.url.as_deref())
            .checkbox(
                "Each time a session is started",
                otr.each_active,
                ntr.each_active,
            )
            .checkbox(
                "Only when a session is started for the first time",
                otr.first_active,
                ntr.first_active,
            )
            .checkbox("When a session is ended", otr.ended, ntr.ended)
            .checkbox("When a session is suspended", otr.suspended, ntr.suspended)
            .checkbox(
                "When the Technician Console is refreshed or closed",
                otr.console_refreshed_or_closed,
                ntr.console_refreshed_or_closed,
            )
            .value(
                "Post session details as",
                format(oe.format),
                format(ne.format),
            )
            .checkbox(
                "Omit chat text from post to URL",
                oe.omit_chat_text_from_post,
                ne.omit_chat_text_from_post,
            )
            .checkbox(
                "Omit chat from Rescue Data Center storage",
                oe.omit_chat_from_storage,
                ne.omit_chat_from_storage,
            );

        d.section("IP restrictions (Technician Console)");
        o.console_ip_restrictions.diff_into(
            &n.console_ip_restrictions,
            &mut d,
            "By default, all Technician Consoles will be",
        );

        d.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipfilter::{DefaultAccess, IpException};
    use crate::settings::testutil::assert_every_leaf_diffed;

    fn ok(s: &TechnicianGroupSettings) {
        if let Err(e) = s.validate() {
            panic!("expected valid, got {e}");
        }
    }

    fn fails(s: &TechnicianGroupSettings, field: &str) {
        match s.validate() {
            Ok(()) => panic!("expected error at {field}"),
            Err(e) => assert_eq!(e.field, field, "{e}"),
        }
    }

    fn question(text: &str, kind: QuestionKind, answers: &[&str]) -> SurveyQuestion {
        SurveyQuestion {
            text: text.to_owned(),
            kind,
            answers: answers.iter().map(|s| (*s).to_owned()).collect(),
            mandatory: false,
            enabled: true,
        }
    }

    /// Every option set, every list non-empty, every secret present.
    fn full() -> TechnicianGroupSettings {
        let mut s = TechnicianGroupSettings {
            auto_start_private_sessions: true,
            ..Default::default()
        };
        s.no_technician_available = NoTechnicianAvailable {
            behavior: NoTechnicianBehavior::AbortAndShowUrl,
            url: Some("https://nta-user:nta-secret@help.example.com/busy".to_owned()),
        };
        s.timeouts.alarms = vec![
            TimeoutAlarm {
                kind: AlarmKind::Connecting,
                after_seconds: 30,
                color: "#ff0000".to_owned(),
            },
            TimeoutAlarm {
                kind: AlarmKind::Waiting,
                after_seconds: 60,
                color: "#00FF00".to_owned(),
            },
        ];
        s.custom_fields[1] = CustomFieldSetting {
            enabled: true,
            mandatory: true,
            kind: CustomFieldKind::DropDown,
            choices: vec!["Gold".to_owned(), "Silver".to_owned()],
        };
        s.screen_recording = ScreenRecording {
            forced: true,
            location: Some("ftp://rec:rec-secret@files.example.com:21/recordings".to_owned()),
            deferred_upload: false,
        };
        s.technician_survey = SurveySettings {
            mode: SurveyMode::BuiltIn,
            url: Some("https://ts:ts-secret@survey.example.com/t".to_owned()),
            add_session_details: true,
            questions: vec![
                question("Was it resolved?", QuestionKind::DropDown, &["Yes", "No"]),
                question("Notes", QuestionKind::Open, &[]),
            ],
        };
        s.customer_survey = SurveySettings {
            mode: SurveyMode::SelfHosted,
            url: Some("https://cs:cs-secret@survey.example.com/c?src=lens".to_owned()),
            add_session_details: true,
            questions: vec![question(
                "Rate us",
                QuestionKind::DropDown,
                &["1", "2", "3", "4", "5"],
            )],
        };
        s.exporting_session_data = ExportingSessionData {
            url: Some("https://ex:ex-secret@crm.example.com/post".to_owned()),
            triggers: ExportTriggers {
                each_active: true,
                first_active: true,
                ended: true,
                suspended: true,
                console_refreshed_or_closed: true,
            },
            format: ExportFormat::Xml,
            omit_chat_text_from_post: true,
            omit_chat_from_storage: true,
        };
        s.console_ip_restrictions = IpRestrictions {
            default_access: DefaultAccess::Denied,
            exceptions: vec![IpException::new("10.0.0.0", Some("255.0.0.0"))],
        };
        s
    }

    const SECRETS: &[&str] = &[
        "nta-secret",
        "rec-secret",
        "ts-secret",
        "cs-secret",
        "ex-secret",
    ];

    #[test]
    fn defaults_validate_and_match_docs() {
        let d = TechnicianGroupSettings::default();
        ok(&d);
        assert!(d.audio.enabled);
        assert!(
            d.connection_methods.pin_code && d.connection_methods.link && d.connection_methods.sms
        );
        assert!(
            d.connection_methods.email_via_default_client
                && !d.connection_methods.email_via_servers
        );
        assert_eq!(d.timeouts.private_code_validity_minutes, 20);
        assert_eq!(d.timeouts.connecting_seconds, 300);
        assert_eq!(
            d.no_technician_available.behavior,
            NoTechnicianBehavior::KeepAlive
        );
        ok(&full());
    }

    #[test]
    fn json_round_trip_and_strictness() {
        for s in [TechnicianGroupSettings::default(), full()] {
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(
                serde_json::from_str::<TechnicianGroupSettings>(&json).unwrap(),
                s
            );
        }
        let mut v = serde_json::to_value(TechnicianGroupSettings::default()).unwrap();
        assert_eq!(v["timeouts"]["waiting_minutes"], 0);
        assert_eq!(v["no_technician_available"]["behavior"], "keep_alive");
        assert_eq!(v["custom_fields"][0]["kind"], "open_text");
        assert_eq!(v["exporting_session_data"]["format"], "html_form");
        assert_eq!(v["technician_survey"]["mode"], "none");

        let mut extra = v.clone();
        extra["audio"]["volume"] = 3.into();
        assert!(serde_json::from_value::<TechnicianGroupSettings>(extra).is_err());
        let mut four = v.clone();
        four["custom_fields"].as_array_mut().unwrap().pop();
        assert!(serde_json::from_value::<TechnicianGroupSettings>(four).is_err());
        let mut negative = v.clone();
        negative["timeouts"]["waiting_minutes"] = (-1).into();
        assert!(serde_json::from_value::<TechnicianGroupSettings>(negative).is_err());
        // A whole section missing is an error, not a silent reset to defaults.
        v.as_object_mut().unwrap().remove("screen_recording");
        assert!(serde_json::from_value::<TechnicianGroupSettings>(v).is_err());
        assert!(serde_json::from_str::<TechnicianGroupSettings>("{}").is_err());
        assert!(serde_json::from_str::<TechnicianGroupSettings>("[]").is_err());
    }

    #[test]
    fn email_text_rules() {
        let mut s = TechnicianGroupSettings::default();
        s.connection_methods.connection_email_subject = "Hi\r\nBcc: all@example.com".to_owned();
        fails(&s, "connection_methods.connection_email_subject");
        s.connection_methods.connection_email_subject = "x".repeat(MAX_EMAIL_SUBJECT + 1);
        fails(&s, "connection_methods.connection_email_subject");
        s.connection_methods.connection_email_subject = "x".repeat(MAX_EMAIL_SUBJECT);
        ok(&s);
        s.connection_methods.connection_email_text = "line\nline".repeat(1000);
        fails(&s, "connection_methods.connection_email_text");
        s.connection_methods.connection_email_text = "line 1\r\nline 2".to_owned();
        ok(&s);
    }

    #[test]
    fn no_technician_available_rules() {
        let mut s = TechnicianGroupSettings::default();
        s.no_technician_available.behavior = NoTechnicianBehavior::AbortAndShowUrl;
        fails(&s, "no_technician_available.url");
        s.no_technician_available.url = Some("ftp://example.com/busy".to_owned());
        fails(&s, "no_technician_available.url");
        s.no_technician_available.url = Some("javascript:alert(1)".to_owned());
        fails(&s, "no_technician_available.url");
        s.no_technician_available.url = Some("https://example.com/busy".to_owned());
        ok(&s);
        s.no_technician_available.behavior = NoTechnicianBehavior::NotifyByEmail;
        ok(&s);
    }

    #[test]
    fn timeout_rules() {
        let base = TechnicianGroupSettings::default();
        let check = |f: &dyn Fn(&mut Timeouts), field: Option<&str>| {
            let mut s = base.clone();
            f(&mut s.timeouts);
            match field {
                Some(field) => fails(&s, field),
                None => ok(&s),
            }
        };
        check(
            &|t| t.private_code_validity_minutes = 0,
            Some("timeouts.private_code_validity_minutes"),
        );
        check(
            &|t| t.private_code_validity_minutes = 1441,
            Some("timeouts.private_code_validity_minutes"),
        );
        check(&|t| t.private_code_validity_minutes = 1440, None);
        check(
            &|t| t.connecting_seconds = 9,
            Some("timeouts.connecting_seconds"),
        );
        check(
            &|t| t.connecting_seconds = 3601,
            Some("timeouts.connecting_seconds"),
        );
        check(
            &|t| t.waiting_minutes = 1000,
            Some("timeouts.waiting_minutes"),
        );
        check(&|t| t.waiting_minutes = 999, None);
        check(
            &|t| t.active_idle_minutes = 1000,
            Some("timeouts.active_idle_minutes"),
        );
        check(&|t| t.active_idle_minutes = 1, None);
        let alarm = |after, color: &str| TimeoutAlarm {
            kind: AlarmKind::Waiting,
            after_seconds: after,
            color: color.to_owned(),
        };
        check(
            &|t| t.alarms = vec![alarm(0, "#ff0000")],
            Some("timeouts.alarms[0].after_seconds"),
        );
        check(
            &|t| t.alarms = vec![alarm(86_401, "#ff0000")],
            Some("timeouts.alarms[0].after_seconds"),
        );
        check(
            &|t| t.alarms = vec![alarm(5, "#ff0000"), alarm(6, "red")],
            Some("timeouts.alarms[1].color"),
        );
        check(
            &|t| t.alarms = vec![alarm(5, "#ff00001")],
            Some("timeouts.alarms[0].color"),
        );
        check(
            &|t| t.alarms = vec![alarm(5, "#gg0000")],
            Some("timeouts.alarms[0].color"),
        );
        check(
            &|t| t.alarms = vec![alarm(5, "#ffé00")],
            Some("timeouts.alarms[0].color"),
        );
        check(
            &|t| t.alarms = vec![alarm(5, "#ff0000"), alarm(5, "#00ff00")],
            Some("timeouts.alarms[1].after_seconds"),
        );
        check(
            &|t| t.alarms = (1..=10).map(|i| alarm(i * 10, "#AbCdEf")).collect(),
            None,
        );
        check(
            &|t| t.alarms = (1..=11).map(|i| alarm(i * 10, "#abcdef")).collect(),
            Some("timeouts.alarms"),
        );
    }

    #[test]
    fn custom_field_rules() {
        let base = TechnicianGroupSettings::default();
        let check = |kind, choices: Vec<String>, field: Option<&str>| {
            let mut s = base.clone();
            s.custom_fields[2].kind = kind;
            s.custom_fields[2].choices = choices;
            match field {
                Some(field) => fails(&s, field),
                None => ok(&s),
            }
        };
        let v = |xs: &[&str]| xs.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        check(
            CustomFieldKind::OpenText,
            v(&["a"]),
            Some("custom_fields[2].choices"),
        );
        check(
            CustomFieldKind::DropDown,
            v(&[]),
            Some("custom_fields[2].choices"),
        );
        check(
            CustomFieldKind::DropDown,
            v(&["a", ""]),
            Some("custom_fields[2].choices[1]"),
        );
        check(
            CustomFieldKind::DropDown,
            v(&["a", "  "]),
            Some("custom_fields[2].choices[1]"),
        );
        check(
            CustomFieldKind::DropDown,
            v(&["a", "b", "a"]),
            Some("custom_fields[2].choices[2]"),
        );
        check(
            CustomFieldKind::DropDown,
            vec!["x".repeat(65)],
            Some("custom_fields[2].choices[0]"),
        );
        check(CustomFieldKind::DropDown, vec!["x".repeat(64)], None);
        check(
            CustomFieldKind::DropDown,
            (0..51).map(|i| i.to_string()).collect(),
            Some("custom_fields[2].choices"),
        );
        check(
            CustomFieldKind::DropDown,
            (0..50).map(|i| i.to_string()).collect(),
            None,
        );
    }

    #[test]
    fn screen_recording_rules() {
        let mut s = TechnicianGroupSettings::default();
        s.screen_recording.forced = true;
        fails(&s, "screen_recording.location");
        for good in [
            "/srv/recordings",
            "\\\\support\\recordings",
            "\\\\support\\recordings\\lens",
            "ftp://user:password@company.org:21/recordings",
            "ftp://company.org/recordings",
            "http://rec.example.com/upload",
            "https://u:p@rec.example.com/upload",
        ] {
            s.screen_recording.location = Some(good.to_owned());
            ok(&s);
        }
        for bad in [
            "recordings",
            "./rec",
            "C:rec",
            // A Windows drive cannot be written on this server.
            "C:\\recordings",
            "d:/rec",
            "\\\\host",
            "\\\\\\share",
            "/srv/../etc",
            "C:\\rec\\..\\windows",
            "sftp://host/x",
            "file:///etc",
            "ftp://user:********@company.org/recordings",
            "",
            "/srv/rec\nx",
        ] {
            s.screen_recording.location = Some(bad.to_owned());
            fails(&s, "screen_recording.location");
        }
        s.screen_recording.location = Some(format!("/{}", "a".repeat(MAX_PATH_LEN)));
        fails(&s, "screen_recording.location");
    }

    #[test]
    fn deferred_upload_follows_the_guide() {
        let mut r = ScreenRecording {
            forced: false,
            location: None,
            deferred_upload: false,
        };
        assert!(!r.effective_deferred_upload());
        r.location = Some("\\\\support\\recordings".to_owned());
        assert_eq!(r.location_kind(), Some(RecordingLocationKind::Network));
        assert!(!r.effective_deferred_upload());
        r.deferred_upload = true;
        assert!(r.effective_deferred_upload());
        r.deferred_upload = false;
        for (loc, kind) in [
            ("ftp://h/x", RecordingLocationKind::Ftp),
            ("HTTP://h/x", RecordingLocationKind::Http),
            ("https://h/x", RecordingLocationKind::Https),
        ] {
            r.location = Some(loc.to_owned());
            assert_eq!(r.location_kind(), Some(kind));
            assert!(r.effective_deferred_upload());
        }
        r.location = Some("/srv/rec".to_owned());
        assert_eq!(r.location_kind(), Some(RecordingLocationKind::Local));
        assert!(!r.effective_deferred_upload());
    }

    #[test]
    fn survey_rules() {
        let mut s = TechnicianGroupSettings::default();
        s.customer_survey.mode = SurveyMode::SelfHosted;
        fails(&s, "customer_survey.url");
        s.customer_survey.url = Some("ftp://x/y".to_owned());
        fails(&s, "customer_survey.url");
        s.customer_survey.url = Some("https://survey.example.com/s".to_owned());
        ok(&s);

        s.technician_survey.mode = SurveyMode::BuiltIn;
        fails(&s, "technician_survey.questions");
        let mut disabled = question("Q", QuestionKind::Open, &[]);
        disabled.enabled = false;
        s.technician_survey.questions = vec![disabled.clone()];
        fails(&s, "technician_survey.questions");
        s.technician_survey
            .questions
            .push(question("Q2", QuestionKind::Open, &[]));
        ok(&s);

        let q = |text: &str, kind, answers: &[&str], field: &str| {
            let mut t = s.clone();
            t.technician_survey.questions[1] = question(text, kind, answers);
            fails(&t, field);
        };
        q(
            "",
            QuestionKind::Open,
            &[],
            "technician_survey.questions[1].text",
        );
        q(
            &"x".repeat(257),
            QuestionKind::Open,
            &[],
            "technician_survey.questions[1].text",
        );
        q(
            "Q",
            QuestionKind::Open,
            &["a"],
            "technician_survey.questions[1].answers",
        );
        q(
            "Q",
            QuestionKind::DropDown,
            &[],
            "technician_survey.questions[1].answers",
        );
        q(
            "Q",
            QuestionKind::DropDown,
            &["1", "2", "3", "4", "5", "6"],
            "technician_survey.questions[1].answers",
        );
        q(
            "Q",
            QuestionKind::DropDown,
            &["1", "1"],
            "technician_survey.questions[1].answers[1]",
        );
        q(
            "Q",
            QuestionKind::DropDown,
            &[&"a".repeat(129)],
            "technician_survey.questions[1].answers[0]",
        );

        // A disabled question may be blank (an unused slot).
        disabled.text.clear();
        s.technician_survey.questions[0] = disabled;
        ok(&s);
        s.technician_survey.questions = (0..11)
            .map(|i| question(&i.to_string(), QuestionKind::Open, &[]))
            .collect();
        fails(&s, "technician_survey.questions");
        s.technician_survey.questions.pop();
        ok(&s);
    }

    #[test]
    fn export_rules() {
        let mut s = TechnicianGroupSettings::default();
        s.exporting_session_data.triggers.ended = true;
        fails(&s, "exporting_session_data.url");
        s.exporting_session_data.url = Some("ftp://crm/post".to_owned());
        fails(&s, "exporting_session_data.url");
        s.exporting_session_data.url = Some("http://user:pass@webserver/path".to_owned());
        ok(&s);
        s.exporting_session_data.triggers.ended = false;
        ok(&s);
    }

    #[test]
    fn console_ip_rules_are_prefixed() {
        let mut s = TechnicianGroupSettings::default();
        s.console_ip_restrictions.exceptions = vec![
            IpException::new("1.1.1.1", None),
            IpException::new("10.0.0.0", Some("255.0.255.0")),
        ];
        fails(&s, "console_ip_restrictions.exceptions[1].subnet_mask");
    }

    #[test]
    fn survey_url_details() {
        let cf: [String; 6] = [
            "Jane Doe".to_owned(),
            "a&b=c".to_owned(),
            "ü/?#".to_owned(),
            String::new(),
            "+".to_owned(),
            "x".to_owned(),
        ];
        assert_eq!(
            survey_url_with_details("https://s.example.com/survey", "123", &cf),
            "https://s.example.com/survey?RescueSessionID=123&CField0=Jane+Doe&CField1=a%26b%3Dc\
             &CField2=%C3%BC%2F%3F%23&CField3=&CField4=%2B&CField5=x"
        );
        let with_query = survey_url_with_details(
            "https://s.example.com/s?lang=en&CField1=spoof#top",
            "9",
            &Default::default(),
        );
        assert_eq!(
            with_query,
            "https://s.example.com/s?lang=en&RescueSessionID=9&CField0=&CField1=&CField2=\
             &CField3=&CField4=&CField5=#top"
        );
        assert_eq!(
            survey_url_with_details("not a url", "1", &Default::default()),
            "not a url"
        );

        let survey = SurveySettings {
            mode: SurveyMode::SelfHosted,
            url: Some("https://s.example.com/x".to_owned()),
            add_session_details: false,
            questions: Vec::new(),
        };
        assert_eq!(
            survey.redirect_url("1", &cf).as_deref(),
            Some("https://s.example.com/x")
        );
        let detailed = SurveySettings {
            add_session_details: true,
            ..survey.clone()
        };
        assert!(
            detailed
                .redirect_url("1", &cf)
                .unwrap()
                .contains("RescueSessionID=1")
        );
        let off = SurveySettings {
            mode: SurveyMode::BuiltIn,
            ..survey
        };
        assert_eq!(off.redirect_url("1", &cf), None);
    }

    #[test]
    fn masking_hides_every_secret() {
        let s = full();
        let masked = s.masked();
        let json = serde_json::to_string(&masked).unwrap();
        for secret in SECRETS {
            assert!(!json.contains(secret), "{secret} leaked");
        }
        assert_eq!(
            masked.screen_recording.location.as_deref(),
            Some("ftp://rec:********@files.example.com:21/recordings")
        );
        // Usernames and hosts stay visible.
        assert!(json.contains("nta-user:********@help.example.com"));
        assert_eq!(
            TechnicianGroupSettings::default().masked(),
            TechnicianGroupSettings::default()
        );
    }

    #[test]
    fn merge_secrets_round_trip() {
        let stored = full();
        // A client that GETs, edits an unrelated field, and PUTs back the masked document.
        let mut body = stored.masked();
        body.audio.enabled = false;
        body.merge_secrets(&stored);
        ok(&body);
        assert_eq!(
            body.screen_recording.location,
            stored.screen_recording.location
        );
        assert_eq!(
            body.exporting_session_data.url,
            stored.exporting_session_data.url
        );

        // Moving a masked URL to another host does not carry the password along.
        let mut moved = stored.masked();
        moved.exporting_session_data.url =
            Some("https://ex:********@attacker.example/post".to_owned());
        moved.merge_secrets(&stored);
        fails(&moved, "exporting_session_data.url");

        // A new password replaces the old one.
        let mut fresh = stored.masked();
        fresh.screen_recording.location =
            Some("ftp://rec:new-pass@files.example.com:21/recordings".to_owned());
        fresh.merge_secrets(&stored);
        assert_eq!(
            fresh.screen_recording.location.as_deref(),
            Some("ftp://rec:new-pass@files.example.com:21/recordings")
        );
    }

    #[test]
    fn diff_rows_use_guide_words() {
        let old = TechnicianGroupSettings::default();
        assert!(old.diff(&old).is_empty());
        let mut new = old.clone();
        new.audio.enabled = false;
        new.timeouts.waiting_minutes = 15;
        new.custom_fields[2].kind = CustomFieldKind::DropDown;
        new.custom_fields[2].choices = vec!["A".to_owned()];
        new.screen_recording.location = Some("ftp://u:topsecret@h/r".to_owned());
        let rows = old.diff(&new);
        let find = |field: &str| {
            rows.iter()
                .find(|r| r.field == field)
                .unwrap_or_else(|| panic!("{field}"))
        };
        let audio = find("Enable audio");
        assert_eq!(audio.section, "Rescue Lens");
        assert_eq!(
            (audio.old_action.as_deref(), audio.new_action.as_deref()),
            (Some("Enabled"), Some("Disabled"))
        );
        let wait = find("Waiting sessions will time out");
        assert_eq!(wait.section, "Time-outs");
        assert_eq!(
            (wait.old_value.as_deref(), wait.new_value.as_deref()),
            (Some("Never"), Some("15 minutes"))
        );
        assert_eq!(
            find("Custom Field 3: Type").new_value.as_deref(),
            Some("Drop-down")
        );
        assert_eq!(
            find("Custom Field 3: Drop-down choices")
                .new_action
                .as_deref(),
            Some("Added")
        );
        let loc = find("Screen recording location");
        assert_eq!(loc.new_value.as_deref(), Some("ftp://u:********@h/r"));
        let pw = find("Screen recording location: password");
        assert_eq!(
            (pw.old_action.as_deref(), pw.new_action.as_deref()),
            (Some("Not set"), Some("Set"))
        );
        assert_eq!(rows.len(), 6);
    }

    #[test]
    fn diff_never_leaks_secrets() {
        let with = full();
        let without = TechnicianGroupSettings::default();
        let mut rotated = full();
        for u in rotated.url_fields_mut().into_iter().flatten() {
            *u = u.replace("-secret", "-secret2");
        }
        for (a, b) in [(&without, &with), (&with, &without), (&with, &rotated)] {
            let rows = a.diff(b);
            assert!(!rows.is_empty());
            let text = serde_json::to_string(&rows).unwrap();
            for secret in SECRETS {
                assert!(!text.contains(secret), "{secret} leaked in {text}");
            }
        }
        // Rotation alone is still recorded, as Set -> Set.
        let rows = with.diff(&rotated);
        assert_eq!(rows.len(), SECRETS.len());
        assert!(
            rows.iter()
                .all(|r| r.new_action.as_deref() == Some("Set") && r.new_value.is_none())
        );
    }

    #[test]
    fn odd_input_never_panics() {
        let odd = [
            "",
            "/",
            "\\",
            "\\\\",
            "C:",
            "é:\\x",
            "://",
            "a://",
            "ftp://",
            "ftp://@",
            "ftp://:@",
            "ftp://é:ü@h/",
            "ftp://u:p@",
            "http://[::1",
            "https://ü.example/ä?ö#ß",
            "\u{0}",
            "ftp://u:p@h:99999/x",
            "http://u:p@h@i@j/",
            "C:\\..",
            "#",
            "#ffffff\u{0}",
        ];
        for s in odd {
            let _ = crate::settings::mask_url_credentials(s);
            let mut t = TechnicianGroupSettings::default();
            t.screen_recording.location = Some(s.to_owned());
            t.screen_recording.forced = true;
            let _ = t.screen_recording.location_kind();
            let _ = t.screen_recording.effective_deferred_upload();
            t.no_technician_available.url = Some(s.to_owned());
            t.timeouts.alarms = vec![TimeoutAlarm {
                kind: AlarmKind::Waiting,
                after_seconds: 5,
                color: s.to_owned(),
            }];
            t.console_ip_restrictions.exceptions = vec![IpException::new(s, Some(s))];
            let _ = t.validate();
            let _ = t.masked();
            let _ = t.diff(&TechnicianGroupSettings::default());
            let _ = survey_url_with_details(s, s, &Default::default());
            let _ = t.console_ip_restrictions.allows("1.2.3.4".parse().unwrap());
        }
    }

    #[test]
    fn diff_covers_every_field() {
        assert_every_leaf_diffed(
            &full(),
            |s| serde_json::to_value(s).unwrap(),
            |v| serde_json::from_value(v).ok(),
            TechnicianGroupSettings::diff,
        );
        // Adding and removing whole questions and alarms is recorded too.
        let a = full();
        let mut b = a.clone();
        b.technician_survey.questions.pop();
        b.timeouts.alarms.pop();
        let rows = a.diff(&b);
        assert!(
            rows.iter()
                .any(|r| r.field == "Question 2" && r.new_action.as_deref() == Some("Removed"))
        );
        assert!(rows.iter().any(|r| r.field == "Time-out alarms" && r.new_action.as_deref() == Some("Removed")));
        assert!(
            b.diff(&a)
                .iter()
                .any(|r| r.field == "Question 2" && r.new_action.as_deref() == Some("Added"))
        );
    }
}
