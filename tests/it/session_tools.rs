//! The technician's tools on the live picture (issue 20) over real WebSockets against a running
//! server: strokes relayed to the customer, freeze-frame, links; every bad stroke or link gets its
//! documented error (PROTOCOL.md §7.2, §8) and the session goes on; counts on the session.

use crate::common;

use common::*;
use serde_json::{Value, json};

/// A session picked up by a technician: (console, customer, session id, technician token).
async fn active_session(s: &TestServer, email: &str) -> (Ws, Ws, i64, String) {
    let (_, _, token) = technician_with(s, email, |_| {}).await;
    let (mut con, _) = console(s, &token).await;
    let created = s
        .post(
            "/api/v1/sessions",
            &token,
            json!({"method": "pin", "name": "Grace"}),
        )
        .await
        .expect(201);
    let id = created["id"].as_i64().unwrap();
    let (mut cus, ok) = customer(s, created["pin"].as_str().unwrap()).await;
    assert_eq!(ok["type"], "ok", "{ok}");
    assert_eq!(cus.request(json!({"type": "ready"})).await["type"], "ok");
    con.session_status(id, "Waiting").await;
    let ok = con
        .request(json!({"type": "pickup", "session_id": id}))
        .await;
    assert_eq!(ok["type"], "ok", "{ok}");
    cus.status("Active").await;
    (con, cus, id, token)
}

fn stroke(id: &str, session: i64, tool: &str, points: &str) -> String {
    format!(
        r##"{{"type":"annotate","id":"{id}","session_id":{session},"tool":"{tool}","color":"#ff3b30","points":{points}}}"##
    )
}

/// Sends a raw frame and returns the error it gets (by its id, or the next error without one).
async fn refused(ws: &mut Ws, text: &str, id: Option<&str>) -> Value {
    ws.send_raw(text).await;
    let e = ws
        .until("an error", |v| {
            v["type"] == "error" && id.is_none_or(|id| v["id"] == id)
        })
        .await;
    // The socket is still there and answers.
    assert_eq!(ws.ping().await["type"], "pong");
    e
}

#[tokio::test]
async fn strokes_reach_the_customer_and_bad_ones_get_their_errors() {
    let s = start().await;
    let (mut con, mut cus, id, token) = active_session(&s, "ada@example.com").await;

    // An arrow, relayed as drawn.
    let ok = con
        .request(json!({"type": "annotate", "session_id": id, "tool": "arrow", "color": "#ffcc00", "points": [[0.25, 0.5], [0.75, 0.5]]}))
        .await;
    assert_eq!(ok["type"], "ok", "{ok}");
    let drawn = cus.frame("annotation", None).await;
    assert_eq!(
        drawn,
        json!({"type": "annotation", "tool": "arrow", "color": "#ffcc00", "points": [[0.25, 0.5], [0.75, 0.5]]})
    );

    // JSON has no NaN or infinity: what a client can send instead.
    for (n, bad) in ["NaN", "Infinity", "-Infinity", "1e400"].iter().enumerate() {
        let text = stroke(&format!("n{n}"), id, "pen", &format!("[[{bad},0.5]]"));
        let e = refused(&mut con, &text, None).await;
        assert_eq!(e["code"], "malformed_json", "{bad}: {e}");
    }
    for (n, bad) in [r#""NaN""#, r#""Infinity""#, "null", "true"]
        .iter()
        .enumerate()
    {
        let rid = format!("t{n}");
        let e = refused(
            &mut con,
            &stroke(&rid, id, "pen", &format!("[[{bad},0.5]]")),
            Some(&rid),
        )
        .await;
        assert_eq!(e["code"], "invalid_message", "{bad}: {e}");
    }
    // Out of the frame.
    for (n, bad) in ["[[1.5,0.5]]", "[[0.5,-0.01]]", "[[0.5,1e308]]"]
        .iter()
        .enumerate()
    {
        let rid = format!("o{n}");
        let e = refused(&mut con, &stroke(&rid, id, "pen", bad), Some(&rid)).await;
        assert_eq!(e["code"], "invalid_stroke", "{bad}: {e}");
        assert!(e["message"].as_str().unwrap().contains("points[0]"), "{e}");
    }
    // Too many points: 1,001 fit in a frame and are refused by count; 100,000 do not fit.
    let many = |n: usize| format!("[{}]", vec!["[0.123,0.456]"; n].join(","));
    let e = refused(&mut con, &stroke("p1", id, "pen", &many(1001)), Some("p1")).await;
    assert_eq!(e["code"], "invalid_stroke", "{e}");
    let huge = stroke("p2", id, "pen", &many(100_000));
    assert!(huge.len() > 1024 * 1024, "{} bytes", huge.len());
    let e = refused(&mut con, &huge, None).await;
    assert_eq!(e["code"], "frame_too_large", "{e}");
    // None of the refused strokes reached the customer; the next good one does.
    let ok = con
        .request(json!({"type": "annotate", "session_id": id, "tool": "pen", "color": "#34c759", "points": [[0.1, 0.1], [0.2, 0.2], [0.3, 0.1]]}))
        .await;
    assert_eq!(ok["type"], "ok", "{ok}");
    let drawn = cus.frame("annotation", None).await;
    assert_eq!(
        drawn["color"], "#34c759",
        "a refused stroke was relayed: {drawn}"
    );

    // 1,000 strokes as fast as they go (in batches, reading the replies so none is dropped):
    // the burst and the sustained rate pass, the rest is `rate_limited` with `retry_after`.
    // First let the bucket fill again after the strokes above (20 at 10 a second: 2 s), so that
    // the whole burst is there however fast those went.
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let started = std::time::Instant::now();
    let (mut passed, mut limited) = (0u32, 0u32);
    for batch in 0..20 {
        for k in 0..50 {
            con.send_raw(&stroke(
                &format!("f{batch}-{k}"),
                id,
                "pen",
                "[[0.5,0.5],[0.6,0.6]]",
            ))
            .await;
        }
        for _ in 0..50 {
            let r = con
                .until("a reply", |v| v["type"] == "ok" || v["type"] == "error")
                .await;
            if r["type"] == "ok" {
                passed += 1;
            } else {
                assert_eq!(r["code"], "rate_limited", "{r}");
                assert_eq!(r["retry_after"], 1, "{r}");
                limited += 1;
            }
        }
    }
    let secs = started.elapsed().as_secs_f64();
    println!("1,000 strokes in {secs:.2} s: {passed} passed, {limited} rate_limited");
    assert_eq!(passed + limited, 1000);
    assert!(passed >= 20, "the burst of 20 passes: {passed}");
    assert!(
        f64::from(passed) <= 20.0 + 10.0 * secs + 1.0,
        "{passed} passed in {secs:.2} s"
    );
    // The customer got exactly the strokes that passed.
    for _ in 0..passed {
        cus.frame("annotation", None).await;
    }
    assert_eq!(cus.ping().await["type"], "pong");
    assert!(
        cus.backlog.iter().all(|v| v["type"] != "annotation"),
        "more strokes than passed"
    );

    // After a pause the technician draws again.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let ok = con
        .request(json!({"type": "annotation_clear", "session_id": id}))
        .await;
    assert_eq!(ok["type"], "ok", "{ok}");
    cus.frame("annotation_clear", None).await;

    // Counted on the session, stroke by stroke never stored.
    let detail = s
        .get(&format!("/api/v1/sessions/{id}"), &token)
        .await
        .expect(200);
    assert_eq!(
        detail["tools"],
        json!({"annotation_strokes": 2 + passed, "annotation_clears": 1, "freezes": 0, "urls_sent": 0}),
        "{detail}"
    );
}

#[tokio::test]
async fn freeze_links_hold_and_transfer() {
    let s = start().await;
    let (mut con, mut cus, id, token) = active_session(&s, "bo@example.com").await;

    // Freeze and unfreeze.
    assert_eq!(
        con.request(json!({"type": "freeze", "session_id": id, "frozen": true}))
            .await["type"],
        "ok"
    );
    assert_eq!(
        cus.frame("freeze", None).await,
        json!({"type": "freeze", "frozen": true})
    );
    assert_eq!(
        con.request(json!({"type": "freeze", "session_id": id, "frozen": false}))
            .await["type"],
        "ok"
    );
    assert_eq!(cus.frame("freeze", None).await["frozen"], false);

    // Links: only http and https, at most 2,048 characters.
    for (rid, bad) in [
        ("u1", "javascript:alert(document.cookie)".to_string()),
        (
            "u2",
            "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==".to_string(),
        ),
        ("u3", "JAVASCRIPT://example.com/%0Aalert(1)".to_string()),
        ("u4", "https://bank.example@evil.example/".to_string()),
        ("u5", format!("https://example.com/{}", "a".repeat(2048))),
    ] {
        let text = json!({"type": "send_url", "id": rid, "session_id": id, "url": bad}).to_string();
        let e = refused(&mut con, &text, Some(rid)).await;
        assert_eq!(e["code"], "invalid_url", "{bad}: {e}");
    }
    let url = "https://support.example.com/router/x2?lang=en";
    let ok = con
        .request(json!({"type": "send_url", "session_id": id, "url": url}))
        .await;
    assert_eq!(ok["type"], "ok", "{ok}");
    let card = cus.frame("url", None).await;
    assert_eq!(
        (card["url"].as_str(), card["host"].as_str()),
        (Some(url), Some("support.example.com"))
    );
    assert!(card["at"].as_str().unwrap().ends_with('Z'));
    let line = cus
        .until("the link line", |v| {
            v["type"] == "chat" && v["from"] == "technician"
        })
        .await;
    assert_eq!(line["text"], format!("Link: {url}"));
    assert!(cus.backlog.iter().all(|v| v["type"] != "url"), "one card");

    // On hold the tools wait (the customer hides the drawing); unfreezing always works.
    con.request(json!({"type": "hold", "session_id": id})).await;
    cus.status("On Hold").await;
    let e = con
        .request(json!({"type": "annotate", "session_id": id, "tool": "arrow", "color": "#ffffff", "points": [[0.1, 0.1], [0.2, 0.2]]}))
        .await;
    assert_eq!(e["code"], "not_allowed", "{e}");
    let ok = con
        .request(json!({"type": "freeze", "session_id": id, "frozen": false}))
        .await;
    assert_eq!(ok["type"], "ok", "{ok}");
    assert_eq!(cus.frame("freeze", None).await["frozen"], false);
    con.request(json!({"type": "resume", "session_id": id}))
        .await;
    cus.status("Active").await;

    // A session that is not yours.
    let (_, _, other) = technician_with(&s, "cy@example.com", |_| {}).await;
    let (mut intruder, _) = console(&s, &other).await;
    let e = intruder
        .request(json!({"type": "send_url", "session_id": id, "url": "https://example.com/"}))
        .await;
    assert_eq!(e["code"], "session_not_found", "{e}");

    // A transfer: the next technician starts clean (the customer drops drawing and still).
    con.request(json!({"type": "freeze", "session_id": id, "frozen": true}))
        .await;
    assert_eq!(cus.frame("freeze", None).await["frozen"], true);
    let group = s
        .get(&format!("/api/v1/sessions/{id}"), &token)
        .await
        .expect(200)["group_id"]
        .as_i64()
        .unwrap();
    let ok = con
        .request(json!({"type": "transfer", "session_id": id, "to_group_id": group}))
        .await;
    assert_eq!(ok["type"], "ok", "{ok}");
    cus.status("Transferring").await;
    cus.frame("annotation_clear", None).await;
    assert_eq!(cus.frame("freeze", None).await["frozen"], false);

    let detail = s
        .get(&format!("/api/v1/sessions/{id}"), &token)
        .await
        .expect(200);
    assert_eq!(
        detail["tools"],
        json!({"annotation_strokes": 0, "annotation_clears": 0, "freezes": 2, "urls_sent": 1}),
        "{detail}"
    );
    let texts: Vec<&str> = detail["chat"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["text"].as_str().unwrap())
        .collect();
    assert!(
        texts.contains(&format!("Link: {url}").as_str()),
        "{texts:?}"
    );
}
