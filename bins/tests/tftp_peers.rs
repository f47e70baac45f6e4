//! netboot-tftpd against real clients in a pair of network namespaces: tftp-hpa (netascii
//! and binary, get and put), atftp (blksize, windowsize, tsize, timeout; upload with tsize)
//! and curl (`tftp://`, `--tftp-blksize`). Every file is compared byte for byte.

#[path = "tftp_util.rs"]
mod util;

use std::path::Path;
use std::time::Duration;

use netboot_testkit::{Background, NetPair, Proto, require_tool};
use util::*;

const LIMIT: Duration = Duration::from_secs(60);

struct Setup {
    pair: NetPair,
    _server: Background,
    root: Scratch,
    out: Scratch,
}

fn setup(tag: &str, args: &[&str]) -> Setup {
    let root = Scratch::new(tag);
    make_root(&root.0);
    let out = Scratch::new(&format!("{tag}-out"));
    let pair = NetPair::new("tftp");
    let listen = format!("{}:69", pair.a_addr);
    let mut all = vec!["--listen", listen.as_str()];
    all.extend_from_slice(args);
    let server = Background::spawn(server_command_in(Some(&pair.a), &root.0, &all));
    pair.a
        .wait_for_port(Proto::Udp, 69, Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("{e}; log: {}", server_log(&root.0)));
    Setup {
        pair,
        _server: server,
        root,
        out,
    }
}

impl Setup {
    fn client(&self, tool: &str, args: &[&str]) -> std::process::Output {
        let out = self.pair.b.run(require_tool(tool), args, LIMIT);
        assert!(
            out.status.success(),
            "{tool} {args:?} failed: {}{}\nserver log: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            server_log(&self.root.0)
        );
        out
    }
    fn same(&self, served: &str, fetched: &Path) {
        let want = std::fs::read(self.root.path(served))
            .unwrap_or_else(|e| panic!("{served}: {e}; log: {}", server_log(&self.root.0)));
        let got = std::fs::read(fetched).unwrap_or_else(|e| panic!("{}: {e}", fetched.display()));
        assert!(
            got == want,
            "{served}: {} bytes fetched, {} expected",
            got.len(),
            want.len()
        );
    }
    fn a(&self) -> String {
        self.pair.a_addr.to_string()
    }
}

#[test]
fn tftp_hpa_netascii_binary_and_put() {
    let s = setup("hpa", &["--allow-write"]);
    let a = s.a();
    // Default mode is netascii: CR LF / CR NUL on the wire, the same bytes on disk after.
    let o = s.out.path("small.txt");
    s.client("tftp", &[&a, "-c", "get", "small.txt", o.to_str().unwrap()]);
    s.same("small.txt", &o);
    for f in ["medium", "empty", "k512", "sub/deeper/file"] {
        let o = s.out.path(&f.replace('/', "_"));
        s.client(
            "tftp",
            &["-m", "binary", &a, "-c", "get", f, o.to_str().unwrap()],
        );
        s.same(f, &o);
    }
    let up = s.out.path("up.bin");
    std::fs::write(&up, bytes(100_000, 21)).unwrap();
    s.client(
        "tftp",
        &[
            "-m",
            "binary",
            &a,
            "-c",
            "put",
            up.to_str().unwrap(),
            "uploaded.bin",
        ],
    );
    s.same("uploaded.bin", &up);
    // Netascii upload (the default mode): stored with local line ends again.
    let text = s.out.path("text.txt");
    std::fs::write(&text, b"one\ntwo\r\nthree\rfour\n".repeat(100)).unwrap();
    s.client(
        "tftp",
        &[&a, "-c", "put", text.to_str().unwrap(), "text.txt"],
    );
    s.same("text.txt", &text);
}

#[test]
fn atftp_options_rollover_and_upload_quota() {
    let s = setup("atftp", &["--allow-write", "--max-upload-bytes", "200000"]);
    let a = s.a();
    let get = |remote: &str, opts: &[&str]| {
        let local = s.out.path(&format!(
            "{}-{}",
            remote.replace('/', "_"),
            opts.join("_").replace(' ', "")
        ));
        let mut args = vec!["-g", "-r", remote, "-l", local.to_str().unwrap()];
        for o in opts {
            args.extend(["--option", o]);
        }
        args.push(&a);
        s.client("atftp", &args);
        s.same(remote, &local);
    };
    get("medium", &[]);
    get("medium", &["blksize 1468"]);
    get("medium", &["blksize 1468", "windowsize 16", "tsize 0"]);
    get("medium", &["blksize 8192", "windowsize 4", "timeout 2"]);
    get("medium", &["blksize 65464"]);
    get("k1468", &["blksize 1468", "windowsize 4"]);
    get("empty", &["blksize 1468", "tsize 0"]);
    // 65,601 blocks of 16 bytes: the block number wraps to 0 on the way.
    get("rollover", &["blksize 16", "windowsize 8"]);
    let up = s.out.path("up.bin");
    std::fs::write(&up, bytes(150_000, 22)).unwrap();
    s.client(
        "atftp",
        &[
            "-p",
            "-l",
            up.to_str().unwrap(),
            "-r",
            "atftp-up.bin",
            "--option",
            "blksize 1468",
            &a,
        ],
    );
    s.same("atftp-up.bin", &up);
    s.client(
        "atftp",
        &[
            "-p",
            "-l",
            up.to_str().unwrap(),
            "-r",
            "atftp-up-ws.bin",
            "--option",
            "blksize 1468",
            "--option",
            "windowsize 8",
            &a,
        ],
    );
    s.same("atftp-up-ws.bin", &up);
    // Over quota: atftp announces tsize 300000 and gets ERROR 3; nothing appears.
    let big = s.out.path("big.bin");
    std::fs::write(&big, bytes(300_000, 23)).unwrap();
    let out = s.pair.b.run(
        require_tool("atftp"),
        [
            "-p",
            "-l",
            big.to_str().unwrap(),
            "-r",
            "too-big.bin",
            "--option",
            "tsize 300000",
            &a,
        ],
        LIMIT,
    );
    assert!(!out.status.success(), "over-quota upload must fail");
    assert!(!s.root.path("too-big.bin").exists());
    assert!(
        server_log(&s.root.0).contains("Failed(ErrorCode(3))"),
        "{}",
        server_log(&s.root.0)
    );
}

#[test]
fn curl_tftp_with_and_without_blksize() {
    let s = setup("curl", &[]);
    let a = s.a();
    for (f, extra) in [
        ("medium", vec![]),
        ("medium", vec!["--tftp-blksize", "1468"]),
        ("k512", vec!["--tftp-blksize", "512"]),
        ("empty", vec![]),
        ("small.txt", vec!["--tftp-no-options"]),
    ] {
        let o = s.out.path(&format!("{f}{}", extra.len()));
        let url = format!("tftp://{a}/{f}");
        let mut args = vec!["-sS", "-o", o.to_str().unwrap()];
        args.extend(extra);
        args.push(&url);
        s.client("curl", &args);
        s.same(f, &o);
    }
    // A symlink out of the root is refused to a real client too (curl exit 69: access).
    let o = s.out.path("escape");
    let out = s.pair.b.run(
        require_tool("curl"),
        [
            "-sS",
            "-o",
            o.to_str().unwrap(),
            &format!("tftp://{a}/escape-link"),
        ],
        LIMIT,
    );
    assert!(!out.status.success());
    let log = server_log(&s.root.0);
    assert!(
        log.contains("transfer") && log.contains("client="),
        "one log line per transfer: {log}"
    );
}
