//! Side-by-side NBD server comparison, one run, same machine, same image:
//! netboot-nbdd (ram, file) vs nbdkit (memory, file) and qemu-nbd, over a Unix socket and
//! loopback TCP. Measures
//! - sequential read: `nbdcopy URI null:` (nbdcopy's defaults: 4 connections if multi-conn);
//! - boot storm: N concurrent `nbdcopy -C 1 URI null:` each reading the whole image;
//! - 4 KiB random reads at queue depth 32 with a small built-in client (one connection);
//! - the server's CPU time during the storm (from /proc), as MiB served per CPU-second: on a
//!   shared machine wall-clock throughput also measures how much CPU the scheduler lends each
//!   server (nbdkit runs 16 threads per connection, ours one per core), this does not.
//!
//! Prints medians of `--runs` runs and ratios of ours against each anchor. A benchmark, not a
//! test: numbers depend on the machine and its load.
//!
//! ```sh
//! cargo build --release -p netboot-bins --bin netboot-nbdd
//! cargo run --release -p netboot-benches --bin compare-nbd -- --size-mib 256 --runs 5
//! ```

use netboot_nbd::wire;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Opts {
    size_mib: u64,
    runs: usize,
    storm: usize,
    random_reqs: u64,
    transports: Vec<String>,
    nbdd: PathBuf,
}

fn parse_opts() -> Opts {
    let exe = std::env::current_exe().unwrap_or_default();
    let mut o = Opts {
        size_mib: 256,
        runs: 5,
        storm: 32,
        random_reqs: 100_000,
        transports: vec!["unix".into(), "tcp".into()],
        nbdd: std::env::var_os("NETBOOT_NBDD")
            .map(PathBuf::from)
            .unwrap_or_else(|| exe.with_file_name("netboot-nbdd")),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut v = || args.next().unwrap_or_default();
        match a.as_str() {
            "--size-mib" => o.size_mib = v().parse().unwrap_or(o.size_mib),
            "--runs" => o.runs = v().parse().unwrap_or(o.runs),
            "--storm" => o.storm = v().parse().unwrap_or(o.storm),
            "--random-reqs" => o.random_reqs = v().parse().unwrap_or(o.random_reqs),
            "--transports" => o.transports = v().split(',').map(String::from).collect(),
            "--nbdd" => o.nbdd = v().into(),
            _ => {
                eprintln!(
                    "usage: compare-nbd [--size-mib N] [--runs N] [--storm N] [--random-reqs N] \
                     [--transports unix,tcp] [--nbdd PATH]"
                );
                std::process::exit(2);
            }
        }
    }
    o
}

enum Addr {
    Unix(PathBuf),
    Tcp(u16),
}

impl Addr {
    fn uri(&self) -> String {
        match self {
            Addr::Unix(p) => format!("nbd+unix:///?socket={}", p.display()),
            Addr::Tcp(port) => format!("nbd://127.0.0.1:{port}"),
        }
    }
    fn connect(&self) -> std::io::Result<Box<dyn ReadWrite>> {
        Ok(match self {
            Addr::Unix(p) => Box::new(std::os::unix::net::UnixStream::connect(p)?),
            Addr::Tcp(port) => {
                let s = std::net::TcpStream::connect(("127.0.0.1", *port))?;
                s.set_nodelay(true)?;
                Box::new(s)
            }
        })
    }
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

struct Server {
    name: &'static str,
    child: Child,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(20809)
}

fn start(name: &'static str, argv: &[String], addr: &Addr) -> Option<Server> {
    let child = Command::new(&argv[0])
        .args(&argv[1..])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let child = match child {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{name}: cannot start {}: {e} (skipped)", argv[0]);
            return None;
        }
    };
    let s = Server { name, child };
    let t = Instant::now();
    while addr.connect().is_err() {
        if t.elapsed() > Duration::from_secs(10) {
            eprintln!("{name}: not listening after 10 s (skipped)");
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Some(s)
}

/// User + system CPU seconds used so far by process `pid`.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')').map_or("", |x| x.1);
    let f: Vec<f64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    let ticks = f.get(11).copied().unwrap_or(0.0) + f.get(12).copied().unwrap_or(0.0);
    ticks / 100.0
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn run_ok(cmd: &mut Command) -> bool {
    cmd.stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// MiB/s of `nbdcopy URI null:`.
fn sequential(addr: &Addr, mib: u64) -> Option<f64> {
    let t = Instant::now();
    run_ok(Command::new("nbdcopy").arg(addr.uri()).arg("null:"))
        .then(|| mib as f64 / t.elapsed().as_secs_f64())
}

/// Aggregate MiB/s of `clients` concurrent single-connection full reads.
fn storm(addr: &Addr, mib: u64, clients: usize) -> Option<f64> {
    let t = Instant::now();
    let kids: Vec<_> = (0..clients)
        .filter_map(|_| {
            Command::new("nbdcopy")
                .args(["-C", "1"])
                .arg(addr.uri())
                .arg("null:")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .ok()
        })
        .collect();
    let n = kids.len();
    let ok = kids
        .into_iter()
        .all(|mut k| k.wait().is_ok_and(|s| s.success()));
    (ok && n == clients).then(|| (mib * clients as u64) as f64 / t.elapsed().as_secs_f64())
}

/// IOPS of 4 KiB random reads, 32 in flight, simple replies, one connection.
fn random_reads(addr: &Addr, size: u64, total: u64) -> Option<f64> {
    let mut s = addr.connect().ok()?;
    let mut g = [0u8; wire::GREETING_LEN];
    s.read_exact(&mut g).ok()?;
    s.write_all(&3u32.to_be_bytes()).ok()?;
    let go = wire::OptionRequest {
        option: wire::opt::GO,
        data: &[0, 0, 0, 0, 0, 0],
    };
    let mut b = vec![0; go.buffer_len()];
    go.emit(&mut b);
    s.write_all(&b).ok()?;
    loop {
        let mut h = [0u8; wire::OPTION_REPLY_HEADER_LEN];
        s.read_exact(&mut h).ok()?;
        let len = u32::from_be_bytes([h[16], h[17], h[18], h[19]]) as usize;
        let mut d = vec![0; len];
        s.read_exact(&mut d).ok()?;
        match u32::from_be_bytes([h[12], h[13], h[14], h[15]]) {
            wire::rep::ACK => break,
            wire::rep::INFO => {}
            _ => return None,
        }
    }
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let blocks = size / 4096;
    let mut req = |cookie: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let mut r = [0u8; wire::REQUEST_LEN];
        wire::Request {
            flags: 0,
            command: wire::cmd::READ,
            cookie,
            offset: (x % blocks) * 4096,
            length: 4096,
            extended: false,
        }
        .emit(&mut r);
        r
    };
    let t = Instant::now();
    let mut sent = 0;
    let mut batch = Vec::new();
    while sent < 32.min(total) {
        batch.extend_from_slice(&req(sent));
        sent += 1;
    }
    s.write_all(&batch).ok()?;
    let mut reply = vec![0u8; 16 + 4096];
    for _ in 0..total {
        s.read_exact(&mut reply).ok()?;
        if reply[4..8] != [0; 4] {
            return None;
        }
        if sent < total {
            s.write_all(&req(sent)).ok()?;
            sent += 1;
        }
    }
    Some(total as f64 / t.elapsed().as_secs_f64())
}

fn main() {
    let o = parse_opts();
    let size = o.size_mib << 20;
    let dir = PathBuf::from(format!("/dev/shm/compare-nbd-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let img = dir.join("img");
    // A dense pseudo-random image (squashfs-like: no zero runs for anyone to skip).
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let data: Vec<u8> = (0..size / 8)
        .flat_map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()
        })
        .collect();
    if let Err(e) = std::fs::write(&img, &data) {
        eprintln!("cannot write {}: {e}", img.display());
        std::process::exit(1);
    }
    drop(data);
    let imgs = img.display().to_string();
    println!(
        "image {} MiB on tmpfs; runs {}; storm {} clients; random reads {} x 4 KiB QD32",
        o.size_mib, o.runs, o.storm, o.random_reqs
    );
    // name, argv builder (listen args), preload via nbdcopy
    type Argv = Box<dyn Fn(&[String]) -> Vec<String>>;
    let nbdd = o.nbdd.display().to_string();
    let (n1, n2, i1, i2) = (nbdd.clone(), nbdd, imgs.clone(), imgs.clone());
    let i3 = imgs.clone();
    let i4 = imgs.clone();
    let sz = format!("{}M", o.size_mib);
    let peers: Vec<(&'static str, Argv, bool)> = vec![
        (
            "netboot-nbdd ram",
            Box::new(move |l| {
                let mut v = vec![n1.clone()];
                v.extend(l.iter().cloned());
                v.extend(["--export".into(), format!("root={i1},ram")]);
                v
            }),
            false,
        ),
        (
            "netboot-nbdd file",
            Box::new(move |l| {
                let mut v = vec![n2.clone()];
                v.extend(l.iter().cloned());
                v.extend(["--export".into(), format!("root={i2}")]);
                v
            }),
            false,
        ),
        (
            "nbdkit memory",
            Box::new(move |l| {
                let mut v: Vec<String> = vec!["nbdkit".into(), "-f".into()];
                v.extend(l.iter().cloned());
                v.extend(["memory".into(), sz.clone(), "allocator=malloc".into()]);
                v
            }),
            true,
        ),
        (
            "nbdkit file",
            Box::new(move |l| {
                let mut v: Vec<String> = vec!["nbdkit".into(), "-f".into(), "-r".into()];
                v.extend(l.iter().cloned());
                v.extend(["file".into(), i3.clone()]);
                v
            }),
            false,
        ),
        (
            "qemu-nbd",
            Box::new(move |l| {
                let mut v: Vec<String> = ["qemu-nbd", "-r", "-t", "-e", "64", "-f", "raw"]
                    .map(String::from)
                    .to_vec();
                v.extend(l.iter().cloned());
                v.push(i4.clone());
                v
            }),
            false,
        ),
    ];
    let mut table: Vec<(String, String, f64, f64, f64, f64)> = Vec::new();
    for transport in &o.transports {
        // All servers run at once and every run visits each in turn, so a change in the
        // machine's load during the run hits them alike.
        let mut live: Vec<(Server, Addr)> = Vec::new();
        for (k, (name, argv, preload)) in peers.iter().enumerate() {
            let sock = dir.join(format!("s{k}.sock"));
            let _ = std::fs::remove_file(&sock);
            let port = free_port();
            let sockarg = sock.display().to_string();
            let (addr, listen): (Addr, Vec<String>) = match (transport.as_str(), *name) {
                ("unix", n) if n.starts_with("netboot") => {
                    (Addr::Unix(sock), vec!["--unix".into(), sockarg])
                }
                ("unix", n) if n.starts_with("nbdkit") => {
                    (Addr::Unix(sock), vec!["-U".into(), sockarg])
                }
                ("unix", _) => (Addr::Unix(sock), vec!["-k".into(), sockarg]),
                (_, n) if n.starts_with("netboot") => (
                    Addr::Tcp(port),
                    vec!["--listen".into(), format!("127.0.0.1:{port}")],
                ),
                (_, n) if n.starts_with("nbdkit") => (
                    Addr::Tcp(port),
                    vec![
                        "-i".into(),
                        "127.0.0.1".into(),
                        "-p".into(),
                        port.to_string(),
                    ],
                ),
                _ => (
                    Addr::Tcp(port),
                    vec![
                        "-b".into(),
                        "127.0.0.1".into(),
                        "-p".into(),
                        port.to_string(),
                    ],
                ),
            };
            let Some(server) = start(name, &argv(&listen), &addr) else {
                continue;
            };
            if *preload && !run_ok(Command::new("nbdcopy").arg(&imgs).arg(addr.uri())) {
                eprintln!("{name}: preload failed (skipped)");
                continue;
            }
            live.push((server, addr));
        }
        let mut samples: Vec<[Vec<f64>; 4]> = live.iter().map(|_| Default::default()).collect();
        for _ in 0..o.runs {
            for ((server, addr), [seq, st, rnd, eff]) in live.iter().zip(samples.iter_mut()) {
                seq.extend(sequential(addr, o.size_mib));
                let c0 = cpu_secs(server.child.id());
                if let Some(v) = storm(addr, o.size_mib, o.storm) {
                    st.push(v);
                    let cpu = cpu_secs(server.child.id()) - c0;
                    eff.push((o.size_mib * o.storm as u64) as f64 / cpu.max(0.01));
                }
                rnd.extend(random_reads(addr, size, o.random_reqs));
            }
        }
        for ((server, _), [seq, st, rnd, eff]) in live.iter().zip(samples) {
            let row = (
                server.name.to_string(),
                transport.clone(),
                median(seq),
                median(st),
                median(rnd),
                median(eff),
            );
            println!(
                "{:<18} {:<5} seq {:>6.0} MiB/s  storm {:>6.0} MiB/s ({:>6.0} MiB/CPU-s)  \
                 rand4k {:>7.0} IOPS",
                row.0, row.1, row.2, row.3, row.5, row.4
            );
            table.push(row);
        }
    }
    println!(
        "\nratios (ours / anchor, medians of {} runs; >1 = ours faster):",
        o.runs
    );
    for (ours, anchor) in [
        ("netboot-nbdd ram", "nbdkit memory"),
        ("netboot-nbdd ram", "nbdkit file"),
        ("netboot-nbdd ram", "qemu-nbd"),
        ("netboot-nbdd file", "nbdkit file"),
        ("netboot-nbdd file", "qemu-nbd"),
    ] {
        for t in &o.transports {
            let find = |n: &str| table.iter().find(|r| r.0 == n && &r.1 == t);
            if let (Some(a), Some(b)) = (find(ours), find(anchor)) {
                println!(
                    "{ours:<18} vs {anchor:<14} {t:<5} seq {:>5.2}x  storm {:>5.2}x  \
                     storm per CPU-s {:>5.2}x  rand4k {:>5.2}x",
                    a.2 / b.2,
                    a.3 / b.3,
                    a.5 / b.5,
                    a.4 / b.4
                );
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
