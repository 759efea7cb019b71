//! Every example frame in PROTOCOL.md must parse with the crate's types.
//!
//! Frames live in fenced blocks whose info string starts with `json` (optionally followed by the
//! socket: `json customer` or `json console`). Each non-blank line is `C> ` (customer → server),
//! `T> ` (console → server) or `S> ` (server → that socket's client) followed by one JSON object.

use std::collections::{BTreeSet, HashMap, HashSet};

use serde_json::Value;
use signaling::protocol::{ErrorCode, ServerFrame, parse_console, parse_customer};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Socket {
    Customer,
    Console,
}

#[derive(Debug)]
struct Frame {
    line: usize,
    /// The block's declared socket, or the one its client lines imply (None: server lines only).
    socket: Option<Socket>,
    /// Index of the fenced block the frame is in.
    block: usize,
    /// In §10 "Full example exchange", where blocks with the same socket are one connection.
    in_full_example: bool,
    prefix: char,
    /// `C!` / `T!`: the server must refuse the frame with the error on the next line.
    refused: bool,
    json: String,
}

enum State {
    Outside,
    Json {
        declared: Option<Socket>,
        frames: Vec<Frame>,
    },
    Other,
}

fn protocol_md() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/PROTOCOL.md");
    std::fs::read_to_string(path).expect("read PROTOCOL.md")
}

/// Extracts every example frame; panics on a malformed example line or block.
fn frames(doc: &str) -> Vec<Frame> {
    let mut out = Vec::new();
    let mut state = State::Outside;
    let mut blocks = 0;
    let mut in_full_example = false;
    for (i, raw) in doc.lines().enumerate() {
        let line = i + 1;
        let text = raw.trim_end();
        if matches!(state, State::Outside) && text.starts_with("## ") {
            in_full_example = text.contains("Full example exchange");
        }
        let fence = text.strip_prefix("```");
        state = match (state, fence) {
            (State::Outside, Some(info)) => {
                let mut words = info.split_whitespace();
                if words.next() == Some("json") {
                    let declared = match words.next() {
                        None => None,
                        Some("customer") => Some(Socket::Customer),
                        Some("console") => Some(Socket::Console),
                        Some(other) => panic!("line {line}: unknown socket label `{other}`"),
                    };
                    blocks += 1;
                    State::Json {
                        declared,
                        frames: Vec::new(),
                    }
                } else {
                    State::Other
                }
            }
            (State::Outside, None) => State::Outside,
            (State::Other, Some(_)) => State::Outside,
            (State::Other, None) => State::Other,
            (
                State::Json {
                    declared,
                    mut frames,
                },
                Some(_),
            ) => {
                let clients: BTreeSet<char> = frames
                    .iter()
                    .map(|f| f.prefix)
                    .filter(|p| *p != 'S')
                    .collect();
                assert!(
                    clients.len() <= 1,
                    "block ending at line {line} mixes C> and T> lines: split it by socket"
                );
                let implied = clients.first().map(|p| match p {
                    'C' => Socket::Customer,
                    _ => Socket::Console,
                });
                if let (Some(d), Some(i)) = (declared, implied) {
                    assert_eq!(d, i, "block ending at line {line}: label vs. client lines");
                }
                for f in &mut frames {
                    f.socket = declared.or(implied);
                }
                out.extend(frames);
                State::Outside
            }
            (
                State::Json {
                    declared,
                    mut frames,
                },
                None,
            ) => {
                if !text.trim().is_empty() {
                    let (prefix, refused, json) = match text.split_at_checked(3) {
                        Some(("C> ", j)) => ('C', false, j),
                        Some(("T> ", j)) => ('T', false, j),
                        Some(("S> ", j)) => ('S', false, j),
                        Some(("C! ", j)) => ('C', true, j),
                        Some(("T! ", j)) => ('T', true, j),
                        _ => panic!(
                            "line {line}: a json example line must start with `C> `, `T> `, `S> `, `C! ` or `T! `: {text}"
                        ),
                    };
                    frames.push(Frame {
                        line,
                        socket: None,
                        block: blocks,
                        in_full_example,
                        prefix,
                        refused,
                        json: json.to_owned(),
                    });
                }
                State::Json { declared, frames }
            }
        };
    }
    assert!(
        matches!(state, State::Outside),
        "PROTOCOL.md ends inside a fenced block"
    );
    out
}

/// Drops `null` members recursively (optional fields may be written either way).
fn strip_nulls(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, strip_nulls(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(strip_nulls).collect()),
        other => other,
    }
}

fn same_json(a: &Value, b: &Value) -> bool {
    strip_nulls(a.clone()) == strip_nulls(b.clone())
}

#[test]
fn every_example_frame_parses() {
    let doc = protocol_md();
    let frames = frames(&doc);
    assert!(
        frames.len() >= 80,
        "only {} example frames found: is the extractor broken?",
        frames.len()
    );
    let mut failures = Vec::new();
    for (i, f) in frames.iter().enumerate() {
        if f.refused {
            if let Err(e) = check_refused(f, frames.get(i + 1)) {
                failures.push(format!("line {}: {e}\n    {}", f.line, f.json));
            }
            continue;
        }
        let raw: Value = match serde_json::from_str(&f.json) {
            Ok(v) => v,
            Err(e) => {
                failures.push(format!("line {}: not JSON: {e}", f.line));
                continue;
            }
        };
        let result = match f.prefix {
            'C' => parse_customer(&f.json)
                .map_err(|e| e.to_string())
                .and_then(|r| {
                    let back = serde_json::to_value(&r).unwrap();
                    if same_json(&back, &raw) {
                        Ok(())
                    } else {
                        Err(format!("re-serializes differently: {back}"))
                    }
                }),
            'T' => parse_console(&f.json)
                .map_err(|e| e.to_string())
                .and_then(|r| {
                    let back = serde_json::to_value(&r).unwrap();
                    if same_json(&back, &raw) {
                        Ok(())
                    } else {
                        Err(format!("re-serializes differently: {back}"))
                    }
                }),
            _ => serde_json::from_str::<ServerFrame>(&f.json)
                .map_err(|e| e.to_string())
                .and_then(|frame| {
                    // A field the type does not know would be dropped here: catch typos.
                    let back = serde_json::to_value(&frame).unwrap();
                    if same_json(&back, &raw) {
                        Ok(())
                    } else {
                        Err(format!(
                            "has fields ServerFrame does not know; it reads as {back}"
                        ))
                    }
                }),
        };
        if let Err(e) = result {
            failures.push(format!("line {}: {e}\n    {}", f.line, f.json));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

/// A `C!`/`T!` frame: the parser refuses it, and the next line is that very error frame.
fn check_refused(f: &Frame, next: Option<&Frame>) -> Result<(), String> {
    let err = match f.prefix {
        'C' => parse_customer(&f.json).err(),
        _ => parse_console(&f.json).err(),
    }
    .ok_or("marked as refused, but it parses")?;
    let next = next
        .filter(|n| n.prefix == 'S' && n.block == f.block)
        .ok_or("a refused frame must be followed by its `S>` error in the same block")?;
    let shown: ServerFrame = serde_json::from_str(&next.json).map_err(|e| e.to_string())?;
    let ServerFrame::Error { id, code, .. } = &shown else {
        return Err(format!("line {}: expected an error frame", next.line));
    };
    if (id, *code) != (&err.id, err.code) {
        return Err(format!(
            "the parser says {:?} / {} but line {} shows {:?} / {}",
            err.id, err.code, next.line, id, code
        ));
    }
    Ok(())
}

#[test]
fn server_frames_fit_their_socket() {
    // Customer-side frames carry no session_id (the socket has one session); console-side
    // session-scoped frames always do.
    let scoped = ["offer", "candidate", "mute_state", "chat", "ended"];
    for f in frames(&protocol_md()).iter().filter(|f| f.prefix == 'S') {
        let v: Value = serde_json::from_str(&f.json).unwrap();
        let ty = v["type"].as_str().unwrap_or_default();
        let has_session = v.get("session_id").is_some();
        match f.socket {
            Some(Socket::Customer) => {
                assert!(
                    ty == "ok" || !has_session,
                    "line {}: a customer-side `{ty}` frame has session_id",
                    f.line
                );
                assert!(
                    !matches!(ty, "session" | "session_removed"),
                    "line {}: `{ty}` is a console frame",
                    f.line
                );
            }
            Some(Socket::Console) => {
                assert!(
                    !scoped.contains(&ty) || has_session,
                    "line {}: a console-side `{ty}` frame lacks session_id",
                    f.line
                );
                assert!(
                    ty != "status",
                    "line {}: consoles get `session`, not `status`",
                    f.line
                );
            }
            None => {}
        }
    }
}

#[test]
fn replies_answer_earlier_requests_of_the_same_socket() {
    // Within a socket (in the full example: all blocks of one socket; elsewhere: each block on
    // its own), every reply id was used by an earlier request, and ids are not reused.
    let mut seen: HashMap<String, HashSet<String>> = HashMap::new();
    let frames = frames(&protocol_md());
    assert!(
        frames.iter().filter(|f| f.in_full_example).count() >= 40,
        "the full example exchange (§10) is missing or short"
    );
    for f in frames {
        let key = match (f.in_full_example, f.socket) {
            (true, Some(Socket::Customer)) => "customer".to_owned(),
            (true, Some(Socket::Console)) => "console".to_owned(),
            _ => format!("block {}", f.block),
        };
        let Ok(v) = serde_json::from_str::<Value>(&f.json) else {
            continue;
        };
        let Some(id) = v.get("id").and_then(Value::as_str) else {
            continue;
        };
        let ids = seen.entry(key.clone()).or_default();
        if f.prefix == 'S' {
            if f.socket.is_some() {
                assert!(
                    ids.contains(id),
                    "line {}: reply id `{id}` answers no earlier request ({key})",
                    f.line
                );
            }
        } else {
            // A reused id would make replies ambiguous.
            assert!(
                ids.insert(id.to_owned()),
                "line {}: request id `{id}` reused ({key})",
                f.line
            );
        }
    }
}

#[test]
fn every_message_type_has_an_example() {
    let frames = frames(&protocol_md());
    let types = |prefix: char| -> HashSet<String> {
        frames
            .iter()
            .filter(|f| f.prefix == prefix && !f.refused)
            .filter_map(|f| {
                let v: Value = serde_json::from_str(&f.json).ok()?;
                Some(v["type"].as_str()?.to_owned())
            })
            .collect()
    };
    let (c, t, s) = (types('C'), types('T'), types('S'));
    for ty in [
        "join",
        "ready",
        "offer",
        "candidate",
        "mute",
        "chat",
        "end",
        "decline",
        "resume",
        "ping",
    ] {
        assert!(c.contains(ty), "no customer example of `{ty}`");
    }
    for ty in [
        "hello",
        "pickup",
        "hold",
        "resume",
        "end",
        "transfer",
        "answer",
        "candidate",
        "mute",
        "chat",
        "note",
        "status",
        "create_session",
        "ping",
        "annotate",
        "annotation_clear",
        "freeze",
        "send_url",
    ] {
        assert!(t.contains(ty), "no console example of `{ty}`");
    }
    for ty in [
        "ok",
        "error",
        "status",
        "session",
        "session_removed",
        "offer",
        "candidate",
        "mute_state",
        "chat",
        "ended",
        "pong",
        "annotation",
        "annotation_clear",
        "freeze",
        "url",
    ] {
        assert!(s.contains(ty), "no server example of `{ty}`");
    }
}

#[test]
fn every_error_code_is_documented() {
    let doc = protocol_md();
    for code in ErrorCode::ALL {
        let row = format!("| `{}` |", code.as_str());
        assert!(
            doc.contains(&row),
            "PROTOCOL.md §8 lacks a row for `{code}`"
        );
    }
}

#[test]
fn documented_limits_match_the_code() {
    use signaling::protocol::{MAX_FRAME_BYTES, limits};
    let doc = protocol_md();
    assert_eq!(MAX_FRAME_BYTES, 65_536);
    assert!(doc.contains("**65 536 bytes**"));
    for (what, n) in [
        ("chat", limits::CHAT_CHARS),
        ("note", limits::NOTE_CHARS),
        ("sdp", limits::SDP_BYTES),
        ("candidate", limits::CANDIDATE_BYTES),
    ] {
        // Written with a thin thousands separator in the text: "2 000", "32 768", "1 024".
        let spaced = format!("{} {:03}", n / 1000, n % 1000);
        assert!(
            doc.contains(&spaced),
            "{what}: limit {n} not in PROTOCOL.md as `{spaced}`"
        );
    }
    for n in [
        limits::ID_CHARS,
        limits::CODE_CHARS,
        limits::TOKEN_CHARS,
        limits::COMMENT_CHARS,
        limits::NAME_CHARS,
        limits::TRACKING_ID_CHARS,
    ] {
        assert!(doc.contains(&n.to_string()), "limit {n} not in PROTOCOL.md");
    }
}
