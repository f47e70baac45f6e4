//! DHCPv4 for network boot: wire format and a sans-IO server engine.
//!
//! Implements RFC 2131 (the protocol) and RFC 2132 (options), with option overload (RFC 2131
//! §4.1, option 52), long options (RFC 3396), rapid commit (RFC 4039), relay agent
//! information echo (RFC 3046), subnet and link selection (RFC 3011, RFC 3527), and the PXE
//! additions of RFC 4578 (client architecture, option 93, read with the IANA registry where 7
//! and 9 are both x64 UEFI in the wild) and PXE 2.1 (option 43 sub-options, proxyDHCP on 4011).
//!
//! Layers:
//! - [`wire`]: a zero-copy [`wire::Packet`] view, a raw option iterator that follows overload,
//!   and the typed [`wire::Repr`] with `parse`, `buffer_len` and `emit`; [`pxe`] holds the
//!   option 43 sub-options.
//! - [`server`]: the engine. A datagram and `now` go in; the reply, its RFC 2131 §4.1
//!   destination and the lease change to make durable come out. [`lease`] holds the lease
//!   record, its journal encoding and the [`lease::LeaseStore`] trait a driver implements.
//!
//! Guarantees: no sockets, files, clocks or randomness inside; no `unsafe`; no panic on any
//! input (fuzzed: see `fuzz/fuzz_targets/dhcp_*.rs`).
//!
//! Parse a PXE DISCOVER, let the engine build the offer, and read it back:
//!
//! ```
//! use std::net::{Ipv4Addr, SocketAddrV4};
//! use netboot_dhcp::server::{BootPolicy, BootRule, Config, Incoming, Server, Subnet};
//! use netboot_dhcp::wire::{LeaseTime, MessageType, Packet, Repr};
//!
//! // A UEFI x64 DISCOVER: message type 1, option 93 = 7, vendor class PXEClient.
//! let mut discover = vec![0u8; 240];
//! discover[0] = 1; // BOOTREQUEST
//! discover[1] = 1; discover[2] = 6; // Ethernet, 6-byte address
//! discover[28..34].copy_from_slice(&[0x52, 0x54, 0, 0x12, 0x34, 0x56]);
//! discover[236..240].copy_from_slice(&[99, 130, 83, 99]);
//! discover.extend_from_slice(&[53, 1, 1, 93, 2, 0, 7, 60, 9]);
//! discover.extend_from_slice(b"PXEClient");
//! discover.push(255);
//! let req = Repr::parse(&Packet::new_checked(&discover[..]).unwrap()).unwrap();
//! assert_eq!(req.options.client_arches().collect::<Vec<_>>(), [7]);
//!
//! let mut server = Server::new(Config {
//!     subnets: vec![Subnet {
//!         network: Ipv4Addr::new(198, 18, 0, 0),
//!         prefix_len: 24,
//!         pool: Some((Ipv4Addr::new(198, 18, 0, 100), Ipv4Addr::new(198, 18, 0, 199))),
//!         routers: vec![Ipv4Addr::new(198, 18, 0, 1)],
//!         dns_servers: vec![],
//!         domain_name: None,
//!         lease_time: LeaseTime::Infinite,
//!         max_lease_time: None,
//!         next_server: None,
//!     }],
//!     boot: BootPolicy {
//!         rules: vec![BootRule { arch: vec![7, 9], file: "core.efi".into(), ..Default::default() }],
//!         default_file: Some("core.0".into()),
//!         ..Default::default()
//!     },
//!     ..Default::default()
//! });
//! let out = server.handle(0, &Incoming {
//!     data: &discover,
//!     src: SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68),
//!     local_addr: Ipv4Addr::new(198, 18, 0, 1),
//!     local_port: 67,
//! });
//! let (bytes, _destination, kind) = out.reply.unwrap();
//! assert_eq!(kind, MessageType::Offer);
//! let offer = Repr::parse(&Packet::new_checked(&bytes[..]).unwrap()).unwrap();
//! assert_eq!(&*offer.file, b"core.efi");
//! assert_eq!(offer.siaddr, Ipv4Addr::new(198, 18, 0, 1));
//! assert!(offer.options.vendor_specific.is_some()); // 43 with 60, or EDK2 looks for a proxy
//!
//! // And emit it again into a buffer of exactly `buffer_len` bytes.
//! let mut again = vec![0u8; offer.buffer_len()];
//! let n = offer.emit(&mut again).unwrap();
//! assert_eq!(Repr::parse(&Packet::new_checked(&again[..n]).unwrap()).unwrap(), offer);
//! ```

pub mod lease;
pub mod pxe;
pub mod server;
pub mod wire;

#[doc(hidden)]
pub mod fuzzing;
