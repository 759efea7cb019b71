//! Arbitrary bytes (as lossy UTF-8) into both WebSocket frame parsers. Nothing may panic; an
//! accepted request must survive a serialize/parse round trip unchanged; every error must become
//! an `error` frame that parses back and whose message stays short.
#![no_main]

use libfuzzer_sys::fuzz_target;
use signaling::protocol::{ProtocolError, ServerFrame, parse_console, parse_customer};

fn check_error(e: &ProtocolError) {
    let text = e.frame().to_text();
    let back: ServerFrame = serde_json::from_str(&text).expect("error frame parses back");
    assert_eq!(back, e.frame());
    assert!(e.message.chars().count() <= 1000, "unbounded error message");
    if let Some(id) = &e.id {
        assert!(
            !id.is_empty() && id.chars().count() <= 64,
            "echoed an invalid id"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match parse_customer(&text) {
        Ok(req) => {
            let again = serde_json::to_string(&req).expect("serialize request");
            assert_eq!(
                parse_customer(&again).as_ref(),
                Ok(&req),
                "round trip: {again}"
            );
        }
        Err(e) => check_error(&e),
    }
    match parse_console(&text) {
        Ok(req) => {
            let again = serde_json::to_string(&req).expect("serialize request");
            assert_eq!(
                parse_console(&again).as_ref(),
                Ok(&req),
                "round trip: {again}"
            );
        }
        Err(e) => check_error(&e),
    }
});
