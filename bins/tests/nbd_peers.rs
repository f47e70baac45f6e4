//! netboot-nbdd against real NBD clients: nbdinfo, nbdcopy, qemu-img, qemu-io (over TCP
//! between two network namespaces, and IPv6 loopback), and libnbd's Python bindings for the
//! scripted edge cases (over a Unix socket, socket activation and stdio).

use netboot_testkit::{Background, NetPair, Proto, Scratch, require_tool};
use std::path::Path;
use std::process::Output;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_netboot-nbdd");
const T: Duration = Duration::from_secs(60);

/// `len` pseudo-random bytes with a 1 MiB zero run at 2 MiB (so block status has something
/// to report), the same every run.
fn image(len: usize) -> Vec<u8> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut v: Vec<u8> = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect();
    if len >= 3 << 20 {
        v[2 << 20..3 << 20].fill(0);
    }
    v
}

fn ok(out: &Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn file_str(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

#[test]
fn nbdinfo_nbdcopy_qemu_over_tcp() {
    for t in ["nbdinfo", "nbdcopy", "qemu-img", "qemu-io", "cmp"] {
        require_tool(t);
    }
    let dir = Scratch::new("peers");
    let img = image(8 << 20);
    std::fs::write(dir.path("img"), &img).unwrap();
    std::fs::write(dir.path("rw.img"), vec![0u8; 4 << 20]).unwrap();
    let pair = NetPair::new("nbd");
    let mut cmd = pair.a.command(BIN);
    cmd.env("NO_COLOR", "1");
    cmd.args([
        "--listen".to_string(),
        "[::]:10809".into(),
        "--export".into(),
        format!(
            "root={},ram,desc=boot image, RAM",
            file_str(&dir.path("img"))
        ),
        "--export".into(),
        format!("file={}", file_str(&dir.path("img"))),
        "--export".into(),
        format!("cow={},cow", file_str(&dir.path("img"))),
        "--export".into(),
        format!("rw={},rw", file_str(&dir.path("rw.img"))),
        "--ramdisk".into(),
        "scratch=8M".into(),
    ]);
    let server = Background::spawn(cmd);
    pair.a.wait_for_port(Proto::Tcp, 10809, T).unwrap();
    let base = format!("nbd://{}:10809", pair.a_addr);
    let uri = |e: &str| format!("{base}/{e}");
    let b = &pair.b;

    // nbdinfo: default export, flags, --list, --map (zero run found in the RAM image), IPv6.
    let info = ok(&b.run("nbdinfo", [&base], T), "nbdinfo");
    assert!(info.contains("export-size: 8388608"), "{info}");
    assert!(info.contains("is_read_only: true") && info.contains("can_multi_conn: true"));
    assert!(info.contains("using structured"), "{info}");
    assert!(info.contains("block_size_maximum: 33554432"), "{info}");
    let list = ok(&b.run("nbdinfo", ["--list", &base], T), "nbdinfo --list");
    for want in [
        "export=\"root\"",
        "description: boot image, RAM",
        "export=\"file\"",
        "export=\"scratch\"",
    ] {
        assert!(list.contains(want), "{want} missing in {list}");
    }
    let map = ok(
        &b.run("nbdinfo", ["--map", &uri("root")], T),
        "nbdinfo --map",
    );
    let rows: Vec<Vec<&str>> = map
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows,
        [
            vec!["0", "2097152", "0", "data"],
            vec!["2097152", "1048576", "2", "zero"],
            vec!["3145728", "5242880", "0", "data"]
        ],
        "{map}"
    );
    let rw = ok(&b.run("nbdinfo", [&uri("rw")], T), "nbdinfo rw");
    assert!(
        rw.contains("is_read_only: false") && rw.contains("can_zero: true"),
        "{rw}"
    );
    let cow = ok(&b.run("nbdinfo", [&uri("cow")], T), "nbdinfo cow");
    assert!(cow.contains("can_multi_conn: false"), "{cow}");
    let v6 = ok(
        &pair
            .a
            .run("nbdinfo", ["--size", "nbd://[::1]:10809/file"], T),
        "nbdinfo ::1",
    );
    assert_eq!(v6.trim(), "8388608");
    let unknown = b.run("nbdinfo", [&uri("nope")], T);
    assert!(!unknown.status.success());

    // nbdcopy out (default: 4 connections on a multi-conn export) from RAM and from file.
    for e in ["root", "file"] {
        let out = dir.path(&format!("out-{e}"));
        ok(
            &b.run("nbdcopy", [&uri(e), &file_str(&out)], T),
            "nbdcopy out",
        );
        assert!(
            std::fs::read(&out).unwrap() == img,
            "nbdcopy from {e} differs"
        );
    }
    // nbdcopy in to the shared RAM disk and to the rw file, then out again.
    let src = file_str(&dir.path("img"));
    ok(&b.run("nbdcopy", [&src, &uri("scratch")], T), "nbdcopy in");
    let back = dir.path("back");
    ok(
        &b.run("nbdcopy", [&uri("scratch"), &file_str(&back)], T),
        "nbdcopy back",
    );
    assert!(std::fs::read(&back).unwrap() == img);
    let half = file_str(&dir.path("half"));
    std::fs::write(&half, &img[..4 << 20]).unwrap();
    ok(
        &b.run("nbdcopy", ["--flush", &half, &uri("rw")], T),
        "nbdcopy to rw",
    );
    assert!(
        std::fs::read(dir.path("rw.img")).unwrap() == img[..4 << 20],
        "rw not written through"
    );

    // qemu-img: info, convert out, compare.
    let qi = ok(
        &b.run("qemu-img", ["info", &uri("root")], T),
        "qemu-img info",
    );
    assert!(qi.contains("8 MiB (8388608 bytes)"), "{qi}");
    let conv = file_str(&dir.path("conv.raw"));
    ok(
        &b.run(
            "qemu-img",
            ["convert", "-f", "raw", "-O", "raw", &uri("file"), &conv],
            T,
        ),
        "qemu-img convert",
    );
    assert!(std::fs::read(&conv).unwrap() == img);
    ok(
        &b.run(
            "qemu-img",
            ["compare", "-f", "raw", "-F", "raw", &uri("root"), &src],
            T,
        ),
        "qemu-img compare",
    );
    // Different contents must be noticed, or the compare above proves nothing.
    let cmp = b.run(
        "qemu-img",
        ["compare", "-f", "raw", "-F", "raw", &uri("rw"), &conv],
        T,
    );
    assert_eq!(
        cmp.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&cmp.stdout)
    );

    // qemu-io on the RAM disk: aligned and unaligned patterns, FUA, zeroes, discard, flush;
    // every read verifies its pattern.
    let qio = |cmds: &[&str]| {
        let mut args = vec!["-f", "raw"];
        for c in cmds {
            args.extend(["-c", c]);
        }
        let u = uri("scratch");
        args.push(&u);
        let out = b.run("qemu-io", &args, T);
        let s = ok(&out, "qemu-io");
        assert!(!s.contains("Pattern verification failed"), "{s}");
        assert!(!s.contains("error") && !s.contains("failed"), "{s}");
        s
    };
    qio(&[
        "write -P 0xab 0 64k",
        "write -P 0x11 1 3",
        "write -f -P 0x22 70000 5001",
        "write -z 1M 512k",
        "flush",
        "discard 4M 64k",
    ]);
    qio(&[
        "read -P 0xab 4 60k",
        "read -P 0x11 1 3",
        "read -P 0xab 0 1",
        "read -P 0x22 70000 5001",
        "read -P 0 1M 512k",
    ]);
    let bad = b.run(
        "qemu-io",
        ["-f", "raw", "-c", "read -P 0x33 1 3", &uri("scratch")],
        T,
    );
    let s = String::from_utf8_lossy(&bad.stdout);
    assert!(
        s.contains("Pattern verification failed"),
        "a wrong pattern must be caught: {s}"
    );
    // Writes to the read-only export are refused.
    let ro = b.run(
        "qemu-io",
        ["-f", "raw", "-c", "write 0 512", &uri("file")],
        T,
    );
    assert!(!ro.status.success() || String::from_utf8_lossy(&ro.stdout).contains("failed"));

    let out = server.kill();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("connection closed"), "{log}");
    assert!(log.contains("export=root"), "{log}");
}

/// Runs `look` (an `ss` query) while a Python client holds an NBD connection open: `python`
/// runs `connect` (code that leaves a connected socket in `s`), reads the greeting, then
/// waits until its stdin closes. Returns `look`'s output, which must have succeeded.
fn while_connected(
    mut python: std::process::Command,
    connect: &str,
    look: impl FnOnce() -> Output,
) -> String {
    use std::io::BufRead;
    use std::process::Stdio;
    let script = format!(
        "import socket,sys,time\n{connect}\nassert len(s.recv(18))>0\n\
         print('up',flush=True)\nsys.stdin.read()"
    );
    let mut client = python
        .args(["-c", &script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(client.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "up", "client did not connect");
    let out = look();
    drop(client.stdin.take());
    let _ = client.wait();
    ok(&out, "ss")
}

/// The congestion control of accepted connections (`--tcp-congestion`), read back with `ss`
/// while a client holds its connection open, in a namespace whose default is `reno`: the
/// default gives `cubic`, `system` keeps `reno`, a name the kernel lacks stops the start.
#[test]
fn tcp_congestion_of_accepted_connections() {
    require_tool("ss");
    require_tool("python3");
    let dir = Scratch::new("nbdcc");
    std::fs::write(dir.path("img"), image(1 << 20)).unwrap();
    let export = format!("root={}", file_str(&dir.path("img")));
    let ns = netboot_testkit::Netns::new("nbdcc");
    ok(
        &ns.run("sysctl", ["-w", "net.ipv4.tcp_congestion_control=reno"], T),
        "sysctl",
    );
    for (flag, want) in [(None, "cubic"), (Some("system"), "reno")] {
        let mut args = vec!["--listen", "127.0.0.1:10809", "--export", &export];
        if let Some(f) = flag {
            args.extend(["--tcp-congestion", f]);
        }
        let server = ns.spawn(BIN, &args);
        ns.wait_for_port(Proto::Tcp, 10809, T).unwrap();
        let ss = while_connected(
            ns.command("python3"),
            "s=socket.create_connection(('127.0.0.1',10809))",
            || {
                ns.run(
                    "ss",
                    ["-tinH", "state", "established", "( sport = :10809 )"],
                    T,
                )
            },
        );
        server.kill();
        let algos: Vec<&str> = ["cubic", "reno", "bbr"]
            .into_iter()
            .filter(|a| ss.split_whitespace().any(|w| w == *a))
            .collect();
        assert_eq!(algos, [want], "--tcp-congestion {flag:?}: {ss}");
    }
    let refused = ns.run(
        BIN,
        [
            "--listen",
            "127.0.0.1:10809",
            "--tcp-congestion",
            "no-such-algorithm",
            "--export",
            &export,
        ],
        T,
    );
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && err.contains("tcp-congestion \"no-such-algorithm\""),
        "{err}"
    );
}

/// A Unix-socket connection gets a send buffer that holds many READ replies (4 MiB asked,
/// doubled by the kernel), read back with `ss` while a client holds the connection.
#[test]
fn unix_connections_get_a_wide_send_buffer() {
    require_tool("ss");
    require_tool("python3");
    let dir = Scratch::new("nbdsndbuf");
    std::fs::write(dir.path("img"), image(1 << 20)).unwrap();
    let sock = file_str(&dir.path("s.sock"));
    let export = format!("root={}", file_str(&dir.path("img")));
    let mut cmd = std::process::Command::new(BIN);
    cmd.args(["--unix", &sock, "--export", &export]);
    let _server = Background::spawn(cmd);
    // The server may still be binding: retry the connect for up to 10 s.
    let connect = format!(
        "for i in range(500):\n    try:\n        s=socket.socket(socket.AF_UNIX)\n        \
         s.connect('{sock}')\n        break\n    except OSError:\n        time.sleep(0.02)"
    );
    let ss = while_connected(std::process::Command::new("python3"), &connect, || {
        netboot_testkit::run_with_timeout(
            std::process::Command::new("ss").args(["-xmH", "src", &sock]),
            T,
        )
        .unwrap()
    });
    let tb: u64 = ss
        .split([',', '('])
        .find_map(|f| f.strip_prefix("tb"))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no send buffer in {ss}"));
    assert!(tb >= 8 << 20, "send buffer {tb}: {ss}");
}
