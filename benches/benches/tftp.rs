//! criterion benchmarks for netboot-tftp.

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;

fn benches(c: &mut Criterion) {
    let input = *b"\x00\x01pxelinux.0\x00octet\x00";
    c.bench_function("tftp/parse", |b| {
        b.iter(|| netboot_tftp::fuzzing::packet(black_box(&input[..])))
    });
}

criterion_group!(group, benches);
criterion_main!(group);
