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

/// Sends an RRQ for `small.txt` to `server` from namespace `ns` with a raw socket and
/// prints the address the first answer came from (python3: the real clients accept an
/// answer from any address, so they cannot tell).
fn answer_source(ns: &netboot_testkit::Netns, server: &str, v6: bool) -> String {
    let script = r#"
import socket, sys
fam = socket.AF_INET6 if sys.argv[2] == "6" else socket.AF_INET
s = socket.socket(fam, socket.SOCK_DGRAM)
s.settimeout(5)
s.sendto(b"\x00\x01small.txt\x00octet\x00", (sys.argv[1], 69))
data, addr = s.recvfrom(2048)
assert data[:4] == b"\x00\x03\x00\x01", data
print(addr[0])
"#;
    let o = ns.run(
        "/usr/bin/python3",
        ["-c", script, server, if v6 { "6" } else { "4" }],
        LIMIT,
    );
    assert!(
        o.status.success(),
        "python3 client: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

#[test]
fn a_wildcard_listener_answers_from_the_address_asked() {
    let root = Scratch::new("pktinfo");
    make_root(&root.0);
    let out = Scratch::new("pktinfo-out");
    let pair = NetPair::new("tftppkt");
    // A second address on the server's interface with no subnet route of its own: without
    // IP_PKTINFO the kernel would pick the primary address for the answer.
    let (a2, b_if, a_if) = ("198.19.77.1", pair.b_if.as_str(), pair.a_if.as_str());
    let ip = |ns: &netboot_testkit::Netns, args: &[&str]| {
        let o = ns.run(require_tool("ip"), args, LIMIT);
        assert!(o.status.success(), "ip {args:?}: {o:?}");
    };
    ip(&pair.a, &["addr", "add", &format!("{a2}/32"), "dev", a_if]);
    ip(&pair.b, &["route", "add", &format!("{a2}/32"), "dev", b_if]);
    for (ns, ifname, addr) in [
        (&pair.a, a_if, "fd42:77::1/64"),
        (&pair.a, a_if, "fd42:78::1/128"),
        (&pair.b, b_if, "fd42:77::2/64"),
    ] {
        ip(ns, &["addr", "add", addr, "dev", ifname, "nodad"]);
    }
    ip(&pair.b, &["route", "add", "fd42:78::1/128", "dev", b_if]);
    let server = Background::spawn(server_command_in(
        Some(&pair.a),
        &root.0,
        &["--listen", "0.0.0.0:69", "--listen", "[::]:69"],
    ));
    pair.a
        .wait_for_port(Proto::Udp, 69, Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("{e}; log: {}", server_log(&root.0)));
    let primary = pair.a_addr.to_string();
    assert_eq!(answer_source(&pair.b, &primary, false), primary);
    assert_eq!(answer_source(&pair.b, a2, false), a2);
    assert_eq!(answer_source(&pair.b, "fd42:77::1", true), "fd42:77::1");
    assert_eq!(answer_source(&pair.b, "fd42:78::1", true), "fd42:78::1");
    // A real client fetches the whole file through the second address.
    let got = out.path("medium");
    atftp_get(&pair, &root.0, a2, &got, &["blksize 1468", "windowsize 4"]);
    drop(server);
}
