//! netboot-nbdd against hostile clients, byte by byte over a Unix socket: bad magics, unknown
//! client flags, option floods, oversized lengths (the nbd-server CVE-2022-26495 shape),
//! oversized payloads, a client stalling in the handshake, one vanishing mid-WRITE, and 1,000
//! concurrent idle connections, while a well-behaved client keeps being served.

use netboot_testkit::Background;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_netboot-nbdd");
const SIZE: usize = 1 << 20;

struct Server {
    _bg: Background,
    dir: PathBuf,
    sock: PathBuf,
    pid: u32,
}

impl Server {
    fn start(tag: &str, extra: &[&str]) -> Server {
        Server::start_env(tag, extra, "info")
    }

    /// `log` is the RUST_LOG filter: the harness reads the server's stderr only at the end,
    /// so a test making thousands of connections keeps the log small enough for the pipe.
    fn start_env(tag: &str, extra: &[&str], log: &str) -> Server {
        let dir = std::env::temp_dir().join(format!("nbd-hostile-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let img = dir.join("img");
        std::fs::write(&img, (0..SIZE).map(|i| (i % 251) as u8).collect::<Vec<_>>()).unwrap();
        let sock = dir.join("s.sock");
        let mut cmd = Command::new(BIN);
        cmd.env("NO_COLOR", "1")
            .env("RUST_LOG", log)
            .arg("--unix")
            .arg(&sock)
            .arg("--export")
            .arg(format!("ro={},ram", img.display()))
            .args(extra);
        let bg = Background::spawn(cmd);
        let pid = bg.id();
        let start = Instant::now();
        while !sock.exists() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "server did not start"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        Server {
            _bg: bg,
            dir,
            sock,
            pid,
        }
    }

    fn connect(&self) -> UnixStream {
        // A full accept backlog makes a Unix connect fail with EAGAIN: retry briefly.
        let start = Instant::now();
        let s = loop {
            match UnixStream::connect(&self.sock) {
                Ok(s) => break s,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    assert!(start.elapsed() < Duration::from_secs(10), "connect: {e}");
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => panic!("connect: {e}"),
            }
        };
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s
    }

    /// A client past the greeting, flags sent.
    fn negotiating(&self) -> UnixStream {
        let mut s = self.connect();
        let mut g = [0u8; 18];
        s.read_exact(&mut g).unwrap();
        assert_eq!(&g[..16], b"NBDMAGICIHAVEOPT");
        s.write_all(&3u32.to_be_bytes()).unwrap();
        s
    }

    /// A client in transmission on the default export (via GO, simple replies).
    fn transmitting(&self) -> UnixStream {
        let mut s = self.negotiating();
        s.write_all(&option(7, &[0, 0, 0, 0, 0, 0])).unwrap();
        loop {
            let (_, ty, _) = read_reply(&mut s);
            if ty == 1 {
                break;
            }
            assert_eq!(ty, 3, "INFO or ACK expected");
        }
        s
    }

    fn rss_kib(&self) -> u64 {
        let st = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).unwrap();
        st.lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
            .unwrap()
    }

    /// A well-behaved client reads the last 4 KiB and checks it.
    fn still_serves(&self) {
        let mut s = self.transmitting();
        let off = (SIZE - 4096) as u64;
        s.write_all(&request(0, 77, off, 4096)).unwrap();
        let mut h = [0u8; 16];
        s.read_exact(&mut h).unwrap();
        assert_eq!(&h[4..8], &[0, 0, 0, 0], "error in reply");
        assert_eq!(&h[8..16], &77u64.to_be_bytes());
        let mut d = vec![0u8; 4096];
        s.read_exact(&mut d).unwrap();
        assert!(
            d.iter()
                .enumerate()
                .all(|(i, &b)| b == ((off as usize + i) % 251) as u8)
        );
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn option(o: u32, data: &[u8]) -> Vec<u8> {
    let mut v = b"IHAVEOPT".to_vec();
    v.extend_from_slice(&o.to_be_bytes());
    v.extend_from_slice(&(data.len() as u32).to_be_bytes());
    v.extend_from_slice(data);
    v
}

fn request(cmd: u16, cookie: u64, offset: u64, len: u32) -> Vec<u8> {
    let mut v = 0x2560_9513u32.to_be_bytes().to_vec();
    v.extend_from_slice(&0u16.to_be_bytes());
    v.extend_from_slice(&cmd.to_be_bytes());
    v.extend_from_slice(&cookie.to_be_bytes());
    v.extend_from_slice(&offset.to_be_bytes());
    v.extend_from_slice(&len.to_be_bytes());
    v
}

fn read_reply(s: &mut UnixStream) -> (u32, u32, Vec<u8>) {
    let mut h = [0u8; 20];
    s.read_exact(&mut h).unwrap();
    assert_eq!(&h[..8], &0x0003_e889_0455_65a9u64.to_be_bytes());
    let be = |i: usize| u32::from_be_bytes(h[i..i + 4].try_into().unwrap());
    let mut d = vec![0; be(16) as usize];
    s.read_exact(&mut d).unwrap();
    (be(8), be(12), d)
}

/// The server closed the connection (EOF or reset), within the read timeout.
fn closed(s: &mut UnixStream) -> bool {
    let mut b = [0u8; 4096];
    loop {
        match s.read(&mut b) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

#[test]
fn malformed_handshakes_get_the_spec_answer() {
    let srv = Server::start("hs", &[]);

    // Unknown client flag: MUST close.
    let mut s = srv.connect();
    let mut g = [0u8; 18];
    s.read_exact(&mut g).unwrap();
    s.write_all(&[0, 0, 0, 0x80]).unwrap();
    assert!(closed(&mut s));

    // Bad option magic: hard disconnect.
    let mut s = srv.negotiating();
    s.write_all(b"IHAVEOPX\0\0\0\x07\0\0\0\0").unwrap();
    assert!(closed(&mut s));

    // Unknown option and withdrawn PEEK_EXPORT: ERR_UNSUP, data skipped, still in sync.
    let mut s = srv.negotiating();
    s.write_all(&option(0x7654321, &[0xff; 300])).unwrap();
    s.write_all(&option(4, b"")).unwrap();
    assert_eq!(read_reply(&mut s).1, 0x8000_0001);
    assert_eq!(read_reply(&mut s).1, 0x8000_0001);
    // GO whose name length is 0xffffffff (CVE-2022-26495 shape): ERR_INVALID, still in sync.
    s.write_all(&option(7, b"\xff\xff\xff\xff\0\0")).unwrap();
    assert_eq!(read_reply(&mut s).1, 0x8000_0003);
    // An INFO name of 2000 bytes (CVE-2022-26496 overflowed a 1024-byte buffer): ERR_UNKNOWN.
    let mut d = 2000u32.to_be_bytes().to_vec();
    d.extend(std::iter::repeat_n(b'A', 2000));
    d.extend_from_slice(&[0, 0]);
    s.write_all(&option(6, &d)).unwrap();
    assert_eq!(read_reply(&mut s).1, 0x8000_0006);
    // LIST still answers.
    s.write_all(&option(3, b"")).unwrap();
    assert_eq!(read_reply(&mut s).1, 2);
    assert_eq!(read_reply(&mut s).1, 1);

    // An option claiming 4 GiB of data is refused at once, not buffered.
    let mut s = srv.negotiating();
    s.write_all(b"IHAVEOPT\0\0\0\x07\xff\xff\xff\xff").unwrap();
    assert!(closed(&mut s));

    // An option flood: 64 answers, then the server hangs up.
    let mut s = srv.negotiating();
    let mut flood = Vec::new();
    for _ in 0..200 {
        flood.extend(option(99, b""));
    }
    let _ = s.write_all(&flood);
    for _ in 0..64 {
        assert_eq!(read_reply(&mut s).1, 0x8000_0001);
    }
    assert!(closed(&mut s));

    // EXPORT_NAME of an unknown export cannot be answered with an error: disconnect.
    let mut s = srv.negotiating();
    s.write_all(&option(1, b"nope")).unwrap();
    assert!(closed(&mut s));

    srv.still_serves();
}

#[test]
fn hostile_transmission_input() {
    let srv = Server::start("tx", &[]);

    // Bad request magic: hard disconnect.
    let mut s = srv.transmitting();
    let mut r = request(0, 1, 0, 512);
    r[0] = 0;
    s.write_all(&r).unwrap();
    assert!(closed(&mut s));

    // A WRITE of 4 GiB - 1 to a read-only export: too large to swallow, disconnect.
    let mut s = srv.transmitting();
    s.write_all(&request(1, 2, 0, u32::MAX)).unwrap();
    assert!(closed(&mut s));

    // A rejected 1 MiB WRITE is consumed: EPERM arrives after the payload, then a READ works.
    let mut s = srv.transmitting();
    s.write_all(&request(1, 3, 0, 1 << 20)).unwrap();
    s.write_all(&vec![0x25; 1 << 20]).unwrap();
    s.write_all(&request(0, 4, 0, 8)).unwrap();
    // Replies may come in any order (the spec allows it): collect both by cookie.
    let mut got = Vec::new();
    for _ in 0..2 {
        let mut h = [0u8; 16];
        s.read_exact(&mut h).unwrap();
        let cookie = u64::from_be_bytes(h[8..16].try_into().unwrap());
        let error = u32::from_be_bytes(h[4..8].try_into().unwrap());
        got.push((cookie, error));
        if cookie == 4 {
            let mut d = [0u8; 8];
            s.read_exact(&mut d).unwrap();
            assert_eq!(d, [0, 1, 2, 3, 4, 5, 6, 7]);
        }
    }
    got.sort();
    assert_eq!(
        got,
        [(3, 1), (4, 0)],
        "EPERM for the WRITE, data for the READ"
    );
    let mut h = [0u8; 16];

    // Unknown command and a READ past the end: EINVAL, connection stays.
    s.write_all(&request(42, 5, 0, 0)).unwrap();
    s.write_all(&request(0, 6, SIZE as u64 - 1, 2)).unwrap();
    for cookie in [5u64, 6] {
        s.read_exact(&mut h).unwrap();
        assert_eq!(
            (&h[4..8], &h[8..16]),
            (&22u32.to_be_bytes()[..], &cookie.to_be_bytes()[..])
        );
    }

    // A client that vanishes in the middle of a WRITE payload.
    let mut s = srv.transmitting();
    s.write_all(&request(1, 7, 0, 65536)).unwrap();
    s.write_all(&[1; 1000]).unwrap();
    drop(s);

    srv.still_serves();
}

#[test]
fn stalled_handshake_times_out() {
    let srv = Server::start("stall", &["--handshake-timeout", "1"]);
    let mut s = srv.connect();
    let t = Instant::now();
    assert!(closed(&mut s), "a silent client must be dropped");
    assert!(t.elapsed() < Duration::from_secs(4));
    // Slow but within the limit is fine.
    srv.still_serves();
}

#[test]
fn a_thousand_idle_connections() {
    let srv = Server::start_env("idle", &["--handshake-timeout", "120"], "warn");
    let t = Instant::now();
    let before = srv.rss_kib();
    let mut idle: Vec<UnixStream> = Vec::with_capacity(1000);
    for i in 0..1000 {
        // Half stop after the client flags, half after GO: both kinds of idle.
        let s = if i % 2 == 0 {
            srv.negotiating()
        } else {
            srv.transmitting()
        };
        idle.push(s);
    }
    eprintln!("1000 connections opened in {:?}", t.elapsed());
    srv.still_serves();
    let after = srv.rss_kib();
    // Bounded per connection: well under 64 KiB each (buffers start small).
    assert!(
        after.saturating_sub(before) < 64 * 1000,
        "RSS grew from {before} KiB to {after} KiB for 1000 idle connections"
    );
    drop(idle);
    srv.still_serves();
    assert!(Path::new(&srv.sock).exists());
}

#[test]
fn connection_limit_is_enforced_and_released() {
    let srv = Server::start("limit", &["--max-connections", "2"]);
    let a = srv.transmitting();
    let _b = srv.negotiating();
    // The third client is closed at once, without a greeting.
    let mut c = srv.connect();
    let mut g = [0u8; 18];
    assert!(c.read_exact(&mut g).is_err(), "over the limit but greeted");
    // Once a client leaves, its slot is free again.
    drop(a);
    let start = Instant::now();
    loop {
        let mut s = srv.connect();
        if s.read_exact(&mut g).is_ok() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "slot never freed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
