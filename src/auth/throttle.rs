//! Counts failures per key in a sliding window; used for logins per address and per account.
//! In memory and per node: a restart forgets the counts, which only errs toward letting a user in.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct Throttle {
    limit: u32,
    window: Duration,
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl Throttle {
    pub fn new(limit: u32, window: Duration) -> Throttle {
        Throttle {
            limit,
            window,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// `Err(retry_after)` when `key` already used up its failures in the window.
    pub fn check(&self, key: &str, now: Instant) -> Result<(), Duration> {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let Some(times) = map.get_mut(key) else {
            return Ok(());
        };
        while times
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.window)
        {
            times.pop_front();
        }
        if times.len() as u64 >= u64::from(self.limit) {
            let oldest = times.front().copied().unwrap_or(now);
            return Err(self.window.saturating_sub(now.duration_since(oldest)));
        }
        Ok(())
    }

    pub fn fail(&self, key: &str, now: Instant) {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        // Bound memory under a flood of distinct keys: drop keys whose failures all expired.
        if map.len() > 100_000 {
            let window = self.window;
            map.retain(|_, t| t.back().is_some_and(|b| now.duration_since(*b) < window));
        }
        map.entry(key.to_string()).or_default().push_back(now);
    }

    pub fn clear(&self, key: &str) {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_failure_after_the_limit_is_refused_until_the_window_passes() {
        let t = Throttle::new(3, Duration::from_secs(60));
        let start = Instant::now();
        for i in 0..3 {
            assert!(t.check("a", start + Duration::from_secs(i)).is_ok());
            t.fail("a", start + Duration::from_secs(i));
        }
        let wait = t.check("a", start + Duration::from_secs(10)).unwrap_err();
        assert_eq!(wait, Duration::from_secs(50));
        assert!(t.check("b", start).is_ok());
        assert!(t.check("a", start + Duration::from_secs(61)).is_ok());
        t.clear("a");
        assert!(t.check("a", start + Duration::from_secs(10)).is_ok());
    }
}
