//! Several nodes on one store (issue 15): the node registry and its heartbeat, draining (through
//! the API and by SIGTERM, in-process and with the real binary), fencing of a node id started
//! twice, and sessions across nodes: routed signaling, one queue, atomic pickup, placement,
//! failover and fencing. The PostgreSQL tests use the server that `scripts/test` starts; SQLite is
//! one node.

use crate::common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;
use lens::config::Placement;
use reqwest::Method;
use serde_json::{Value, json};

/// A node on the PostgreSQL database `url` (a fresh one when `None`), named `id`. Its sessions
/// stay on the node that creates them (placement has a test of its own).
async fn pg_node(id: &str, url: Option<&str>) -> Option<TestServer> {
    placed_node(id, url, Placement::Local).await
}

async fn placed_node(id: &str, url: Option<&str>, placement: Placement) -> Option<TestServer> {
    let id = id.to_string();
    let url = url.map(str::to_string);
    start_on(Backend::Postgres, move |c| {
        c.cluster.node_id = id;
        c.cluster.placement = placement;
        if let Some(url) = url {
            c.database_url = url;
        }
    })
    .await
}

fn node<'a>(list: &'a Value, id: &str) -> &'a Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == id)
        .unwrap_or_else(|| panic!("node {id} not in {list}"))
}

/// Polls until `f` holds (heartbeats come every 2 s; the machine may be slow).
async fn eventually<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f().await {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn sqlite_is_one_node_that_an_administrator_can_drain() {
    let s = start().await;
    let m = s.master().await;
    let health = s
        .call(Method::GET, "/healthz", None, None)
        .await
        .expect(200);
    assert_eq!(health["status"], "ok");
    let id = health["node"].as_str().unwrap().to_string();
    assert_eq!(id, s.state.node.id);
    let nodes = s.get("/api/v1/nodes", &m).await.expect(200);
    assert_eq!(nodes.as_array().unwrap().len(), 1, "{nodes}");
    let me = node(&nodes, &id);
    assert_eq!(me["state"], "serving");
    assert_eq!(me["this_node"], true);
    assert_eq!(me["epoch"], 1);
    assert_eq!(me["load"], 0);
    let (_, _, tech) = technician_with(&s, "nina@example.com", |_| {}).await;
    s.post("/api/v1/sessions", &tech, json!({"method": "pin"}))
        .await
        .expect(201);
    // The heartbeat carries the load.
    eventually("the load reaches the registry", || async {
        let nodes = s.get("/api/v1/nodes", &m).await.expect(200);
        node(&nodes, &id)["load"] == 1
    })
    .await;

    let r = s.post("/api/v1/nodes/elsewhere/drain", &m, json!({})).await;
    assert_eq!((r.status.as_u16(), r.error_code()), (404, "not_found"));
    let r = s
        .post(&format!("/api/v1/nodes/{id}/drain"), &m, json!({}))
        .await
        .expect(202);
    assert_eq!(r["state"], "draining");
    let r = s.call(Method::GET, "/healthz", None, None).await;
    assert_eq!((r.status.as_u16(), r.error_code()), (503, "draining"));
    // No new session on a draining node; the live one goes on.
    let r = s
        .post("/api/v1/sessions", &tech, json!({"method": "pin"}))
        .await;
    assert_eq!(
        (r.status.as_u16(), r.error_code()),
        (503, "node_unavailable")
    );
    let (mut con, _) = console(&s, &tech).await;
    let refused = con
        .request(json!({"type": "create_session", "method": "pin"}))
        .await;
    assert_eq!(refused["code"], "node_unavailable", "{refused}");
    assert_eq!(s.state.hub.live_count(), 1);
    let metrics = s.metrics().await;
    assert!(metrics.contains("lens_node_draining 1"), "{metrics}");
    assert!(metrics.contains("lens_node_info{node_id="), "{metrics}");
}

#[tokio::test]
async fn nodes_on_one_postgresql_see_each_other_and_drain_through_any_of_them() {
    let Some(a) = pg_node("node-a", None).await else {
        return;
    };
    let url = a.state.config.database_url.clone();
    let b = pg_node("node-b", Some(&url)).await.unwrap();
    let m = a.master().await;
    let nodes = a.get("/api/v1/nodes", &m).await.expect(200);
    assert_eq!(nodes.as_array().unwrap().len(), 2, "{nodes}");
    assert_eq!(node(&nodes, "node-a")["this_node"], true);
    assert_eq!(node(&nodes, "node-b")["this_node"], false);
    assert_eq!(node(&nodes, "node-b")["state"], "serving");
    assert!(node(&nodes, "node-b")["udp_port"].as_i64().unwrap() > 0);
    assert_ne!(
        node(&nodes, "node-b")["udp_port"],
        node(&nodes, "node-a")["udp_port"]
    );

    // A node without a heartbeat for 10 s is dead, and cannot be drained.
    sqlx::query(
        "INSERT INTO nodes (id, epoch, internal_url, media_address, udp_port, tcp_port, state, load, \
         started_at, heartbeat_at) VALUES ('gone', 1, 'http://127.0.0.1:1', '127.0.0.1', 1, NULL, \
         'serving', 3, 0, 0)",
    )
    .execute(a.state.store.pool())
    .await
    .unwrap();
    let nodes = b.get("/api/v1/nodes", &m).await.expect(200);
    assert_eq!(node(&nodes, "gone")["state"], "dead");
    let r = b.post("/api/v1/nodes/gone/drain", &m, json!({})).await;
    assert_eq!((r.status.as_u16(), r.error_code()), (409, "node_dead"));

    // Drained through node A, node B notices at its next heartbeat.
    a.post("/api/v1/nodes/node-b/drain", &m, json!({}))
        .await
        .expect(202);
    eventually("node B drains", || async {
        b.call(Method::GET, "/healthz", None, None).await.status == 503
    })
    .await;
    assert!(b.state.node.is_draining());
    assert!(!a.state.node.is_draining());
    let (_, _, tech) = technician_with(&a, "bea@example.com", |_| {}).await;
    let r = b
        .post("/api/v1/sessions", &tech, json!({"method": "pin"}))
        .await;
    assert_eq!(r.error_code(), "node_unavailable");
    a.post("/api/v1/sessions", &tech, json!({"method": "pin"}))
        .await
        .expect(201);
    let nodes = a.get("/api/v1/nodes", &m).await.expect(200);
    assert_eq!(node(&nodes, "node-b")["state"], "draining");
    let metrics = a.metrics().await;
    assert!(
        metrics.contains("lens_node_registry{state=\"dead\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_node_id_started_twice_fences_off_the_older_process() {
    let Some(a) = pg_node("twin", None).await else {
        return;
    };
    assert_eq!(a.state.node.epoch(), 1);
    // A second process with the same id: the registry moves to its epoch.
    let url = a.state.config.database_url.clone();
    let second = pg_node("twin", Some(&url)).await.unwrap();
    assert_eq!(second.state.node.epoch(), 2);
    eventually("the first twin is fenced", || async {
        let r = a.call(Method::GET, "/healthz", None, None).await;
        r.status == 503 && r.error_code() == "fenced"
    })
    .await;
    second
        .call(Method::GET, "/healthz", None, None)
        .await
        .expect(200);
    let m = second.master().await;
    let (_, _, tech) = technician_with(&second, "ted@example.com", |_| {}).await;
    let r = a
        .post("/api/v1/sessions", &tech, json!({"method": "pin"}))
        .await;
    assert_eq!(r.error_code(), "node_unavailable");
    let nodes = second.get("/api/v1/nodes", &m).await.expect(200);
    assert_eq!(nodes.as_array().unwrap().len(), 1);
    assert_eq!(node(&nodes, "twin")["epoch"], 2);
}

fn free_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

fn signal(server: &Server, sig: libc::c_int) {
    // SAFETY: kill(2) on our own child's pid.
    let rc = unsafe { libc::kill(server.child.id() as libc::pid_t, sig) };
    assert_eq!(rc, 0);
}

/// Waits for the child to exit; its exit status and how long it took.
async fn exited(server: &mut Server, within: Duration) -> (std::process::ExitStatus, Duration) {
    let started = Instant::now();
    loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            return (status, started.elapsed());
        }
        assert!(started.elapsed() < within, "the node did not exit");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The real binary as node `id` on the database of `a`.
async fn spawn_node(a: &TestServer, id: &str, drain_limit: &str) -> (Server, SocketAddr) {
    let addr = free_addr();
    let dir = a.dir.path().join(id);
    std::fs::create_dir_all(&dir).unwrap();
    let server = spawn(
        &dir,
        addr,
        &[
            ("LENS_DATABASE_URL", a.state.config.database_url.as_str()),
            ("LENS_CLUSTER_NODE_ID", id),
            ("LENS_CLUSTER_DRAIN_LIMIT_SECONDS", drain_limit),
            // Its sessions stay where they are created.
            ("LENS_CLUSTER_PLACEMENT", "local"),
        ],
    )
    .await;
    (server, addr)
}

async fn healthz(addr: SocketAddr) -> (u16, Value) {
    let r = reqwest::get(format!("http://{addr}/healthz"))
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// SIGTERM drains a node: without live sessions it exits at once; with one, it moves it to the
/// serving node (which keeps its status) and exits long before the drain limit, dead in the
/// registry; started again, it does not take back what moved. A drain asked through another
/// node's API moves sessions too. With no other serving node a drain waits (`/healthz` says
/// `draining`, no new session), and a second SIGTERM cuts it short.
#[tokio::test]
async fn sigterm_drains_the_real_binary_by_moving_its_sessions() {
    let Some(a) = pg_node("stay", None).await else {
        return;
    };
    let m = a.master().await;
    let (_, _, tech) = technician_with(&a, "dora@example.com", |_| {}).await;

    // Empty: the first SIGTERM stops the node promptly.
    let (mut p, _) = spawn_node(&a, "empty", "600").await;
    signal(&p, libc::SIGTERM);
    let (status, took) = exited(&mut p, Duration::from_secs(20)).await;
    assert!(status.success(), "{status:?}");
    assert!(took < Duration::from_secs(10), "{took:?}");
    let nodes = a.get("/api/v1/nodes", &m).await.expect(200);
    assert_eq!(node(&nodes, "empty")["state"], "dead");

    // One live session: it moves to "stay", and the node exits long before its 600 s limit.
    let (mut p, addr) = spawn_node(&a, "busy", "600").await;
    let create = |addr: SocketAddr| {
        call(
            addr,
            Method::POST,
            "/api/v1/sessions",
            Some(&tech),
            json!({"method": "pin"}),
        )
    };
    let session = create(addr).await["id"].as_i64().expect("session created");
    signal(&p, libc::SIGTERM);
    let (status, took) = exited(&mut p, Duration::from_secs(30)).await;
    assert!(status.success(), "{status:?}");
    eprintln!("drain: the node with one live session exited {took:?} after SIGTERM");
    let nodes = a.get("/api/v1/nodes", &m).await.expect(200);
    assert_eq!(node(&nodes, "busy")["state"], "dead");
    eventually("the session moved to stay", || async {
        a.state.hub.live_count() == 1
    })
    .await;
    let detail = a
        .get(&format!("/api/v1/sessions/{session}"), &tech)
        .await
        .expect(200);
    assert_eq!(detail["status"], "Pending", "{detail}");
    let owner: (String,) = sqlx::query_as("SELECT node_id FROM sessions WHERE id = $1")
        .bind(session)
        .fetch_one(a.state.store.pool())
        .await
        .unwrap();
    assert_eq!(owner.0, "stay");

    // Started again, the node does not restore what moved.
    let (mut p, addr) = spawn_node(&a, "busy", "600").await;
    eventually("the node started again", || async {
        let nodes = a.get("/api/v1/nodes", &m).await.expect(200);
        node(&nodes, "busy")["epoch"] == 2
    })
    .await;
    let nodes = a.get("/api/v1/nodes", &m).await.expect(200);
    assert_eq!(node(&nodes, "busy")["load"], 0);

    // Drained through the API of another node, "stay" moves its session to "busy", the one
    // serving node left.
    let r = call(
        addr,
        Method::POST,
        "/api/v1/nodes/stay/drain",
        Some(&m),
        json!({}),
    )
    .await;
    assert_eq!(r["state"], "draining", "{r}");
    eventually("the session moved to busy", || async {
        a.state.hub.live_count() == 0
    })
    .await;
    let detail = call(
        addr,
        Method::GET,
        &format!("/api/v1/sessions/{session}"),
        Some(&tech),
        json!(null),
    )
    .await;
    assert_eq!(detail["status"], "Pending", "{detail}");
    eventually("busy holds it", || async {
        let nodes = a.get("/api/v1/nodes", &m).await.expect(200);
        node(&nodes, "busy")["load"] == 1
    })
    .await;

    // No other serving node: the drain waits, refusing new sessions; a second SIGTERM ends it.
    signal(&p, libc::SIGTERM);
    eventually("/healthz says draining", || async {
        let (status, body) = healthz(addr).await;
        status == 503 && body["error"]["code"] == "draining"
    })
    .await;
    let refused = create(addr).await;
    assert_eq!(refused["error"]["code"], "node_unavailable", "{refused}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        p.child.try_wait().unwrap().is_none(),
        "left with a live session"
    );
    signal(&p, libc::SIGTERM);
    let (_, took) = exited(&mut p, Duration::from_secs(20)).await;
    assert!(took < Duration::from_secs(5), "{took:?}");
}

/// PostgreSQL refuses the node's connections: `/healthz` answers 503 `store_unavailable`, the
/// registry metric shows the failed heartbeats, and the node serves again once the store answers.
#[tokio::test]
async fn a_node_that_cannot_reach_postgresql_is_unhealthy_until_it_can() {
    let Some(a) = pg_node("cut-off", None).await else {
        return;
    };
    use sqlx::Connection;
    let url = a.state.config.database_url.clone();
    let db = url.rsplit('/').next().unwrap().to_string();
    // One connection of our own, opened before the database refuses new ones.
    let mut admin = sqlx::PgConnection::connect(&url).await.unwrap();
    let cut = |limit: i32| format!("ALTER DATABASE {db} CONNECTION LIMIT {limit}");
    sqlx::query(sqlx::AssertSqlSafe(cut(0)))
        .execute(&mut admin)
        .await
        .unwrap();
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .execute(&mut admin)
    .await
    .unwrap();
    eventually("the node reports the store unreachable", || async {
        let r = a.call(Method::GET, "/healthz", None, None).await;
        r.status == 503 && r.error_code() == "store_unavailable"
    })
    .await;
    assert!(!a.state.node.accepting());
    eventually("the heartbeat fails", || async {
        a.metrics()
            .await
            .lines()
            .any(|l| l.starts_with("lens_node_heartbeat_failures_total") && !l.ends_with(" 0"))
    })
    .await;
    sqlx::query(sqlx::AssertSqlSafe(cut(-1)))
        .execute(&mut admin)
        .await
        .unwrap();
    eventually("the node serves again", || async {
        a.call(Method::GET, "/healthz", None, None).await.status == 200
    })
    .await;
    assert!(a.state.node.accepting());
    let m = a.master().await;
    let (_, _, tech) = technician_with(&a, "cora@example.com", |_| {}).await;
    a.post("/api/v1/sessions", &tech, json!({"method": "pin"}))
        .await
        .expect(201);
    let nodes = a.get("/api/v1/nodes", &m).await.expect(200);
    assert_eq!(node(&nodes, "cut-off")["state"], "serving");
}

/// Three nodes on one fresh PostgreSQL database: A, B and C.
async fn three_nodes() -> Option<(TestServer, TestServer, TestServer)> {
    let a = pg_node("node-a", None).await?;
    let url = a.state.config.database_url.clone();
    let b = pg_node("node-b", Some(&url)).await.unwrap();
    let c = pg_node("node-c", Some(&url)).await.unwrap();
    Some((a, b, c))
}

/// A session's lifecycle as the store keeps it, without its times: (from, to, actor, reason).
async fn events_of(s: &TestServer, token: &str, id: i64) -> Vec<(String, String, String, String)> {
    let d = s
        .get(&format!("/api/v1/sessions/{id}"), token)
        .await
        .expect(200);
    d["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let f = |k: &str| {
                e[k].as_str()
                    .unwrap_or_else(|| panic!("{k} in {e}"))
                    .to_string()
            };
            (f("from"), f("to"), f("actor"), f("reason"))
        })
        .collect()
}

/// A whole session: created through `owner`'s API, the customer on `cus_node`, the console on
/// `con_node`: join, pickup, chat both ways, hold and resume, mute, end. Returns its id and its
/// stored chat.
async fn whole_session(
    owner: &TestServer,
    cus_node: &TestServer,
    con_node: &TestServer,
    token: &str,
) -> (i64, Value) {
    let (mut con, _) = console(con_node, token).await;
    let c = owner
        .post(
            "/api/v1/sessions",
            token,
            json!({"method": "pin", "name": "Routed"}),
        )
        .await
        .expect(201);
    let id = c["id"].as_i64().unwrap();
    // The queue reaches the console whichever node holds the session.
    con.session_status(id, "Pending").await;
    let (mut cus, ok) = customer(cus_node, c["pin"].as_str().unwrap()).await;
    assert_eq!(ok["type"], "ok", "{ok}");
    assert_eq!(ok["session_id"], id);
    assert_eq!(cus.request(json!({"type": "ready"})).await["type"], "ok");
    con.session_status(id, "Waiting").await;
    let r = con
        .request(json!({"type": "pickup", "session_id": id}))
        .await;
    assert_eq!(r["type"], "ok", "{r}");
    cus.status("Active").await;
    assert_eq!(
        cus.request(json!({"type": "chat", "text": "hello from the phone"}))
            .await["type"],
        "ok"
    );
    con.until("the customer's line", |v| {
        v["type"] == "chat" && v["text"] == "hello from the phone"
    })
    .await;
    let r = con
        .request(json!({"type": "chat", "session_id": id, "text": "hello from the console"}))
        .await;
    assert_eq!(r["type"], "ok", "{r}");
    cus.until("the technician's line", |v| {
        v["type"] == "chat" && v["text"] == "hello from the console"
    })
    .await;
    for (frame, status) in [("hold", "On Hold"), ("resume", "Active")] {
        let r = con.request(json!({"type": frame, "session_id": id})).await;
        assert_eq!(r["type"], "ok", "{frame}: {r}");
        cus.status(status).await;
    }
    let r = cus
        .request(json!({"type": "mute", "kind": "audio", "muted": true}))
        .await;
    assert_eq!(r["type"], "ok", "{r}");
    con.until("the customer muted", |v| {
        v["type"] == "mute_state" && v["session_id"] == id && v["customer_audio"] == false
    })
    .await;
    let r = con
        .request(json!({"type": "mute", "session_id": id, "target": "self", "kind": "audio", "muted": true}))
        .await;
    assert_eq!(r["type"], "ok", "{r}");
    cus.until("the technician muted", |v| {
        v["type"] == "mute_state" && v["technician_audio"] == false
    })
    .await;
    let r = con.request(json!({"type": "end", "session_id": id})).await;
    assert_eq!(r["type"], "ok", "{r}");
    let ended = cus.frame("ended", None).await;
    assert_eq!(ended["status"], "Closed by technician");
    assert_eq!(cus.close_code().await, Some(1000));
    con.frame("ended", Some(id)).await;
    let d = owner
        .get(&format!("/api/v1/sessions/{id}"), token)
        .await
        .expect(200);
    (id, d["chat"].clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_routed_across_three_nodes_is_the_same_as_on_one() {
    let Some((a, b, c)) = three_nodes().await else {
        return;
    };
    let (_, _, token) = technician_with(&a, "routed@example.com", |_| {}).await;
    // Customer on A, console on B, session on C.
    let (routed, routed_chat) = whole_session(&c, &a, &b, &token).await;
    // The same on one node.
    let (local, local_chat) = whole_session(&c, &c, &c, &token).await;
    let (routed_events, local_events) = (
        events_of(&a, &token, routed).await,
        events_of(&a, &token, local).await,
    );
    assert_eq!(routed_events, local_events);
    assert_eq!(routed_events.len(), 6, "{routed_events:?}");
    let lines = |chat: &Value| -> Vec<(String, String)> {
        chat.as_array()
            .unwrap()
            .iter()
            .map(|l| {
                let f = |k: &str| l[k].as_str().unwrap_or_else(|| panic!("{k} in {l}"));
                (f("from").to_string(), f("text").to_string())
            })
            .collect()
    };
    assert_eq!(lines(&routed_chat), lines(&local_chat));
    assert_eq!(lines(&routed_chat).len(), 2);
    // Both sessions were held by C alone.
    let row: (Option<String>, Option<String>) = sqlx::query_as(
        "SELECT (SELECT node_id FROM sessions WHERE id = $1), (SELECT node_id FROM sessions WHERE id = $2)",
    )
    .bind(routed)
    .bind(local)
    .fetch_one(a.state.store.pool())
    .await
    .unwrap();
    assert_eq!(row, (Some("node-c".into()), Some("node-c".into())));
    // Nothing left waiting on the bus.
    let left: (i64,) = sqlx::query_as("SELECT COUNT(*) FROM node_messages")
        .fetch_one(a.state.store.pool())
        .await
        .unwrap();
    assert_eq!(left.0, 0);
}

/// A technician of group `g` (created through `s`) and its token.
async fn technician_in(s: &TestServer, g: i64, email: &str) -> (i64, String) {
    let m = s.master().await;
    let id = s.create_user(&m, "technicians", email, Some(g)).await;
    (id, s.token(email, USER_PASSWORD).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_technicians_on_two_nodes_pick_up_the_same_session_200_times_and_one_wins() {
    let Some((a, b, c)) = three_nodes().await else {
        return;
    };
    let (g, _, t0) = technician_with(&c, "dispatcher@example.com", |_| {}).await;
    let (t1, token1) = technician_in(&a, g, "first@example.com").await;
    let (t2, token2) = technician_in(&a, g, "second@example.com").await;
    // The dispatcher and the customers on C, which holds the sessions; the two technicians on
    // A and B.
    let (mut con0, _) = console(&c, &t0).await;
    let (mut con1, _) = console(&a, &token1).await;
    let (mut con2, _) = console(&b, &token2).await;
    let mut wins = [0; 2];
    for round in 0..200 {
        let created = c
            .post("/api/v1/sessions", &t0, json!({"method": "pin"}))
            .await
            .expect(201);
        let id = created["id"].as_i64().unwrap();
        let (mut cus, _) = customer(&c, created["pin"].as_str().unwrap()).await;
        cus.request(json!({"type": "ready"})).await;
        let r = con0
            .request(json!({"type": "pickup", "session_id": id}))
            .await;
        assert_eq!(r["type"], "ok", "{r}");
        let r = con0
            .request(json!({"type": "transfer", "session_id": id, "to_group_id": g}))
            .await;
        assert_eq!(r["type"], "ok", "{r}");
        con1.session_status(id, "Waiting").await;
        con2.session_status(id, "Waiting").await;
        let pickup = json!({"type": "pickup", "session_id": id});
        let (r1, r2) = tokio::join!(con1.request(pickup.clone()), con2.request(pickup));
        let outcomes = [r1["type"] == "ok", r2["type"] == "ok"];
        assert_eq!(
            outcomes.iter().filter(|w| **w).count(),
            1,
            "round {round}: {r1} / {r2}"
        );
        let (winner, loser) = if outcomes[0] { (t1, &r2) } else { (t2, &r1) };
        // The documented refusal of a session that is no longer Waiting.
        assert_eq!(loser["code"], "not_allowed", "round {round}: {loser}");
        wins[usize::from(!outcomes[0])] += 1;
        cus.status("Active").await;
        let con = if outcomes[0] { &mut con1 } else { &mut con2 };
        let r = con.request(json!({"type": "end", "session_id": id})).await;
        assert_eq!(r["type"], "ok", "{r}");
        cus.frame("ended", None).await;
        let d = c
            .get(&format!("/api/v1/sessions/{id}"), &t0)
            .await
            .expect(200);
        assert_eq!(d["technician_id"], winner, "round {round}");
    }
    eprintln!("pickup races won: A {} / B {}", wins[0], wins[1]);
}

/// Two nodes on one fresh PostgreSQL database: `<prefix>-a` and `<prefix>-b`.
async fn two_nodes(prefix: &str) -> Option<(TestServer, TestServer)> {
    let a = pg_node(&format!("{prefix}-a"), None).await?;
    let url = a.state.config.database_url.clone();
    let b = pg_node(&format!("{prefix}-b"), Some(&url)).await.unwrap();
    Some((a, b))
}

/// A PIN session created through `s`'s API: the `201` body.
async fn new_pin(s: &TestServer, token: &str) -> Value {
    s.post("/api/v1/sessions", token, json!({"method": "pin"}))
        .await
        .expect(201)
}

/// The limit on wrong codes per address holds across nodes (counted in PostgreSQL): ten wrong
/// codes from one address spread over two nodes, five on each, and the eleventh attempt is
/// refused on both, even with the right code, as on one node (`tests/it/sessions.rs`), with a
/// `retry_after`. Each node's own count alone (five) would not have refused it.
#[tokio::test]
async fn wrong_codes_from_one_address_over_two_nodes_hit_the_limit_of_one_node() {
    let Some((a, b)) = two_nodes("guess").await else {
        return;
    };
    let (_, _, token) = technician_with(&a, "guessed@example.com", |_| {}).await;
    let created = new_pin(&b, &token).await;
    let pin = created["pin"].as_str().unwrap().to_string();
    let wrong = if pin == "000000" { "000001" } else { "000000" };
    for i in 0..10 {
        let node = if i % 2 == 0 { &a } else { &b };
        let (_, r) = customer(node, wrong).await;
        assert_eq!(r["code"], "code_invalid", "attempt {i}: {r}");
    }
    // On A the right code is B's session (the join is routed to B, which checks the count).
    for node in [&a, &b] {
        let (_, r) = customer(node, &pin).await;
        assert_eq!(r["code"], "too_many_attempts", "{r}");
        let wait = r["retry_after"].as_u64().unwrap();
        assert!((1..=61).contains(&wait), "{r}");
    }
    for node in [&a, &b] {
        let metrics = node.metrics().await;
        assert!(
            metrics.contains(r#"lens_code_attempts_total{outcome="invalid"} 5"#),
            "{metrics}"
        );
    }
}

/// A console's `hello` lists the whole queue of its technician, whichever node holds each
/// session: one Pending on the node it reached, and one Waiting on another node, with what the
/// console shows of them (the PIN while Pending, the phone, audio).
#[tokio::test]
async fn a_consoles_hello_lists_the_queue_of_every_node() {
    let Some((a, b)) = two_nodes("queue").await else {
        return;
    };
    let (_, _, token) = technician_with(&a, "queue@example.com", |_| {}).await;
    let (here, there) = (new_pin(&a, &token).await, new_pin(&b, &token).await);
    let (here, there_id) = (here["id"].as_i64().unwrap(), there["id"].as_i64().unwrap());
    let (mut cus, joined) = customer(&b, there["pin"].as_str().unwrap()).await;
    assert_eq!(joined["type"], "ok", "{joined}");
    assert_eq!(cus.request(json!({"type": "ready"})).await["type"], "ok");
    eventually("B stored the session Waiting", || async {
        let d = b
            .get(&format!("/api/v1/sessions/{there_id}"), &token)
            .await
            .expect(200);
        d["status"] == "Waiting"
    })
    .await;
    let (_con, hello) = console(&a, &token).await;
    let listed: Vec<(i64, &str)> = hello["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["id"].as_i64().unwrap(), v["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        listed,
        [(here, "Pending"), (there_id, "Waiting")],
        "{hello}"
    );
    let remote = &hello["sessions"][1];
    assert_eq!(remote["device"]["platform"], "Android", "{remote}");
    assert_eq!(remote["audio"], true, "{remote}");
    assert!(remote["waiting_seconds"].is_u64(), "{remote}");
    assert!(remote.get("pin").is_none(), "{remote}");
    assert!(hello["sessions"][0]["pin"].is_string(), "{hello}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_one_active_rule_and_pin_uniqueness_hold_across_nodes() {
    let Some((a, b, c)) = three_nodes().await else {
        return;
    };
    let (_, t_busy, token) = technician_with(&a, "busy@example.com", |_| {}).await;
    let (mut con, _) = console(&b, &token).await;
    // An Active session on C...
    let x = c
        .post("/api/v1/sessions", &token, json!({"method": "pin"}))
        .await
        .expect(201);
    let x_id = x["id"].as_i64().unwrap();
    let (mut cus_x, _) = customer(&c, x["pin"].as_str().unwrap()).await;
    cus_x.request(json!({"type": "ready"})).await;
    con.session_status(x_id, "Waiting").await;
    let r = con
        .request(json!({"type": "pickup", "session_id": x_id}))
        .await;
    assert_eq!(r["type"], "ok", "{r}");
    // ...and one waiting on A: A's desk alone does not know of the first, the store does.
    let y = a
        .post("/api/v1/sessions", &token, json!({"method": "pin"}))
        .await
        .expect(201);
    let y_id = y["id"].as_i64().unwrap();
    let (mut cus_y, _) = customer(&a, y["pin"].as_str().unwrap()).await;
    cus_y.request(json!({"type": "ready"})).await;
    con.session_status(y_id, "Waiting").await;
    let r = con
        .request(json!({"type": "pickup", "session_id": y_id}))
        .await;
    assert_eq!(r["code"], "one_active_session", "{r}");
    // On hold, the first lets the second go Active; the first cannot resume meanwhile.
    let r = con
        .request(json!({"type": "hold", "session_id": x_id}))
        .await;
    assert_eq!(r["type"], "ok", "{r}");
    let r = con
        .request(json!({"type": "pickup", "session_id": y_id}))
        .await;
    assert_eq!(r["type"], "ok", "{r}");
    let r = con
        .request(json!({"type": "resume", "session_id": x_id}))
        .await;
    assert_eq!(r["code"], "one_active_session", "{r}");
    let r = con
        .request(json!({"type": "end", "session_id": y_id}))
        .await;
    assert_eq!(r["type"], "ok", "{r}");
    let r = con
        .request(json!({"type": "resume", "session_id": x_id}))
        .await;
    assert_eq!(r["type"], "ok", "{r}");
    // Transferred to a technician whose console is on A: it arrives there and is picked up.
    let g = a.state.store.user(t_busy).await.unwrap().group_id.unwrap();
    let (t_other, other_token) = technician_in(&a, g, "other@example.com").await;
    let (mut other, _) = console(&a, &other_token).await;
    let r = con
        .request(json!({"type": "transfer", "session_id": x_id, "to_technician_id": t_other, "comment": "yours"}))
        .await;
    assert_eq!(r["type"], "ok", "{r}");
    let arrived = other.session_status(x_id, "Waiting").await;
    assert_eq!(arrived["session"]["transfer_comment"], "yours");
    let r = other
        .request(json!({"type": "pickup", "session_id": x_id}))
        .await;
    assert_eq!(r["type"], "ok", "{r}");
    cus_x.status("Active").await;

    // PINs created at once on three nodes stay unique among live sessions.
    let nodes = [&a, &b, &c];
    let creations = (0..150).map(|i| {
        let s = nodes[i % 3];
        let token = token.clone();
        async move {
            s.post("/api/v1/sessions", &token, json!({"method": "pin"}))
                .await
                .expect(201)["pin"]
                .as_str()
                .unwrap()
                .to_string()
        }
    });
    let pins = futures_util::future::join_all(creations).await;
    let unique: std::collections::HashSet<&String> = pins.iter().collect();
    assert_eq!(unique.len(), pins.len());
    let by_node: Vec<(String, i64)> = sqlx::query_as(
        "SELECT node_id, COUNT(*) FROM sessions WHERE pin IS NOT NULL GROUP BY node_id ORDER BY node_id",
    )
    .fetch_all(a.state.store.pool())
    .await
    .unwrap();
    assert_eq!(
        by_node,
        vec![
            ("node-a".into(), 50),
            ("node-b".into(), 50),
            ("node-c".into(), 50)
        ]
    );
}

/// p50 and p99 of round trips, in milliseconds.
fn percentiles(mut ms: Vec<f64>) -> (f64, f64) {
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| ms[((ms.len() as f64 * q) as usize).min(ms.len() - 1)];
    (at(0.5), at(0.99))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_routed_command_costs_a_bus_round_trip_and_a_silent_owner_a_clear_error() {
    let Some((a, _b, c)) = three_nodes().await else {
        return;
    };
    let (_, _, token) = technician_with(&a, "latency@example.com", |_| {}).await;
    let mut figures = Vec::new();
    for (name, reached) in [("local", &c), ("routed", &a)] {
        let created = c
            .post("/api/v1/sessions", &token, json!({"method": "pin"}))
            .await
            .expect(201);
        let (mut cus, ok) = customer(reached, created["pin"].as_str().unwrap()).await;
        assert_eq!(ok["type"], "ok", "{ok}");
        let mut ms = Vec::new();
        for i in 0..200 {
            let started = Instant::now();
            let r = cus
                .request(json!({"type": "mute", "kind": "audio", "muted": i % 2 == 0}))
                .await;
            ms.push(started.elapsed().as_secs_f64() * 1000.0);
            assert_eq!(r["type"], "ok", "{r}");
        }
        let (p50, p99) = percentiles(ms);
        figures.push(format!("{name}: p50 {p50:.1} ms, p99 {p99:.1} ms"));
    }
    eprintln!("mute round trips, customer socket: {}", figures.join("; "));
    let metrics = a.metrics().await;
    assert!(
        metrics.contains("lens_routed_request_seconds_count 2"),
        "{metrics}"
    );

    // A session whose owner does not answer (dead, or gone with its rows): the customer gets
    // `node_unavailable`, not a silent socket.
    let created = c
        .post("/api/v1/sessions", &token, json!({"method": "pin"}))
        .await
        .expect(201);
    sqlx::query("UPDATE sessions SET node_id = 'node-gone' WHERE id = $1")
        .bind(created["id"].as_i64().unwrap())
        .execute(a.state.store.pool())
        .await
        .unwrap();
    let (mut cus, r) = customer(&a, created["pin"].as_str().unwrap()).await;
    assert_eq!(r["code"], "node_unavailable", "{r}");
    // The socket still answers.
    assert_eq!(cus.ping().await["type"], "pong");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_session_goes_to_the_least_loaded_serving_node() {
    let least = Placement::LeastLoaded;
    let Some(a) = placed_node("node-a", None, least).await else {
        return;
    };
    let url = a.state.config.database_url.clone();
    let b = placed_node("node-b", Some(&url), least).await.unwrap();
    let c = placed_node("node-c", Some(&url), least).await.unwrap();
    let (_, _, token) = technician_with(&a, "placed@example.com", |_| {}).await;
    let m = a.master().await;
    let node_of = |id: i64| {
        let pool = a.state.store.pool().clone();
        async move {
            let row: (Option<String>,) =
                sqlx::query_as("SELECT node_id FROM sessions WHERE id = $1")
                    .bind(id)
                    .fetch_one(&pool)
                    .await
                    .unwrap();
            row.0.unwrap()
        }
    };
    // All idle: a session stays on the node asked.
    let first = b
        .post("/api/v1/sessions", &token, json!({"method": "pin"}))
        .await
        .expect(201);
    assert_eq!(node_of(first["id"].as_i64().unwrap()).await, "node-b");
    // A second on A; once the heartbeats carry the loads (A 1, B 1, C 0), a new session asked of
    // A goes to C.
    let second = a
        .post("/api/v1/sessions", &token, json!({"method": "pin"}))
        .await
        .expect(201);
    assert_eq!(node_of(second["id"].as_i64().unwrap()).await, "node-a");
    eventually("the loads reach the registry", || async {
        let nodes = a.get("/api/v1/nodes", &m).await.expect(200);
        node(&nodes, "node-a")["load"] == 1 && node(&nodes, "node-b")["load"] == 1
    })
    .await;
    // A console on A creates the next one: placed on C.
    let (mut con, _) = console(&a, &token).await;
    let r = con
        .request(json!({"type": "create_session", "method": "pin"}))
        .await;
    assert_eq!(r["type"], "ok", "{r}");
    let third_id = r["session_id"].as_i64().unwrap();
    assert_eq!(node_of(third_id).await, "node-c");
    let third = json!({"pin": r["pin"]});
    // All at 1: a tie stays on the node asked.
    eventually("C's load reaches the registry", || async {
        let nodes = a.get("/api/v1/nodes", &m).await.expect(200);
        node(&nodes, "node-c")["load"] == 1
    })
    .await;
    let fourth = b
        .post("/api/v1/sessions", &token, json!({"method": "pin"}))
        .await
        .expect(201);
    assert_eq!(node_of(fourth["id"].as_i64().unwrap()).await, "node-b");
    // The customer reaches it through B; its socket is carried to C.
    let (mut cus, ok) = customer(&b, third["pin"].as_str().unwrap()).await;
    assert_eq!(ok["type"], "ok", "{ok}");
    cus.request(json!({"type": "ready"})).await;
    con.session_status(third_id, "Waiting").await;
    // A draining node takes no new session: C drains, the next goes to A or B.
    a.post("/api/v1/nodes/node-c/drain", &m, json!({}))
        .await
        .expect(202);
    eventually("C drains", || async {
        let nodes = a.get("/api/v1/nodes", &m).await.expect(200);
        node(&nodes, "node-c")["state"] == "draining"
    })
    .await;
    let fifth = c
        .post("/api/v1/sessions", &token, json!({"method": "pin"}))
        .await
        .expect(201);
    assert_ne!(node_of(fifth["id"].as_i64().unwrap()).await, "node-c");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sessions_of_a_node_killed_with_sigkill_are_taken_over_and_resumed() {
    let Some(a) = pg_node("node-a", None).await else {
        return;
    };
    let url = a.state.config.database_url.clone();
    let b = pg_node("node-b", Some(&url)).await.unwrap();
    let (c, c_addr) = spawn_node(&a, "node-c", "30").await;
    let (_, _, token) = technician_with(&a, "failover@example.com", |_| {}).await;
    // The console on B, the customer on A, the session on C (the real binary).
    let (mut con, _) = console(&b, &token).await;
    let created = call(
        c_addr,
        Method::POST,
        "/api/v1/sessions",
        Some(&token),
        json!({"method": "pin"}),
    )
    .await;
    let id = created["id"].as_i64().unwrap();
    let (mut cus, ok) = customer(&a, created["pin"].as_str().unwrap()).await;
    assert_eq!(ok["type"], "ok", "{ok}");
    let resume_token = ok["resume_token"].as_str().unwrap().to_string();
    cus.request(json!({"type": "ready"})).await;
    con.session_status(id, "Waiting").await;
    let r = con
        .request(json!({"type": "pickup", "session_id": id}))
        .await;
    assert_eq!(r["type"], "ok", "{r}");
    cus.status("Active").await;

    let mut c = c;
    c.child.kill().unwrap();
    c.child.wait().unwrap();
    let killed = Instant::now();
    // A request meanwhile gets `node_unavailable`; the socket stays carried (to be re-homed).
    let asked = cus
        .send(json!({"type": "chat", "text": "anyone there?"}))
        .await;
    let r = cus
        .until_within("the unanswered chat", Duration::from_secs(15), |v| {
            v["id"] == asked.as_str()
        })
        .await;
    assert_eq!(r["code"], "node_unavailable", "{r}");
    // Within the 10 s that make C dead and a sweep, A or B takes the session (Reconnecting), and
    // A carries the customer's socket there: the session is whole again with nobody doing
    // anything, and the phone is told to offer again.
    let adopter = loop {
        let row: (String, String) =
            sqlx::query_as("SELECT node_id, status FROM sessions WHERE id = $1")
                .bind(id)
                .fetch_one(a.state.store.pool())
                .await
                .unwrap();
        if row.0 != "node-c" {
            break row.0;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(30),
            "not taken over: {row:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(adopter == "node-a" || adopter == "node-b", "{adopter}");
    eprintln!(
        "taken over by {adopter} {:?} after the SIGKILL",
        killed.elapsed()
    );
    let reoffer = cus
        .until_within("reoffer", Duration::from_secs(20), |v| {
            v["type"] == "reoffer"
        })
        .await;
    assert_eq!(reoffer["reason"], "node_failed");
    cus.status("Active").await;
    con.session_status(id, "Active").await;
    // The re-homed socket is joined on the new owner: a resume on it is refused as on any
    // joined socket.
    let resumed = cus
        .request(json!({"type": "resume", "resume_token": resume_token}))
        .await;
    assert_eq!(resumed["type"], "error", "{resumed}");
    assert_eq!(resumed["code"], "already_authenticated", "{resumed}");
    // The session goes on where it is now: chat, end.
    cus.request(json!({"type": "chat", "text": "still here"}))
        .await;
    con.until("the line after the takeover", |v| {
        v["type"] == "chat" && v["text"] == "still here"
    })
    .await;
    let r = con.request(json!({"type": "end", "session_id": id})).await;
    assert_eq!(r["type"], "ok", "{r}");
    cus.frame("ended", None).await;
    let d = a
        .get(&format!("/api/v1/sessions/{id}"), &token)
        .await
        .expect(200);
    let path: Vec<&str> = d["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["to"].as_str().unwrap())
        .collect();
    assert_eq!(
        path,
        [
            "Connecting",
            "Waiting",
            "Active",
            "Reconnecting",
            "Active",
            "Closed by technician"
        ]
    );
    drop(b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_lets_go_of_a_session_another_node_took_over() {
    let Some(a) = pg_node("node-a", None).await else {
        return;
    };
    let url = a.state.config.database_url.clone();
    let b = pg_node("node-b", Some(&url)).await.unwrap();
    let (_, _, token) = technician_with(&a, "fenced@example.com", |_| {}).await;
    let (mut con, _) = console(&b, &token).await;
    let created = b
        .post("/api/v1/sessions", &token, json!({"method": "pin"}))
        .await
        .expect(201);
    let id = created["id"].as_i64().unwrap();
    let (mut cus, ok) = customer(&b, created["pin"].as_str().unwrap()).await;
    assert_eq!(ok["type"], "ok", "{ok}");
    con.session_status(id, "Connecting").await;
    // B's writer stores a status a few milliseconds after the console hears of it.
    eventually("B stored Connecting", || async {
        let status: String = sqlx::query_scalar("SELECT status FROM sessions WHERE id = $1")
            .bind(id)
            .fetch_one(a.state.store.pool())
            .await
            .unwrap();
        status == "Connecting"
    })
    .await;
    // As if A had taken the session over while B was cut off from the store.
    sqlx::query("UPDATE sessions SET node_id = 'node-a' WHERE id = $1")
        .bind(id)
        .execute(a.state.store.pool())
        .await
        .unwrap();
    // B, not knowing yet, acts on it: what it decides is not stored over A's session (fenced).
    cus.send(json!({"type": "ready"})).await;
    eventually("B lets the session go", || async {
        b.state.hub.live_count() == 0
    })
    .await;
    con.frame("session_removed", Some(id)).await;
    // Its customer is sent away to resume (and reach the owner); nothing was written for it.
    assert_eq!(cus.close_code().await, Some(1012));
    let d = a
        .get(&format!("/api/v1/sessions/{id}"), &token)
        .await
        .expect(200);
    assert_eq!(d["status"], "Connecting", "{d}");
    assert_eq!(d["events"].as_array().unwrap().len(), 1, "{d}");
}

/// Drain (issue 15): a customer whose socket is on the draining node itself has it closed with
/// 1012 once its session moved; it resumes through another node and finds the session as it was
/// (Active, no `reoffer`: its resume leads to a fresh offer anyway), and the session's events show
/// no Reconnecting. A console on the draining node is closed with 1012 before the node exits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_socket_on_the_draining_node_is_closed_with_1012_and_resumes_elsewhere() {
    let Some(a) = pg_node("stay", None).await else {
        return;
    };
    let (_, _, token) = technician_with(&a, "local-drain@example.com", |_| {}).await;
    let (mut p, addr) = spawn_node(&a, "leaving", "600").await;
    let (mut con, _) = console(&a, &token).await;
    let created = call(
        addr,
        Method::POST,
        "/api/v1/sessions",
        Some(&token),
        json!({"method": "pin"}),
    )
    .await;
    let id = created["id"].as_i64().unwrap();
    let mut cus = Ws::connect_to(addr, "/ws/customer").await;
    let joined = cus
        .request(json!({"type": "join", "v": 1, "code": created["pin"]}))
        .await;
    assert_eq!(joined["type"], "ok", "{joined}");
    let resume_token = joined["resume_token"].as_str().unwrap().to_string();
    cus.request(json!({"type": "ready"})).await;
    con.session_status(id, "Waiting").await;
    let r = con
        .request(json!({"type": "pickup", "session_id": id}))
        .await;
    assert_eq!(r["type"], "ok", "{r}");
    cus.status("Active").await;

    // The technician has a second console open on the leaving node.
    let mut con2 = Ws::connect_to(addr, "/ws/console").await;
    let hello = con2
        .request(json!({"type": "hello", "v": 1, "token": token}))
        .await;
    assert_eq!(hello["type"], "ok", "{hello}");

    signal(&p, libc::SIGTERM);
    assert_eq!(cus.close_code().await, Some(1012));
    // Once the node holds nothing, its other client sockets close with 1012 too.
    assert_eq!(con2.close_code().await, Some(1012));
    let (status, _) = exited(&mut p, Duration::from_secs(30)).await;
    assert!(status.success(), "{status:?}");
    let mut cus = Ws::connect(&a, "/ws/customer").await;
    let resumed = cus
        .request(json!({"type": "resume", "resume_token": resume_token}))
        .await;
    assert_eq!(resumed["type"], "ok", "{resumed}");
    assert_eq!(resumed["status"], "Active", "{resumed}");
    cus.request(json!({"type": "chat", "text": "after the move"}))
        .await;
    con.until("the line after the move", |v| {
        v["type"] == "chat" && v["text"] == "after the move"
    })
    .await;
    assert!(
        cus.backlog.iter().all(|v| v["type"] != "reoffer"),
        "{:?}",
        cus.backlog
    );
    let r = con.request(json!({"type": "end", "session_id": id})).await;
    assert_eq!(r["type"], "ok", "{r}");
    cus.frame("ended", None).await;
    let d = a
        .get(&format!("/api/v1/sessions/{id}"), &token)
        .await
        .expect(200);
    let path: Vec<&str> = d["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["to"].as_str().unwrap())
        .collect();
    assert_eq!(
        path,
        ["Connecting", "Waiting", "Active", "Closed by technician"]
    );
}

/// Drain (issue 15): a Waiting session moves with its status; the customer's socket, carried from
/// the node it reached to the draining node, is re-homed to the new owner (here the very node it
/// reached) without the customer noticing, and since its phone never offered there is no
/// `reoffer`: it offers after the pickup as always.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_session_moves_with_its_carried_customer_socket_and_no_reoffer() {
    let Some(a) = pg_node("stay", None).await else {
        return;
    };
    let (_, _, token) = technician_with(&a, "waiting-drain@example.com", |_| {}).await;
    let (mut p, addr) = spawn_node(&a, "leaving", "600").await;
    let (mut con, _) = console(&a, &token).await;
    let created = call(
        addr,
        Method::POST,
        "/api/v1/sessions",
        Some(&token),
        json!({"method": "pin"}),
    )
    .await;
    let id = created["id"].as_i64().unwrap();
    let (mut cus, joined) = customer(&a, created["pin"].as_str().unwrap()).await;
    assert_eq!(joined["type"], "ok", "{joined}");
    cus.request(json!({"type": "ready"})).await;
    con.session_status(id, "Waiting").await;
    cus.backlog.clear();

    signal(&p, libc::SIGTERM);
    let (status, _) = exited(&mut p, Duration::from_secs(30)).await;
    assert!(status.success(), "{status:?}");
    eventually("the session moved here", || async {
        a.state.hub.live_count() == 1
    })
    .await;
    // The customer's socket reaches the new owner: its chat arrives, its status is still Waiting.
    let r = cus
        .request(json!({"type": "chat", "text": "still waiting"}))
        .await;
    assert_eq!(r["type"], "ok", "{r}");
    con.until("the waiting customer's line", |v| {
        v["type"] == "chat" && v["text"] == "still waiting"
    })
    .await;
    let r = con
        .request(json!({"type": "pickup", "session_id": id}))
        .await;
    assert_eq!(r["type"], "ok", "{r}");
    cus.status("Active").await;
    cus.ping().await;
    assert!(
        cus.backlog
            .iter()
            .all(|v| v["type"] != "reoffer" && v["status"] != "Reconnecting"),
        "{:?}",
        cus.backlog
    );
    let d = a
        .get(&format!("/api/v1/sessions/{id}"), &token)
        .await
        .expect(200);
    let path: Vec<&str> = d["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["to"].as_str().unwrap())
        .collect();
    assert_eq!(path, ["Connecting", "Waiting", "Active"]);
}

/// A node starting closes the recordings its own earlier run left open (cut off by a stop), not
/// those another live node is still writing.
#[tokio::test]
async fn a_starting_node_closes_only_its_own_interrupted_recordings() {
    let Some(a) = pg_node("rec-a", None).await else {
        return;
    };
    let url = a.state.config.database_url.clone();
    let (_, _, token) = technician_with(&a, "recorded@example.com", |_| {}).await;
    let created = a
        .post("/api/v1/sessions", &token, json!({"method": "pin"}))
        .await
        .expect(201);
    let session = created["id"].as_i64().unwrap();
    let mut ids = Vec::new();
    for node in ["rec-a", "rec-b"] {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO recordings (session_id, group_id, location, file_name, deferred, \
             size_bytes, duration_ms, codecs, status, attempts, started_at, updated_at, node_id) \
             VALUES ($1, 1, 'local', $2, 0, 0, 0, '', 'recording', 0, 0, 0, $3) RETURNING id",
        )
        .bind(session)
        .bind(format!("by-{node}"))
        .bind(node)
        .fetch_one(a.state.store.pool())
        .await
        .unwrap();
        ids.push(id);
    }
    // rec-b starts again after a stop: its own open recording is closed, rec-a's is left alone.
    let _b = pg_node("rec-b", Some(&url)).await.unwrap();
    let status = |id: i64| {
        let pool = a.state.store.pool().clone();
        async move {
            sqlx::query_scalar::<_, String>("SELECT status FROM recordings WHERE id = $1")
                .bind(id)
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    assert_eq!(status(ids[0]).await, "recording");
    assert_ne!(status(ids[1]).await, "recording");
}

/// A spooled recording of the test's own making in `node`'s folder of a shared spool root, with
/// its row: `rec-<id>` to be copied into `dest` as `<name>.mp4`. Returns the row id.
async fn spooled_recording(
    a: &TestServer,
    root: &std::path::Path,
    node: &str,
    dest: &std::path::Path,
    name: &str,
    session: i64,
) -> i64 {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO recordings (session_id, group_id, location, file_name, deferred, \
         size_bytes, duration_ms, codecs, status, attempts, started_at, updated_at, node_id) \
         VALUES ($1, 1, $2, $3, 1, 0, 0, '', 'recording', 0, 0, 0, $4) RETURNING id",
    )
    .bind(session)
    .bind(dest.display().to_string())
    .bind(name)
    .bind(node)
    .fetch_one(a.state.store.pool())
    .await
    .unwrap();
    let spool = recording::spool::Spool::open(recording::spool::SpoolConfig {
        dir: root.join(node),
        max_bytes: u64::MAX,
        max_attempts: 3,
        backoff_base: Duration::from_secs(1),
        backoff_max: Duration::from_secs(1),
        network_root: None,
    })
    .unwrap();
    let location = recording::Location::parse(&dest.display().to_string(), None).unwrap();
    let mut file = spool
        .begin(&format!("rec-{id}"), &location, &format!("{name}.mp4"))
        .unwrap();
    std::io::Write::write_all(&mut file, format!("bytes of {name}").as_bytes()).unwrap();
    id
}

/// Recording spools on a shared folder (issue 15): a node whose process is gone (its folder's lock
/// is free) has its spooled recordings, one cut off while being written, moved into a live node's
/// spool and uploaded from there; the rows name the live node. A folder whose lock is held (its
/// node runs) is left alone.
#[tokio::test]
async fn the_spooled_recordings_of_a_gone_node_are_uploaded_by_a_live_one() {
    let Some(a) = pg_node("spool-a", None).await else {
        return;
    };
    let url = a.state.config.database_url.clone();
    let (_, _, token) = technician_with(&a, "spooled@example.com", |_| {}).await;
    let created = a
        .post("/api/v1/sessions", &token, json!({"method": "pin"}))
        .await
        .expect(201);
    let session = created["id"].as_i64().unwrap();
    let root = tempfile::tempdir().unwrap();
    let dest = tempfile::tempdir().unwrap();
    let gone = spooled_recording(&a, root.path(), "gone-x", dest.path(), "gone", session).await;
    let alive = spooled_recording(&a, root.path(), "alive-y", dest.path(), "alive", session).await;
    // alive-y's process runs: it holds its folder's lock.
    let held = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(root.path().join("alive-y/.lock"))
        .unwrap();
    held.lock().unwrap();

    let shared = root.path().display().to_string();
    let _b = start_on(Backend::Postgres, move |c| {
        c.cluster.node_id = "spool-b".into();
        c.database_url = url;
        c.recording.shared_spool_dir = shared;
    })
    .await
    .unwrap();
    let row = |id: i64| {
        let pool = a.state.store.pool().clone();
        async move {
            sqlx::query_as::<_, (String, Option<String>)>(
                "SELECT status, node_id FROM recordings WHERE id = $1",
            )
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    eventually("the gone node's recording uploaded by spool-b", || async {
        row(gone).await.0 == "uploaded"
    })
    .await;
    assert_eq!(row(gone).await.1.as_deref(), Some("spool-b"));
    assert_eq!(
        std::fs::read_to_string(dest.path().join("gone.mp4")).unwrap(),
        "bytes of gone"
    );
    assert!(!root.path().join(format!("gone-x/rec-{gone}.json")).exists());
    // The live node's recording stays in its folder, untouched.
    assert_eq!(
        row(alive).await,
        ("recording".into(), Some("alive-y".into()))
    );
    assert!(
        root.path()
            .join(format!("alive-y/rec-{alive}.mp4"))
            .exists()
    );
    assert!(!dest.path().join("alive.mp4").exists());
}
