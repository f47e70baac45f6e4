//! How netboot-tftpd uses the network stack, seen from outside: a window leaves as one UDP
//! GSO send (checked with strace on the running server) and falls back to `sendmmsg` where
//! GSO cannot carry it; a request to one of several addresses is answered from that address.

#[path = "tftp_util.rs"]
mod util;

use std::path::Path;
use std::time::Duration;

use netboot_testkit::{Background, NetPair, Proto, require_tool};
use util::*;

const LIMIT: Duration = Duration::from_secs(60);

/// The server in `pair.a` on `listen`, with its log next to `root`.
fn start(pair: &NetPair, root: &Path, listen: &str) -> Background {
    let server = Background::spawn(server_command_in(
        Some(&pair.a),
        root,
        &["--listen", listen],
    ));
    pair.a
        .wait_for_port(Proto::Udp, 69, Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("{e}; log: {}", server_log(root)));
    server
}

fn atftp_get(pair: &NetPair, root: &Path, server: &str, out: &Path, opts: &[&str]) {
    let mut args = vec!["-g", "-r", "medium", "-l", out.to_str().unwrap()];
    for o in opts {
        args.extend(["--option", o]);
    }
    args.push(server);
    let o = pair.b.run(require_tool("atftp"), &args, LIMIT);
    assert!(
        o.status.success(),
        "atftp {args:?}: {}\nlog: {}",
        String::from_utf8_lossy(&o.stderr),
        server_log(root)
    );
    assert!(
        std::fs::read(out).unwrap() == std::fs::read(root.join("medium")).unwrap(),
        "atftp {opts:?}: bytes differ"
    );
}

#[test]
fn windows_leave_as_one_gso_send_or_fall_back_to_sendmmsg() {
    let root = Scratch::new("gso");
    make_root(&root.0);
    let out = Scratch::new("gso-out");
    let pair = NetPair::new("tftpgso");
    let a = pair.a_addr.to_string();
    let server = start(&pair, &root.0, &format!("{a}:69"));
    let trace = out.path("strace.txt");
    let strace = Background::spawn({
        let mut c = std::process::Command::new(require_tool("strace"));
        c.args(["-f", "-qq", "-e", "trace=sendmsg,sendmmsg", "-o"])
            .arg(&trace)
            .args(["-p", &server.id().to_string()]);
        c
    });
    // strace is attached once it has written the file; give it a moment beyond that.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !trace.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(500));
    let gso_out = out.path("ws16");
    atftp_get(
        &pair,
        &root.0,
        &a,
        &gso_out,
        &["blksize 1468", "windowsize 16"],
    );
    let first = std::fs::read_to_string(&trace).unwrap_or_default();
    // 8192-byte blocks need IP fragments on a 1500-byte MTU, which GSO cannot make: the
    // session must notice and go on with sendmmsg.
    atftp_get(
        &pair,
        &root.0,
        &a,
        &out.path("b8192"),
        &["blksize 8192", "windowsize 4"],
    );
    strace.signal(rustix::process::Signal::INT);
    let _ = strace.finish(Duration::from_secs(5));
    let all = std::fs::read_to_string(&trace).unwrap();
    let gso_sends = first
        .lines()
        .filter(|l| l.contains("sendmsg(") && l.contains("cmsg_level=SOL_UDP"))
        .count();
    // 3,000,000 bytes in 1468-byte blocks are 2044 blocks, 128 windows of 16.
    assert!(
        (100..=200).contains(&gso_sends),
        "expected about 128 GSO sends for 128 windows, saw {gso_sends}"
    );
    let later = &all[first.len().min(all.len())..];
    assert!(
        later.contains("sendmmsg("),
        "blksize 8192 windows should fall back to sendmmsg: {}",
        &later[..later.len().min(2000)]
    );
}
