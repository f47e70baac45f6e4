//! NBD for network boot: wire format and a sans-IO server engine.
//!
//! Implements the NBD protocol's fixed-newstyle handshake and transmission phase as
//! documented in the NBD project's `proto.md` (options, simple/structured/extended replies).
//!
//! Layers: [`wire`] holds zero-copy views and constants; the engine (to come) consumes bytes
//! from the client and yields the bytes and storage operations to perform. No sockets or
//! files live in this crate. All integers on the wire are big-endian.
//!
//! ```
//! use netboot_nbd::wire::{Greeting, GREETING_LEN};
//! let mut buf = [0u8; GREETING_LEN];
//! Greeting { flags: 3 }.emit(&mut buf);
//! assert_eq!(Greeting::parse(&buf), Ok(Greeting { flags: 3 }));
//! ```

pub mod wire;

#[doc(hidden)]
pub mod fuzzing;
