//! A minimal DHCP server on a std `UdpSocket`, built on the sans-IO engine: about what an
//! embedder needs without netboot-dhcpd (no journal, no per-interface sockets).
//!
//! ```sh
//! # as root, on a host whose address is 198.18.0.1 on the served link:
//! cargo run -p netboot-dhcp --example minimal_server -- 198.18.0.1
//! ```
//! Replies to clients without an address are broadcast, which RFC 2131 §4.1 allows; without
//! `SO_BINDTODEVICE` (not in std) the kernel needs a route for 255.255.255.255, e.g. a default
//! route or `ip route add 255.255.255.255 dev IF`. netboot-dhcpd binds each interface instead.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::time::{SystemTime, UNIX_EPOCH};

use netboot_dhcp::server::{
    BootPolicy, BootRule, CLIENT_PORT, Config, Destination, Incoming, Server, Subnet,
};
use netboot_dhcp::wire::LeaseTime;

fn main() -> std::io::Result<()> {
    let local: Ipv4Addr = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(Ipv4Addr::new(198, 18, 0, 1));
    let port: u16 = std::env::args()
        .nth(2)
        .and_then(|a| a.parse().ok())
        .unwrap_or(67);
    let o = local.octets();
    let mut server = Server::new(Config {
        subnets: vec![Subnet {
            network: Ipv4Addr::new(o[0], o[1], o[2], 0),
            prefix_len: 24,
            pool: Some((
                Ipv4Addr::new(o[0], o[1], o[2], 100),
                Ipv4Addr::new(o[0], o[1], o[2], 199),
            )),
            routers: vec![local],
            dns_servers: vec![local],
            domain_name: None,
            lease_time: LeaseTime::Finite(3600),
            max_lease_time: None,
            next_server: None,
        }],
        boot: BootPolicy {
            rules: vec![BootRule {
                arch: vec![7, 9],
                file: "boot/grub/x86_64-efi/core.efi".into(),
                ..Default::default()
            }],
            default_file: Some("boot/grub/i386-pc/core.0".into()),
            ..Default::default()
        },
        ..Default::default()
    });
    let sock = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, port))?;
    sock.set_broadcast(true)?;
    let mut buf = [0u8; 1500];
    loop {
        let (n, SocketAddr::V4(src)) = sock.recv_from(&mut buf)? else {
            continue;
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let out = server.handle(
            now,
            &Incoming {
                data: &buf[..n],
                src,
                local_addr: local,
                local_port: port,
            },
        );
        if let Some((_, lease)) = &out.lease {
            println!("{} -> {} {:?}", lease.client, lease.ip, lease.state);
        }
        if let Some((bytes, dest, kind)) = out.reply {
            let to = match dest {
                Destination::Unicast(a) => a,
                Destination::Broadcast | Destination::Hardware { .. } => {
                    SocketAddrV4::new(Ipv4Addr::BROADCAST, CLIENT_PORT)
                }
            };
            println!("{kind:?} to {to}");
            if let Err(e) = sock.send_to(&bytes, to) {
                eprintln!("send to {to}: {e}");
            }
        }
    }
}
