//! criterion benchmarks for netboot-ltsconf.

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;

fn benches(c: &mut Criterion) {
    let input = *b"[Default]\nSERVER = 198.18.0.1\n";
    c.bench_function("ltsconf/parse", |b| {
        b.iter(|| netboot_ltsconf::fuzzing::parse(black_box(&input[..])))
    });
}

criterion_group!(group, benches);
criterion_main!(group);
