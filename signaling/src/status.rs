//! Session statuses, named as the guide's Session report names them.

use std::fmt;

/// The status of a Lens session. Two are ours, not the guide's: `Pending` (a code was issued and
/// the customer has not used it yet) and the final `Expired` (the code was never used), plus the
/// final `Aborted: no technician available` for the group setting "abort sessions and show this
/// webpage to the customer".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Status {
    Pending,
    Connecting,
    Waiting,
    Active,
    OnHold,
    Transferring,
    Reconnecting,
    ClosedByCustomer,
    ClosedByTechnician,
    ClosedByWaitingCustomer,
    TimedOut,
    TimedOutClosedByTechnician,
    DeclinedByCustomer,
    AbortedTechnicianDeletedOrDisabled,
    AbortedNoTechnicianAvailable,
    Disconnected,
    Expired,
}

impl Status {
    pub const ALL: [Status; 17] = [
        Status::Pending,
        Status::Connecting,
        Status::Waiting,
        Status::Active,
        Status::OnHold,
        Status::Transferring,
        Status::Reconnecting,
        Status::ClosedByCustomer,
        Status::ClosedByTechnician,
        Status::ClosedByWaitingCustomer,
        Status::TimedOut,
        Status::TimedOutClosedByTechnician,
        Status::DeclinedByCustomer,
        Status::AbortedTechnicianDeletedOrDisabled,
        Status::AbortedNoTechnicianAvailable,
        Status::Disconnected,
        Status::Expired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "Pending",
            Status::Connecting => "Connecting",
            Status::Waiting => "Waiting",
            Status::Active => "Active",
            Status::OnHold => "On Hold",
            Status::Transferring => "Transferring",
            Status::Reconnecting => "Reconnecting",
            Status::ClosedByCustomer => "Closed by customer",
            Status::ClosedByTechnician => "Closed by technician",
            Status::ClosedByWaitingCustomer => "Closed by waiting customer",
            Status::TimedOut => "Timed out",
            Status::TimedOutClosedByTechnician => "Timed out: closed by technician",
            Status::DeclinedByCustomer => "Declined by customer",
            Status::AbortedTechnicianDeletedOrDisabled => {
                "Aborted: technician was deleted or disabled"
            }
            Status::AbortedNoTechnicianAvailable => "Aborted: no technician available",
            Status::Disconnected => "Disconnected",
            Status::Expired => "Expired",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// A final status ends the session; nothing leaves it.
    pub fn is_final(self) -> bool {
        !matches!(
            self,
            Status::Pending
                | Status::Connecting
                | Status::Waiting
                | Status::Active
                | Status::OnHold
                | Status::Transferring
                | Status::Reconnecting
        )
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in Status::ALL {
            assert_eq!(Status::parse(s.as_str()), Some(s));
        }
        assert_eq!(Status::parse("On Hold"), Some(Status::OnHold));
        assert_eq!(Status::parse("on hold"), None);
    }

    #[test]
    fn seven_live_statuses() {
        let live: Vec<Status> = Status::ALL.into_iter().filter(|s| !s.is_final()).collect();
        assert_eq!(live.len(), 7);
    }
}
