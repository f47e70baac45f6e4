//! Entry points for cargo-fuzz targets and the corpus replay tests. Each must never panic;
//! they assert the properties a fuzzer should break.

use std::net::{Ipv4Addr, SocketAddrV4};

use crate::server::{
    BootPolicy, BootRule, Config, Host, Incoming, MenuEntry, PxeMenu, Server, Subnet,
};
use crate::wire::{LeaseTime, Packet, Repr};

/// Parses one received datagram; whatever parses must emit and parse back to the same value.
pub fn packet(data: &[u8]) {
    let Ok(p) = Packet::new_checked(data) else {
        return;
    };
    let _ = (p.op(), p.xid(), p.chaddr(), p.options().count());
    let Ok(repr) = Repr::parse(&p) else {
        return;
    };
    let mut buf = vec![0u8; 1500];
    if let Ok(n) = repr.emit(&mut buf) {
        let again = Packet::new_checked(&buf[..n]).expect("emitted packet has a header");
        let back = Repr::parse(&again).expect("emitted packet parses");
        assert_eq!(back.options, repr.options, "options survive emit/parse");
        assert_eq!((back.xid, back.chaddr), (repr.xid, repr.chaddr));
    }
}

/// A small server used by the engine fuzz target and its tests.
pub fn test_server() -> Server {
    let net = Ipv4Addr::new(198, 18, 0, 0);
    Server::new(Config {
        subnets: vec![Subnet {
            network: net,
            prefix_len: 24,
            pool: Some((Ipv4Addr::new(198, 18, 0, 10), Ipv4Addr::new(198, 18, 0, 20))),
            routers: vec![Ipv4Addr::new(198, 18, 0, 1)],
            dns_servers: vec![Ipv4Addr::new(198, 18, 0, 1)],
            domain_name: Some("lab".into()),
            lease_time: LeaseTime::Finite(600),
            max_lease_time: None,
            next_server: None,
        }],
        hosts: vec![Host {
            hw_addr: vec![0x52, 0x54, 0, 0, 0, 1],
            ip: Some(Ipv4Addr::new(198, 18, 0, 5)),
            hostname: Some("node1".into()),
            boot_file: None,
            next_server: None,
        }],
        boot: BootPolicy {
            rules: vec![BootRule {
                arch: vec![7, 9],
                file: "core.efi".into(),
                ..Default::default()
            }],
            default_file: Some("core.0".into()),
            ipxe_script: Some("boot.ipxe".into()),
            ipxe_no_pxedhcp: true,
            // A menu for IA32 UEFI only (arch 6), so the fuzzer reaches the menu and the
            // boot server paths while the tests' BIOS and x64 clients keep their files.
            menu: Some(PxeMenu {
                prompt: "Press F8".into(),
                timeout: 5,
                entries: vec![
                    MenuEntry {
                        text: "Install".into(),
                        server_type: 0x8001,
                        arch: vec![6],
                        file: Some("install.efi".into()),
                        server: None,
                    },
                    MenuEntry {
                        text: "Local disk".into(),
                        arch: vec![6],
                        ..Default::default()
                    },
                ],
            }),
        },
        rapid_commit: true,
        ..Default::default()
    })
}

/// Feeds a sequence of datagrams to one server: the input is split on the byte pair `0xff 0xfe`,
/// the first byte of each piece picks the clock step and the arrival port. Any reply must parse.
pub fn engine(data: &[u8]) {
    let mut server = test_server();
    let mut now = 1_000_000u64;
    for piece in data.split(|&b| b == 0xfe) {
        let Some((&ctl, body)) = piece.split_first() else {
            continue;
        };
        now += u64::from(ctl & 0x3f) * 37;
        let out = server.handle(
            now,
            &Incoming {
                data: body,
                src: SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68),
                local_addr: Ipv4Addr::new(198, 18, 0, 1),
                local_port: if ctl & 0x80 != 0 { 4011 } else { 67 },
            },
        );
        if let Some((bytes, _, _)) = out.reply {
            let p = Packet::new_checked(&bytes[..]).expect("reply has a header");
            Repr::parse(&p).expect("reply parses");
        }
    }
    // Every durable lease is unique per address and inside the subnet.
    for l in server.leases() {
        assert!(u32::from(l.ip) >> 8 == u32::from(Ipv4Addr::new(198, 18, 0, 0)) >> 8);
    }
}
