//! Decodes a captured DHCP packet (the UDP payload) and prints its header and every option
//! by name, following option overload into `file` and `sname`.
//!
//! ```sh
//! cargo run -p netboot-dhcp --example decode -- dhcp/tests/data/edk2-uefi-discover.bin
//! ```
//! Without an argument it decodes the iPXE DISCOVER captured from QEMU's SeaBIOS ROM.

use netboot_dhcp::pxe::VendorOptions;
use netboot_dhcp::wire::{IpxeFeatures, Packet, Repr, code, is_ipxe_user_class};

const IPXE_BIOS: &[u8] = include_bytes!("../tests/data/ipxe-bios-discover.bin");

fn name(c: u8) -> &'static str {
    match c {
        code::SUBNET_MASK => "subnet mask",
        code::ROUTER => "routers",
        code::DNS => "DNS servers",
        code::HOSTNAME => "host name",
        code::DOMAIN_NAME => "domain name",
        code::BROADCAST_ADDR => "broadcast address",
        code::VENDOR_SPECIFIC => "vendor specific (PXE)",
        code::REQUESTED_IP => "requested address",
        code::LEASE_TIME => "lease time",
        code::OVERLOAD => "option overload",
        code::MESSAGE_TYPE => "message type",
        code::SERVER_ID => "server identifier",
        code::PARAMETER_REQUEST_LIST => "parameter request list",
        code::MESSAGE => "message",
        code::MAX_MESSAGE_SIZE => "maximum message size",
        code::RENEWAL_TIME => "renewal time (T1)",
        code::REBINDING_TIME => "rebinding time (T2)",
        code::VENDOR_CLASS => "vendor class",
        code::CLIENT_ID => "client identifier",
        code::TFTP_SERVER => "TFTP server name",
        code::BOOTFILE => "boot file name",
        code::USER_CLASS => "user class",
        code::RAPID_COMMIT => "rapid commit",
        code::RELAY_AGENT => "relay agent information",
        code::CLIENT_ARCH => "client architecture",
        code::CLIENT_NDI => "client network interface",
        code::CLIENT_UUID => "client machine UUID",
        code::SUBNET_SELECTION => "subnet selection",
        code::IPXE => "iPXE encapsulated options",
        _ => "unknown",
    }
}

fn arch_name(a: u16) -> &'static str {
    // IANA "Processor Architecture Types"; 7 and 9 are both x64 UEFI in the wild.
    match a {
        0 => "x86 BIOS",
        6 => "x86 UEFI",
        7 | 9 => "x64 UEFI",
        10 => "ARM32 UEFI",
        11 => "ARM64 UEFI",
        15 => "x86 UEFI HTTP",
        16 => "x64 UEFI HTTP",
        18 => "ARM32 UEFI HTTP",
        19 => "ARM64 UEFI HTTP",
        41 => "ARM rpiboot",
        _ => "other",
    }
}

fn show(v: &[u8]) -> String {
    if !v.is_empty() && v.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
        format!("{:?}", String::from_utf8_lossy(v))
    } else {
        v.iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let data = match std::env::args_os().nth(1) {
        Some(path) => std::fs::read(path)?,
        None => IPXE_BIOS.to_vec(),
    };
    let packet = Packet::new_checked(&data[..])?;
    let repr = Repr::parse(&packet)?;
    println!(
        "op {} xid {:#010x} flags {:#06x} ciaddr {} yiaddr {} siaddr {} giaddr {}",
        packet.op(),
        repr.xid,
        repr.flags,
        repr.ciaddr,
        repr.yiaddr,
        repr.siaddr,
        repr.giaddr
    );
    let hw: Vec<String> = repr.hw_addr().iter().map(|b| format!("{b:02x}")).collect();
    println!(
        "chaddr {}  sname {}  file {}",
        hw.join(":"),
        show(&repr.sname),
        show(&repr.file)
    );
    for item in packet.options() {
        let (c, v) = item?;
        println!("  {c:3} {:<28} {}", name(c), show(v));
    }
    let o = &repr.options;
    if o.client_arch.is_some() {
        for a in o.client_arches() {
            println!("  -> architecture {a}: {}", arch_name(a));
        }
    }
    if let Some(v) = &o.vendor_specific {
        println!("  -> PXE sub-options: {:?}", VendorOptions::parse(v)?);
    }
    if o.user_class.as_deref().is_some_and(is_ipxe_user_class) || o.ipxe.is_some() {
        let f = IpxeFeatures::parse(o.ipxe.as_deref().unwrap_or(&[]));
        println!(
            "  -> iPXE; can run a script (HTTP, menu, PXE+bzImage or EFI): {}",
            f.can_run_script()
        );
    }
    Ok(())
}
