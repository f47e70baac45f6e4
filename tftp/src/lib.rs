//! TFTP for network boot: wire format and a sans-IO transfer engine.
//!
//! Implements RFC 1350 (the protocol), RFC 2347 (option extension, OACK), RFC 2348 (blksize),
//! RFC 2349 (timeout, tsize) and RFC 7440 (windowsize).
//!
//! Layers: [`wire`] holds zero-copy views over datagrams; the engine (to come) is a state
//! machine fed with datagrams and `now`, returning datagrams to send and timers. No sockets,
//! files or clocks live in this crate.
//!
//! ```
//! use netboot_tftp::wire::Opcode;
//! assert_eq!(Opcode::parse(&[0, 1, b'f', 0]), Ok(Opcode::Rrq));
//! ```

pub mod wire;

#[doc(hidden)]
pub mod fuzzing;
