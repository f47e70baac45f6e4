//! The two stacks the storm runs against, started in the lab's server namespace:
//! `netbootd` with the example farm's config (pointed at this run's files, bridge and a /22
//! pool), and dnsmasq (DHCP + TFTP) with nbdkit (file plugin, read-only) as an admin would
//! run them for the same farm.
//!
//! Settings that are not the example's or the packages' defaults, and why: both stacks get
//! the same TFTP session cap, two per node (dnsmasq's default of 50 is below what 100 OVMF
//! nodes hold at once, 140 concurrent transfers were seen; netbootd's default is 1024); dnsmasq runs
//! `--no-ping` (else up to 3 s per offer) and `--bind-dynamic` (with `--bind-interfaces` it
//! logged a two-line warning about 3,900 times in a 4-node storm and ran 2x slower).

use super::lab::{Lab, POOL, PREFIX, SERVER};
use super::node::NBD_PORT;
use netboot_testkit::{Proto, require_tool};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Which stack serves the storm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stack {
    /// netbootd.
    Ours,
    /// dnsmasq + nbdkit.
    Anchor,
}

impl Stack {
    /// Its name in the table.
    pub fn name(self) -> &'static str {
        match self {
            Stack::Ours => "netbootd",
            Stack::Anchor => "dnsmasq+nbdkit",
        }
    }
}

/// A server process (in its own process group), killed with its group when dropped. Its
/// output goes to a log file, so nobody has to read a pipe for it to make progress.
#[derive(Debug)]
pub struct Proc {
    child: Child,
    /// Where its output went.
    pub log: PathBuf,
}

impl Proc {
    fn spawn(mut cmd: Command, log: PathBuf) -> Result<Proc, String> {
        let file = std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let err = file.try_clone().map_err(|e| e.to_string())?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(err)
            .process_group(0)
            .spawn()
            .map_err(|e| format!("cannot start {cmd:?}: {e}"))?;
        Ok(Proc { child, log })
    }

    /// User + system CPU seconds so far (`ip netns exec` execs the server, so the pid is
    /// the server's own).
    pub fn cpu_seconds(&self) -> f64 {
        cpu_seconds(&self.child.id().to_string())
    }

    /// Whether it has exited.
    fn exited(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let pid = rustix::process::Pid::from_child(&self.child);
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where the farm's files are for the servers.
#[derive(Debug)]
pub struct Farm {
    /// The TFTP root.
    pub tftp: PathBuf,
    /// The NBD image.
    pub image: PathBuf,
}

/// Starts `stack` in the lab's server namespace and waits until DHCP, TFTP and NBD listen.
/// `dir` takes the configs, leases and logs; `bin_dir` holds netbootd.
pub fn start(
    stack: Stack,
    lab: &Lab,
    farm: &Farm,
    dir: &Path,
    bin_dir: &Path,
    nodes: usize,
) -> Result<Vec<Proc>, String> {
    let ns = &lab.server;
    let mut procs = match stack {
        Stack::Ours => {
            let config = dir.join("netboot.toml");
            std::fs::write(&config, ours_config(lab, farm, dir, nodes)?)
                .map_err(|e| e.to_string())?;
            let mut cmd = ns.command(bin_dir.join("netbootd"));
            cmd.arg(format!("--config={}", config.display()));
            vec![Proc::spawn(cmd, dir.join("netbootd.log"))?]
        }
        Stack::Anchor => {
            let mut nbdkit = ns.command(require_tool("nbdkit"));
            nbdkit.args(["-f", "-r", "-i"]).arg(SERVER.to_string());
            nbdkit.args(["-p", &NBD_PORT.to_string(), "file"]);
            nbdkit.arg(format!("file={}", farm.image.display()));
            let mask = prefix_mask(PREFIX);
            let mut dnsmasq = ns.command(require_tool("dnsmasq"));
            dnsmasq.args([
                "--no-daemon".to_owned(),
                "--conf-file=/dev/null".into(),
                // DNS off: DHCP and TFTP only, as LTSP's dnsmasq.conf has it.
                "--port=0".into(),
                format!("--interface={}", lab.bridge),
                "--bind-dynamic".into(),
                format!("--dhcp-range={},{},{mask},1h", POOL[0], POOL[1]),
                "--dhcp-match=set:efi-x64,option:client-arch,7".into(),
                format!("--dhcp-boot=tag:efi-x64,boot/grub/x86_64-efi/core.efi,,{SERVER}"),
                format!("--dhcp-boot=tag:!efi-x64,boot/grub/i386-pc/core.0,,{SERVER}"),
                // dnsmasq otherwise pings each new address first (up to 3 s per offer).
                "--no-ping".into(),
                "--enable-tftp".into(),
                format!("--tftp-root={}", farm.tftp.display()),
                // The default cap of 50 concurrent transfers would turn the storm into
                // timeouts: an admin expecting N nodes raises it (ours gets the same cap).
                format!("--tftp-max={}", tftp_max(nodes)),
                format!("--dhcp-lease-max={}", (4 * nodes).max(1000)),
                format!("--dhcp-leasefile={}", dir.join("dnsmasq.leases").display()),
                format!("--pid-file={}", dir.join("dnsmasq.pid").display()),
                format!("--log-facility={}", dir.join("dnsmasq.syslog").display()),
            ]);
            vec![
                Proc::spawn(nbdkit, dir.join("nbdkit.log"))?,
                Proc::spawn(dnsmasq, dir.join("dnsmasq.log"))?,
            ]
        }
    };
    for (proto, port) in [(Proto::Tcp, NBD_PORT), (Proto::Udp, 69), (Proto::Udp, 67)] {
        if let Err(e) = ns.wait_for_port(proto, port, Duration::from_secs(20)) {
            let logs: Vec<String> = procs
                .iter_mut()
                .map(|p| {
                    let dead = if p.exited() { " (exited)" } else { "" };
                    let text = std::fs::read_to_string(&p.log).unwrap_or_default();
                    format!("{}{dead}: {}", p.log.display(), text.trim())
                })
                .collect();
            return Err(format!("{}: {e}\n{}", stack.name(), logs.join("\n")));
        }
    }
    Ok(procs)
}

/// netbootd's config: `examples/farm/netboot.toml` with this run's paths, bridge and a /22.
fn ours_config(lab: &Lab, farm: &Farm, dir: &Path, nodes: usize) -> Result<String, String> {
    let path = netboot_testkit::workspace_root().join("examples/farm/netboot.toml");
    let mut text =
        std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let subs = [
        ("/srv/farm/tftp", farm.tftp.display().to_string()),
        ("/srv/farm/root.sqfs", farm.image.display().to_string()),
        ("\"farm0\"", format!("\"{}\"", lab.bridge)),
        (
            "/var/lib/netboot/leases.journal",
            dir.join("leases.journal").display().to_string(),
        ),
        ("198.18.0.0/24", format!("198.18.0.0/{PREFIX}")),
        // The same session cap dnsmasq gets (`--tftp-max`): each OVMF node briefly holds
        // two sessions (the tsize probe and the real transfer); netbootd's old default of
        // 128 refused about a third of a 100-node storm with "Server busy".
        (
            "listen = [\"198.18.0.1:69\"]",
            format!(
                "listen = [\"198.18.0.1:69\"]\nmax-sessions = {}",
                tftp_max(nodes)
            ),
        ),
        (
            "[\"198.18.0.100\", \"198.18.0.199\"]",
            format!("[\"{}\", \"{}\"]", POOL[0], POOL[1]),
        ),
    ];
    for (from, to) in subs {
        if !text.contains(from) {
            return Err(format!(
                "{} no longer contains {from:?}: update compare-storm's config generation",
                path.display()
            ));
        }
        text = text.replace(from, &to);
    }
    Ok(text)
}

fn prefix_mask(prefix: u8) -> std::net::Ipv4Addr {
    std::net::Ipv4Addr::from(u32::MAX << (32 - u32::from(prefix)))
}

/// User + system CPU seconds of process `pid` ("self" for this one), all its threads.
pub fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th of
    // them, in clock ticks (100 per second on Linux).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (tick(11) + tick(12)) / 100.0
}

/// Concurrent TFTP transfers both stacks allow: two per node (OVMF's probe and transfer).
fn tftp_max(nodes: usize) -> usize {
    (2 * nodes).max(50)
}
