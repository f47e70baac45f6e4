//! Running netboot-tftpd: new settings while it serves (`run_reloadable`, what netbootd's
//! SIGHUP uses), filename remap rules, and a log nobody reads.

#[path = "tftp_util.rs"]
mod util;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use netboot_bins::tftpd;
use util::*;

const LIMIT: Duration = Duration::from_secs(20);

fn settings(root: &std::path::Path, listen: &[SocketAddr], extra: &str) -> tftpd::Args {
    let listen: Vec<String> = listen.iter().map(|a| format!("{a:?}")).collect();
    let text = format!(
        "root = {:?}\nlisten = {listen:?}\n{extra}",
        root.display().to_string()
    );
    let config: tftpd::Config = toml::from_str(&text).unwrap();
    tftpd::settings_from_config(config, "test").unwrap_or_else(|p| panic!("{p:?}"))
}

fn get(server: SocketAddr, name: &str) -> Fetch {
    let sock = client("127.0.0.1:0", Duration::from_millis(300));
    fetch(
        &sock,
        server,
        &request(1, name.as_bytes(), "octet", &[]),
        512,
        1,
        false,
        LIMIT,
    )
}

fn answers(server: SocketAddr) -> bool {
    let sock = client("127.0.0.1:0", Duration::from_millis(300));
    ask(&sock, server, &request(1, b"nothing-here", "octet", &[])).is_some()
}

/// Polls `f` until it holds (a reload is applied asynchronously), bounded.
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "never: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn reload_applies_to_new_requests_and_running_transfers_keep_theirs() {
    let (one, two) = (Scratch::new("reload1"), Scratch::new("reload2"));
    let old_big = bytes(200_000, 1);
    std::fs::write(one.path("a"), b"one").unwrap();
    std::fs::write(one.path("big"), &old_big).unwrap();
    std::fs::write(two.path("a"), b"two").unwrap();
    std::fs::write(two.path("big"), bytes(200_000, 2)).unwrap();
    let p1: SocketAddr = format!("127.0.0.1:{}", netboot_testkit::free_udp_port())
        .parse()
        .unwrap();
    let p2: SocketAddr = format!("127.0.0.1:{}", netboot_testkit::free_udp_port())
        .parse()
        .unwrap();
    let (tx, rx) = tokio::sync::watch::channel(Arc::new(settings(&one.0, &[p1], "")));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(tftpd::run_reloadable(
                rx,
                async {
                    let _ = stop_rx.await;
                },
                Duration::from_secs(5),
            ))
    });
    eventually("the server answers", || answers(p1));
    assert_eq!(get(p1, "a").data, b"one");

    // A transfer under the old settings, paused after its first block.
    let slow = client("127.0.0.1:0", Duration::from_secs(5));
    let (first, tid) = ask(&slow, p1, &request(1, b"big", "octet", &[])).unwrap();
    assert_eq!(&first[..4], &[0, 3, 0, 1]);

    // New root, a second port, a remap rule, a smaller block size cap.
    let rules = two.path("rules");
    std::fs::write(&rules, "exact alias a\n").unwrap();
    tx.send_replace(Arc::new(settings(
        &two.0,
        &[p1, p2],
        &format!(
            "remap = {:?}\nmax-blksize = 1024\n",
            rules.display().to_string()
        ),
    )));
    eventually("the new root serves", || get(p1, "a").data == b"two");
    assert_eq!(get(p2, "a").data, b"two");
    assert_eq!(get(p1, "alias").data, b"two");
    let sock = client("127.0.0.1:0", Duration::from_millis(500));
    let f = fetch(
        &sock,
        p2,
        &request(1, b"big", "octet", &[("blksize", "1468")]),
        1024,
        1,
        false,
        LIMIT,
    );
    let oack = f.oack.expect("an OACK");
    assert!(
        oack.windows(13).any(|w| w == b"blksize\x001024\0"),
        "blksize capped at 1024 by the new settings: {oack:?}"
    );

    // The paused transfer finishes from the old root, block by block.
    let ack = |b: u16| slow.send_to(&[0, 4, (b >> 8) as u8, b as u8], tid).unwrap();
    let mut data = first[4..].to_vec();
    let mut block: u16 = 1;
    let mut last = first.len() - 4;
    let mut buf = vec![0u8; 2048];
    while last == 512 {
        ack(block);
        let (n, _) = slow
            .recv_from(&mut buf)
            .expect("next block of the old transfer");
        let d = &buf[..n];
        if d[..2] != [0, 3] || u16::from_be_bytes([d[2], d[3]]) != block + 1 {
            continue;
        }
        block += 1;
        data.extend_from_slice(&d[4..]);
        last = n - 4;
    }
    ack(block);
    assert!(data == old_big, "the running transfer kept its root");

    // Dropping an address stops its listener; a bad root is refused and the last good
    // settings stay.
    tx.send_replace(Arc::new(settings(&two.0, &[p2], "")));
    eventually("the dropped port goes quiet", || !answers(p1));
    // A specific address replaced by the wildcard on the same port: the old socket must go
    // before the new one can bind.
    let wild: SocketAddr = format!("0.0.0.0:{}", p2.port()).parse().unwrap();
    let other: SocketAddr = format!("127.0.0.2:{}", p2.port()).parse().unwrap();
    assert!(!answers(other), "127.0.0.2 is not served yet");
    tx.send_replace(Arc::new(settings(&two.0, &[wild], "")));
    eventually("the wildcard serves 127.0.0.2 too", || answers(other));
    assert_eq!(get(p2, "a").data, b"two");
    let gone = Scratch::new("reload-gone");
    let mut bad = settings(&gone.0, &[p2], "");
    drop(gone);
    bad.root = Some(std::path::PathBuf::from("/nonexistent/tftp-root"));
    tx.send_replace(Arc::new(bad));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(get(p2, "a").data, b"two");

    stop_tx.send(()).unwrap();
    server.join().unwrap().unwrap();
}

#[test]
fn remap_rules_rename_within_the_root_and_never_escape_it() {
    let root = Scratch::new("remap");
    make_root(&root.0);
    let dir = Scratch::new("remap-rules");
    let rules_file = dir.path("rules");
    std::fs::write(
        &rules_file,
        "# Windows clients, case-insensitive prefix, a final exact rule\n\
         backslash\n\
         prefix:i /TFTPBOOT/ \"\"\n\
         exact:s Boot.Menu small.txt\n\
         replace // /\n\
         prefix escape/ ../../../../etc/\n\
         exact abs /etc/hostname\n\
         prefix up/ sub/../../\n\
         replace grow growgrowgrowgrowgrowgrowgrowgrowgrowgrow\n",
    )
    .unwrap();
    let (_server, addr) = start_loopback(&root.0, &["--remap", rules_file.to_str().unwrap()]);
    let want = |name: &str, file: &str| {
        let f = get(addr, name);
        assert_eq!(f.error, None, "{name}: log {}", server_log(&root.0));
        assert!(
            f.data == std::fs::read(root.path(file)).unwrap(),
            "{name} should be {file}"
        );
    };
    want("\\tftpboot\\sub\\deeper\\file", "sub/deeper/file");
    want("/TftpBoot/k512", "k512");
    want("Boot.Menu", "small.txt");
    want("sub//deeper//file", "sub/deeper/file");
    let refused = |name: &str| {
        let f = get(addr, name);
        assert!(
            matches!(f.error, Some(1) | Some(2)) && f.data.is_empty(),
            "{name}: {f:?}"
        );
    };
    // `..` produced by a rule is refused like a requested one; an absolute result means
    // "the root"; growth past the name limit is refused.
    refused("escape/hostname");
    refused("escape/passwd");
    refused("abs");
    refused("up/etc/hostname");
    refused(&"grow/".repeat(60));
    // Case-sensitive rules stay so; without the `i` flag nothing else matches.
    refused("boot.menu");
    // A bad rules file is named with its line by --check-config.
    let bad = dir.path("bad-rules");
    std::fs::write(&bad, "exact a b\nregex ^a b\n").unwrap();
    let out = netboot_testkit::run_with_timeout(
        std::process::Command::new(server_bin()).args([
            "--check-config",
            "--root",
            root.0.to_str().unwrap(),
            "--remap",
            bad.to_str().unwrap(),
        ]),
        LIMIT,
    )
    .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && text.contains("line 2: unknown rule"),
        "{text}"
    );
}

#[test]
fn busy_polling_serves_the_same_bytes() {
    let root = Scratch::new("busypoll");
    make_root(&root.0);
    let (_server, addr) = start_loopback(&root.0, &["--busy-poll-us", "200"]);
    for (name, window) in [("medium", 1), ("k512", 1), ("medium", 8)] {
        let sock = client("127.0.0.1:0", Duration::from_millis(300));
        let win = window.to_string();
        let f = fetch(
            &sock,
            addr,
            &request(1, name.as_bytes(), "octet", &[("windowsize", &win)]),
            512,
            window,
            false,
            LIMIT,
        );
        assert!(
            f.data == std::fs::read(root.path(name)).unwrap(),
            "{name} ws {window}: log {}",
            server_log(&root.0)
        );
    }
}

#[test]
fn serving_goes_on_when_nobody_reads_the_log() {
    let root = Scratch::new("logpipe");
    make_root(&root.0);
    let port = netboot_testkit::free_udp_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    // stderr is a pipe the test never reads (Background captures it only at the end).
    let server = netboot_testkit::Background::spawn({
        let mut c = std::process::Command::new(server_bin());
        c.args([
            "--root",
            root.0.to_str().unwrap(),
            "--listen",
            &addr.to_string(),
        ])
        .env("RUST_LOG", "debug");
        c
    });
    eventually("the server answers", || answers(addr));
    // Thousands of refused requests, each a log line: far more than a pipe's 64 KiB.
    let sock = client("127.0.0.1:0", Duration::from_millis(1));
    let mut buf = [0u8; 100];
    for i in 0..3000 {
        let name = format!("missing-{i}-{}", "x".repeat(100));
        let _ = sock.send_to(&request(1, name.as_bytes(), "octet", &[]), addr);
        let _ = sock.recv_from(&mut buf);
    }
    let f = get(addr, "medium");
    assert!(
        f.data == std::fs::read(root.path("medium")).unwrap(),
        "a full log pipe stalled the server"
    );
    drop(server);
}

#[test]
fn sessions_spread_over_a_fixed_number_of_loops() {
    let root = Scratch::new("threads");
    make_root(&root.0);
    let (server, addr) = start_loopback(&root.0, &["--threads", "3"]);
    let want = std::fs::read(root.path("medium")).unwrap();
    let fetches: Vec<_> = (0..8)
        .map(|i| {
            std::thread::spawn(move || {
                let sock = client("127.0.0.1:0", Duration::from_millis(300));
                let w = if i % 2 == 0 { 1 } else { 4 };
                let ws = w.to_string();
                fetch(
                    &sock,
                    addr,
                    &request(1, b"medium", "octet", &[("windowsize", &ws)]),
                    512,
                    w,
                    false,
                    LIMIT,
                )
                .data
            })
        })
        .collect();
    for f in fetches {
        assert!(f.join().unwrap() == want, "log: {}", server_log(&root.0));
    }
    // Three event loops, the log writer and tokio's helpers at most; never one per transfer.
    let threads = proc_status(server.id(), "Threads");
    assert!(threads <= 6, "{threads} threads for 8 transfers");
}
