//! Boot storm: N simulated nodes power on at once and boot the way firmware and an LTSP
//! initramfs do (DHCP with architecture and iPXE options, TFTP of the boot file, kernel and
//! initramfs with OVMF's option sequence, then NBD_TO_RAM: the whole root image read over
//! NBD), against `netbootd` and against dnsmasq (DHCP + TFTP) with nbdkit, in one run.
//!
//! The nodes are threads of this process, spread over a few rack namespaces joined to the
//! servers' bridge; each has its own MAC and, once leased, its own address. Their packets are
//! built and parsed with our own wire crates (netboot-dhcp, netboot-tftp, netboot-nbd) and
//! every byte they receive is compared with the file it should be. See `storm/node.rs` for
//! exactly what a node sends.
//!
//! Reports, per stack: the time from power-on until all N nodes have their image in RAM
//! (median over runs; only runs where every node booted count), the per-phase p50/p99 over
//! all nodes of all runs, retransmissions, failures and the servers' CPU seconds; then the
//! ratio anchor ÷ ours. Runs alternate the order of the stacks (ABBA) so drift on a shared
//! machine hits both alike. A benchmark, not a test.
//!
//! ```sh
//! cargo build --release -p netboot-bins --bin netbootd -p netboot-benches --bin compare-storm
//! sudo target/release/compare-storm [--nodes 100] [--runs 3] [--racks 4] [--farm DIR]
//!                                   [--kernel-mib 8] [--initrd-mib 30] [--image-mib 64]
//!                                   [--only ours|anchor] [--limit-secs 240] [--keep]
//!                                   [--loss PERCENT]
//! ```
//! Needs root (namespaces) and dnsmasq and nbdkit (`scripts/install-tools.sh`). Ctrl-C stops
//! the nodes, the servers and removes every namespace and temp file; `--keep` keeps the temp
//! directory (payload, configs, leases, server logs) for a look afterwards. `--loss P` drops
//! P % of the DHCP answers and TFTP datagrams (both ways) inside the nodes, a lossy LAN
//! without netem, so both stacks' retransmission timers are part of the race.

#[path = "../storm/mod.rs"]
mod storm;

use netboot_testkit::{Scratch, require_root};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use storm::lab::{Lab, MAX_NODES};
use storm::node::{self, Outcome, Payload, STOP, Spec};
use storm::servers::{self, Farm, Stack};

struct Opts {
    nodes: usize,
    runs: usize,
    racks: usize,
    farm: Option<PathBuf>,
    kernel_mib: usize,
    initrd_mib: usize,
    image_mib: usize,
    only: Option<Stack>,
    limit: Duration,
    keep: bool,
    loss_ppm: u32,
}

fn parse_args() -> Opts {
    let mut o = Opts {
        nodes: 100,
        runs: 3,
        racks: 4,
        farm: None,
        kernel_mib: 8,
        initrd_mib: 30,
        image_mib: 64,
        only: None,
        limit: Duration::from_secs(240),
        keep: false,
        loss_ppm: 0,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || {
            args.next()
                .unwrap_or_else(|| die(&format!("{a} needs a value")))
        };
        let num = |v: String| -> usize {
            v.parse()
                .unwrap_or_else(|_| die(&format!("{a}: not a number: {v}")))
        };
        match a.as_str() {
            "--nodes" => o.nodes = num(val()),
            "--runs" => o.runs = num(val()),
            "--racks" => o.racks = num(val()),
            "--farm" => o.farm = Some(PathBuf::from(val())),
            "--kernel-mib" => o.kernel_mib = num(val()),
            "--initrd-mib" => o.initrd_mib = num(val()),
            "--image-mib" => o.image_mib = num(val()),
            "--keep" => o.keep = true,
            "--loss" => {
                let v = val();
                let pct: f64 = v
                    .parse()
                    .ok()
                    .filter(|p| (0.0..=50.0).contains(p))
                    .unwrap_or_else(|| die(&format!("--loss PERCENT (0..=50), not {v}")));
                o.loss_ppm = (pct * 10_000.0).round() as u32;
            }
            "--limit-secs" => o.limit = Duration::from_secs(num(val()) as u64),
            "--only" => {
                o.only = Some(match val().as_str() {
                    "ours" => Stack::Ours,
                    "anchor" => Stack::Anchor,
                    other => die(&format!("--only ours|anchor, not {other}")),
                })
            }
            "-h" | "--help" => {
                println!(
                    "compare-storm [--nodes N] [--runs N] [--racks N] [--farm DIR] \
                     [--kernel-mib N] [--initrd-mib N] [--image-mib N] [--only ours|anchor] \
                     [--limit-secs N] [--keep] [--loss PERCENT]"
                );
                std::process::exit(0);
            }
            _ => die(&format!("unknown argument {a}")),
        }
    }
    if o.nodes == 0 || o.nodes > MAX_NODES {
        die(&format!("--nodes must be 1..={MAX_NODES}"));
    }
    if o.racks == 0 || o.racks > 64 || o.runs == 0 || o.runs > 20 {
        die("--racks must be 1..=64 and --runs 1..=20");
    }
    o
}

fn die(msg: &str) -> ! {
    eprintln!("compare-storm: {msg}");
    std::process::exit(2);
}

/// Turns SIGINT and SIGTERM into [`STOP`], so the nodes give up and every guard (servers,
/// namespaces, temp files) is dropped on the normal way out. Registered before anything is
/// created.
fn watch_signals() {
    use tokio::signal::unix::{SignalKind, signal};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| die(&format!("signal runtime: {e}")));
    let (mut int, mut term) = {
        let _enter = rt.enter();
        let int = signal(SignalKind::interrupt());
        let term = signal(SignalKind::terminate());
        match (int, term) {
            (Ok(i), Ok(t)) => (i, t),
            _ => die("cannot install signal handlers"),
        }
    };
    std::thread::spawn(move || {
        rt.block_on(async {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
        });
        eprintln!("compare-storm: stopping, cleaning up");
        STOP.store(true, Ordering::Relaxed);
    });
}

/// Random bytes (xorshift; incompressible enough for transfers that never compress).
fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

/// The payload in memory (what nodes compare against) and on disk (what servers serve):
/// the farm's files with `--farm`, else synthetic files in the farm's layout under `work`.
fn payload(o: &Opts, work: &Path) -> Result<(Payload, Farm), String> {
    let names = [node::CORE_BIOS, node::CORE_EFI, node::KERNEL, node::INITRD];
    let (tftp_root, image_path) = match &o.farm {
        Some(dir) => (dir.join("tftp"), dir.join("root.sqfs")),
        None => {
            let root = work.join("tftp");
            let mib = 1024 * 1024;
            // GRUB's core images are tens to hundreds of KiB.
            let sizes = [
                40 * 1024,
                256 * 1024,
                o.kernel_mib * mib,
                o.initrd_mib * mib,
            ];
            for (i, (name, size)) in names.iter().zip(sizes).enumerate() {
                let path = root.join(name);
                path.parent()
                    .map_or(Ok(()), std::fs::create_dir_all)
                    .and_then(|()| std::fs::write(&path, random_bytes(size, 0x9e37 + i as u64)))
                    .map_err(io_err(&path))?;
            }
            let image = work.join("root.img");
            std::fs::write(&image, random_bytes(o.image_mib * mib, 0x51ed))
                .map_err(io_err(&image))?;
            (root, image)
        }
    };
    let read = |p: &Path| std::fs::read(p).map_err(io_err(p));
    let mut tftp = HashMap::new();
    for n in names {
        tftp.insert(n.to_owned(), read(&tftp_root.join(n))?);
    }
    let image = read(&image_path)?;
    Ok((
        Payload { tftp, image },
        Farm {
            tftp: tftp_root,
            image: image_path,
        },
    ))
}

/// Names the file in an I/O error.
fn io_err(p: &Path) -> impl Fn(std::io::Error) -> String + '_ {
    move |e| format!("{}: {e}", p.display())
}

/// The nodes of one storm: half UEFI (arch 7), half BIOS (arch 0), dealt over the racks.
fn specs(lab: &Lab, nodes: usize, loss_ppm: u32) -> Vec<Spec> {
    (0..nodes)
        .map(|i| {
            let rack = &lab.racks[i % lab.racks.len()];
            Spec {
                index: i,
                // Locally administered, unique per node.
                mac: [0x52, 0x54, 0x00, 0x5e, (i >> 8) as u8, i as u8],
                arch: if i % 2 == 0 { 7 } else { 0 },
                ns_path: rack.ns_path(),
                ifname: rack.ifname.clone(),
                loss_ppm,
            }
        })
        .collect()
}

/// One storm against one stack.
struct Run {
    outcomes: Vec<Outcome>,
    /// Power-on until the last node finished (booted or failed).
    wall: Duration,
    server_cpu: f64,
    /// CPU seconds the nodes (this process) used: the load generator shares the machine.
    client_cpu: f64,
}

impl Run {
    fn failures(&self) -> usize {
        self.outcomes.iter().filter(|o| o.error.is_some()).count()
    }
    /// DHCP and TFTP retransmissions.
    fn retries(&self) -> (u32, u32) {
        self.outcomes
            .iter()
            .fold((0, 0), |(d, t), o| (d + o.dhcp_retries, t + o.tftp_retries))
    }
}

#[allow(clippy::too_many_arguments)]
fn run_once(
    stack: Stack,
    o: &Opts,
    farm: &Farm,
    payload: &Arc<Payload>,
    work: &Path,
    bin_dir: &Path,
    tag: &str,
) -> Result<Run, String> {
    let dir = work.join(tag);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let lab = Lab::new(o.racks);
    let procs = servers::start(stack, &lab, farm, &dir, bin_dir, o.nodes)?;
    let cpu = |procs: &[servers::Proc]| procs.iter().map(|p| p.cpu_seconds()).sum::<f64>();
    let (cpu0, me0) = (cpu(&procs), servers::cpu_seconds("self"));
    let (outcomes, wall) = node::storm(&specs(&lab, o.nodes, o.loss_ppm), payload, o.limit);
    let server_cpu = cpu(&procs) - cpu0;
    let client_cpu = servers::cpu_seconds("self") - me0;
    drop(procs);
    drop(lab);
    Ok(Run {
        outcomes,
        wall,
        server_cpu,
        client_cpu,
    })
}

/// Nearest-rank percentile of `v` (seconds).
fn pct(v: &mut [f64], q: f64) -> Option<f64> {
    v.sort_by(f64::total_cmp);
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len().max(1));
    v.get(rank - 1).copied()
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    pct(&mut v, 0.5)
}

fn main() {
    let o = parse_args();
    require_root();
    watch_signals();
    let bin_dir = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| die("cannot find my own directory"));
    let stacks: Vec<Stack> = [Stack::Ours, Stack::Anchor]
        .into_iter()
        .filter(|s| o.only.is_none_or(|x| x == *s))
        .collect();
    if stacks.contains(&Stack::Ours) && !bin_dir.join("netbootd").exists() {
        die(&format!(
            "{} missing: cargo build --release -p netboot-bins --bin netbootd",
            bin_dir.join("netbootd").display()
        ));
    }
    let scratch = Scratch::new("storm");
    let (payload, farm) = match payload(&o, &scratch.0) {
        Ok(p) => p,
        Err(e) => {
            drop(scratch);
            die(&e)
        }
    };
    let payload = Arc::new(payload);
    println!(
        "boot storm: {} nodes in {} racks; kernel {:.1} MiB, initramfs {:.1} MiB, image {:.1} MiB; \
         simulated loss {:.2} %",
        o.nodes,
        o.racks,
        payload.tftp[node::KERNEL].len() as f64 / 1048576.0,
        payload.tftp[node::INITRD].len() as f64 / 1048576.0,
        payload.image.len() as f64 / 1048576.0,
        f64::from(o.loss_ppm) / 10_000.0,
    );

    let mut runs: Vec<Vec<Run>> = stacks.iter().map(|_| Vec::new()).collect();
    'runs: for r in 1..=o.runs {
        let mut order: Vec<usize> = (0..stacks.len()).collect();
        if r % 2 == 0 {
            order.reverse();
        }
        for si in order {
            if STOP.load(Ordering::Relaxed) {
                break 'runs;
            }
            let stack = stacks[si];
            let tag = format!("run{r}-{}", stack.name().replace('+', "-"));
            let run = match run_once(stack, &o, &farm, &payload, &scratch.0, &bin_dir, &tag) {
                Ok(run) => run,
                Err(e) => {
                    eprintln!("compare-storm: {e}");
                    drop(scratch);
                    std::process::exit(2);
                }
            };
            println!(
                "run {r} {:15} {:3}/{} booted in {:6.1} s, retries dhcp/tftp {}/{}, server CPU {:.1} s, nodes CPU {:.1} s",
                stack.name(),
                o.nodes - run.failures(),
                o.nodes,
                run.wall.as_secs_f64(),
                run.retries().0,
                run.retries().1,
                run.server_cpu,
                run.client_cpu,
            );
            for (i, e) in run
                .outcomes
                .iter()
                .filter_map(|x| x.error.as_ref())
                .enumerate()
            {
                if i == 5 {
                    println!("    … and {} more", run.failures() - 5);
                    break;
                }
                println!("    {e}");
            }
            runs[si].push(run);
        }
    }
    if STOP.load(Ordering::Relaxed) {
        drop(scratch);
        std::process::exit(130);
    }

    println!(
        "\n{:15} {:>7} {:>12} {:>17} {:>17} {:>17} {:>8} {:>8} {:>8}",
        "stack",
        "booted",
        "all booted",
        "dhcp p50/p99",
        "tftp p50/p99",
        "nbd p50/p99",
        "retr d/t",
        "failed",
        "srv CPU"
    );
    let mut alls: Vec<Option<f64>> = Vec::new();
    for (si, stack) in stacks.iter().enumerate() {
        let rs = &runs[si];
        let ok: Vec<&Outcome> = rs
            .iter()
            .flat_map(|r| &r.outcomes)
            .filter(|x| x.error.is_none())
            .collect();
        let phase = |f: fn(&Outcome) -> Duration| {
            let mut v: Vec<f64> = ok.iter().map(|x| f(x).as_secs_f64()).collect();
            match (pct(&mut v, 0.5), pct(&mut v, 0.99)) {
                (Some(a), Some(b)) => format!("{a:.2}/{b:.2} s"),
                _ => "-".into(),
            }
        };
        let all = median(
            rs.iter()
                .filter(|r| r.failures() == 0)
                .map(|r| r.wall.as_secs_f64())
                .collect(),
        );
        alls.push(all);
        let failed: usize = rs.iter().map(Run::failures).sum();
        println!(
            "{:15} {:>7} {:>12} {:>17} {:>17} {:>17} {:>8} {:>8} {:>8}",
            stack.name(),
            format!("{}/{}", ok.len(), rs.len() * o.nodes),
            all.map_or("-".to_owned(), |a| format!("{a:.1} s")),
            phase(|x| x.dhcp),
            phase(|x| x.tftp),
            phase(|x| x.nbd),
            {
                let (d, t) = rs
                    .iter()
                    .map(Run::retries)
                    .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
                format!("{d}/{t}")
            },
            failed,
            median(rs.iter().map(|r| r.server_cpu).collect())
                .map_or("-".to_owned(), |c| format!("{c:.1} s")),
        );
    }
    println!(
        "(all booted: median over {} run(s) of power-on until every node has its image in RAM, \
         runs with a failure excluded; phases over all nodes of all runs; srv CPU: median per run)",
        o.runs
    );
    if let [Some(ours), Some(anchor)] = alls[..] {
        println!("anchor ÷ ours (all booted): {:.2}x", anchor / ours);
    }
    let failed: usize = runs.iter().flatten().map(Run::failures).sum();
    if o.keep {
        println!(
            "configs, leases and server logs kept in {}",
            scratch.0.display()
        );
        std::mem::forget(scratch);
    } else {
        drop(scratch);
    }
    if failed > 0 {
        std::process::exit(1);
    }
}
