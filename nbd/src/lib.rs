//! NBD for network boot: wire format and a sans-IO server engine.
//!
//! Implements the server side of the NBD protocol as documented in the NBD project's
//! `proto.md`: the fixed-newstyle handshake (NO_ZEROES; EXPORT_NAME, INFO, GO, LIST, ABORT,
//! STRUCTURED_REPLY, LIST/SET_META_CONTEXT with `base:allocation`, EXTENDED_HEADERS; unknown
//! options answered `ERR_UNSUP`; STARTTLS `ERR_POLICY`, or, when the driver provides TLS,
//! ACK and an event to run the handshake, optional or required with `ERR_TLS_REQD` before it)
//! and the transmission phase (READ, WRITE, FLUSH, TRIM, CACHE, WRITE_ZEROES, BLOCK_STATUS,
//! DISC; FUA, DF, NO_HOLE, FAST_ZERO, REQ_ONE) with simple, structured and extended replies.
//!
//! Layers:
//! - [`wire`]: constants and zero-copy `Repr`s (`parse`, `buffer_len`, `emit`), every length
//!   checked before use.
//! - [`engine`]: a sans-IO [`engine::Connection`]: client bytes in, validated requests and
//!   reply bytes out. No sockets, files, clock or threads; the driver (see `examples/` and the
//!   `netboot-nbdd` binary) moves bytes and owns the storage. Timeouts are the driver's.
//!
//! Guarantees: no panics and no allocation sized by client data before it is checked against
//! a limit ([`engine::Limits`]); every request handed out is within the export.
//!
//! The handshake driven by hand, as a client would see it:
//!
//! ```
//! use netboot_nbd::engine::{Config, Connection, Event, Export, Step};
//! use netboot_nbd::wire::{self, opt, rep, OptionReply, OptionRequest};
//!
//! let config = Config { exports: vec![Export::read_only("root", 1 << 20)], ..Config::default() };
//! let mut conn = Connection::new();
//! assert_eq!(wire::Greeting::parse(conn.pending_output()).unwrap().flags, 3);
//! conn.consume_output(wire::GREETING_LEN);
//!
//! // Client flags: FIXED_NEWSTYLE | NO_ZEROES.
//! assert_eq!(conn.handle(&config, &[0, 0, 0, 3]), Ok(Step::Consumed(4)));
//!
//! // NBD_OPT_GO for the default export, no information requests.
//! let go = OptionRequest { option: opt::GO, data: &[0, 0, 0, 0, 0, 0] };
//! let mut buf = vec![0; go.buffer_len()];
//! go.emit(&mut buf);
//! assert_eq!(conn.handle(&config, &buf), Ok(Step::Event(buf.len(), Event::Ready { export: 0 })));
//!
//! // The server said INFO_EXPORT (size, flags), INFO_BLOCK_SIZE, then ACK.
//! let out = conn.pending_output();
//! let first = OptionReply::parse(out).unwrap();
//! assert_eq!((first.reply_type, &first.data[2..10]), (rep::INFO, &(1u64 << 20).to_be_bytes()[..]));
//!
//! // Transmission: a 512-byte READ at offset 0 comes out validated.
//! let read = wire::Request { flags: 0, command: wire::cmd::READ, cookie: 9, offset: 0, length: 512, extended: false };
//! let mut req = [0u8; 28];
//! read.emit(&mut req);
//! match conn.handle(&config, &req) {
//!     Ok(Step::Event(28, Event::Request(r))) => {
//!         assert_eq!((r.cookie, r.length), (9, 512));
//!         // Simple reply header; the driver sends the 512 data bytes right after it.
//!         let header = conn.replies().read(r.cookie, r.offset, r.length);
//!         assert_eq!(wire::SimpleReply::parse(&header).unwrap().cookie, 9);
//!     }
//!     other => panic!("{other:?}"),
//! }
//! ```

pub mod engine;
pub mod wire;

#[doc(hidden)]
pub mod fuzzing;
