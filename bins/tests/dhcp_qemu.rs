//! Real firmware against netboot-dhcpd: QEMU boots from the network inside a namespace and we
//! check which file it then asks TFTP for. OVMF's own EDK2 PXE (arch 7) must ask for core.efi
//! — which also proves the offer did not send it looking for a proxy on port 4011 (the
//! option 60 / 43 trap) —, and the SeaBIOS iPXE ROM must be recognised as iPXE and ask for
//! the iPXE script instead of the BIOS loader (no chainload loop).
//!
//! No TFTP server is needed: a UDP socket on port 69 records the first read request.

use std::path::PathBuf;
use std::time::Duration;

use netboot_testkit::{NetPair, Proto, Scratch, require_tool};

const BIN: &str = env!("CARGO_BIN_EXE_netboot-dhcpd");
const TAP: &str = "nbtap0";
const SERVER: &str = "198.19.254.1";

/// Boots `firmware` ("uefi" or "bios") and returns the first TFTP RRQ file name and the
/// server's log. With `proxy`, dnsmasq hands out the addresses and ours runs as proxyDHCP.
fn boot(firmware: &str, proxy: bool) -> (String, String) {
    boot_with(firmware, proxy, "")
}

/// [`boot`] with `extra` appended to the server's configuration.
fn boot_with(firmware: &str, proxy: bool, extra: &str) -> (String, String) {
    // One VM at a time: TCG guests on two shared cores slow each other down past their own
    // DHCP timeouts.
    static ONE_VM: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = ONE_VM.lock().unwrap_or_else(|p| p.into_inner());
    let qemu = require_tool("qemu-system-x86_64");
    let python = PathBuf::from("/usr/bin/python3");
    assert!(
        python.exists(),
        "/usr/bin/python3 missing: {}",
        netboot_testkit::INSTALL_HINT
    );
    let net = NetPair::new(&format!("q{firmware}"));
    let dir = Scratch::new(&format!("dhcp-qemu-{firmware}"));
    let ns = net.a.name().to_owned();
    for args in [
        vec!["-n", &ns, "tuntap", "add", "mode", "tap", TAP],
        vec!["-n", &ns, "addr", "add", "198.19.254.1/24", "dev", TAP],
        vec!["-n", &ns, "link", "set", TAP, "up"],
    ] {
        let st = std::process::Command::new(require_tool("ip"))
            .args(&args)
            .status()
            .unwrap();
        assert!(st.success(), "ip {args:?}");
    }
    let cfg = dir.0.join("dhcpd.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"[server]
interfaces = ["{TAP}"]
lease_file = "{}"
proxy = {proxy}
[boot]
default = "boot/grub/i386-pc/core.0"
ipxe_script = "boot.ipxe"
[[boot.rule]]
arch = [7, 9]
file = "boot/grub/x86_64-efi/core.efi"
[[subnet]]
network = "198.19.254.0/24"
range = ["198.19.254.100", "198.19.254.199"]
routers = ["{SERVER}"]
lease_time = 600
{extra}
"#,
            dir.0.join("leases").display()
        ),
    )
    .unwrap();
    let log = dir.0.join("server.log");
    let _server = net.a.spawn(
        "sh",
        [
            "-c",
            &format!(
                "NO_COLOR=1 exec {BIN} -c {} 2>{}",
                cfg.display(),
                log.display()
            ),
        ],
    );
    net.a
        .wait_for_port(Proto::Udp, 67, Duration::from_secs(10))
        .unwrap();
    // The DHCP server we "do not control", on the same link, for the proxy case.
    let dnsmasq = proxy.then(|| {
        net.a.spawn(
            require_tool("dnsmasq"),
            [
                "--no-daemon".to_owned(),
                "--port=0".into(),
                "--no-ping".into(),
                "--bind-interfaces".into(),
                format!("--interface={TAP}"),
                "--dhcp-range=198.19.254.100,198.19.254.199,1h".into(),
                format!(
                    "--dhcp-leasefile={}",
                    dir.0.join("dnsmasq.leases").display()
                ),
                format!("--pid-file={}", dir.0.join("dnsmasq.pid").display()),
            ],
        )
    });
    let tftp = net.a.spawn(
        &python,
        [
            "-c",
            "import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.bind(('0.0.0.0',69))\n\
             d,a=s.recvfrom(1500)\nprint('RRQ', d[2:].split(b'\\0')[0].decode(), flush=True)",
        ],
    );
    net.a
        .wait_for_port(Proto::Udp, 69, Duration::from_secs(10))
        .unwrap();
    let mut args: Vec<String> = [
        "-machine",
        "pc,accel=tcg",
        "-m",
        "256",
        "-nographic",
        "-no-reboot",
        "-netdev",
        &format!("tap,id=n0,ifname={TAP},script=no,downscript=no"),
    ]
    .map(String::from)
    .to_vec();
    if firmware == "uefi" {
        let vars = dir.0.join("vars.fd");
        std::fs::copy("/usr/share/OVMF/OVMF_VARS_4M.fd", &vars)
            .expect("OVMF (package ovmf) is installed");
        args.extend([
            "-drive".into(),
            "if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd".into(),
            "-drive".into(),
            format!("if=pflash,format=raw,unit=1,file={}", vars.display()),
            "-device".into(),
            "virtio-net-pci,netdev=n0,mac=52:54:00:d4:c0:07,bootindex=1,romfile=".into(),
        ]);
    } else {
        args.extend([
            "-device".into(),
            "virtio-net-pci,netdev=n0,mac=52:54:00:d4:c0:00,bootindex=1".into(),
            "-boot".into(),
            "n".into(),
        ]);
    }
    let vm = net.a.spawn(qemu, &args);
    // TCG on a shared 2-core machine: OVMF reaches PXE in ~8 s unloaded; allow for load.
    let (out, exited) = tftp.finish(Duration::from_secs(150));
    let serial = vm.kill();
    let server_log = std::fs::read_to_string(&log).unwrap_or_default();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        exited,
        "{firmware}: no TFTP request within the bound; server log:\n{server_log}\nserial:\n{}\ndnsmasq:\n{:?}",
        String::from_utf8_lossy(&serial.stdout),
        dnsmasq.map(|d| d.kill())
    );
    let file = text
        .lines()
        .find_map(|l| l.strip_prefix("RRQ "))
        .unwrap_or_default()
        .to_owned();
    (file, server_log)
}

#[test]
fn ovmf_edk2_pxe_asks_tftp_for_core_efi() {
    let (file, log) = boot("uefi", false);
    assert_eq!(file, "boot/grub/x86_64-efi/core.efi", "{log}");
    assert!(
        log.contains("lease bound") && log.contains("52:54:00:d4:c0:07"),
        "{log}"
    );
}

#[test]
fn seabios_ipxe_rom_is_recognised_and_asks_for_the_script() {
    let (file, log) = boot("bios", false);
    assert_eq!(file, "boot.ipxe", "{log}");
    assert!(log.contains("52:54:00:d4:c0:00"), "{log}");
}

#[test]
fn ovmf_boots_through_our_proxy_next_to_dnsmasq() {
    // dnsmasq gives the address (no boot options at all); ours, in proxy mode, answers the
    // PXE DISCOVER on 67 and the firmware's REQUEST on 4011 with core.efi.
    let (file, log) = boot("uefi", true);
    assert_eq!(file, "boot/grub/x86_64-efi/core.efi", "{log}");
    assert!(
        !log.contains("lease bound"),
        "a proxy leases nothing: {log}"
    );
}

#[test]
fn ovmf_shows_our_pxe_menu_and_boots_its_first_entry_through_4011() {
    // A two-entry menu for x64 UEFI with a 1 s prompt: nobody presses F8, so EDK2 takes the
    // first entry, asks the boot server (us, on 4011) for its type, and loads the file that
    // answer names, not the rules' core.efi.
    let menu = r#"
[boot.menu]
prompt = "Press F8 for the boot menu"
timeout = 1
[[boot.menu.item]]
text = "Farm image (menu)"
arch = [7, 9]
file = "menu/first.efi"
[[boot.menu.item]]
text = "Local disk"
arch = [7, 9]
"#;
    let (file, log) = boot_with("uefi", false, menu);
    assert_eq!(file, "menu/first.efi", "{log}");
}
