//! DHCPv4 for network boot: wire format and a sans-IO server engine.
//!
//! Implements RFC 2131 (the protocol) and RFC 2132 (options), with the PXE additions of
//! RFC 4578 (client architecture, option 93) that pick a boot file per firmware.
//!
//! Layers: [`wire`] holds zero-copy views over BOOTP/DHCP packets; the engine (to come) turns
//! received packets and `now` into replies and lease changes. No sockets, files or clocks
//! live in this crate.
//!
//! ```
//! use netboot_dhcp::wire::Packet;
//! let mut buf = [0u8; 240];
//! buf[0] = 1; // BOOTREQUEST
//! buf[236..240].copy_from_slice(&[99, 130, 83, 99]);
//! let p = Packet::new_checked(&buf[..]).unwrap();
//! assert_eq!(p.op(), 1);
//! ```

pub mod wire;

#[doc(hidden)]
pub mod fuzzing;
