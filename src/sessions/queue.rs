//! A console's `hello` lists the whole queue of its technician across nodes (issue 15): the
//! sessions this node holds, from its desk, and those other live nodes hold, read from the store
//! (their rows are written in order by their owners). The owners' mirrors of the console then send
//! their sessions' changes as `session` frames, as for any queue change.

use signaling::protocol::SessionView;
use signaling::session::{Millis, UserId};
use signaling::status::Status;

use super::{Hub, SessionPolicy, device_of, method_of};
use crate::api::rfc3339;
use crate::store::sessions::SessionRow;

impl Hub {
    /// The sessions of `technician`'s queue (its own, and its group's unassigned ones) that other
    /// live nodes hold. Empty without a shared store, or when the store does not answer (the
    /// mirrors list them a moment later anyway).
    pub(crate) async fn queue_elsewhere(&self, technician: UserId, group: i64) -> Vec<SessionView> {
        if !self.node.shares_store() {
            return Vec::new();
        }
        match self
            .store
            .live_queue_elsewhere(technician, group, &self.node.id)
            .await
        {
            Ok(rows) => {
                let now = self.now();
                rows.iter().filter_map(|r| view_of_row(r, now)).collect()
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the queue of the other nodes");
                Vec::new()
            }
        }
    }
}

/// A stored live session as a console sees it. A link's URL is not stored (only its hash): a
/// Pending link session of another node shows its link in the `session` frame that follows.
fn view_of_row(row: &SessionRow, now: Millis) -> Option<SessionView> {
    let status = Status::parse(&row.status)?;
    let policy: Option<SessionPolicy> = serde_json::from_str(&row.policy).ok();
    let secs = u64::try_from((now - row.status_since).max(0) / 1000).unwrap_or(0);
    Some(SessionView {
        id: row.id,
        status: status.as_str().into(),
        method: method_of(&row.method),
        name: row.name.clone(),
        custom_fields: row.custom_fields.to_vec(),
        tracking_id: row.tracking_id.clone(),
        technician_id: row.technician_id,
        group_id: row.group_id,
        created_at: rfc3339(row.created_at),
        status_since: rfc3339(row.status_since),
        waiting_seconds: (status == Status::Waiting).then_some(secs),
        alarm_color: policy.as_ref().and_then(|p| p.alarm(status, secs)),
        device: device_of(row),
        customer_ip: (!row.customer_ip.is_empty()).then(|| row.customer_ip.clone()),
        pin: (status == Status::Pending)
            .then(|| row.pin.clone())
            .flatten(),
        link: None,
        audio: policy.is_some_and(|p| p.audio),
        transfer_comment: None,
    })
}
