//! compare-dhcp: netboot-dhcpd (durable journal, fsync) against kea-dhcp4 (memfile,
//! persist on, multi-threaded) and dnsmasq (`--no-ping`, lease file on), driven by perfdhcp
//! from a second network namespace, in one run. Not a test: it prints numbers. A last row
//! runs ours with `durability = "none"` to show what the fsync before each ACK costs (Kea's
//! memfile appends without fsync).
//!
//! For each server and each of `--runs` rounds (fresh server and lease file each round) it
//! climbs a ladder of offered rates, `--secs` seconds each, and keeps the highest step whose
//! DORA completed with < 0.1 % drops; it prints the achieved rate and the DO+RA latency at
//! that step, the median over rounds, and ratios to ours.
//!
//! ```sh
//! cargo build --release -p netboot-bins -p netboot-benches
//! sudo target/release/compare-dhcp [--dhcpd target/release/netboot-dhcpd] [--runs 3] [--secs 2] [--no-pin]
//! ```
//! By default the server runs on CPU 1 and perfdhcp on CPU 0 (taskset), so neither steals
//! the other's core and each server is measured within one core; `--no-pin` lets both float.
//! perfdhcp's own CPU is reported too: at about one core it is the ceiling.
//!
//! Needs root (namespaces), perfdhcp and kea-dhcp4 (Debian kea-admin, kea-dhcp4-server) and
//! dnsmasq (scripts/install-tools.sh installs them).

use std::net::{Ipv4Addr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const NS_SERVER: &str = "cmpdhcp-srv";
const NS_CLIENT: &str = "cmpdhcp-cli";
const IF_SERVER: &str = "cmpdhcps";
const IF_CLIENT: &str = "cmpdhcpc";
const SERVER: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 1);
const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 2);
/// Offered rates, ~1.4x apart above 4,000: nine steps keep the default run (4 servers,
/// 3 rounds, 2 s steps) under 4 minutes even when every step passes.
const LADDER: &[u32] = &[
    500, 1_000, 2_000, 4_000, 7_000, 10_000, 14_000, 20_000, 28_000,
];

struct Opts {
    dhcpd: PathBuf,
    runs: usize,
    secs: u32,
    only: Option<String>,
    /// Pin the server to CPU 1 and perfdhcp to CPU 0 (`--no-pin`: both float over every CPU).
    pin: bool,
}

fn opts() -> Opts {
    let mut o = Opts {
        dhcpd: std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(|d| d.join("netboot-dhcpd")))
            .unwrap_or_else(|| PathBuf::from("netboot-dhcpd")),
        runs: 3,
        secs: 2,
        only: None,
        pin: true,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().unwrap_or_else(|| panic!("{a} needs a value"));
        match a.as_str() {
            "--dhcpd" => o.dhcpd = PathBuf::from(val()),
            "--runs" => o.runs = val().parse().expect("--runs N"),
            "--secs" => o.secs = val().parse().expect("--secs N"),
            "--only" => o.only = Some(val()),
            "--no-pin" => o.pin = false,
            _ => panic!(
                "usage: compare-dhcp [--dhcpd PATH] [--runs N] [--secs N] [--only NAME] [--no-pin]"
            ),
        }
    }
    o
}

fn sh(args: &[&str]) {
    let st = Command::new("ip").args(args).status().expect("run ip");
    assert!(st.success(), "ip {} failed", args.join(" "));
}

fn netns_down() {
    for ns in [NS_SERVER, NS_CLIENT] {
        let _ = Command::new("ip")
            .args(["netns", "delete", ns])
            .stderr(Stdio::null())
            .status();
    }
}

fn netns_up() {
    netns_down();
    sh(&["netns", "add", NS_SERVER]);
    sh(&["netns", "add", NS_CLIENT]);
    sh(&[
        "link", "add", IF_SERVER, "netns", NS_SERVER, "type", "veth", "peer", "name", IF_CLIENT,
        "netns", NS_CLIENT,
    ]);
    for (ns, ifname, addr) in [
        (NS_SERVER, IF_SERVER, SERVER),
        (NS_CLIENT, IF_CLIENT, CLIENT),
    ] {
        sh(&["-n", ns, "link", "set", "lo", "up"]);
        sh(&[
            "-n",
            ns,
            "addr",
            "add",
            &format!("{addr}/16"),
            "dev",
            ifname,
        ]);
        sh(&["-n", ns, "link", "set", ifname, "up"]);
    }
}

struct Guard;
impl Drop for Guard {
    fn drop(&mut self) {
        netns_down();
    }
}

#[derive(Clone, Copy)]
enum Peer {
    Ours,
    /// Ours with `durability = "none"`: what the fsync costs (not a fair match for Kea,
    /// which is run with persistence on).
    OursNoSync,
    Kea,
    Dnsmasq,
}

impl Peer {
    fn name(self) -> &'static str {
        match self {
            Peer::Ours => "netboot-dhcpd",
            Peer::OursNoSync => "dhcpd-nosync",
            Peer::Kea => "kea-dhcp4",
            Peer::Dnsmasq => "dnsmasq",
        }
    }

    fn start(self, o: &Opts, dir: &Path) -> Child {
        let log = std::fs::File::create(dir.join("server.log")).expect("log file");
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", NS_SERVER]);
        if o.pin {
            // taskset execs the server, so the child's pid stays the server's.
            cmd.args(["taskset", "-c", "1"]);
        }
        match self {
            Peer::Ours | Peer::OursNoSync => {
                let durability = if matches!(self, Peer::Ours) {
                    "fsync"
                } else {
                    "none"
                };
                let cfg = dir.join("dhcpd.toml");
                std::fs::write(
                    &cfg,
                    format!(
                        "[server]\ninterfaces = [\"{IF_SERVER}\"]\nlease_file = \"{}\"\ndurability = \"{durability}\"\n\
                         [boot]\ndefault = \"core.0\"\n[[subnet]]\nnetwork = \"198.19.0.0/16\"\n\
                         range = [\"198.19.1.0\", \"198.19.255.250\"]\nrouters = [\"{SERVER}\"]\nlease_time = 3600\n",
                        dir.join("leases.journal").display()
                    ),
                )
                .unwrap();
                cmd.arg(&o.dhcpd).arg("-c").arg(cfg).env("RUST_LOG", "warn");
            }
            Peer::Kea => {
                let cfg = dir.join("kea.json");
                std::fs::write(
                    &cfg,
                    format!(
                        r#"{{"Dhcp4": {{
  "interfaces-config": {{ "interfaces": ["{IF_SERVER}"], "dhcp-socket-type": "udp" }},
  "lease-database": {{ "type": "memfile", "persist": true, "name": "{}", "lfc-interval": 3600 }},
  "multi-threading": {{ "enable-multi-threading": true, "thread-pool-size": 2, "packet-queue-size": 64 }},
  "valid-lifetime": 3600,
  "subnet4": [{{ "subnet": "198.19.0.0/16", "id": 1,
    "pools": [{{ "pool": "198.19.1.0 - 198.19.255.250" }}],
    "option-data": [{{ "name": "routers", "data": "{SERVER}" }}],
    "boot-file-name": "core.0" }}],
  "loggers": [{{ "name": "kea-dhcp4", "severity": "WARN", "output_options": [{{ "output": "stdout" }}] }}]
}}}}"#,
                        dir.join("kea-leases4.csv").display()
                    ),
                )
                .unwrap();
                cmd.arg("kea-dhcp4")
                    .arg("-c")
                    .arg(cfg)
                    .env("KEA_PIDFILE_DIR", dir)
                    .env("KEA_LOCKFILE_DIR", dir);
            }
            Peer::Dnsmasq => {
                cmd.arg("dnsmasq").args([
                    "--no-daemon",
                    "--port=0",
                    "--no-ping",
                    "--bind-interfaces",
                    &format!("--interface={IF_SERVER}"),
                    "--dhcp-range=198.19.1.0,198.19.255.250,255.255.0.0,1h",
                    "--dhcp-lease-max=1000000",
                    "--dhcp-boot=core.0",
                    "--quiet-dhcp",
                    &format!("--dhcp-leasefile={}", dir.join("dnsmasq.leases").display()),
                    &format!("--pid-file={}", dir.join("dnsmasq.pid").display()),
                ]);
            }
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", self.name()));
        wait_bound();
        child
    }
}

/// Waits until something in the server namespace holds UDP port 67.
fn wait_bound() {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = Command::new("ip")
            .args(["netns", "exec", NS_SERVER, "ss", "-Hlnu", "sport = :67"])
            .output()
            .expect("ss");
        if !out.stdout.trim_ascii().is_empty() {
            // A little extra: Kea opens its sockets before it is ready to answer.
            std::thread::sleep(Duration::from_millis(300));
            return;
        }
        assert!(Instant::now() < deadline, "server did not bind port 67");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn stop(mut child: Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[derive(Debug, Clone, Copy, Default)]
struct Step {
    offered: u32,
    rate: f64,
    drop_ratio: f64,
    latency_ms: f64,
    /// ACKs received (completed DORAs) in this step.
    acks: f64,
    /// Server CPU time per completed DORA over the whole round, microseconds.
    cpu_us: f64,
    /// perfdhcp's CPU in this step, in cores (CPU seconds per second of its run).
    client_cores: f64,
    /// perfdhcp's CPU per completed DORA in this step, microseconds.
    client_us: f64,
}

fn perfdhcp(rate: u32, o: &Opts) -> Option<Step> {
    let secs = o.secs;
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", NS_CLIENT]);
    if o.pin {
        cmd.args(["taskset", "-c", "0"]);
    }
    // /usr/bin/time reports perfdhcp's own CPU: when it nears one core (CPU seconds per
    // second of its whole run, -W wait included), the client is the ceiling, not the server.
    let started = Instant::now();
    let out = cmd
        .args(["/usr/bin/time", "-f", "CLIENT-CPU %U %S"])
        .args(["perfdhcp", "-4", "-l"])
        .arg(CLIENT.to_string())
        // -W: wait 0.5 s after the run for answers still in flight, so they are not counted
        // as drops (the same for every server); the rate is then ACKs / run time, below.
        // -R: 50,000 distinct clients, fewer than the 65,000 pool addresses. With more
        // (perfdhcp's random MACs out of a million), the ladder's cumulative new clients fill
        // the pool after ~65,000 DORAs and every server then drops everything new: that, not
        // the servers, was the old "ceiling". Repeat clients get their address again (a
        // full DORA each, durable for ours, like a farm rebooting).
        .args(["-r", &rate.to_string(), "-R", "50000", "-W", "500000"])
        .args(["-p", &secs.to_string()])
        .arg(SERVER.to_string())
        .output()
        .ok()?;
    let wall = started.elapsed().as_secs_f64().max(f64::from(secs));
    let client_cpu: f64 = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter_map(|l| l.strip_prefix("CLIENT-CPU "))
        .flat_map(|l| l.split_whitespace().filter_map(|v| v.parse::<f64>().ok()))
        .sum();
    let text = String::from_utf8_lossy(&out.stdout);
    let nums = |key: &str| -> Vec<f64> {
        text.lines()
            .filter_map(|l| l.trim().strip_prefix(key))
            .filter_map(|v| v.split_whitespace().next()?.parse().ok())
            .collect()
    };
    let (sent, recv, avg) = (
        nums("sent packets:"),
        nums("received packets:"),
        nums("avg delay:"),
    );
    if sent.len() < 2 || recv.len() < 2 {
        return None;
    }
    let total: f64 = sent.iter().sum();
    let got: f64 = recv.iter().sum();
    Some(Step {
        offered: rate,
        rate: recv[1] / f64::from(secs),
        drop_ratio: if total > 0.0 { 1.0 - got / total } else { 1.0 },
        latency_ms: avg.iter().take(2).sum(),
        acks: recv[1],
        cpu_us: 0.0,
        client_cores: client_cpu / wall,
        client_us: client_cpu * 1e6 / recv[1].max(1.0),
    })
}

/// One round: the highest ladder step with < 0.1 % drops.
fn round(peer: Peer, o: &Opts, round: usize) -> Step {
    let dir = std::env::temp_dir().join(format!(
        "compare-dhcp-{}-{}-{round}",
        peer.name(),
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let child = peer.start(o, &dir);
    let mut best = Step::default();
    let mut acks = 0.0;
    for &rate in LADDER {
        let Some(step) = perfdhcp(rate, o) else {
            break;
        };
        acks += step.acks;
        eprintln!(
            "  {} round {round}: offered {rate:>6}/s achieved {:>9.1}/s drops {:>6.3} % latency {:.2} ms perfdhcp {:.2} cores, {:.0} us/DORA",
            peer.name(),
            step.rate,
            step.drop_ratio * 100.0,
            step.latency_ms,
            step.client_cores,
            step.client_us
        );
        // Clean: under 0.1 % drops and perfdhcp actually reached most of the offered rate.
        if step.drop_ratio >= 0.001 || step.rate < 0.9 * f64::from(rate) {
            break;
        }
        best = step;
    }
    // `ip netns exec` execs the server, so the child's pid is the server's.
    best.cpu_us = cpu_seconds(child.id()) * 1e6 / acks.max(1.0);
    stop(child);
    let _ = std::fs::remove_dir_all(&dir);
    best
}

/// User + system CPU of a process (all its threads), from /proc/PID/stat.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the ")" that closes the command name: utime is the 12th, stime the 13th.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|v| v.parse().ok())
        .collect();
    // Clock ticks; Linux reports USER_HZ = 100 to user space.
    f.iter().sum::<f64>() / 100.0
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn main() {
    let o = opts();
    // Fail early and clearly on what is missing.
    for tool in [
        "perfdhcp",
        "kea-dhcp4",
        "dnsmasq",
        "ip",
        "ss",
        "taskset",
        "/usr/bin/time",
    ] {
        let found = Command::new("sh")
            .args([
                "-c",
                &format!("command -v {tool} || test -x /usr/sbin/{tool}"),
            ])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            found,
            "{tool} not found: run `sudo scripts/install-tools.sh`"
        );
    }
    assert!(
        o.dhcpd.exists(),
        "{} missing: cargo build --release -p netboot-bins",
        o.dhcpd.display()
    );
    // Port 67 must be free in the fresh namespace; this also checks that we may bind it.
    drop(UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)));
    netns_up();
    let _guard = Guard;
    let peers = [Peer::Ours, Peer::Kea, Peer::Dnsmasq, Peer::OursNoSync];
    let mut results = Vec::new();
    for peer in peers {
        if o.only.as_deref().is_some_and(|n| n != peer.name()) {
            continue;
        }
        let rounds: Vec<Step> = (1..=o.runs).map(|r| round(peer, &o, r)).collect();
        let rate = median(rounds.iter().map(|s| s.rate).collect());
        let lat = median(rounds.iter().map(|s| s.latency_ms).collect());
        let offered = median(rounds.iter().map(|s| f64::from(s.offered)).collect());
        let cpu = median(rounds.iter().map(|s| s.cpu_us).collect());
        let client = median(rounds.iter().map(|s| s.client_cores).collect());
        results.push((peer, rate, lat, offered, cpu, client));
    }
    println!(
        "\nDORA/s with < 0.1 % drops (perfdhcp relayed, {} s steps, median of {} rounds, {})",
        o.secs,
        o.runs,
        if o.pin {
            "server pinned to CPU 1, perfdhcp to CPU 0"
        } else {
            "unpinned"
        }
    );
    println!(
        "{:<15} {:>10} {:>9} {:>14} {:>12} {:>14} {:>12} {:>15}",
        "server",
        "offered/s",
        "DORA/s",
        "DO+RA latency",
        "rate ratio",
        "CPU us/DORA",
        "CPU ratio",
        "perfdhcp cores"
    );
    let ours = results
        .iter()
        .find(|r| matches!(r.0, Peer::Ours))
        .map(|r| (r.1, r.4));
    for (peer, rate, lat, offered, cpu, client) in &results {
        let ratio = match ours {
            Some((o, _)) if *rate > 0.0 => format!("{:.2}x", o / rate),
            _ => "-".into(),
        };
        // Their CPU per DORA over ours: > 1 means we need less.
        let cpu_ratio = match ours {
            Some((_, oc)) if oc > 0.0 => format!("{:.2}x", cpu / oc),
            _ => "-".into(),
        };
        println!(
            "{:<15} {:>10.0} {:>9.0} {:>11.2} ms {:>12} {:>14.1} {:>12} {:>15.2}",
            peer.name(),
            offered,
            rate,
            lat,
            ratio,
            cpu,
            cpu_ratio,
            client
        );
    }
    println!(
        "rate ratio = ours / theirs (DORA/s); CPU ratio = theirs / ours (server CPU per completed DORA over the whole ladder);\n\
         perfdhcp cores = the client's CPU at the best step (near 1.0: perfdhcp, not the server, is the ceiling)"
    );
}
