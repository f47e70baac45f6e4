//! Side-by-side TFTP throughput: netboot-tftpd against tftpd-hpa, atftpd and dnsmasq, in
//! one run, on one machine.
//!
//! Two network namespaces joined by a veth pair (MTU 1500, addresses from 198.18.0.0/15);
//! every server runs at once in the first, each on its own port, serving the same file; the
//! atftp client runs in the second. Runs are interleaved across servers (run 1 of every
//! server, then run 2, …) so drift on a shared machine hits all of them alike. Prints the
//! median MB/s (10^6 B/s) of each row and ours ÷ each anchor, then the server CPU time per
//! run (user + system, from /proc; tftpd-hpa forks a child per transfer whose time the
//! kernel does not charge to the parent, so it shows no figure) measured on the same runs:
//! on a loaded machine CPU per transfer is steadier than wall-clock.
//!
//! ```sh
//! cargo build --release -p netboot-bins --bin netboot-tftpd
//! sudo target/release/compare-tftp [--runs 5] [--size-mib 64] [--parallel 50] [--parallel-mib 4]
//!                                  [--only ROW-SUBSTRING] [--ours-arg ARG]...
//! ```
//! Needs root (namespaces) and the peers from `scripts/install-tools.sh`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Opts {
    runs: usize,
    size_mib: u64,
    parallel: usize,
    parallel_mib: u64,
    ours: PathBuf,
    ours_args: Vec<String>,
    only: Option<String>,
}

fn parse_args() -> Opts {
    let mut o = Opts {
        runs: 5,
        size_mib: 64,
        parallel: 50,
        parallel_mib: 4,
        ours: std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(|d| d.join("netboot-tftpd")))
            .unwrap_or_else(|| PathBuf::from("netboot-tftpd")),
        ours_args: Vec::new(),
        only: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || {
            args.next()
                .unwrap_or_else(|| die(&format!("{a} needs a value")))
        };
        match a.as_str() {
            "--runs" => o.runs = val().parse().unwrap_or_else(|_| die("--runs N")),
            "--size-mib" => o.size_mib = val().parse().unwrap_or_else(|_| die("--size-mib N")),
            "--parallel" => o.parallel = val().parse().unwrap_or_else(|_| die("--parallel N")),
            "--parallel-mib" => {
                o.parallel_mib = val().parse().unwrap_or_else(|_| die("--parallel-mib N"))
            }
            "--ours" => o.ours = PathBuf::from(val()),
            "--only" => o.only = Some(val()),
            "--ours-arg" => o.ours_args.push(val()),
            _ => die(&format!("unknown argument {a}")),
        }
    }
    o
}

fn die(msg: &str) -> ! {
    eprintln!("compare-tftp: {msg}");
    std::process::exit(2);
}

fn sh(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| die(&format!("{cmd:?}: {e}")));
    if !out.status.success() {
        die(&format!(
            "{cmd:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
}

/// The namespace pair; removed on drop (which also removes the veth pair).
struct Pair {
    a: String,
    b: String,
    a_addr: String,
    a_addr2: String,
}

impl Pair {
    fn new() -> Pair {
        let pid = std::process::id();
        let (a, b) = (format!("nbcmp-tftp-{pid}-a"), format!("nbcmp-tftp-{pid}-b"));
        // A /29 per run: .1 and .3 for servers (dnsmasq's TFTP port is fixed at 69, so it
        // gets its own address), .2 for the client.
        let base = 0xC613_0000u32 + 0x8000 + (pid % 4096) * 8; // 198.19.128.0 + pid·8
        let ip = |n: u32| std::net::Ipv4Addr::from(base + n).to_string();
        let pair = Pair {
            a: a.clone(),
            b: b.clone(),
            a_addr: ip(1),
            a_addr2: ip(3),
        };
        let (ia, ib) = (format!("nbc{pid:x}a"), format!("nbc{pid:x}b"));
        sh(Command::new("ip").args(["netns", "add", &a]));
        sh(Command::new("ip").args(["netns", "add", &b]));
        sh(Command::new("ip").args([
            "link", "add", &ia, "netns", &a, "type", "veth", "peer", "name", &ib, "netns", &b,
        ]));
        for (ns, ifname, addrs) in [(&a, &ia, vec![ip(1), ip(3)]), (&b, &ib, vec![ip(2)])] {
            sh(Command::new("ip").args(["-n", ns, "link", "set", "lo", "up"]));
            for addr in addrs {
                sh(Command::new("ip").args([
                    "-n",
                    ns,
                    "addr",
                    "add",
                    &format!("{addr}/29"),
                    "dev",
                    ifname,
                ]));
            }
            sh(Command::new("ip").args(["-n", ns, "link", "set", ifname, "up"]));
        }
        pair
    }

    fn cmd(&self, ns: &str, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns, program]);
        c
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        for ns in [&self.a, &self.b] {
            let _ = Command::new("ip").args(["netns", "delete", ns]).status();
        }
    }
}

/// A server process, killed on drop.
struct Server {
    name: &'static str,
    addr: String,
    port: u16,
    child: Child,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(pair: &Pair, name: &'static str, addr: &str, port: u16, argv: Vec<String>) -> Server {
    let mut c = pair.cmd(&pair.a, &argv[0]);
    c.args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    c.env("RUST_LOG", "warn");
    let child = c.spawn().unwrap_or_else(|e| die(&format!("{name}: {e}")));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = pair
            .cmd(&pair.a, "ss")
            .args(["-Hlnu", &format!("src {addr} and sport = :{port}")])
            .output()
            .unwrap_or_else(|e| die(&format!("ss: {e}")));
        if !out.stdout.trim_ascii().is_empty() {
            break;
        }
        if Instant::now() > deadline {
            die(&format!("{name} did not bind port {port}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Server {
        name,
        addr: addr.to_string(),
        port,
        child,
    }
}

fn atftp(pair: &Pair, s: &Server, file: &str, opts: &[&str], local: &str) -> Command {
    let mut c = pair.cmd(&pair.b, "atftp");
    c.args(["-g", "-r", file, "-l", local]);
    for o in opts {
        c.args(["--option", o]);
    }
    c.arg(&s.addr).arg(s.port.to_string());
    c.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    c
}

/// One timed run of `clients` parallel fetches; MB/s aggregate, or None on any failure.
fn run(
    pair: &Pair,
    s: &Server,
    file: &str,
    bytes: u64,
    opts: &[&str],
    clients: usize,
) -> Option<f64> {
    let t = Instant::now();
    let mut kids: Vec<Child> = (0..clients)
        .filter_map(|_| atftp(pair, s, file, opts, "/dev/null").spawn().ok())
        .collect();
    let mut ok = kids.len() == clients;
    let deadline = t + Duration::from_secs(180);
    for k in &mut kids {
        loop {
            match k.try_wait() {
                Ok(Some(st)) => {
                    ok &= st.success();
                    break;
                }
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(2))
                }
                _ => {
                    let _ = k.kill();
                    let _ = k.wait();
                    ok = false;
                    break;
                }
            }
        }
    }
    let secs = t.elapsed().as_secs_f64();
    ok.then(|| (bytes * clients as u64) as f64 / secs / 1e6)
}

/// CPU time (user + system, children reaped included) a process has used so far, in ms.
fn cpu_ms(pid: u32, ticks_per_sec: f64) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start at field 3 (state).
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(4)
        .filter_map(|x| x.parse().ok())
        .collect();
    (f.len() == 4).then(|| f.iter().sum::<u64>() as f64 * 1000.0 / ticks_per_sec)
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

fn median(v: &mut [f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    Some(v[v.len() / 2])
}

fn write_file(path: &Path, len: u64) {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let data: Vec<u8> = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(path, data).unwrap_or_else(|e| die(&format!("{}: {e}", path.display())));
}

fn main() {
    let o = parse_args();
    if !o.ours.exists() {
        die(&format!(
            "{} not found: build it with `cargo build --release -p netboot-bins --bin netboot-tftpd` or pass --ours",
            o.ours.display()
        ));
    }
    let dir = std::env::temp_dir().join(format!("nbcmp-tftp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| die(&e.to_string()));
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777));
    let big = o.size_mib << 20;
    let par = o.parallel_mib << 20;
    write_file(&dir.join("big"), big);
    write_file(&dir.join("par"), par);
    for f in ["big", "par"] {
        let _ = std::fs::set_permissions(dir.join(f), std::fs::Permissions::from_mode(0o644));
    }
    let pair = Pair::new();
    let d = dir.display().to_string();
    let a = pair.a_addr.clone();
    let a2 = pair.a_addr2.clone();
    let peers_atftpd = "/opt/netboot-peers/bin/atftpd";
    let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let servers = vec![
        start(&pair, "netboot-tftpd", &a, 69, {
            let mut x = vec![o.ours.display().to_string()];
            x.extend(v(&[
                "--root",
                &d,
                "--listen",
                &format!("{a}:69"),
                "--max-sessions",
                "256",
                "--max-sessions-per-client",
                "128",
            ]));
            x.extend(o.ours_args.iter().cloned());
            x
        }),
        start(
            &pair,
            "tftpd-hpa",
            &a,
            1069,
            v(&[
                "/usr/sbin/in.tftpd",
                "-L",
                "-a",
                &format!("{a}:1069"),
                "-s",
                &d,
            ]),
        ),
        start(
            &pair,
            "atftpd",
            &a,
            2069,
            v(&[
                peers_atftpd,
                "--daemon",
                "--no-fork",
                "--bind-address",
                &a,
                "--port",
                "2069",
                "--logfile",
                "/dev/null",
                "--maxthread",
                "128",
                &d,
            ]),
        ),
        start(
            &pair,
            "dnsmasq",
            &a2,
            69,
            v(&[
                "dnsmasq",
                "-k",
                "--conf-file=/dev/null",
                "--port=0",
                "--enable-tftp",
                &format!("--tftp-root={d}"),
                &format!("--listen-address={a2}"),
                "--bind-interfaces",
                "--user=root",
                "--pid-file",
                "--tftp-max=128",
            ]),
        ),
    ];
    // Correctness first: every server must deliver the file intact.
    for s in &servers {
        let local = dir.join(format!("check-{}", s.name));
        let st = atftp(
            &pair,
            s,
            "big",
            &["blksize 1468"],
            &local.display().to_string(),
        )
        .status();
        let same = std::fs::read(&local).ok() == std::fs::read(dir.join("big")).ok();
        let _ = std::fs::remove_file(&local);
        println!(
            "check {:<14} {}",
            s.name,
            if st.map(|s| s.success()).unwrap_or(false) && same {
                "ok (bytes identical)"
            } else {
                "FAILED"
            }
        );
    }
    let pn = format!("{}x 1432 lockstep", o.parallel);
    let rows: Vec<(String, Vec<&str>, &str, u64, usize)> = vec![
        ("512 lockstep".into(), vec![], "big", big, 1),
        ("1468 lockstep".into(), vec!["blksize 1468"], "big", big, 1),
        (
            "1468 x ws4".into(),
            vec!["blksize 1468", "windowsize 4"],
            "big",
            big,
            1,
        ),
        (
            "1468 x ws16".into(),
            vec!["blksize 1468", "windowsize 16"],
            "big",
            big,
            1,
        ),
        (
            "1468 x ws32".into(),
            vec!["blksize 1468", "windowsize 32"],
            "big",
            big,
            1,
        ),
        ("8192 lockstep".into(), vec!["blksize 8192"], "big", big, 1),
        (
            "65464 lockstep".into(),
            vec!["blksize 65464"],
            "big",
            big,
            1,
        ),
        (pn, vec!["blksize 1432"], "par", par, o.parallel),
    ];
    println!(
        "\nMB/s (10^6 B/s), median of {} runs; {} MiB file ({} MiB each for the parallel row); veth, MTU 1500",
        o.runs, o.size_mib, o.parallel_mib
    );
    print!("{:<20}", "row");
    for s in &servers {
        print!("{:>15}", s.name);
    }
    println!("   ours/hpa ours/atftpd ours/dnsmasq");
    let ticks = clock_ticks();
    let mut cpu_rows: Vec<(String, Vec<Option<f64>>)> = Vec::new();
    for (label, opts, file, bytes, clients) in &rows {
        if o.only.as_ref().is_some_and(|f| !label.contains(f.as_str())) {
            continue;
        }
        let mut samples = vec![Vec::new(); servers.len()];
        let mut cpu = vec![Vec::new(); servers.len()];
        for _ in 0..o.runs {
            for (i, s) in servers.iter().enumerate() {
                let before = cpu_ms(s.child.id(), ticks);
                if let Some(mbs) = run(&pair, s, file, *bytes, opts, *clients) {
                    samples[i].push(mbs);
                    // The forking server's children are never charged to it: no figure.
                    if let (Some(a), Some(b), false) =
                        (before, cpu_ms(s.child.id(), ticks), s.name == "tftpd-hpa")
                    {
                        cpu[i].push(b - a);
                    }
                }
            }
        }
        cpu_rows.push((label.clone(), cpu.iter_mut().map(|v| median(v)).collect()));
        let med: Vec<Option<f64>> = samples.iter_mut().map(|v| median(v)).collect();
        print!("{label:<20}");
        for (m, v) in med.iter().zip(&samples) {
            match m {
                Some(m) if v.len() == o.runs => print!("{m:>15.1}"),
                Some(m) => print!("{:>15}", format!("{m:.1} ({}ok)", v.len())),
                None => print!("{:>15}", "fail"),
            }
        }
        for anchor in &med[1..] {
            match (med[0], anchor) {
                (Some(ours), Some(x)) => print!("{:>11.2}x", ours / x),
                _ => print!("{:>12}", "-"),
            }
        }
        println!();
    }
    println!(
        "\nserver CPU ms per run (user + system, median of the same runs; tftpd-hpa forks a child per transfer that /proc does not charge to it)"
    );
    print!("{:<20}", "row");
    for s in &servers {
        print!("{:>15}", s.name);
    }
    println!("                ours/atftpd ours/dnsmasq");
    for (label, med) in &cpu_rows {
        print!("{label:<20}");
        for m in med {
            match m {
                Some(m) => print!("{m:>15.0}"),
                None => print!("{:>15}", "-"),
            }
        }
        print!("{:>12}", "");
        for anchor in &med[2..] {
            match (med[0], anchor) {
                (Some(ours), Some(x)) if *x > 0.0 => print!("{:>11.2}x", ours / x),
                _ => print!("{:>12}", "-"),
            }
        }
        println!();
    }
    drop(servers);
    drop(pair);
    let _ = std::fs::remove_dir_all(&dir);
}
