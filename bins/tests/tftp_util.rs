//! Helpers shared by the `tftp_*` integration tests (included with `#[path]`): a scratch
//! root directory, the server under test, and a scripted raw-UDP TFTP client that records
//! every packet so tests can count and inspect them.
#![allow(dead_code)]

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use netboot_testkit::Background;

/// A directory removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    /// A fresh, world-readable directory tagged `tag`.
    pub fn new(tag: &str) -> Scratch {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("netboot-tftp-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // Readable by tools that drop privileges.
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o777))
            .unwrap();
        Scratch(dir)
    }
    /// A path inside the directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
        let _ = std::fs::remove_file(log_path(&self.0));
    }
}

/// Where the server started on `root` writes its log. A file, not a pipe: nobody reads
/// the pipe while the test runs, and a full pipe would stall the server's event loop.
pub fn log_path(root: &Path) -> PathBuf {
    root.with_extension("log")
}

/// The server's log so far.
pub fn server_log(root: &Path) -> String {
    std::fs::read_to_string(log_path(root)).unwrap_or_default()
}

/// A command that runs the server with stderr appended to [`log_path`].
pub fn server_command(root: &Path, args: &[&str]) -> Command {
    server_command_in(None, root, args)
}

/// [`server_command`] inside a network namespace.
pub fn server_command_in(
    ns: Option<&netboot_testkit::Netns>,
    root: &Path,
    args: &[&str],
) -> Command {
    let mut cmd = match ns {
        Some(ns) => ns.command("sh"),
        None => Command::new("sh"),
    };
    let log = log_path(root);
    cmd.arg("-c")
        .arg(r#"log="$1"; shift; exec "$@" 2>>"$log""#)
        .arg("sh")
        .arg(&log)
        .arg(server_bin())
        .arg("--root")
        .arg(root)
        .args(args);
    cmd.env("RUST_LOG", "info").env("NO_COLOR", "1");
    cmd
}

/// Deterministic pseudo-random bytes.
pub fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// The server root every test uses: files of interesting sizes and hostile entries.
pub fn make_root(root: &Path) {
    let w = |name: &str, data: &[u8]| std::fs::write(root.join(name), data).unwrap();
    w("empty", b"");
    w("small.txt", b"hello\nworld\r\nbare\rcr\n");
    w("k512", &bytes(512 * 4, 1));
    w("k1468", &bytes(1468 * 8, 2));
    w("medium", &bytes(3_000_000, 3));
    w("rollover", &bytes(16 * 65_600 + 5, 4));
    std::fs::create_dir_all(root.join("sub/deeper")).unwrap();
    w("sub/deeper/file", &bytes(1000, 5));
    std::os::unix::fs::symlink("/etc/hostname", root.join("escape-link")).unwrap();
    std::os::unix::fs::symlink("/etc", root.join("escape-dir")).unwrap();
    std::os::unix::fs::symlink("../../../../../etc/hostname", root.join("sub/rel-escape")).unwrap();
    std::os::unix::fs::symlink("small.txt", root.join("inside-link")).unwrap();
    std::os::unix::fs::symlink("loop-b", root.join("loop-a")).unwrap();
    std::os::unix::fs::symlink("loop-a", root.join("loop-b")).unwrap();
    let st = Command::new("mknod")
        .arg(root.join("null-device"))
        .args(["c", "1", "3"])
        .status()
        .unwrap();
    assert!(st.success(), "mknod (the tests run as root)");
    let fifo = root.join("fifo");
    let st = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(st.success());
}

/// Path of the server binary.
pub fn server_bin() -> &'static str {
    env!("CARGO_BIN_EXE_netboot-tftpd")
}

/// Starts the server on loopback `127.0.0.1:port` and waits until it answers.
pub fn start_loopback(root: &Path, extra: &[&str]) -> (Background, SocketAddr) {
    let port = netboot_testkit::free_udp_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let listen = addr.to_string();
    let mut args = vec!["--listen", listen.as_str()];
    args.extend_from_slice(extra);
    let bg = Background::spawn(server_command(root, &args));
    let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
    probe
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let _ = probe.send_to(b"\x00\x01no-such-file\x00octet\x00", addr);
        let mut buf = [0u8; 100];
        if probe.recv_from(&mut buf).is_ok() {
            break;
        }
        assert!(Instant::now() < deadline, "server never answered on {addr}");
    }
    (bg, addr)
}

/// Builds a request datagram.
pub fn request(opcode: u8, name: &[u8], mode: &str, opts: &[(&str, &str)]) -> Vec<u8> {
    let mut v = vec![0, opcode];
    v.extend_from_slice(name);
    v.push(0);
    v.extend_from_slice(mode.as_bytes());
    v.push(0);
    for (k, val) in opts {
        v.extend_from_slice(k.as_bytes());
        v.push(0);
        v.extend_from_slice(val.as_bytes());
        v.push(0);
    }
    v
}

/// A client socket with a receive timeout.
pub fn client(bind: &str, timeout: Duration) -> UdpSocket {
    let s = UdpSocket::bind(bind).unwrap();
    s.set_read_timeout(Some(timeout)).unwrap();
    s
}

/// Sends `req` and returns the first reply and where it came from.
pub fn ask(sock: &UdpSocket, server: SocketAddr, req: &[u8]) -> Option<(Vec<u8>, SocketAddr)> {
    sock.send_to(req, server).unwrap();
    let mut buf = vec![0u8; 70_000];
    let (n, from) = sock.recv_from(&mut buf).ok()?;
    Some((buf[..n].to_vec(), from))
}

/// ERROR code of a datagram, if it is one.
pub fn error_code(d: &[u8]) -> Option<u16> {
    (d.len() >= 4 && d[..2] == [0, 5]).then(|| u16::from_be_bytes([d[2], d[3]]))
}

/// What a scripted download saw.
#[derive(Debug, Default)]
pub struct Fetch {
    /// The file bytes received in order.
    pub data: Vec<u8>,
    /// Block numbers of every DATA received, duplicates included.
    pub blocks: Vec<u16>,
    /// The OACK datagram, if one came.
    pub oack: Option<Vec<u8>>,
    /// The code of the ERROR that ended the transfer, if any.
    pub error: Option<u16>,
}

/// A scripted RFC 7440 client: sends `req`, ACKs an OACK with 0, then ACKs each window's
/// last block (or the last in-order block on a gap). `dup_acks` sends every ACK twice.
/// Stops at the short block or after `limit`.
pub fn fetch(
    sock: &UdpSocket,
    server: SocketAddr,
    req: &[u8],
    blksize: usize,
    window: usize,
    dup_acks: bool,
    limit: Duration,
) -> Fetch {
    fetch_wrapping(sock, server, req, blksize, window, dup_acks, limit, 0)
}

/// [`fetch`] for a server whose block numbers go from 65535 to `wrap_to` (0 or 1).
#[allow(clippy::too_many_arguments)]
pub fn fetch_wrapping(
    sock: &UdpSocket,
    server: SocketAddr,
    req: &[u8],
    blksize: usize,
    window: usize,
    dup_acks: bool,
    limit: Duration,
    wrap_to: u16,
) -> Fetch {
    let next = |b: u16| if b == 65535 { wrap_to } else { b + 1 };
    let mut f = Fetch::default();
    sock.send_to(req, server).unwrap();
    let mut buf = vec![0u8; 70_000];
    let mut expect: u16 = 1;
    let mut in_window = 0;
    let mut peer = None;
    let deadline = Instant::now() + limit;
    let ack = |b: u16, to: SocketAddr| {
        let d = [0, 4, (b >> 8) as u8, b as u8];
        sock.send_to(&d, to).unwrap();
        if dup_acks {
            sock.send_to(&d, to).unwrap();
        }
    };
    while Instant::now() < deadline {
        let Ok((n, from)) = sock.recv_from(&mut buf) else {
            if peer.is_none() {
                // The request got lost (a flooded listener queue): resend it, as clients do.
                sock.send_to(req, server).unwrap();
            }
            continue;
        };
        let d = &buf[..n];
        if *peer.get_or_insert(from) != from {
            continue;
        }
        match u16::from_be_bytes([d[0], d[1]]) {
            6 => {
                f.oack = Some(d.to_vec());
                ack(0, from);
            }
            5 => {
                f.error = error_code(d);
                return f;
            }
            3 => {
                let block = u16::from_be_bytes([d[2], d[3]]);
                f.blocks.push(block);
                if block != expect {
                    in_window = 0;
                    let prev = if expect == wrap_to && !f.data.is_empty() {
                        65535
                    } else {
                        expect.wrapping_sub(1)
                    };
                    ack(prev, from);
                    continue;
                }
                let payload = &d[4..];
                f.data.extend_from_slice(payload);
                expect = next(expect);
                in_window += 1;
                let last = payload.len() < blksize;
                if last || in_window == window {
                    in_window = 0;
                    ack(block, from);
                }
                if last {
                    return f;
                }
            }
            _ => {}
        }
    }
    f
}

/// Reads a field (kB) of /proc/PID/status.
pub fn proc_status(pid: u32, field: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| {
            v.trim_start_matches(':')
                .split_whitespace()
                .next()
                .map(|x| x.parse().unwrap())
        })
        .unwrap_or_else(|| panic!("{field} not in /proc/{pid}/status"))
}
