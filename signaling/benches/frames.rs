//! The protocol's per-frame cost: parsing and validating what phones and consoles send
//! (`parse_customer`, `parse_console`), and writing the server's frames (`ServerFrame::to_text`).
//! The frames are PROTOCOL.md's own examples (the first `C> ` / `T> ` / `S> ` line of each type),
//! so the bench follows the documented protocol. Run: `cargo bench -p signaling --bench frames`.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use signaling::protocol::{ServerFrame, parse_console, parse_customer};

const DOC: &str = include_str!("../PROTOCOL.md");

/// The first example line `<prefix>{"type":"<ty>"...` of PROTOCOL.md, without the prefix.
fn example(prefix: &str, ty: &str) -> &'static str {
    let start = format!("{prefix}{{\"type\":\"{ty}\"");
    DOC.lines()
        .find(|l| l.starts_with(&start))
        .map(|l| &l[prefix.len()..])
        .unwrap_or_else(|| panic!("PROTOCOL.md has no `{start}` example"))
}

fn frames(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse_customer");
    for ty in ["join", "offer", "candidate", "chat", "ping"] {
        let text = example("C> ", ty);
        parse_customer(text).unwrap_or_else(|e| panic!("{ty}: {e}"));
        g.throughput(Throughput::Bytes(text.len() as u64));
        g.bench_function(ty, |b| b.iter(|| parse_customer(black_box(text))));
    }
    g.finish();

    let mut g = c.benchmark_group("parse_console");
    for ty in ["hello", "pickup", "answer", "candidate", "chat"] {
        let text = example("T> ", ty);
        parse_console(text).unwrap_or_else(|e| panic!("{ty}: {e}"));
        g.throughput(Throughput::Bytes(text.len() as u64));
        g.bench_function(ty, |b| b.iter(|| parse_console(black_box(text))));
    }
    g.finish();

    // Rejections cost something too: a frame that is not JSON, and one of an unknown type.
    let mut g = c.benchmark_group("reject");
    g.bench_function("malformed_json", |b| {
        b.iter(|| parse_customer(black_box("{\"type\":\"join\",")))
    });
    g.bench_function("unknown_type", |b| {
        b.iter(|| parse_customer(black_box("{\"type\":\"teleport\",\"id\":\"c1\"}")))
    });
    g.finish();

    let mut g = c.benchmark_group("server_to_text");
    for ty in ["offer", "status", "session"] {
        let frame: ServerFrame =
            serde_json::from_str(example("S> ", ty)).unwrap_or_else(|e| panic!("S> {ty}: {e}"));
        g.bench_function(ty, |b| b.iter(|| black_box(&frame).to_text()));
    }
    g.finish();
}

criterion_group!(benches, frames);
criterion_main!(benches);
