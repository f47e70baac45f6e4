//! Side-by-side NBD server comparison, one run, same machine, same image:
//! netboot-nbdd (ram, file) vs nbdkit (memory, file), qemu-nbd and nbd-server, over loopback
//! TCP (and a Unix socket with `--transports unix,tcp`). Measures
//! - sequential read: `nbdcopy URI null:` (nbdcopy's defaults: 4 connections if multi-conn);
//! - boot storm: N concurrent `nbdcopy -C 1 URI null:` each reading the whole image;
//! - 4 KiB random reads at queue depth 32 with a small built-in client (one connection);
//! - for each, the server's CPU time over the same interval (user + system from /proc,
//!   including reaped children: nbd-server forks one per client), as CPU-seconds per GiB
//!   served (or µs per random read). Client and servers share the machine's cores, so the
//!   server's CPU per byte is what decides how fast a loaded boot server can go; wall-clock
//!   also measures how much CPU the scheduler lends each server;
//! - the clients' CPU per GiB (nbdcopy, reaped children of this command), and from it the
//!   client-bound ceiling: the rate the clients would reach on all the cores if the server
//!   cost nothing. A server can only approach it by costing less CPU per byte.
//!
//! Prints medians of `--runs` runs (sequential and random) and `--storm-runs` storms, then
//! ratios of ours against each anchor. A benchmark, not a test: numbers depend on the machine
//! and its load. The default (1 GiB image, TCP, 3 runs, 1 storm of 32) took 169 s on this
//! 2-core box at load ~2 (497 s at load ~20); `--runs 5 --storm-runs 5 --transports unix,tcp`
//! is the full matrix (about 4x longer).
//!
//! ```sh
//! cargo build --release -p netboot-bins --bin netboot-nbdd -p netboot-benches --bin compare-nbd
//! target/release/compare-nbd                       # defaults
//! target/release/compare-nbd --size-mib 256 --runs 5 --storm-runs 3 --transports unix,tcp
//! ```
//!
//! nbd-server runs unprivileged-style from its own config file in a temporary directory (never
//! the system one), daemonized (its `-d` debug mode serves one client at a time and hangs a
//! multi-connection nbdcopy), found through its pid file and stopped with SIGTERM.

use netboot_nbd::wire;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Opts {
    size_mib: u64,
    runs: usize,
    storm_runs: usize,
    storm: usize,
    random_reqs: u64,
    transports: Vec<String>,
    servers: Option<Vec<String>>,
    nbdd: PathBuf,
}

const USAGE: &str = "usage: compare-nbd [--size-mib N (1024)] [--runs N (3)] [--storm-runs N (1)] \
    [--storm CLIENTS (32)] [--random-reqs N (50000)] [--transports tcp[,unix]] \
    [--servers NAME,...] [--nbdd PATH]";

fn parse_opts() -> Opts {
    let exe = std::env::current_exe().unwrap_or_default();
    let mut o = Opts {
        size_mib: 1024,
        runs: 3,
        storm_runs: 1,
        storm: 32,
        random_reqs: 50_000,
        transports: vec!["tcp".into()],
        servers: None,
        nbdd: std::env::var_os("NETBOOT_NBDD")
            .map(PathBuf::from)
            .unwrap_or_else(|| exe.with_file_name("netboot-nbdd")),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut v = || args.next().unwrap_or_default();
        let list = |s: String| s.split(',').map(String::from).collect::<Vec<_>>();
        match a.as_str() {
            "--size-mib" => o.size_mib = v().parse().unwrap_or(o.size_mib),
            "--runs" => o.runs = v().parse().unwrap_or(o.runs),
            "--storm-runs" => o.storm_runs = v().parse().unwrap_or(o.storm_runs),
            "--storm" => o.storm = v().parse().unwrap_or(o.storm),
            "--random-reqs" => o.random_reqs = v().parse().unwrap_or(o.random_reqs),
            "--transports" => o.transports = list(v()),
            "--servers" => o.servers = Some(list(v())),
            "--nbdd" => o.nbdd = v().into(),
            _ => {
                eprintln!("{USAGE}\nservers: {}", KINDS.join(", "));
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
    fn uri(&self, export: &str) -> String {
        match self {
            Addr::Unix(p) => format!("nbd+unix:///{export}?socket={}", p.display()),
            Addr::Tcp(port) => format!("nbd://127.0.0.1:{port}/{export}"),
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

/// A running server: its process id (the daemon's, for nbd-server) and the export to ask for.
struct Server {
    name: &'static str,
    pid: u32,
    child: Option<Child>,
    export: &'static str,
    addr: Addr,
}

impl Drop for Server {
    fn drop(&mut self) {
        match &mut self.child {
            Some(c) => {
                let _ = c.kill();
                let _ = c.wait();
            }
            None => {
                let _ = Command::new("kill").arg(self.pid.to_string()).status();
            }
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(20809)
}

const KINDS: [&str; 6] = [
    "netboot-nbdd ram",
    "netboot-nbdd file",
    "nbdkit memory",
    "nbdkit file",
    "qemu-nbd",
    "nbd-server",
];

/// Starts server `name` on `transport` serving `img`; None (with a message) if it cannot.
fn launch(
    name: &'static str,
    transport: &str,
    dir: &Path,
    k: usize,
    img: &str,
    o: &Opts,
) -> Option<Server> {
    let sock = dir.join(format!("s{k}.sock"));
    let _ = std::fs::remove_file(&sock);
    let port = free_port();
    let unix = transport == "unix";
    let s = |x: &str| x.to_string();
    let sockarg = sock.display().to_string();
    let addr = if unix {
        Addr::Unix(sock.clone())
    } else {
        Addr::Tcp(port)
    };
    let nbdd_listen = if unix {
        vec![s("--unix"), sockarg.clone()]
    } else {
        vec![s("--listen"), format!("127.0.0.1:{port}")]
    };
    let nbdkit_listen = if unix {
        vec![s("-U"), sockarg.clone()]
    } else {
        vec![s("-i"), s("127.0.0.1"), s("-p"), port.to_string()]
    };
    let mut export = "";
    let mut daemon_pidfile = None;
    let argv: Vec<String> = match name {
        "netboot-nbdd ram" | "netboot-nbdd file" => {
            let ram = if name.ends_with("ram") { ",ram" } else { "" };
            let mut v = vec![o.nbdd.display().to_string()];
            v.extend(nbdd_listen);
            v.extend([s("--export"), format!("root={img}{ram}")]);
            v
        }
        "nbdkit memory" => {
            let mut v = vec![s("nbdkit"), s("-f")];
            v.extend(nbdkit_listen);
            v.extend([
                s("memory"),
                format!("{}M", o.size_mib),
                s("allocator=malloc"),
            ]);
            v
        }
        "nbdkit file" => {
            let mut v = vec![s("nbdkit"), s("-f"), s("-r")];
            v.extend(nbdkit_listen);
            v.extend([s("file"), s(img)]);
            v
        }
        "qemu-nbd" => {
            let mut v: Vec<String> = ["qemu-nbd", "-r", "-t", "-e", "64", "-f", "raw"]
                .map(String::from)
                .to_vec();
            if unix {
                v.extend([s("-k"), sockarg]);
            } else {
                v.extend([s("-b"), s("127.0.0.1"), s("-p"), port.to_string()]);
            }
            v.push(s(img));
            v
        }
        "nbd-server" => {
            // Its own config, never /etc/nbd-server/config. With `unixsock` it does not
            // listen on TCP; the port is set anyway so it never reaches for 10809.
            let conf = dir.join(format!("nbd-server-{k}.conf"));
            let pidfile = dir.join(format!("nbd-server-{k}.pid"));
            let mut text = format!("[generic]\nport = {port}\nlistenaddr = 127.0.0.1\n");
            if unix {
                text += &format!("unixsock = {sockarg}\n");
            }
            text += &format!("[root]\nexportname = {img}\nreadonly = true\n");
            if std::fs::write(&conf, text).is_err() {
                return None;
            }
            let _ = std::fs::remove_file(&pidfile);
            export = "root";
            daemon_pidfile = Some(pidfile.clone());
            vec![
                s("nbd-server"),
                s("-C"),
                conf.display().to_string(),
                s("-p"),
                pidfile.display().to_string(),
            ]
        }
        _ => return None,
    };
    let child = Command::new(&argv[0])
        .args(&argv[1..])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{name}: cannot start {}: {e} (skipped)", argv[0]);
            return None;
        }
    };
    let t = Instant::now();
    let (pid, child) = match daemon_pidfile {
        None => (child.id(), Some(child)),
        Some(pidfile) => {
            // The parent forks the daemon, writes the pid file and exits.
            let _ = child.wait();
            let pid = loop {
                let p = std::fs::read_to_string(&pidfile).unwrap_or_default();
                if let Ok(p) = p.trim().parse::<u32>() {
                    break p;
                }
                if t.elapsed() > Duration::from_secs(10) {
                    eprintln!("{name}: no pid file after 10 s (skipped)");
                    return None;
                }
                std::thread::sleep(Duration::from_millis(20));
            };
            (pid, None)
        }
    };
    let server = Server {
        name,
        pid,
        child,
        export,
        addr,
    };
    while server.addr.connect().is_err() {
        if t.elapsed() > Duration::from_secs(10) {
            eprintln!("{name}: not listening after 10 s (skipped)");
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // nbdkit's memory plugin starts empty: copy the image in.
    if name == "nbdkit memory"
        && !run_ok(
            Command::new("nbdcopy")
                .arg(img)
                .arg(server.addr.uri(export)),
        )
    {
        eprintln!("{name}: preload failed (skipped)");
        return None;
    }
    Some(server)
}

/// User + system CPU seconds used so far by process `pid` and its reaped children.
fn cpu_secs(pid: u32) -> f64 {
    proc_ticks(&format!("/proc/{pid}/stat"), 11..15)
}

/// User + system CPU seconds of this process's reaped children: the clients (nbdcopy,
/// python3), which are waited for; the servers are reaped only at the end.
fn client_cpu_secs() -> f64 {
    proc_ticks("/proc/self/stat", 13..15)
}

/// Sum of the clock-tick fields `fields` (counted from the state) of a `stat` file, in
/// seconds.
fn proc_ticks(path: &str, fields: std::ops::Range<usize>) -> f64 {
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    // Fields after the parenthesised command name: utime, stime, cutime, cstime are fields
    // 14 to 17, i.e. 11 to 14 counting from the state (field 3).
    let rest = stat.rsplit_once(')').map_or("", |x| x.1);
    let f: Vec<f64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    let ticks: f64 = fields.map(|i| f.get(i).copied().unwrap_or(0.0)).sum();
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

/// A measurement: work done (MiB or requests) per second, and server and client CPU per
/// unit of work.
struct Sample {
    rate: f64,
    cpu_per_unit: f64,
    client_cpu_per_unit: f64,
}

/// Runs `f` (which returns the work done, None on failure) and charges the server's CPU.
fn measure(server: &Server, f: impl FnOnce() -> Option<f64>) -> Option<Sample> {
    let c0 = cpu_secs(server.pid);
    let k0 = client_cpu_secs();
    let t = Instant::now();
    let work = f()?;
    let secs = t.elapsed().as_secs_f64();
    // nbd-server's children are only counted once reaped; give it a moment.
    if server.child.is_none() {
        std::thread::sleep(Duration::from_millis(100));
    }
    let cpu = cpu_secs(server.pid) - c0;
    Some(Sample {
        rate: work / secs,
        cpu_per_unit: cpu / work,
        client_cpu_per_unit: (client_cpu_secs() - k0) / work,
    })
}

/// `nbdcopy URI null:`; the work is MiB.
fn sequential(s: &Server, mib: u64) -> Option<f64> {
    run_ok(
        Command::new("nbdcopy")
            .arg(s.addr.uri(s.export))
            .arg("null:"),
    )
    .then_some(mib as f64)
}

/// `clients` concurrent single-connection full reads; the work is MiB.
fn storm(s: &Server, mib: u64, clients: usize) -> Option<f64> {
    let kids: Vec<_> = (0..clients)
        .filter_map(|_| {
            Command::new("nbdcopy")
                .args(["-C", "1"])
                .arg(s.addr.uri(s.export))
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
    (ok && n == clients).then(|| (mib * clients as u64) as f64)
}

/// 4 KiB random reads, 32 in flight, simple replies, one connection; the work is requests.
fn random_reads(s: &Server, size: u64, total: u64) -> Option<f64> {
    let mut c = s.addr.connect().ok()?;
    let mut g = [0u8; wire::GREETING_LEN];
    c.read_exact(&mut g).ok()?;
    c.write_all(&3u32.to_be_bytes()).ok()?;
    let mut data = (s.export.len() as u32).to_be_bytes().to_vec();
    data.extend_from_slice(s.export.as_bytes());
    data.extend_from_slice(&[0, 0]);
    let go = wire::OptionRequest {
        option: wire::opt::GO,
        data: &data,
    };
    let mut b = vec![0; go.buffer_len()];
    go.emit(&mut b);
    c.write_all(&b).ok()?;
    loop {
        let mut h = [0u8; wire::OPTION_REPLY_HEADER_LEN];
        c.read_exact(&mut h).ok()?;
        let len = u32::from_be_bytes([h[16], h[17], h[18], h[19]]) as usize;
        let mut d = vec![0; len];
        c.read_exact(&mut d).ok()?;
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
    let mut sent = 0;
    let mut batch = Vec::new();
    while sent < 32.min(total) {
        batch.extend_from_slice(&req(sent));
        sent += 1;
    }
    c.write_all(&batch).ok()?;
    let mut reply = vec![0u8; 16 + 4096];
    for _ in 0..total {
        c.read_exact(&mut reply).ok()?;
        if reply[4..8] != [0; 4] {
            return None;
        }
        if sent < total {
            c.write_all(&req(sent)).ok()?;
            sent += 1;
        }
    }
    Some(total as f64)
}

/// Writes a dense pseudo-random image (squashfs-like: no zero runs for anyone to skip).
fn write_image(path: &Path, size: u64) -> std::io::Result<()> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut chunk = vec![0u8; 8 << 20];
    let mut left = size;
    while left > 0 {
        for w in chunk.chunks_exact_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            w.copy_from_slice(&x.to_le_bytes());
        }
        let n = left.min(chunk.len() as u64) as usize;
        f.write_all(&chunk[..n])?;
        left -= n as u64;
    }
    f.flush()
}

/// One table row: medians per measurement.
struct Row {
    name: &'static str,
    transport: String,
    seq: f64,
    seq_cpu: f64,
    storm: f64,
    storm_cpu: f64,
    rand: f64,
    rand_cpu: f64,
    /// Client CPU-s per GiB (all the nbdcopy processes together).
    seq_client: f64,
    storm_client: f64,
}

fn main() {
    let o = parse_opts();
    let size = o.size_mib << 20;
    let dir = PathBuf::from(format!("/dev/shm/compare-nbd-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let img = dir.join("img");
    if let Err(e) = write_image(&img, size) {
        eprintln!("cannot write {}: {e}", img.display());
        let _ = std::fs::remove_dir_all(&dir);
        std::process::exit(1);
    }
    let imgs = img.display().to_string();
    println!(
        "image {} MiB on tmpfs; {} runs (storm: {}); storm {} clients; random reads {} x 4 KiB QD32",
        o.size_mib, o.runs, o.storm_runs, o.storm, o.random_reqs
    );
    let kinds: Vec<&'static str> = KINDS
        .into_iter()
        .filter(|k| o.servers.as_ref().is_none_or(|s| s.iter().any(|x| x == k)))
        .collect();
    let mut table: Vec<Row> = Vec::new();
    for transport in &o.transports {
        // All servers run at once and every run visits each in turn, so a change in the
        // machine's load during the run hits them alike.
        let live: Vec<Server> = kinds
            .iter()
            .enumerate()
            .filter_map(|(k, name)| launch(name, transport, &dir, k, &imgs, &o))
            .collect();
        type Samples = [Vec<f64>; 8];
        let mut samples: Vec<Samples> = live.iter().map(|_| Default::default()).collect();
        for run in 0..o.runs.max(o.storm_runs) {
            for (s, [seq, seq_cpu, st, st_cpu, rnd, rnd_cpu, seq_cl, st_cl]) in
                live.iter().zip(samples.iter_mut())
            {
                let push =
                    |x: Option<Sample>, r: &mut Vec<f64>, c: &mut Vec<f64>, k: &mut Vec<f64>| {
                        if let Some(x) = x {
                            r.push(x.rate);
                            c.push(x.cpu_per_unit);
                            k.push(x.client_cpu_per_unit);
                        }
                    };
                if run < o.runs {
                    push(
                        measure(s, || sequential(s, o.size_mib)),
                        seq,
                        seq_cpu,
                        seq_cl,
                    );
                    let rr = measure(s, || random_reads(s, size, o.random_reqs));
                    push(rr, rnd, rnd_cpu, &mut Vec::new());
                }
                if run < o.storm_runs {
                    push(
                        measure(s, || storm(s, o.size_mib, o.storm)),
                        st,
                        st_cpu,
                        st_cl,
                    );
                }
            }
        }
        for (s, [seq, seq_cpu, st, st_cpu, rnd, rnd_cpu, seq_cl, st_cl]) in live.iter().zip(samples)
        {
            let row = Row {
                name: s.name,
                transport: transport.clone(),
                seq: median(seq),
                seq_cpu: median(seq_cpu) * 1024.0,
                storm: median(st),
                storm_cpu: median(st_cpu) * 1024.0,
                rand: median(rnd),
                rand_cpu: median(rnd_cpu) * 1e6,
                seq_client: median(seq_cl) * 1024.0,
                storm_client: median(st_cl) * 1024.0,
            };
            println!(
                "{:<18} {:<4} seq {:>5.0} MiB/s {:>5.2} CPU-s/GiB | storm {:>5.0} MiB/s {:>5.2} \
                 CPU-s/GiB | rand4k {:>6.0} IOPS {:>5.1} CPU-us/op",
                row.name,
                row.transport,
                row.seq,
                row.seq_cpu,
                row.storm,
                row.storm_cpu,
                row.rand,
                row.rand_cpu
            );
            table.push(row);
        }
    }
    println!(
        "\nratios, ours / anchor (medians; speed >1 = ours faster, CPU <1 = ours cheaper per byte):"
    );
    for ours in ["netboot-nbdd ram", "netboot-nbdd file"] {
        for anchor in &KINDS[2..] {
            for t in &o.transports {
                let find = |n: &str| table.iter().find(|r| r.name == n && &r.transport == t);
                if let (Some(a), Some(b)) = (find(ours), find(anchor)) {
                    println!(
                        "{ours:<17} vs {anchor:<13} {t:<4} seq {:>5.2}x (CPU {:>4.2}x)  \
                         storm {:>5.2}x (CPU {:>4.2}x)  rand4k {:>5.2}x (CPU {:>4.2}x)",
                        a.seq / b.seq,
                        a.seq_cpu / b.seq_cpu,
                        a.storm / b.storm,
                        a.storm_cpu / b.storm_cpu,
                        a.rand / b.rand,
                        a.rand_cpu / b.rand_cpu
                    );
                }
            }
        }
    }
    // What no server can beat here: the clients share the machine's CPUs with the server,
    // so with a server that cost nothing they could at best spend all of them.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    println!(
        "\nclient CPU-s/GiB (nbdcopy, all processes) and the client-bound ceiling = {cores} CPUs ÷ \
         client CPU per MiB (the rate if the server cost nothing), ÷ nbdkit memory's rate:"
    );
    for r in &table {
        let base = table
            .iter()
            .find(|b| b.name == "nbdkit memory" && b.transport == r.transport);
        let ceiling = |client: f64| cores * 1024.0 / client;
        let vs = |c: f64, b: Option<f64>| b.map_or(String::new(), |b| format!(" ({:.2}x)", c / b));
        println!(
            "{:<18} {:<4} seq client {:>5.2} ceiling {:>6.0} MiB/s{} | storm client {:>5.2} ceiling {:>6.0} MiB/s{}",
            r.name,
            r.transport,
            r.seq_client,
            ceiling(r.seq_client),
            vs(ceiling(r.seq_client), base.map(|b| b.seq)),
            r.storm_client,
            ceiling(r.storm_client),
            vs(ceiling(r.storm_client), base.map(|b| b.storm)),
        );
    }
    drop(table);
    let _ = std::fs::remove_dir_all(&dir);
}
