//! TFTP for network boot: wire format and a sans-IO transfer engine.
//!
//! Implements RFC 1350 (the protocol), RFC 2347 (option extension, OACK, ERROR 8),
//! RFC 2348 (`blksize` 8–65464), RFC 2349 (`timeout`, `tsize`) and RFC 7440 (`windowsize`),
//! with block-number rollover past 65535 blocks, netascii conversion and the Sorcerer's
//! Apprentice fix (RFC 1123 §4.2.3.1).
//!
//! Layers:
//! - [`wire`]: zero-copy views ([`wire::Packet`]) and [`wire::Repr`] values that borrow from
//!   the datagram, with `parse`, `buffer_len` and `emit`; [`wire::Options`] parses a
//!   request's options and builds the OACK. Strict, allocation-free, panic-free.
//! - [`engine`]: [`engine::ReadTransfer`] and [`engine::WriteTransfer`], one per session. Time
//!   is passed in; file bytes are asked for by offset and length. No socket, file or clock
//!   lives in this crate, so a lost ACK or a 70,000-block rollover is tested on a virtual
//!   clock in microseconds.
//!
//! Guarantees: parsing never panics on any input (fuzzed); only the timer retransmits;
//! memory per transfer is bounded by the negotiated window, never by the file size.
//!
//! Parse → emit:
//!
//! ```
//! use netboot_tftp::wire::{Options, Repr};
//! // OVMF's first request: a tsize probe with blksize 1468 and windowsize 4.
//! let rrq = b"\x00\x01bootx64.efi\x00octet\x00tsize\x000\x00blksize\x001468\x00windowsize\x004\x00";
//! let Ok(Repr::Rrq(req)) = Repr::parse(rrq) else { panic!("not an RRQ") };
//! assert_eq!(req.filename, b"bootx64.efi");
//! let mut out = [0u8; 512];
//! let n = Repr::Rrq(req).emit(&mut out).unwrap();
//! assert_eq!(&out[..n], &rrq[..]);
//! assert_eq!(Options::from_request(&req.options).blksize, Some(1468));
//! ```
//!
//! The engine driven by hand (a driver does the same with a socket and a clock):
//!
//! ```
//! use std::time::{Duration, Instant};
//! use netboot_tftp::engine::{Config, Outcome, ReadTransfer};
//! use netboot_tftp::wire::Repr;
//!
//! let file = vec![7u8; 1000];
//! let rrq = b"\x00\x01f\x00octet\x00blksize\x00600\x00";
//! let Ok(Repr::Rrq(req)) = Repr::parse(rrq) else { unreachable!() };
//! let t0 = Instant::now();
//! let mut tx = ReadTransfer::new(t0, &req, file.len() as u64, &Config::default());
//! let mut buf = vec![0u8; tx.max_datagram_len()];
//! let mut src = file.as_slice();
//!
//! // The options were accepted, so an OACK comes first; the client ACKs block 0.
//! let n = tx.poll_transmit(t0, &mut buf, &mut src).unwrap();
//! assert_eq!(&buf[..n], b"\x00\x06blksize\x00600\x00");
//! tx.handle_datagram(t0, &[0, 4, 0, 0]);
//! // DATA 1 (600 bytes), then nothing until it is ACKed: lockstep.
//! assert_eq!(tx.poll_transmit(t0, &mut buf, &mut src), Some(4 + 600));
//! assert_eq!(tx.poll_transmit(t0, &mut buf, &mut src), None);
//! // The ACK is lost: when the timer fires, DATA 1 goes out again.
//! let later = tx.poll_timeout().unwrap();
//! assert_eq!(later, t0 + Duration::from_secs(1));
//! tx.handle_timeout(later);
//! assert_eq!(tx.poll_transmit(later, &mut buf, &mut src), Some(4 + 600));
//! tx.handle_datagram(later, &[0, 4, 0, 1]);
//! // DATA 2 is short (400 bytes): the last one.
//! assert_eq!(tx.poll_transmit(later, &mut buf, &mut src), Some(4 + 400));
//! tx.handle_datagram(later, &[0, 4, 0, 2]);
//! assert_eq!(tx.outcome(), Some(Outcome::Complete));
//! assert!(tx.is_closed());
//! ```

pub mod engine;
pub mod wire;

#[doc(hidden)]
pub mod fuzzing;
