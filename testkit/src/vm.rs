//! A booting machine for end-to-end tests: a namespace holding a bridge (the farm's LAN, with
//! the servers' address) and a tap for QEMU, and a QEMU run under software emulation whose
//! serial console goes to a file the test reads.

use crate::{Background, Netns, ip, require_tool};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The farm's LAN inside its own namespace: bridge `br0` with `server` as its address and a
/// tap enslaved to it. Servers started in [`BootLan::ns`] bind to `server`.
#[derive(Debug)]
pub struct BootLan {
    /// The namespace (deleted on drop, taking the bridge and tap with it).
    pub ns: Netns,
    /// The servers' address on the bridge.
    pub server: Ipv4Addr,
    /// The bridge's name.
    pub bridge: String,
    /// The tap QEMU attaches to.
    pub tap: String,
}

impl BootLan {
    /// Creates the namespace, bridge (`server`/24, forwarding delay 0) and tap.
    pub fn new(tag: &str, server: Ipv4Addr) -> BootLan {
        let ns = Netns::new(tag);
        let stem = Netns::unique_ifname();
        let (bridge, tap) = (format!("{stem}br"), format!("{stem}tp"));
        let n = ns.name().to_owned();
        ip(&[
            "-n",
            &n,
            "link",
            "add",
            &bridge,
            "type",
            "bridge",
            "forward_delay",
            "0",
        ]);
        ip(&[
            "-n",
            &n,
            "addr",
            "add",
            &format!("{server}/24"),
            "dev",
            &bridge,
        ]);
        ip(&["-n", &n, "link", "set", &bridge, "up"]);
        ip(&["-n", &n, "tuntap", "add", "dev", &tap, "mode", "tap"]);
        ip(&["-n", &n, "link", "set", &tap, "master", &bridge]);
        ip(&["-n", &n, "link", "set", &tap, "up"]);
        BootLan {
            ns,
            server,
            bridge,
            tap,
        }
    }
}

/// Which firmware the machine starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Firmware {
    /// SeaBIOS with iPXE as the NIC's option ROM: DHCP client architecture 0.
    BiosIpxe,
    /// OVMF with EDK2's own virtio-net driver and PXE: client architecture 7.
    Uefi,
}

/// One machine to boot.
#[derive(Debug, Clone)]
pub struct Vm {
    /// The firmware.
    pub firmware: Firmware,
    /// The NIC's MAC address (what the farm's lts.conf sections match).
    pub mac: String,
    /// Guest memory in MiB.
    pub memory_mib: u32,
    /// A writable copy of OVMF's variable store template (only for [`Firmware::Uefi`]).
    pub ovmf_vars: Option<PathBuf>,
}

/// What a boot produced.
#[derive(Debug)]
pub struct Boot {
    /// The first console line holding the marker, if it appeared in time.
    pub marker: Option<String>,
    /// Seconds from QEMU's start to the marker (or to giving up).
    pub seconds: f64,
    /// The whole serial console.
    pub console: String,
}

impl Vm {
    /// Boots the machine on `lan`, its serial console written to `console`, until a line
    /// containing `marker` (or `fail_marker`) appears or `limit` passes; QEMU is then killed.
    pub fn boot(
        &self,
        lan: &BootLan,
        console: &Path,
        marker: &str,
        fail_marker: &str,
        limit: Duration,
    ) -> Boot {
        let qemu = require_tool("qemu-system-x86_64");
        let _ = std::fs::remove_file(console);
        let mut cmd = lan.ns.command(qemu);
        cmd.args(["-machine", "pc,accel=tcg", "-m"])
            .arg(self.memory_mib.to_string())
            .args([
                "-display",
                "none",
                "-monitor",
                "none",
                "-no-reboot",
                "-serial",
            ])
            .arg(format!("file:{}", console.display()))
            .arg("-netdev")
            .arg(format!(
                "tap,id=n0,ifname={},script=no,downscript=no",
                lan.tap
            ));
        let nic = format!("virtio-net-pci,netdev=n0,mac={},bootindex=1", self.mac);
        match self.firmware {
            Firmware::BiosIpxe => {
                cmd.args(["-device", &nic, "-boot", "n"]);
            }
            Firmware::Uefi => {
                let vars = self.ovmf_vars.as_ref().expect("UEFI boot needs ovmf_vars");
                let code = "/usr/share/OVMF/OVMF_CODE_4M.fd";
                assert!(
                    Path::new(code).exists(),
                    "{code} missing: {}",
                    crate::INSTALL_HINT
                );
                cmd.arg("-drive")
                    .arg(format!(
                        "if=pflash,format=raw,unit=0,readonly=on,file={code}"
                    ))
                    .arg("-drive")
                    .arg(format!(
                        "if=pflash,format=raw,unit=1,file={}",
                        vars.display()
                    ))
                    // An empty romfile gives EDK2's own driver and PXE instead of iPXE's.
                    .args(["-device", &format!("{nic},romfile=")]);
            }
        }
        let start = Instant::now();
        let mut qemu = Background::spawn(cmd);
        let deadline = start + limit;
        let mut found = None;
        loop {
            let text = std::fs::read_to_string(console).unwrap_or_default();
            if let Some(line) = text
                .lines()
                .find(|l| l.contains(marker) || l.contains(fail_marker))
            {
                found = Some(line.to_owned());
                break;
            }
            if Instant::now() >= deadline || qemu.has_exited() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let seconds = start.elapsed().as_secs_f64();
        let out = qemu.kill();
        let mut console_text = std::fs::read_to_string(console).unwrap_or_default();
        if found.is_none() {
            // The marker may have landed between the last look and the kill.
            found = console_text
                .lines()
                .find(|l| l.contains(marker))
                .map(str::to_owned);
        }
        if !out.stderr.is_empty() {
            console_text.push_str("\n--- qemu stderr ---\n");
            console_text.push_str(&String::from_utf8_lossy(&out.stderr));
        }
        Boot {
            marker: found,
            seconds,
            console: console_text,
        }
    }
}

/// Copies OVMF's variable store template to `dir` for one UEFI boot.
pub fn ovmf_vars_copy(dir: &Path) -> PathBuf {
    let template = Path::new("/usr/share/OVMF/OVMF_VARS_4M.fd");
    assert!(
        template.exists(),
        "{} missing: {}",
        template.display(),
        crate::INSTALL_HINT
    );
    let dest = dir.join("OVMF_VARS_4M.fd");
    std::fs::copy(template, &dest).expect("copy OVMF vars");
    dest
}

/// Runs `examples/farm/build.sh` into `out` with the given ltsconf binary; panics with its
/// output on failure.
pub fn build_farm(out: &Path, ltsconf: &Path, nbdroot: &str) {
    let script = crate::workspace_root().join("examples/farm/build.sh");
    let res = crate::run_with_timeout(
        Command::new("bash")
            .arg(script)
            .arg("--out")
            .arg(out)
            .arg("--ltsconf")
            .arg(ltsconf)
            .args(["--nbdroot", nbdroot]),
        Duration::from_secs(300),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        res.status.success(),
        "examples/farm/build.sh failed: {}{}",
        String::from_utf8_lossy(&res.stdout),
        String::from_utf8_lossy(&res.stderr)
    );
}
