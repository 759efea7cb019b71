//! The load generator: see README.md. Not built yet; its binary comes with the load test issue.
