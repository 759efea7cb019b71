//! RTP to playable files, sinks and upload spool: see README.md. Not built yet.
