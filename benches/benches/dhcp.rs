//! criterion benchmarks for netboot-dhcp.

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;

fn benches(c: &mut Criterion) {
    let input = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fuzz/corpus/dhcp_packet/discover-uefi-x64"
    ))
    .unwrap();
    c.bench_function("dhcp/parse", |b| {
        b.iter(|| netboot_dhcp::fuzzing::packet(black_box(&input[..])))
    });
}

criterion_group!(group, benches);
criterion_main!(group);
