//! criterion benchmarks for netboot-nbd.

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;

fn benches(c: &mut Criterion) {
    let input = *b"NBDMAGICIHAVEOPT\x00\x03";
    c.bench_function("nbd/parse", |b| {
        b.iter(|| netboot_nbd::fuzzing::handshake(black_box(&input[..])))
    });
}

criterion_group!(group, benches);
criterion_main!(group);
