//! criterion benchmarks for netboot-nbd: request parsing, the engine's per-request path, and
//! reply building.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use netboot_nbd::engine::{Config, Connection, Event, Export, Step};
use netboot_nbd::wire::{self, cmd};
use std::hint::black_box;

fn request(cookie: u64, offset: u64, length: u64) -> [u8; 28] {
    let mut b = [0u8; 28];
    wire::Request {
        flags: 0,
        command: cmd::READ,
        cookie,
        offset,
        length,
        extended: false,
    }
    .emit(&mut b);
    b
}

/// A connection already in transmission on a 1 GiB read-only export.
fn ready(config: &Config, structured: bool) -> Connection {
    let mut c = Connection::new();
    let mut input = vec![0, 0, 0, 3];
    let mut push_opt = |o: u32, data: &[u8]| {
        let r = wire::OptionRequest { option: o, data };
        let at = input.len();
        input.resize(at + r.buffer_len(), 0);
        r.emit(&mut input[at..]);
    };
    if structured {
        push_opt(wire::opt::STRUCTURED_REPLY, &[]);
    }
    push_opt(wire::opt::GO, &[0, 0, 0, 0, 0, 0]);
    let mut at = 0;
    while let Ok(Step::Consumed(n) | Step::Event(n, _)) = c.handle(config, &input[at..]) {
        at += n;
        if c.in_transmission() {
            break;
        }
    }
    assert!(c.in_transmission());
    c
}

fn benches(c: &mut Criterion) {
    let config = Config {
        exports: vec![Export::read_only("root", 1 << 30)],
        ..Config::default()
    };
    let one = request(7, 4096, 131072);
    c.bench_function("nbd/parse_request", |b| {
        b.iter(|| wire::Request::parse(black_box(&one), false))
    });

    // 64 pipelined READs (what nbdcopy keeps in flight) through the engine, replies built.
    let batch: Vec<u8> = (0..64u64)
        .flat_map(|i| request(i, i * 262144, 262144))
        .collect();
    for structured in [false, true] {
        let mut conn = ready(&config, structured);
        let mut g = c.benchmark_group(if structured {
            "nbd/engine_64_reads_structured"
        } else {
            "nbd/engine_64_reads_simple"
        });
        g.throughput(Throughput::Elements(64));
        g.bench_function("handle+reply", |b| {
            b.iter(|| {
                let mut at = 0;
                let mut hdr = 0usize;
                while let Ok(Step::Event(n, Event::Request(r))) = conn.handle(&config, &batch[at..])
                {
                    hdr += conn.replies().read(r.cookie, r.offset, r.length).len();
                    at += n;
                }
                black_box(hdr)
            })
        });
        g.finish();
    }

    let rep = ready(&config, true).replies();
    let mut out = Vec::with_capacity(4096);
    c.bench_function("nbd/block_status_reply_16_extents", |b| {
        let ext: Vec<(u64, u32)> = (0..16).map(|i| (65536, i % 2 * 3)).collect();
        b.iter(|| {
            out.clear();
            rep.block_status(1, 0, black_box(&ext), &mut out);
            black_box(out.len())
        })
    });
}

criterion_group!(group, benches);
criterion_main!(group);
