//! Report parameters as the guide's Reports tab offers them: the area, the list type, the date
//! range (a predefined period or explicit start and end dates), the time zone and the daily time
//! range. Dates and the daily range are read in the chosen time zone.

use chrono::{Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Timelike};
use chrono_tz::Tz;

/// A bad parameter: which, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamError {
    pub field: &'static str,
    pub message: String,
}

fn bad(field: &'static str, message: impl Into<String>) -> ParamError {
    ParamError {
        field,
        message: message.into(),
    }
}

/// The guide's Report Area, as DESIGN.md §4b spells it in the route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Area {
    Session,
    Performance,
    Login,
    MissedSessions,
    FailedSessions,
    FailedSessionsExtended,
    TransferredSessions,
    TransferredSessionsExtended,
    Chatlog,
    CustomFields,
    CustomerSurvey,
    CustomerSurveyIssuance,
    TechnicianSurvey,
    Audit,
}

impl Area {
    pub const ALL: [Area; 14] = [
        Area::Session,
        Area::Performance,
        Area::Login,
        Area::MissedSessions,
        Area::FailedSessions,
        Area::FailedSessionsExtended,
        Area::TransferredSessions,
        Area::TransferredSessionsExtended,
        Area::Chatlog,
        Area::CustomFields,
        Area::CustomerSurvey,
        Area::CustomerSurveyIssuance,
        Area::TechnicianSurvey,
        Area::Audit,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Area::Session => "session",
            Area::Performance => "performance",
            Area::Login => "login",
            Area::MissedSessions => "missed-sessions",
            Area::FailedSessions => "failed-sessions",
            Area::FailedSessionsExtended => "failed-sessions-extended",
            Area::TransferredSessions => "transferred-sessions",
            Area::TransferredSessionsExtended => "transferred-sessions-extended",
            Area::Chatlog => "chatlog",
            Area::CustomFields => "custom-fields",
            Area::CustomerSurvey => "customer-survey",
            Area::CustomerSurveyIssuance => "customer-survey-issuance",
            Area::TechnicianSurvey => "technician-survey",
            Area::Audit => "audit",
        }
    }

    pub fn parse(s: &str) -> Option<Area> {
        Area::ALL.into_iter().find(|a| a.as_str() == s)
    }

    /// The guide's name of the report.
    pub fn title(self) -> &'static str {
        match self {
            Area::Session => "Session",
            Area::Performance => "Performance",
            Area::Login => "Login",
            Area::MissedSessions => "Missed Sessions",
            Area::FailedSessions => "Failed Sessions",
            Area::FailedSessionsExtended => "Failed Sessions - Extended",
            Area::TransferredSessions => "Transferred Sessions",
            Area::TransferredSessionsExtended => "Transferred Sessions - Extended",
            Area::Chatlog => "Chatlog",
            Area::CustomFields => "Custom Fields",
            Area::CustomerSurvey => "Customer Survey",
            Area::CustomerSurveyIssuance => "Customer Survey Issuance",
            Area::TechnicianSurvey => "Technician Survey",
            Area::Audit => "Audit",
        }
    }

    /// The survey reports (their columns are the surveys' questions).
    pub fn is_survey(self) -> bool {
        matches!(
            self,
            Area::CustomerSurvey | Area::CustomerSurveyIssuance | Area::TechnicianSurvey
        )
    }

    /// Whether the guide has a Summary of this area.
    pub fn has_summary(self) -> bool {
        matches!(
            self,
            Area::Session
                | Area::Performance
                | Area::Login
                | Area::MissedSessions
                | Area::FailedSessions
                | Area::CustomerSurvey
                | Area::CustomerSurveyIssuance
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListType {
    All,
    Summary,
}

impl ListType {
    pub fn parse(s: Option<&str>, area: Area) -> Result<ListType, ParamError> {
        match s.unwrap_or("all") {
            "all" => Ok(ListType::All),
            "summary" if area.has_summary() => Ok(ListType::Summary),
            "summary" => Err(bad(
                "list",
                format!("the {} report has no Summary", area.title()),
            )),
            _ => Err(bad("list", "must be all or summary")),
        }
    }
}

/// `UTC` or an IANA zone name (the guide's "Local", named explicitly because the server cannot
/// know where the viewer is).
pub fn time_zone(s: Option<&str>) -> Result<Tz, ParamError> {
    match s.unwrap_or("UTC") {
        "" | "UTC" | "utc" => Ok(Tz::UTC),
        name => name.parse::<Tz>().map_err(|_| {
            bad(
                "tz",
                format!("unknown time zone {name:?} (use UTC or an IANA name)"),
            )
        }),
    }
}

/// The daily time range: minutes after local midnight, `[from, to)`; `from > to` spans midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Daily {
    pub from_min: u32,
    pub to_min: u32,
}

impl Daily {
    pub fn parse(from: Option<&str>, to: Option<&str>) -> Result<Option<Daily>, ParamError> {
        let minute = |field: &'static str, s: &str| {
            if s == "24:00" {
                return Ok(24 * 60);
            }
            NaiveTime::parse_from_str(s, "%H:%M")
                .map(|t| t.hour() * 60 + t.minute())
                .map_err(|_| bad(field, "must be HH:MM (00:00 to 24:00)"))
        };
        match (from, to) {
            (None, None) => Ok(None),
            (Some(f), Some(t)) => {
                let d = Daily {
                    from_min: minute("daily_from", f)?,
                    to_min: minute("daily_to", t)?,
                };
                if d.from_min == d.to_min {
                    return Err(bad("daily_to", "the daily range is empty"));
                }
                Ok(Some(d))
            }
            (None, Some(_)) => Err(bad("daily_from", "required with daily_to")),
            (Some(_), None) => Err(bad("daily_to", "required with daily_from")),
        }
    }

    /// Whether `at` (UTC ms) falls in the range, read in `tz`.
    pub fn contains(&self, at: i64, tz: Tz) -> bool {
        let Some(t) = chrono::DateTime::from_timestamp_millis(at) else {
            return false;
        };
        let local = tz.from_utc_datetime(&t.naive_utc());
        let m = local.hour() * 60 + local.minute();
        if self.from_min < self.to_min {
            self.from_min <= m && m < self.to_min
        } else {
            m >= self.from_min || m < self.to_min
        }
    }
}

/// Local midnight of `day` in `tz`, as UTC ms (the earliest instant, across DST changes).
/// The zone's UTC offset (ms) at `at` (UTC ms).
fn offset_ms(tz: Tz, at: i64) -> i64 {
    use chrono::Offset;
    let utc = chrono::DateTime::from_timestamp_millis(at).unwrap_or_default();
    i64::from(
        tz.offset_from_utc_datetime(&utc.naive_utc())
            .fix()
            .local_minus_utc(),
    ) * 1000
}

/// The zone's offset at `from` and its changes in `[from, to)`: (the instant, the offset from
/// then on), for reading local times in SQL. Zones change offset at most every few weeks, so the
/// window is probed every 6 hours and each change found by bisection to the millisecond.
pub fn offsets(tz: Tz, from: i64, to: i64) -> (i64, Vec<(i64, i64)>) {
    const STEP: i64 = 6 * 3_600_000;
    let first = offset_ms(tz, from);
    let (mut changes, mut at, mut offset) = (Vec::new(), from, first);
    while at < to {
        let next = (at + STEP).min(to);
        let then = offset_ms(tz, next);
        if then != offset {
            // The first instant in (at, next] with the new offset.
            let (mut lo, mut hi) = (at, next);
            while hi - lo > 1 {
                let mid = lo + (hi - lo) / 2;
                if offset_ms(tz, mid) == offset {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            changes.push((hi, then));
            offset = then;
        }
        at = next;
    }
    (first, changes)
}

fn midnight(day: NaiveDate, tz: Tz) -> i64 {
    let naive = day.and_hms_opt(0, 0, 0).unwrap_or_default();
    tz.from_local_datetime(&naive)
        .earliest()
        // A zone whose midnight is skipped (a DST change at 00:00): the hour after.
        .or_else(|| {
            tz.from_local_datetime(&(naive + Duration::hours(1)))
                .earliest()
        })
        .map_or(0, |t| t.timestamp_millis())
}

fn first_of_month(d: NaiveDate) -> NaiveDate {
    d.with_day(1).unwrap_or(d)
}

fn next_month(d: NaiveDate) -> NaiveDate {
    let (y, m) = if d.month() == 12 {
        (d.year() + 1, 1)
    } else {
        (d.year(), d.month() + 1)
    };
    NaiveDate::from_ymd_opt(y, m, 1).unwrap_or(d)
}

/// The date range as `[from, to)` UTC ms: `range` (today, yesterday, last_7_days, this_month,
/// last_month) or explicit `from`/`to` dates (YYYY-MM-DD, both included), relative to `now`.
/// Without either: this month.
pub fn window(
    range: Option<&str>,
    from: Option<&str>,
    to: Option<&str>,
    tz: Tz,
    now: i64,
) -> Result<(i64, i64), ParamError> {
    let today = chrono::DateTime::from_timestamp_millis(now)
        .map(|t| tz.from_utc_datetime(&t.naive_utc()).date_naive())
        .ok_or_else(|| bad("range", "the clock is out of range"))?;
    let date = |field: &'static str, s: &str| {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| bad(field, "must be YYYY-MM-DD"))
    };
    let (first, end) = match (range, from, to) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
            return Err(bad("range", "give either range or from/to, not both"));
        }
        (Some(r), None, None) => match r {
            "today" => (today, today + Duration::days(1)),
            "yesterday" => (today - Duration::days(1), today),
            "last_7_days" => (today - Duration::days(6), today + Duration::days(1)),
            "this_month" => (first_of_month(today), next_month(today)),
            "last_month" => {
                let this = first_of_month(today);
                (first_of_month(this - Duration::days(1)), this)
            }
            _ => {
                return Err(bad(
                    "range",
                    "must be today, yesterday, last_7_days, this_month or last_month",
                ));
            }
        },
        (None, Some(f), Some(t)) => {
            let (f, t) = (date("from", f)?, date("to", t)?);
            if t < f {
                return Err(bad("to", "the end date is before the start date"));
            }
            (f, t + Duration::days(1))
        }
        (None, Some(_), None) => return Err(bad("to", "required with from")),
        (None, None, Some(_)) => return Err(bad("from", "required with to")),
        (None, None, None) => (first_of_month(today), next_month(today)),
    };
    Ok((midnight(first, tz), midnight(end, tz)))
}
