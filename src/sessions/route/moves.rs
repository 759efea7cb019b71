//! Sessions that change owner node (issue 15): a drain moves each live session of the draining
//! node to another serving node, and a failover takes over those of a dead node. Either way the
//! new owner then tells every live node which sessions it holds now, and a node that carries a
//! customer socket of one of them to its old owner re-homes it: it opens it again on the new
//! owner with a `resume` on the client's behalf (whose reply the client never sees). The client
//! keeps its socket; the new owner asks its phone to offer again (`reoffer`, PROTOCOL.md §3.4).

use std::sync::Arc;
use std::time::Duration;

use signaling::protocol::{ErrorCode, ServerFrame};

use super::{BYE, BusMessage, FRAME_IN, MOVED, Proxy, REHOME_CUSTOMER, Router, TAKE, lock};
use crate::sessions::{MovedSession, Restored, close, send};

/// How long a moved session waits for its customer's socket (re-homed, or resuming by itself
/// after a 1012) before it counts the customer as gone, as for a dropped socket.
const CUSTOMER_BACK_WITHIN: Duration = Duration::from_secs(10);
/// How often a draining node looks for sessions to move and for a node to take them.
const DRAIN_TICK: Duration = Duration::from_secs(1);

/// A frame from the owner to a customer socket of this node: notes the session and resume
/// token that a `join`/`resume` reply names, and says whether the frame answers the `resume` a
/// re-home sent (not the client's: dropped; a refused one closes the socket with 1012, so that
/// the client resumes by itself and learns what happened).
pub(super) fn own_reply(p: &mut Proxy, id: Option<&str>, body: &str) -> bool {
    if body.contains("\"resume_token\"")
        && let Ok(v) = serde_json::from_str::<serde_json::Value>(body)
        && v["type"] == "ok"
        && let (Some(session), Some(token)) = (v["session_id"].as_i64(), v["resume_token"].as_str())
    {
        p.session = Some(session);
        p.resume_token = Some(token.to_string());
    }
    let Some(id) = id else { return false };
    if p.own_request.as_deref() != Some(id) {
        return false;
    }
    p.own_request = None;
    if body.contains("\"type\":\"error\"") {
        tracing::warn!(
            body,
            "a re-homed customer socket was refused by its new owner"
        );
        close(&p.tx, 1012);
    }
    true
}

impl Router {
    /// Tells every live node (this one too: it may carry a socket to the old owner) that these
    /// sessions are held here now.
    pub(super) async fn announce(&self, ids: &[i64]) {
        let body = serde_json::json!({ "sessions": ids }).to_string();
        let mut nodes: Vec<String> = match self.state.store.nodes().await {
            Ok(nodes) => nodes
                .into_iter()
                .filter(|n| n.alive())
                .map(|n| n.id)
                .collect(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot list the nodes to announce moved sessions");
                Vec::new()
            }
        };
        if !nodes.contains(&self.me) {
            nodes.push(self.me.clone());
        }
        for node in nodes {
            self.send(&node, 0, MOVED, body.clone());
        }
    }

    /// Another node holds these sessions now: customer sockets carried elsewhere for them are
    /// carried to it.
    pub(super) fn moved(&self, m: &BusMessage) {
        let owner = m.from_node.as_str();
        let ids: Vec<i64> = serde_json::from_str::<serde_json::Value>(&m.body)
            .ok()
            .and_then(|v| serde_json::from_value(v["sessions"].clone()).ok())
            .unwrap_or_default();
        let mut proxies = lock(&self.proxies);
        for (conn, p) in proxies.iter_mut() {
            let (Some(session), Some(token), Some(addr)) = (p.session, &p.resume_token, p.addr)
            else {
                continue;
            };
            if p.technician.is_some() || !ids.contains(&session) || p.nodes.contains(owner) {
                continue;
            }
            for old in p.nodes.drain() {
                self.send(&old, *conn, BYE, String::new());
            }
            p.nodes.insert(owner.to_string());
            // Requests the old owner never answered: the client may try again.
            for (id, _) in p.pending.drain() {
                send(
                    &p.tx,
                    &ServerFrame::error(
                        Some(id),
                        ErrorCode::NodeUnavailable,
                        "the session moved to another node; try again",
                    ),
                );
            }
            let own = format!("lens-rehome-{}", self.new_conn());
            let resume = serde_json::json!({"type": "resume", "id": own, "resume_token": token});
            p.own_request = Some(own);
            self.send(owner, *conn, REHOME_CUSTOMER, addr.to_string());
            self.send(owner, *conn, FRAME_IN, resume.to_string());
            tracing::info!(
                session_id = session,
                node_id = owner,
                "re-homing a customer socket to the session's new owner"
            );
        }
    }

    /// A draining node handed a session to this one (the store names this node its owner
    /// already): it comes onto the desk with its status and what the old owner handed over.
    pub(super) async fn take(&self, m: BusMessage) {
        let moved: MovedSession = match serde_json::from_str(&m.body) {
            Ok(moved) => moved,
            Err(e) => {
                tracing::error!(error = %e, from = %m.from_node, "a moved session could not be read");
                return;
            }
        };
        let id = moved.session_id;
        let hub = &self.state.hub;
        let row = match self.state.store.live_session_on(id, &self.me).await {
            Ok(Some(row)) => row,
            Ok(None) => {
                tracing::warn!(
                    session_id = id,
                    "a session handed over here is not this node's (ended, or taken elsewhere)"
                );
                return;
            }
            Err(e) => {
                // The sweep restores it with the others this node owns once the store answers.
                tracing::error!(session_id = id, error = %e, "cannot read a session handed over");
                return;
            }
        };
        let customer = moved.customer_connected;
        if let Err(e) = hub
            .restore_rows(vec![row], &Restored::Moved(vec![moved]))
            .await
        {
            tracing::error!(session_id = id, error = %e, "cannot restore a session handed over");
            return;
        }
        tracing::info!(session_id = id, from = %m.from_node, "took a session moved by a draining node");
        self.announce(&[id]).await;
        if customer {
            let hub = hub.clone();
            tokio::spawn(async move {
                tokio::time::sleep(CUSTOMER_BACK_WITHIN).await;
                hub.customer_missing(id);
            });
        }
    }

    /// Drain: moves every live session of this node to the least-loaded serving node, one at a
    /// time, until the process exits. With no other serving node, the sessions stay and it
    /// looks again.
    pub async fn move_out(self: Arc<Self>) {
        loop {
            let held = self.state.hub.held();
            if !held.is_empty() {
                self.move_held(held).await;
            }
            tokio::time::sleep(DRAIN_TICK).await;
        }
    }

    async fn move_held(&self, held: Vec<i64>) {
        let nodes = match self.state.store.nodes().await {
            Ok(nodes) => nodes,
            Err(e) => {
                tracing::warn!(error = %e, "drain: cannot read the registry");
                return;
            }
        };
        let mut targets: Vec<(i64, String)> = nodes
            .into_iter()
            .filter(|n| n.alive() && n.state == "serving" && n.id != self.me)
            .map(|n| (n.load, n.id))
            .collect();
        if targets.is_empty() {
            return;
        }
        for id in held {
            targets.sort();
            if self.move_one(id, &targets[0].1).await {
                targets[0].0 += 1;
            }
        }
    }

    /// Hands one session to node `to`: off this desk, everything written, then the owner changed
    /// in the store together with the message that tells `to` (one transaction).
    async fn move_one(&self, id: i64, to: &str) -> bool {
        let hub = &self.state.hub;
        let Some((moved, local)) = hub.hand_over(id) else {
            return false;
        };
        hub.flush().await;
        let take = BusMessage {
            to_node: to.to_string(),
            from_node: self.me.clone(),
            conn: 0,
            kind: TAKE.into(),
            body: serde_json::to_string(&moved).unwrap_or_default(),
        };
        match self.state.store.move_session(id, &self.me, &take).await {
            Ok(true) => {
                tracing::info!(session_id = id, to, "drain: moved a live session");
                // This node's own customer socket: the client resumes through another node.
                if let Some(tx) = local {
                    close(&tx, 1012);
                }
                true
            }
            Ok(false) => {
                tracing::warn!(
                    session_id = id,
                    "drain: the session is no longer this node's"
                );
                if let Some(tx) = local {
                    close(&tx, 1012);
                }
                false
            }
            Err(e) => {
                // Still this node's in the store: back onto the desk, to try again.
                tracing::error!(session_id = id, error = %e, "drain: cannot move a session");
                if let Ok(Some(row)) = self.state.store.live_session_on(id, &self.me).await {
                    let _ = hub
                        .restore_rows(vec![row], &Restored::Moved(vec![moved]))
                        .await;
                }
                if let Some(tx) = local {
                    close(&tx, 1012);
                }
                false
            }
        }
    }
}
