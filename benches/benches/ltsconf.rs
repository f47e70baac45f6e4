//! criterion benchmarks for netboot-ltsconf: parse and resolve of a realistic farm file and of
//! a generated 10,000-section file. Throughput is reported in bytes (parse) and elements
//! (resolves).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use netboot_ltsconf::{Client, Dialect, Resolver, parse, render, resolve};
use std::fmt::Write as _;
use std::hint::black_box;

/// A farm's lts.conf as people write them: comments, aligned `=`, quoted shell, lists, LIKE
/// groups, MAC and glob sections.
fn realistic() -> String {
    let mut s = String::from(
        "# lts.conf for the rack: served over TFTP next to the kernel.\n\
         # Lines starting with '#' are comments.\n\n\
         [Default]\n\
         SERVER                 = 198.18.0.1\n\
         KEEP_SYSTEM_SERVICES   = \"ssh ureadahead dbus-org.freedesktop.login1 systemd-logind polkitd rpcbind\"\n\
         LTSP_NBD_TO_RAM        = true\n\
         PREINIT_00_TIME        = \"ln -sf /usr/share/zoneinfo/Europe/Prague /etc/localtime\"\n\
         PREINIT_01_HOSTS       = \"sed -i '/^127.0.0.2/d' /etc/hosts\"\n\
         FSTAB_01_SSH           = \"/dev/data/ssh     /etc/ssh          ext4 nofail,noatime 0 0\"\n\
         FSTAB_02_JOURNALD      = \"/dev/data/journal /var/log/journal  ext4 nofail,noatime 0 0\"\n\
         # Each command stops the script when it fails\n\
         RCFILE_01_SSH          = \"cp /rofs/etc/ssh/*_config /etc/ssh; ssh-keygen -A\"\n\
         RCFILE_02_SYSCTL       = \"sysctl -w fs.file-max=20000000 fs.nr_open=20000000\"\n\
         RCFILE_03_FORWARD      = \"echo 1 > /proc/sys/net/ipv4/ip_forward\"\n\
         LDM_DIRECTX            = True\n\
         SOUND                  = False\n\n\
         [storage]\n\
         KEEP_SYSTEM_SERVICES   = \"ssh iscsid multipathd\"\n\
         FSTAB_03_DATA          = \"/dev/sdb1 /data ext4 defaults 0 2\"\n\n",
    );
    for i in 0..40 {
        let _ = write!(
            s,
            "# node {i}\n[52:54:00:00:{:02x}:{:02x}]\n    HOSTNAME = node-{i}\n    LIKE     = storage\n\n",
            i / 256,
            i % 256
        );
    }
    s.push_str("[52:54:00:aa:*]\n    LTSP_NBD_TO_RAM = false\n");
    s
}

/// 10,000 MAC sections (a big rack), each with a few keys, plus `[Default]`.
fn generated() -> String {
    let mut s = String::from("[Default]\nSERVER = 198.18.0.1\nRCFILE_01 = \"echo up\"\n\n");
    for i in 0..10_000u32 {
        let _ = write!(
            s,
            "[52:54:{:02x}:{:02x}:{:02x}:{:02x}]\nHOSTNAME = node-{i}\nFSTAB_01_DATA = \"/dev/sdb1 /data ext4 defaults 0 2\"\nKEEP_SYSTEM_SERVICES = \"ssh kubelet\"\n",
            i >> 24,
            (i >> 16) & 255,
            (i >> 8) & 255,
            i & 255
        );
    }
    s
}

fn benches(c: &mut Criterion) {
    for (name, text, mac) in [
        ("realistic", realistic(), "52:54:00:00:00:27"),
        ("10k-sections", generated(), "52:54:00:00:27:0f"),
    ] {
        let mut g = c.benchmark_group(format!("ltsconf/{name}"));
        g.throughput(Throughput::Bytes(text.len() as u64));
        g.bench_function("parse", |b| {
            b.iter(|| parse(black_box(&text), Dialect::Lts5))
        });
        // The parts of a parse: tokens only, then syntax without the document-wide checks.
        g.bench_function("lex-only", |b| {
            b.iter(|| netboot_ltsconf::fuzzing::lex_count(black_box(&text)))
        });
        g.bench_function("syntax-only", |b| {
            b.iter(|| netboot_ltsconf::fuzzing::syntax_only(black_box(&text)))
        });
        let doc = parse(&text, Dialect::Lts5);
        assert!(!doc.has_errors());
        let client = Client {
            mac: Some(mac),
            ip: Some("198.18.0.77"),
            hostname: Some("node-x"),
        };
        assert!(resolve(&doc, &client).get("HOSTNAME").is_some());
        g.throughput(Throughput::Elements(1));
        // A server resolving many clients against one file keeps a Resolver; a one-shot
        // resolve builds the name index each time.
        let resolver = Resolver::new(&doc);
        g.bench_function("resolve", |b| {
            b.iter(|| resolver.resolve(black_box(&client)))
        });
        g.bench_function("resolve-oneshot", |b| {
            b.iter(|| resolve(black_box(&doc), &client))
        });
        g.bench_function("resolve+shell", |b| {
            b.iter(|| render::shell(&resolver.resolve(black_box(&client))))
        });
        g.finish();
    }
}

criterion_group!(group, benches);
criterion_main!(group);
