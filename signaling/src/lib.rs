//! Lens sessions and the WebSocket protocol: see README.md. Not built yet.
