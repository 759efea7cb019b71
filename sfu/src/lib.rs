//! WebRTC transport and RTP forwarding: see README.md. Not built yet.
