//! Built-in surveys at session end: the customer's answers (authenticated by its resume token)
//! and the technician's evaluation, checked against the group's survey, stored once, reported.

use crate::common;

use common::*;
use serde_json::{Value, json};

fn surveys(d: &mut Value) {
    d["connection_methods"]["pin_code"] = json!(true);
    d["customer_survey"] = json!({"mode": "built_in", "url": null, "add_session_details": false, "questions": [
        {"text": "How was it?", "kind": "drop_down", "answers": ["Good", "Bad"], "mandatory": true, "enabled": true},
        {"text": "Comments", "kind": "open", "answers": [], "mandatory": false, "enabled": true}
    ]});
    d["technician_survey"] = json!({"mode": "built_in", "url": null, "add_session_details": false, "questions": [
        {"text": "What was done?", "kind": "open", "answers": [], "mandatory": true, "enabled": true},
        {"text": "Disabled", "kind": "open", "answers": [], "mandatory": false, "enabled": false},
        {"text": "Resolved?", "kind": "drop_down", "answers": ["Yes", "No"], "mandatory": false, "enabled": true}
    ]});
}

fn rows_of(report: &Value) -> Vec<serde_json::Map<String, Value>> {
    let cols: Vec<&str> = report["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            cols.iter()
                .zip(r.as_array().unwrap())
                .map(|(c, v)| ((*c).to_owned(), v.clone()))
                .collect()
        })
        .collect()
}

/// The row of session `id` in today's List All of a report area.
async fn report_row(
    s: &TestServer,
    token: &str,
    area: &str,
    id: i64,
) -> serde_json::Map<String, Value> {
    let report = s
        .get(&format!("/api/v1/reports/{area}?range=today"), token)
        .await
        .expect(200);
    rows_of(&report)
        .into_iter()
        .find(|r| r["Session ID"] == id)
        .unwrap_or_else(|| panic!("no row of session {id} in the {area} report"))
}

/// A PIN session the technician behind `con` created, joined by a customer and picked up:
/// its id, the customer's socket and the customer's join answer.
async fn picked_up(s: &TestServer, token: &str, con: &mut Ws, name: &str) -> (i64, Ws, Value) {
    let created = s
        .post(
            "/api/v1/sessions",
            token,
            json!({"method": "pin", "name": name}),
        )
        .await
        .expect(201);
    let id = created["id"].as_i64().unwrap();
    let (mut cus, ok) = customer(s, created["pin"].as_str().unwrap()).await;
    cus.request(json!({"type": "ready"})).await;
    con.session_status(id, "Waiting").await;
    con.request(json!({"type": "pickup", "session_id": id}))
        .await;
    cus.status("Active").await;
    (id, cus, ok)
}

#[tokio::test]
async fn both_surveys_are_checked_stored_once_and_reported() {
    both_surveys(start().await).await;
}

#[tokio::test]
async fn both_surveys_on_postgres() {
    if let Some(s) = start_on(Backend::Postgres, |_| {}).await {
        both_surveys(s).await;
    }
}

async fn both_surveys(s: TestServer) {
    let (g, tech, token) = technician_with(&s, "ada@example.com", surveys).await;
    let (_, _, other) = technician_with(&s, "bob@example.com", surveys).await;
    let (mut con, _) = console(&s, &token).await;
    let (id, mut cus, ok) = picked_up(&s, &token, &mut con, "Grace").await;
    let resume = ok["resume_token"].as_str().unwrap().to_owned();

    let tech_path = format!("/api/v1/sessions/{id}/technician-survey");
    let tech_answers = json!({"answers": [{"index": 0, "answer": "Reset the router"}, {"index": 2, "answer": "Yes"}]});
    // Not before the end; not for a live session's customer either.
    let r = s.post(&tech_path, &token, tech_answers.clone()).await;
    assert_eq!((r.status.as_u16(), r.error_code()), (409, "session_live"));
    let good = json!({"resume_token": resume, "answers": [{"index": 0, "answer": "Good"}, {"index": 1, "answer": "Quick"}]});
    let r = s.post("/api/v1/surveys/customer", "", good.clone()).await;
    assert_eq!(r.status, 401, "{:?}", r.body);

    con.request(json!({"type": "end", "session_id": id})).await;
    let ended = cus.frame("ended", None).await;
    assert_eq!(ended["survey"]["questions"][0]["text"], "How was it?");
    let ended = con.frame("ended", Some(id)).await;
    assert_eq!(
        ended["survey"]["questions"][1]["index"], 2,
        "disabled questions are left out, indices kept"
    );

    // The customer's answers must fit the survey.
    for (answers, why) in [
        (json!([{"index": 0, "answer": "Meh"}]), "not a choice"),
        (json!([{"index": 1, "answer": "Nice"}]), "mandatory missing"),
        (
            json!([{"index": 0, "answer": "Good"}, {"index": 0, "answer": "Bad"}]),
            "twice",
        ),
        (
            json!([{"index": 0, "answer": "Good"}, {"index": 7, "answer": "x"}]),
            "no such question",
        ),
        (
            json!([{"index": 0, "answer": "Good"}, {"index": 1, "answer": "x".repeat(1025)}]),
            "too long",
        ),
    ] {
        let r = s
            .post(
                "/api/v1/surveys/customer",
                "",
                json!({"resume_token": resume, "answers": answers}),
            )
            .await;
        assert_eq!(
            (r.status.as_u16(), r.error_code()),
            (400, "survey_invalid"),
            "{why}"
        );
    }
    let r = s
        .post(
            "/api/v1/surveys/customer",
            "",
            json!({"resume_token": "rt_unknown", "answers": []}),
        )
        .await;
    assert_eq!(r.status, 401);
    let r = s
        .post(
            "/api/v1/surveys/customer",
            "",
            json!({"resume_token": resume, "answers": [], "extra": 1}),
        )
        .await;
    assert!(r.status == 400 || r.status == 422, "{:?}", r.body);
    let stored = s
        .post("/api/v1/surveys/customer", "", good.clone())
        .await
        .expect(201);
    assert_eq!(stored["answered"], 2);
    let r = s.post("/api/v1/surveys/customer", "", good).await;
    assert_eq!(
        (r.status.as_u16(), r.error_code()),
        (409, "survey_submitted")
    );

    // The technician evaluates its own session only, once.
    let r = s.post(&tech_path, &other, tech_answers.clone()).await;
    assert_eq!(r.status, 403);
    let r = s
        .post(
            &tech_path,
            &token,
            json!({"answers": [{"index": 2, "answer": "Yes"}]}),
        )
        .await;
    assert_eq!((r.status.as_u16(), r.error_code()), (400, "survey_invalid"));
    let r = s
        .post(
            &tech_path,
            &token,
            json!({"answers": [{"index": 1, "answer": "x"}, {"index": 0, "answer": "y"}]}),
        )
        .await;
    assert_eq!(
        (r.status.as_u16(), r.error_code()),
        (400, "survey_invalid"),
        "disabled question"
    );
    s.post(&tech_path, &token, tech_answers.clone())
        .await
        .expect(201);
    let r = s.post(&tech_path, &token, tech_answers).await;
    assert_eq!(
        (r.status.as_u16(), r.error_code()),
        (409, "survey_submitted")
    );
    let r = s
        .post(
            "/api/v1/sessions/999999/technician-survey",
            &token,
            json!({"answers": []}),
        )
        .await;
    assert_eq!(r.status, 404);

    // Both appear in the reports.
    let m = s.master().await;
    let row = report_row(&s, &m, "customer-survey", id).await;
    assert_eq!(row["How was it?"], "Good");
    assert_eq!(row["Comments"], "Quick");
    assert_eq!(row["Technician ID"], tech);
    let row = report_row(&s, &m, "customer-survey-issuance", id).await;
    assert_eq!(row["Survey issued by closing technician"], "Yes");
    let row = report_row(&s, &m, "technician-survey", id).await;
    assert_eq!(row["What was done?"], "Reset the router");
    assert_eq!(row["Resolved?"], "Yes");
    let _ = g;
}

#[tokio::test]
async fn no_built_in_survey_is_refused() {
    let s = start().await;
    let (_, _, token) = technician_with(&s, "cy@example.com", |d| {
        d["connection_methods"]["pin_code"] = json!(true);
    })
    .await;
    let (mut con, _) = console(&s, &token).await;
    let (id, _cus, ok) = picked_up(&s, &token, &mut con, "G").await;
    con.request(json!({"type": "end", "session_id": id})).await;
    con.frame("ended", Some(id)).await;
    let r = s
        .post(
            &format!("/api/v1/sessions/{id}/technician-survey"),
            &token,
            json!({"answers": []}),
        )
        .await;
    assert_eq!((r.status.as_u16(), r.error_code()), (409, "no_survey"));
    // Without a customer survey the resume token is not remembered for one.
    let r = s
        .post(
            "/api/v1/surveys/customer",
            "",
            json!({"resume_token": ok["resume_token"], "answers": []}),
        )
        .await;
    assert_eq!(r.status, 401);
}

async fn survey_issued_by(s: &TestServer, m: &str, who: &str) {
    let saved = s
        .change_global_settings(m, |g| {
            g["customer_survey_issuance"] = json!({"survey_issued_by": who});
        })
        .await;
    assert_eq!(saved["customer_survey_issuance"]["survey_issued_by"], who);
}

#[tokio::test]
async fn survey_issued_by_the_starting_technician() {
    let s = start().await;
    let m = s.master().await;
    let (_, ada, ta) = technician_with(&s, "ada@example.com", surveys).await;
    let (_, bob, tb) = technician_with(&s, "bob@example.com", surveys).await;
    survey_issued_by(&s, &m, "starting_technician").await;
    let (mut ca, _) = console(&s, &ta).await;
    let (mut cb, _) = console(&s, &tb).await;
    let (id, mut cus, ok) = picked_up(&s, &ta, &mut ca, "Grace").await;
    let r = ca
        .request(json!({"type": "transfer", "session_id": id, "to_technician_id": bob}))
        .await;
    assert_eq!(r["type"], "ok", "{r}");
    cb.session_status(id, "Waiting").await;
    cb.request(json!({"type": "pickup", "session_id": id}))
        .await;
    cus.status("Active").await;
    cb.request(json!({"type": "end", "session_id": id})).await;
    cus.frame("ended", None).await;
    s.post(
        "/api/v1/surveys/customer",
        "",
        json!({"resume_token": ok["resume_token"], "answers": [{"index": 0, "answer": "Good"}]}),
    )
    .await
    .expect(201);

    // Credited to Ada, who started the session, though Bob closed it.
    let row = report_row(&s, &m, "customer-survey", id).await;
    assert_eq!(row["Technician ID"], ada);
    // The issuance report exists only while the closing technician issues surveys.
    let r = s
        .get("/api/v1/reports/customer-survey-issuance?range=today", &m)
        .await;
    assert_eq!(
        (r.status.as_u16(), r.error_code()),
        (409, "report_unavailable")
    );
    survey_issued_by(&s, &m, "closing_technician").await;
    let row = report_row(&s, &m, "customer-survey-issuance", id).await;
    assert_eq!(row["Survey issued by closing technician"], "No");
    assert_eq!(row["Technician ID"], ada);
}
