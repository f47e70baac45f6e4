//! End to end: real firmware under QEMU boots the example farm from our servers.
//!
//! The farm is built from Debian's packages by `examples/farm/build.sh`; the machine gets its
//! address and boot file from our DHCP, GRUB, kernel, initramfs and lts.conf from our TFTP, and
//! its squashfs root from our NBD server, all three served by one `netbootd` from one config. The initramfs resolves lts.conf for its own MAC with
//! our `ltsconf`, and the root prints a marker with the checksum of a file from the image and
//! the RCFILE_* lines it ran, in order. The test passes only on that exact marker.

use netboot_testkit::vm::{BootLan, Firmware, Vm, build_farm, ovmf_vars_copy};
use netboot_testkit::{Background, Proto, Scratch, require_tool};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

const SERVER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
/// TCG on two shared cores: a boot takes 15–40 s; leave room for a loaded CI machine.
const BOOT_LIMIT: Duration = Duration::from_secs(240);

fn bin(name: &str) -> PathBuf {
    match name {
        "ltsconf" => PathBuf::from(env!("CARGO_BIN_EXE_ltsconf")),
        "netbootd" => PathBuf::from(env!("CARGO_BIN_EXE_netbootd")),
        other => panic!("unknown binary {other}"),
    }
}

/// The farm, built once per test binary.
fn farm() -> &'static Path {
    static FARM: OnceLock<PathBuf> = OnceLock::new();
    FARM.get_or_init(|| {
        // Under the target dir, rebuilt by each run: nothing left behind in /tmp.
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("e2e-farm");
        build_farm(&out, &bin("ltsconf"), &format!("{SERVER}:10809/root"));
        out
    })
}

/// One boot at a time: two TCG guests on two cores would only slow each other down.
static ONE_BOOT: Mutex<()> = Mutex::new(());

/// netbootd serving DHCP, TFTP and NBD from one config file.
fn start_servers(lan: &BootLan, farm: &Path, work: &Path) -> Background {
    let config = work.join("netboot.toml");
    std::fs::write(
        &config,
        format!(
            r#"[dhcp.server]
interfaces = ["{bridge}"]
lease_file = "{leases}"
durability = "none"

[dhcp.boot]
default = "boot/grub/i386-pc/core.0"

[[dhcp.boot.rule]]
arch = [7, 9]
file = "boot/grub/x86_64-efi/core.efi"

[[dhcp.subnet]]
network = "198.18.0.0/24"
range = ["198.18.0.100", "198.18.0.199"]
routers = ["{SERVER}"]
lease_time = 3600
next_server = "{SERVER}"

[tftp]
root = "{tftp}"
listen = ["{SERVER}:69"]

[nbd]
listen = ["{SERVER}:10809"]
export = ["root={image}"]
"#,
            bridge = lan.bridge,
            leases = work.join("leases.journal").display(),
            tftp = farm.join("tftp").display(),
            image = farm.join("root.sqfs").display(),
        ),
    )
    .unwrap();
    let server = lan
        .ns
        .spawn(bin("netbootd"), [format!("--config={}", config.display())]);
    for (proto, port) in [(Proto::Tcp, 10809), (Proto::Udp, 69), (Proto::Udp, 67)] {
        lan.ns
            .wait_for_port(proto, port, Duration::from_secs(20))
            .unwrap();
    }
    server
}

fn boot(tag: &str, firmware: Firmware, mac: &str) -> (String, f64) {
    require_tool("qemu-system-x86_64");
    let farm = farm();
    let _one = ONE_BOOT.lock().unwrap_or_else(|e| e.into_inner());
    let scratch = Scratch::new(&format!("e2e-{tag}"));
    let work = scratch.0.as_path();
    let lan = BootLan::new(tag, SERVER);
    let _servers = start_servers(&lan, farm, work);
    let vm = Vm {
        firmware,
        mac: mac.to_owned(),
        memory_mib: 512,
        ovmf_vars: (firmware == Firmware::Uefi).then(|| ovmf_vars_copy(work)),
    };
    let console = work.join("console.log");
    let result = vm.boot(&lan, &console, "NETBOOT-OK", "NETBOOT-FAIL", BOOT_LIMIT);
    let marker = result.marker.unwrap_or_else(|| {
        panic!(
            "no marker within {:.0} s; console:\n{}",
            result.seconds, result.console
        )
    });
    eprintln!("{tag}: marker after {:.1} s: {marker}", result.seconds);
    (marker, result.seconds)
}

fn expected(mode: &str, host: &str) -> String {
    let sum = std::fs::read_to_string(farm().join("known.sha256")).unwrap();
    format!(
        "NETBOOT-OK {} mode={mode} host={host} rc=motd,sysctl,ready",
        sum.trim()
    )
}

#[test]
fn bios_ipxe_boots_to_the_root_copied_to_ram() {
    // This MAC is the storage node: LIKE storage, HOSTNAME set, Default's LTSP_NBD_TO_RAM=true.
    let (marker, _) = boot("bios", Firmware::BiosIpxe, "52:54:00:12:34:56");
    assert_eq!(marker.trim(), expected("ram", "node-storage-1"));
}

#[test]
fn uefi_boots_to_the_root_over_nbd() {
    // A rack node: [52:54:00:aa:*] turns LTSP_NBD_TO_RAM off, so the root stays on NBD.
    let (marker, _) = boot("uefi", Firmware::Uefi, "52:54:00:aa:00:07");
    assert_eq!(marker.trim(), expected("nbd", "rack-node"));
}
