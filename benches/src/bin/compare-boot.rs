//! Boot time side by side: QEMU start to the farm's boot marker, with `netbootd` (DHCP, TFTP
//! and NBD from `examples/farm/netboot.toml`) and with the anchor stack (dnsmasq for
//! DHCP + TFTP, nbdkit for NBD), both on the same example farm, in one run.
//!
//! Each boot gets a fresh namespace with a bridge and a tap (see `netboot_testkit::vm`). Runs
//! are interleaved (run 1 of every stack, then run 2, …) so a noisy machine hits all alike.
//! Prints the median seconds per firmware and stack and the anchor ÷ ours speed-up.
//!
//! ```sh
//! cargo build --release -p netboot-bins -p netboot-benches
//! sudo target/release/compare-boot [--runs 3] [--only bios|uefi]
//! ```
//! Needs root and the tools from `scripts/install-tools.sh`. A benchmark, not a test.

use netboot_testkit::vm::{BootLan, Firmware, Vm, build_farm, ovmf_vars_copy};
use netboot_testkit::{Background, Proto, require_tool, workspace_root};
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

const SERVER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const LIMIT: Duration = Duration::from_secs(300);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Stack {
    Ours,
    /// dnsmasq and nbdkit as a stock install runs them.
    Anchor,
    /// The anchor lab's tuned run (IPXE_RA=1 IPXE_NO_PXEDHCP=1): 175.176 = 1, which spares
    /// iPXE its ProxyDHCP wait, and the lab's `ra-sender.py` sending a bare IPv6 router
    /// advertisement every second, which spares it the IPv6 wait.
    AnchorTuned,
}

impl Stack {
    fn name(self) -> &'static str {
        match self {
            Stack::Ours => "netboot",
            Stack::Anchor => "dnsmasq+nbdkit",
            Stack::AnchorTuned => "dnsmasq+nbdkit tuned (175.176=1 + RA)",
        }
    }
}

fn main() {
    let mut runs = 3usize;
    let mut only: Option<String> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--runs" => {
                runs = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| die("--runs N"))
            }
            "--only" => only = args.next(),
            _ => die(&format!("unknown argument {a}")),
        }
    }
    let bin_dir = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| die("cannot find my own directory"));
    for b in ["ltsconf", "netbootd"] {
        if !bin_dir.join(b).exists() {
            die(&format!(
                "{} missing: cargo build --release -p netboot-bins",
                bin_dir.join(b).display()
            ));
        }
    }
    let work = std::env::temp_dir().join(format!("netboot-compare-boot-{}", std::process::id()));
    let farm = work.join("farm");
    build_farm(
        &farm,
        &bin_dir.join("ltsconf"),
        &format!("{SERVER}:10809/root"),
    );
    let expect = std::fs::read_to_string(farm.join("known.sha256")).unwrap_or_default();

    let firmwares: Vec<(Firmware, &str, &str)> = [
        (Firmware::BiosIpxe, "bios", "52:54:00:aa:00:01"),
        (Firmware::Uefi, "uefi", "52:54:00:aa:00:02"),
    ]
    .into_iter()
    .filter(|(_, name, _)| only.as_deref().is_none_or(|o| o == *name))
    .collect();
    let stacks = [Stack::Ours, Stack::Anchor, Stack::AnchorTuned];
    let mut times: Vec<Vec<Vec<f64>>> = vec![vec![Vec::new(); stacks.len()]; firmwares.len()];
    let mut failures = 0;
    for run in 1..=runs {
        for (fi, (fw, fw_name, mac)) in firmwares.iter().enumerate() {
            for (si, stack) in stacks.iter().enumerate() {
                let dir = work.join(format!("{fw_name}-{si}-{run}"));
                std::fs::create_dir_all(&dir).unwrap_or_else(|e| die(&e.to_string()));
                let lan = BootLan::new(fw_name, SERVER);
                let servers = match start(*stack, &lan, &farm, &dir, &bin_dir) {
                    Ok(servers) => servers,
                    Err(e) => {
                        drop(lan);
                        die(&e)
                    }
                };
                let vm = Vm {
                    firmware: *fw,
                    mac: (*mac).to_owned(),
                    memory_mib: 512,
                    ovmf_vars: (*fw == Firmware::Uefi).then(|| ovmf_vars_copy(&dir)),
                };
                let boot = vm.boot(
                    &lan,
                    &dir.join("console.log"),
                    "NETBOOT-OK",
                    "NETBOOT-FAIL",
                    LIMIT,
                );
                drop(servers);
                match boot.marker {
                    Some(m) if m.contains(expect.trim()) => {
                        println!(
                            "run {run} {fw_name:4} {:28} {:6.1} s",
                            stack.name(),
                            boot.seconds
                        );
                        times[fi][si].push(boot.seconds);
                    }
                    other => {
                        failures += 1;
                        println!(
                            "run {run} {fw_name:4} {:28} FAILED after {:.1} s ({other:?}); console in {}",
                            stack.name(),
                            boot.seconds,
                            dir.display()
                        );
                    }
                }
            }
        }
    }
    println!("\nQEMU start to NETBOOT-OK, median of {runs} runs (TCG):");
    println!(
        "{:4}  {:28} {:>8}  {:>22}",
        "fw", "stack", "median", "anchor ÷ netboot"
    );
    for (fi, (_, fw_name, _)) in firmwares.iter().enumerate() {
        let ours = median(&times[fi][0]);
        for (si, stack) in stacks.iter().enumerate() {
            let m = median(&times[fi][si]);
            let ratio = match (si, ours, m) {
                (0, _, _) => String::new(),
                (_, Some(o), Some(a)) => format!("{:.2}x", a / o),
                _ => "n/a".into(),
            };
            let shown = m.map_or("failed".to_owned(), |m| format!("{m:.1} s"));
            println!("{fw_name:4}  {:28} {shown:>8}  {ratio:>22}", stack.name());
        }
    }
    let _ = std::fs::remove_dir_all(&work);
    if failures > 0 {
        println!("{failures} boot(s) failed");
        std::process::exit(1);
    }
}

fn median(v: &[f64]) -> Option<f64> {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied()
}

/// Starts `stack`'s servers on `lan`. Errors are returned, not exited on, so the caller's
/// namespace is still removed on the way out.
fn start(
    stack: Stack,
    lan: &BootLan,
    farm: &Path,
    dir: &Path,
    bin_dir: &Path,
) -> Result<Vec<Background>, String> {
    let root = farm.join("root.sqfs");
    let tftp = farm.join("tftp");
    let procs = match stack {
        Stack::Ours => {
            // The example farm's own netbootd config, pointed at this run's farm and bridge.
            let example =
                std::fs::read_to_string(workspace_root().join("examples/farm/netboot.toml"))
                    .map_err(|e| format!("examples/farm/netboot.toml: {e}"))?;
            let text = example
                .replace("/srv/farm", &farm.display().to_string())
                .replace("\"farm0\"", &format!("\"{}\"", lan.bridge))
                .replace(
                    "/var/lib/netboot/leases.journal",
                    &dir.join("leases.journal").display().to_string(),
                );
            let config = dir.join("netboot.toml");
            std::fs::write(&config, text).map_err(|e| e.to_string())?;
            vec![lan.ns.spawn(
                bin_dir.join("netbootd"),
                [format!("--config={}", config.display())],
            )]
        }
        Stack::Anchor | Stack::AnchorTuned => {
            let mut dnsmasq = vec![
                "--no-daemon".to_owned(),
                "--conf-file=/dev/null".into(),
                "--port=0".into(),
                format!("--interface={}", lan.bridge),
                "--bind-interfaces".into(),
                "--dhcp-range=198.18.0.100,198.18.0.199,255.255.255.0,1h".into(),
                "--dhcp-match=set:efi-x64,option:client-arch,7".into(),
                format!("--dhcp-boot=tag:efi-x64,boot/grub/x86_64-efi/core.efi,,{SERVER}"),
                format!("--dhcp-boot=tag:!efi-x64,boot/grub/i386-pc/core.0,,{SERVER}"),
                "--enable-tftp".into(),
                format!("--tftp-root={}", tftp.display()),
                "--no-ping".into(),
                format!("--dhcp-leasefile={}", dir.join("dnsmasq.leases").display()),
            ];
            let mut procs = Vec::new();
            if stack == Stack::AnchorTuned {
                dnsmasq.push("--dhcp-option=encap:175,176,1b".into());
                let sender = workspace_root().join("../shared/e2e-anchor/ra-sender.py");
                if !sender.exists() {
                    return Err(format!(
                        "{} missing: the tuned anchor uses the anchor lab's RA sender",
                        sender.display()
                    ));
                }
                procs.push(lan.ns.spawn(
                    "/usr/bin/python3",
                    [
                        sender.display().to_string(),
                        lan.bridge.clone(),
                        "--seconds".into(),
                        "600".into(),
                    ],
                ));
            }
            procs.extend([
                lan.ns.spawn(
                    require_tool("nbdkit"),
                    [
                        "-f".to_owned(),
                        "-r".into(),
                        "-i".into(),
                        SERVER.to_string(),
                        "-p".into(),
                        "10809".into(),
                        "file".into(),
                        format!("file={}", root.display()),
                    ],
                ),
                lan.ns.spawn(require_tool("dnsmasq"), dnsmasq),
            ]);
            procs
        }
    };
    for (proto, port) in [(Proto::Tcp, 10809), (Proto::Udp, 69), (Proto::Udp, 67)] {
        if let Err(e) = lan.ns.wait_for_port(proto, port, Duration::from_secs(20)) {
            return Err(format!("{}: {e}", stack.name()));
        }
    }
    Ok(procs)
}

fn die(msg: &str) -> ! {
    eprintln!("compare-boot: {msg}");
    std::process::exit(2);
}
