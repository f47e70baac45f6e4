//! criterion benchmarks for netboot-tftp: wire parse/emit of real datagrams, and the
//! engine's per-block cost (a whole in-memory transfer, client ACKs included).

use std::hint::black_box;
use std::time::Instant;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use netboot_tftp::engine::{Config, ReadTransfer};
use netboot_tftp::wire::{self, Options, Repr};

const OVMF_RRQ: &[u8] =
    b"\x00\x01bootx64.efi\x00octet\x00tsize\x000\x00blksize\x001468\x00windowsize\x004\x00";

fn wire_benches(c: &mut Criterion) {
    c.bench_function("tftp/parse/rrq_ovmf", |b| {
        b.iter(|| {
            let Ok(Repr::Rrq(r)) = Repr::parse(black_box(OVMF_RRQ)) else {
                unreachable!()
            };
            Options::from_request(&r.options)
        })
    });
    c.bench_function("tftp/parse/ack", |b| {
        b.iter(|| Repr::parse(black_box(&[0, 4, 0x12, 0x34][..])))
    });
    let mut data = vec![0u8; 4 + 1468];
    data[1] = 3;
    c.bench_function("tftp/parse/data_1468", |b| {
        b.iter(|| Repr::parse(black_box(&data[..])))
    });
    let opts = Options {
        blksize: Some(1468),
        timeout: None,
        tsize: Some(123_456_789),
        windowsize: Some(16),
    };
    let mut buf = [0u8; 128];
    c.bench_function("tftp/emit/oack", |b| {
        b.iter(|| black_box(&opts).emit_oack(&mut buf))
    });
    c.bench_function("tftp/emit/data_header", |b| {
        b.iter(|| wire::emit_data_header(&mut buf, black_box(7)))
    });
}

/// Runs a whole transfer of `file` through the engine with an ideal client that ACKs the
/// last block of every window; returns the number of DATA datagrams.
fn transfer(req: &[u8], file: &[u8]) -> u64 {
    let Ok(Repr::Rrq(r)) = Repr::parse(req) else {
        unreachable!()
    };
    let now = Instant::now();
    let mut tx = ReadTransfer::new(now, &r, file.len() as u64, &Config::default());
    let mut buf = vec![0u8; tx.max_datagram_len().max(512)];
    let mut src = file;
    let mut sent = 0u64;
    let mut block: u16 = 0;
    while !tx.is_closed() {
        // The engine stops by itself at the end of the window.
        while tx.poll_transmit(now, &mut buf, &mut src).is_some() {
            if buf[1] == 3 {
                block = u16::from_be_bytes([buf[2], buf[3]]);
                sent += 1;
            }
        }
        let b = block.to_be_bytes();
        tx.handle_datagram(now, &[0, 4, b[0], b[1]]);
    }
    sent
}

fn engine_benches(c: &mut Criterion) {
    let file = vec![0x5au8; 8 << 20];
    let mut g = c.benchmark_group("tftp/engine");
    g.throughput(Throughput::Bytes(file.len() as u64));
    g.sample_size(20);
    for (name, req) in [
        ("lockstep_512", &b"\x00\x01f\x00octet\x00"[..]),
        (
            "lockstep_1468",
            b"\x00\x01f\x00octet\x00blksize\x001468\x00",
        ),
        (
            "ws16_1468",
            b"\x00\x01f\x00octet\x00blksize\x001468\x00windowsize\x0016\x00",
        ),
        (
            "netascii_1468",
            b"\x00\x01f\x00netascii\x00blksize\x001468\x00",
        ),
    ] {
        g.bench_function(name, |b| b.iter(|| transfer(req, &file)));
    }
    g.finish();
}

criterion_group!(group, wire_benches, engine_benches);
criterion_main!(group);
