//! Reloading netboot-nbdd's settings through the library (`nbdd::run_reloadable`, what
//! netbootd's SIGHUP drives): a libnbd client connected before the reload keeps reading its
//! export (which the reload removes) without a single failure, while new connections see the
//! new export table; an unchanged RAM disk keeps its contents, a changed image file is loaded
//! again, and a config that fails to load leaves the current table in place.

use clap::Parser;
use netboot_bins::nbdd::{Config, run_reloadable};
use netboot_testkit::{Scratch, require_tool, run_with_timeout};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(30);

/// Reads export "a" for a few seconds, verifying every byte, and writes a marker to the RAM
/// disk first. Prints "connected" once reading, then "OK <reads>".
const CLIENT: &str = r#"
import sys, time, random, nbd
sock, img = sys.argv[1], sys.argv[2]
data = open(img, "rb").read()
uri = lambda n: "nbd+unix:///%s?socket=%s" % (n, sock)
w = nbd.NBD(); w.connect_uri(uri("scratch")); w.pwrite(b"kept across reloads", 4096); w.shutdown()
h = nbd.NBD()
h.connect_uri(uri("a"))
assert h.pread(4096, 0) == data[:4096]
print("connected", flush=True)
reads, end = 0, time.time() + 4
while time.time() < end:
    off = random.randrange(0, len(data) - 65536)
    assert h.pread(65536, off) == data[off:off + 65536], "bad data at %d" % off
    reads += 1
h.shutdown()
print("OK", reads, flush=True)
"#;

fn image(path: &Path, seed: u8) -> Vec<u8> {
    let v: Vec<u8> = (0..(2u32 << 20)).map(|i| (i / 3) as u8 ^ seed).collect();
    std::fs::write(path, &v).unwrap();
    v
}

fn config(sock: &Path, exports: &[String]) -> Arc<Config> {
    let mut args = vec!["netboot-nbdd".to_string(), "--unix".into()];
    args.push(sock.display().to_string());
    for e in exports {
        args.extend(["--export".into(), e.clone()]);
    }
    args.extend(["--ramdisk".into(), "scratch=1M".into()]);
    Arc::new(Config::parse_from(args))
}

fn nbdinfo(args: &[&str]) -> (bool, String) {
    let out = run_with_timeout(Command::new("nbdinfo").args(args), T).unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// The first `n` bytes of export `name`, read by nbdcopy.
fn read_export(dir: &Scratch, uri: &str, n: usize) -> Vec<u8> {
    let out = dir.path("out");
    let _ = std::fs::remove_file(&out);
    let res = run_with_timeout(
        Command::new("nbdcopy").args([uri, out.to_str().unwrap()]),
        T,
    )
    .unwrap();
    assert!(res.status.success(), "nbdcopy {uri}: {res:?}");
    std::fs::read(&out).unwrap()[..n].to_vec()
}

#[test]
fn reload_changes_new_connections_and_never_drops_open_ones() {
    for t in ["nbdinfo", "nbdcopy", "python3"] {
        require_tool(t);
    }
    let dir = Scratch::new("nbd-reload");
    let sock = dir.path("s.sock");
    let (img_a, img_b) = (dir.path("a.img"), dir.path("b.img"));
    image(&img_a, 0);
    let b0 = image(&img_b, 0x55);
    let script = dir.path("client.py");
    std::fs::write(&script, CLIENT).unwrap();
    let spec = |name: &str, p: &Path| format!("{name}={},ram", p.display());
    let uri = |name: &str| format!("nbd+unix:///{name}?socket={}", sock.display());

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (tx, rx) = tokio::sync::watch::channel(config(&sock, &[spec("a", &img_a)]));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = rt.spawn(run_reloadable(
        rx,
        async {
            let _ = stop_rx.await;
        },
        Duration::from_secs(2),
    ));
    let start = Instant::now();
    while !sock.exists() {
        assert!(start.elapsed() < T, "server did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }

    // A long-lived client on export "a".
    let mut client = Command::new("/usr/bin/python3")
        .args([
            script.to_str().unwrap(),
            sock.to_str().unwrap(),
            img_a.to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(client.stdout.take().unwrap()).lines();
    let first = lines.next().and_then(|l| l.ok()).unwrap_or_default();
    assert_eq!(first, "connected", "client did not connect");

    // Reload: "a" removed, "b" added, the RAM disk unchanged.
    tx.send(config(&sock, &[spec("b", &img_b)])).unwrap();
    let start = Instant::now();
    loop {
        let (_, list) = nbdinfo(&["--list", &uri("")]);
        if list.contains("export=\"b\"") && !list.contains("export=\"a\"") {
            break;
        }
        assert!(
            start.elapsed() < T,
            "new export table never applied:\n{list}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        !nbdinfo(&["--size", &uri("a")]).0,
        "removed export still served"
    );
    assert_eq!(read_export(&dir, &uri("b"), 4096), b0[..4096]);
    // The RAM disk was reused, not recreated: the client's marker is still there.
    let scratch = read_export(&dir, &uri("scratch"), 8192);
    assert_eq!(&scratch[4096..4096 + 19], b"kept across reloads");

    // The image of "b" changes on disk; the same config reloaded picks up the new bytes.
    let b1 = image(&img_b, 0xaa);
    tx.send(config(&sock, &[spec("b", &img_b)])).unwrap();
    let start = Instant::now();
    while read_export(&dir, &uri("b"), 4096) != b1[..4096] {
        assert!(start.elapsed() < T, "changed image not reloaded");
        std::thread::sleep(Duration::from_millis(50));
    }

    // A config that cannot load (missing file) keeps the current table.
    tx.send(config(&sock, &[spec("c", &dir.path("missing.img"))]))
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let (_, list) = nbdinfo(&["--list", &uri("")]);
    assert!(list.contains("export=\"b\""), "{list}");

    // The client connected before all this read "a" throughout without an error.
    let status = client.wait().unwrap();
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let mut err = String::new();
    let _ = std::io::Read::read_to_string(&mut client.stderr.take().unwrap(), &mut err);
    assert!(status.success(), "client failed: {rest:?}\n{err}");
    let reads: u64 = rest
        .iter()
        .find_map(|l| l.strip_prefix("OK "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    assert!(reads > 10, "client made only {reads} reads: {rest:?}");

    let _ = stop_tx.send(());
    let res = rt.block_on(async { tokio::time::timeout(T, server).await });
    assert!(matches!(res, Ok(Ok(Ok(())))), "server did not stop cleanly");
}
