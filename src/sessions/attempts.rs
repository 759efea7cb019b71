//! The limit on wrong customer codes per client address (`sessions.
//! max_failed_code_attempts_per_address_per_minute`). One node (SQLite) counts in memory. Nodes
//! that share PostgreSQL count in the store, so that wrong codes spread over several nodes (a load
//! balancer sends each connection anywhere) hit the limit at the same count as on one node; the
//! node's own count still applies, which keeps the limit while the store does not answer.

use std::time::{Duration, Instant};

use super::Hub;

/// The window of the limit.
pub(super) const WINDOW: Duration = Duration::from_secs(60);

impl Hub {
    /// `Err(retry_after)` when `address` used up its wrong codes in the last minute.
    pub(crate) async fn code_attempts_check(&self, address: &str) -> Result<(), Duration> {
        self.code_attempts.check(address, Instant::now())?;
        if !self.node.shares_store() {
            return Ok(());
        }
        let limit = self
            .config
            .sessions
            .max_failed_code_attempts_per_address_per_minute;
        match self
            .store
            .code_failures_exceeded(address, limit, WINDOW.as_millis() as i64)
            .await
        {
            Ok(None) => Ok(()),
            Ok(Some(wait_ms)) => Err(Duration::from_millis(wait_ms.max(0) as u64)),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the wrong codes of an address: counting on this node only");
                Ok(())
            }
        }
    }

    /// One more wrong code (or refused app key) from `address`.
    pub(crate) async fn code_attempt_failed(&self, address: &str) {
        self.code_attempts.fail(address, Instant::now());
        if self.node.shares_store()
            && let Err(e) = self
                .store
                .code_failed(address, WINDOW.as_millis() as i64)
                .await
        {
            tracing::warn!(error = %e, "cannot count a wrong code in the store: counted on this node only");
        }
    }
}
