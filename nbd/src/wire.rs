//! The NBD wire format: constants and zero-copy `Repr`s for every message of the
//! fixed-newstyle handshake and the transmission phase (NBD `proto.md`, plus the
//! extended-headers extension).
//!
//! Every `Repr` has `parse(&[u8])` (which checks every length before touching the bytes and
//! borrows variable-length fields from the input), `buffer_len()` and `emit(&mut [u8])`.
//! All integers are big-endian. Nothing here allocates.

use thiserror::Error;

/// `NBDMAGIC`, the first 8 bytes a server sends.
pub const NBDMAGIC: u64 = 0x4e42_444d_4147_4943;
/// `IHAVEOPT`: second half of the greeting and the magic of every option request.
pub const IHAVEOPT: u64 = 0x4948_4156_454f_5054;
/// Magic of every option reply.
pub const OPTION_REPLY_MAGIC: u64 = 0x0003_e889_0455_65a9;
/// Magic of a compact (28-byte) transmission request.
pub const REQUEST_MAGIC: u32 = 0x2560_9513;
/// Magic of an extended (32-byte) transmission request.
pub const EXTENDED_REQUEST_MAGIC: u32 = 0x21e4_1c71;
/// Magic of a simple reply.
pub const SIMPLE_REPLY_MAGIC: u32 = 0x6744_6698;
/// Magic of a structured reply chunk.
pub const STRUCTURED_REPLY_MAGIC: u32 = 0x668e_33ef;
/// Magic of an extended reply chunk.
pub const EXTENDED_REPLY_MAGIC: u32 = 0x6e8a_278c;

/// Length of the newstyle greeting: magic, option magic, 16-bit handshake flags.
pub const GREETING_LEN: usize = 18;
/// Length of the client flags word.
pub const CLIENT_FLAGS_LEN: usize = 4;
/// Length of an option request header.
pub const OPTION_HEADER_LEN: usize = 16;
/// Length of an option reply header.
pub const OPTION_REPLY_HEADER_LEN: usize = 20;
/// Length of a compact request header.
pub const REQUEST_LEN: usize = 28;
/// Length of an extended request header.
pub const EXTENDED_REQUEST_LEN: usize = 32;
/// Length of a simple reply header.
pub const SIMPLE_REPLY_LEN: usize = 16;
/// Length of a structured reply chunk header.
pub const STRUCTURED_REPLY_LEN: usize = 20;
/// Length of an extended reply chunk header.
pub const EXTENDED_REPLY_LEN: usize = 32;
/// The longest string (export name, description, message) the protocol allows.
pub const MAX_STRING_LEN: usize = 4096;

/// Handshake flags (server greeting) and the matching client flags.
pub mod handshake_flags {
    /// `NBD_FLAG_FIXED_NEWSTYLE` / `NBD_FLAG_C_FIXED_NEWSTYLE`.
    pub const FIXED_NEWSTYLE: u16 = 1 << 0;
    /// `NBD_FLAG_NO_ZEROES` / `NBD_FLAG_C_NO_ZEROES`: no 124 zero bytes after EXPORT_NAME.
    pub const NO_ZEROES: u16 = 1 << 1;
}

/// Transmission flags, sent with the export size.
pub mod transmission_flags {
    /// Always set.
    pub const HAS_FLAGS: u16 = 1 << 0;
    /// Writes fail with EPERM.
    pub const READ_ONLY: u16 = 1 << 1;
    /// FLUSH is supported.
    pub const SEND_FLUSH: u16 = 1 << 2;
    /// The FUA command flag is supported.
    pub const SEND_FUA: u16 = 1 << 3;
    /// Seeks are expensive.
    pub const ROTATIONAL: u16 = 1 << 4;
    /// TRIM is supported.
    pub const SEND_TRIM: u16 = 1 << 5;
    /// WRITE_ZEROES (and NO_HOLE) is supported.
    pub const SEND_WRITE_ZEROES: u16 = 1 << 6;
    /// The DF command flag is supported (only with structured replies).
    pub const SEND_DF: u16 = 1 << 7;
    /// Several connections see one consistent export.
    pub const CAN_MULTI_CONN: u16 = 1 << 8;
    /// RESIZE is supported (extension).
    pub const SEND_RESIZE: u16 = 1 << 9;
    /// CACHE is supported.
    pub const SEND_CACHE: u16 = 1 << 10;
    /// FAST_ZERO is supported.
    pub const SEND_FAST_ZERO: u16 = 1 << 11;
    /// BLOCK_STATUS may carry a payload (extended headers only).
    pub const BLOCK_STATUS_PAYLOAD: u16 = 1 << 12;
}

/// Option codes (`NBD_OPT_*`).
pub mod opt {
    /// Choose an export and end negotiation, without a way to report errors.
    pub const EXPORT_NAME: u32 = 1;
    /// End negotiation and close.
    pub const ABORT: u32 = 2;
    /// List the exports.
    pub const LIST: u32 = 3;
    /// Withdrawn.
    pub const PEEK_EXPORT: u32 = 4;
    /// Upgrade to TLS.
    pub const STARTTLS: u32 = 5;
    /// Ask about an export.
    pub const INFO: u32 = 6;
    /// Ask about an export and start transmission.
    pub const GO: u32 = 7;
    /// Use structured replies.
    pub const STRUCTURED_REPLY: u32 = 8;
    /// List metadata contexts.
    pub const LIST_META_CONTEXT: u32 = 9;
    /// Select metadata contexts for BLOCK_STATUS.
    pub const SET_META_CONTEXT: u32 = 10;
    /// Use 64-bit extended headers.
    pub const EXTENDED_HEADERS: u32 = 11;
}

/// Option reply types (`NBD_REP_*`).
pub mod rep {
    /// Final success reply.
    pub const ACK: u32 = 1;
    /// One export in a LIST answer.
    pub const SERVER: u32 = 2;
    /// One piece of information in an INFO/GO answer.
    pub const INFO: u32 = 3;
    /// One metadata context.
    pub const META_CONTEXT: u32 = 4;
    /// Bit set on every error reply.
    pub const FLAG_ERROR: u32 = 1 << 31;
    /// Option unknown to the server.
    pub const ERR_UNSUP: u32 = FLAG_ERROR | 1;
    /// Forbidden by server policy.
    pub const ERR_POLICY: u32 = FLAG_ERROR | 2;
    /// Syntactically or semantically invalid.
    pub const ERR_INVALID: u32 = FLAG_ERROR | 3;
    /// Not supported on this platform.
    pub const ERR_PLATFORM: u32 = FLAG_ERROR | 4;
    /// TLS required first.
    pub const ERR_TLS_REQD: u32 = FLAG_ERROR | 5;
    /// No such export.
    pub const ERR_UNKNOWN: u32 = FLAG_ERROR | 6;
    /// The server is shutting down.
    pub const ERR_SHUTDOWN: u32 = FLAG_ERROR | 7;
    /// The client must ask for INFO_BLOCK_SIZE.
    pub const ERR_BLOCK_SIZE_REQD: u32 = FLAG_ERROR | 8;
    /// The request or reply is too large.
    pub const ERR_TOO_BIG: u32 = FLAG_ERROR | 9;
    /// Extended headers required.
    pub const ERR_EXT_HEADER_REQD: u32 = FLAG_ERROR | 10;
}

/// Information types in `NBD_REP_INFO` and the INFO/GO request list.
pub mod info {
    /// Size and transmission flags (mandatory in every successful answer).
    pub const EXPORT: u16 = 0;
    /// Canonical export name.
    pub const NAME: u16 = 1;
    /// Human-readable description.
    pub const DESCRIPTION: u16 = 2;
    /// Minimum, preferred and maximum block sizes.
    pub const BLOCK_SIZE: u16 = 3;
}

/// Transmission commands (`NBD_CMD_*`).
pub mod cmd {
    /// Read data.
    pub const READ: u16 = 0;
    /// Write data (payload follows the header).
    pub const WRITE: u16 = 1;
    /// Disconnect after in-flight requests; no reply.
    pub const DISC: u16 = 2;
    /// Make completed writes persistent.
    pub const FLUSH: u16 = 3;
    /// Discard a range (hint).
    pub const TRIM: u16 = 4;
    /// Prefetch a range (hint).
    pub const CACHE: u16 = 5;
    /// Write zeroes without a payload.
    pub const WRITE_ZEROES: u16 = 6;
    /// Report allocation status.
    pub const BLOCK_STATUS: u16 = 7;
    /// Resize the export (extension).
    pub const RESIZE: u16 = 8;
}

/// Command flags (`NBD_CMD_FLAG_*`).
pub mod cmd_flags {
    /// Force unit access: persistent before the reply.
    pub const FUA: u16 = 1 << 0;
    /// WRITE_ZEROES must not punch holes.
    pub const NO_HOLE: u16 = 1 << 1;
    /// READ must be answered in one chunk.
    pub const DF: u16 = 1 << 2;
    /// BLOCK_STATUS: exactly one extent.
    pub const REQ_ONE: u16 = 1 << 3;
    /// WRITE_ZEROES: fail fast unless faster than writing.
    pub const FAST_ZERO: u16 = 1 << 4;
    /// Extended headers: `length` is the payload length.
    pub const PAYLOAD_LEN: u16 = 1 << 5;
}

/// Structured reply chunk types (`NBD_REPLY_TYPE_*`) and flags.
pub mod chunk {
    /// Last chunk of a reply.
    pub const FLAG_DONE: u16 = 1 << 0;
    /// No payload; only with DONE.
    pub const NONE: u16 = 0;
    /// u64 offset + data.
    pub const OFFSET_DATA: u16 = 1;
    /// u64 offset + u32 hole size.
    pub const OFFSET_HOLE: u16 = 2;
    /// u32 context id + (u32 length, u32 flags) extents.
    pub const BLOCK_STATUS: u16 = 5;
    /// u32 context id + u32 count + (u64 length, u64 flags) extents (extended headers).
    pub const BLOCK_STATUS_EXT: u16 = 6;
    /// u32 error + u16 message length + message.
    pub const ERROR: u16 = 0x8001;
    /// As ERROR plus a u64 offset.
    pub const ERROR_OFFSET: u16 = 0x8002;
}

/// Error values carried in replies (`NBD_E*`), independent of the host's errno numbering.
pub mod errno {
    /// Operation not permitted (write to a read-only export).
    pub const EPERM: u32 = 1;
    /// I/O error.
    pub const EIO: u32 = 5;
    /// Out of memory.
    pub const ENOMEM: u32 = 12;
    /// Invalid argument (bad flag, out-of-range read, unknown command).
    pub const EINVAL: u32 = 22;
    /// No space (write past the end).
    pub const ENOSPC: u32 = 28;
    /// Value too large (DF read that cannot be one chunk).
    pub const EOVERFLOW: u32 = 75;
    /// Not supported (FAST_ZERO that would be slow).
    pub const ENOTSUP: u32 = 95;
    /// Server shutting down.
    pub const ESHUTDOWN: u32 = 108;
}

/// `NBD_META_CONTEXT` name of the one context this crate serves.
pub const BASE_ALLOCATION: &[u8] = b"base:allocation";

/// Why bytes were rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Error {
    /// Fewer bytes than the structure needs.
    #[error("truncated: need {need} bytes, have {have}")]
    Truncated {
        /// Bytes the structure needs.
        need: usize,
        /// Bytes available.
        have: usize,
    },
    /// A magic number did not match.
    #[error("bad magic {0:#018x}")]
    BadMagic(u64),
    /// An inner length runs past the end of its enclosing message, or leaves bytes over.
    #[error("inner length does not fit its message")]
    BadLength,
    /// A string longer than the protocol's 4096-byte limit.
    #[error("string longer than 4096 bytes")]
    StringTooLong,
}

fn need(buf: &[u8], n: usize) -> Result<&[u8], Error> {
    buf.get(..n).ok_or(Error::Truncated {
        need: n,
        have: buf.len(),
    })
}

// Fixed-size readers over a slice whose length the caller has already checked; they return
// 0 instead of panicking should that ever not hold.
fn be16(b: &[u8], at: usize) -> u16 {
    b.get(at..at + 2)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u16::from_be_bytes)
}
fn be32(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u32::from_be_bytes)
}
fn be64(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 8)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u64::from_be_bytes)
}

/// Splits a u32-length-prefixed field off the front of `b`.
fn take_prefixed(b: &[u8]) -> Result<(&[u8], &[u8]), Error> {
    let len = be32(need(b, 4)?, 0) as usize;
    let rest = &b[4..];
    if len > rest.len() {
        return Err(Error::BadLength);
    }
    Ok(rest.split_at(len))
}

/// The server's newstyle greeting (`NBDMAGIC`, `IHAVEOPT`, handshake flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Greeting {
    /// Handshake flags, see [`handshake_flags`].
    pub flags: u16,
}

impl Greeting {
    /// Parses a greeting from the first [`GREETING_LEN`] bytes of `buf`.
    pub fn parse(buf: &[u8]) -> Result<Greeting, Error> {
        let b = need(buf, GREETING_LEN)?;
        for (at, want) in [(0, NBDMAGIC), (8, IHAVEOPT)] {
            let got = be64(b, at);
            if got != want {
                return Err(Error::BadMagic(got));
            }
        }
        Ok(Greeting { flags: be16(b, 16) })
    }

    /// Bytes [`Greeting::emit`] writes.
    pub fn buffer_len(&self) -> usize {
        GREETING_LEN
    }

    /// Writes the greeting into the first [`GREETING_LEN`] bytes of `buf`.
    ///
    /// # Panics
    /// If `buf` is shorter than [`GREETING_LEN`] (an emitter's sizing bug, not input); the same
    /// holds for every `emit` in this module.
    pub fn emit(&self, buf: &mut [u8]) {
        buf[0..8].copy_from_slice(&NBDMAGIC.to_be_bytes());
        buf[8..16].copy_from_slice(&IHAVEOPT.to_be_bytes());
        buf[16..18].copy_from_slice(&self.flags.to_be_bytes());
    }
}

/// The client's 32-bit flags word, sent right after the greeting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientFlags {
    /// Flags, same bits as [`handshake_flags`].
    pub flags: u32,
}

impl ClientFlags {
    /// Parses the first 4 bytes of `buf`.
    pub fn parse(buf: &[u8]) -> Result<ClientFlags, Error> {
        Ok(ClientFlags {
            flags: be32(need(buf, CLIENT_FLAGS_LEN)?, 0),
        })
    }
    /// Bytes [`ClientFlags::emit`] writes.
    pub fn buffer_len(&self) -> usize {
        CLIENT_FLAGS_LEN
    }
    /// Writes the flags word.
    pub fn emit(&self, buf: &mut [u8]) {
        buf[..4].copy_from_slice(&self.flags.to_be_bytes());
    }
}

/// The fixed 16-byte part of an option request; the caller decides whether it is willing to
/// wait for `length` data bytes before reading them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptionHeader {
    /// Option code, see [`opt`].
    pub option: u32,
    /// Length of the data that follows.
    pub length: u32,
}

impl OptionHeader {
    /// Parses and checks the magic.
    pub fn parse(buf: &[u8]) -> Result<OptionHeader, Error> {
        let b = need(buf, OPTION_HEADER_LEN)?;
        let magic = be64(b, 0);
        if magic != IHAVEOPT {
            return Err(Error::BadMagic(magic));
        }
        Ok(OptionHeader {
            option: be32(b, 8),
            length: be32(b, 12),
        })
    }
    /// Writes the header.
    pub fn emit(&self, buf: &mut [u8]) {
        buf[0..8].copy_from_slice(&IHAVEOPT.to_be_bytes());
        buf[8..12].copy_from_slice(&self.option.to_be_bytes());
        buf[12..16].copy_from_slice(&self.length.to_be_bytes());
    }
}

/// A whole option request: header plus borrowed data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptionRequest<'a> {
    /// Option code, see [`opt`].
    pub option: u32,
    /// The option's data.
    pub data: &'a [u8],
}

impl<'a> OptionRequest<'a> {
    /// Parses a header and its complete data.
    pub fn parse(buf: &'a [u8]) -> Result<OptionRequest<'a>, Error> {
        let h = OptionHeader::parse(buf)?;
        let total = OPTION_HEADER_LEN + h.length as usize;
        let b = need(buf, total)?;
        Ok(OptionRequest {
            option: h.option,
            data: &b[OPTION_HEADER_LEN..],
        })
    }
    /// Bytes [`OptionRequest::emit`] writes.
    pub fn buffer_len(&self) -> usize {
        OPTION_HEADER_LEN + self.data.len()
    }
    /// Writes header and data.
    pub fn emit(&self, buf: &mut [u8]) {
        OptionHeader {
            option: self.option,
            length: self.data.len() as u32,
        }
        .emit(buf);
        buf[OPTION_HEADER_LEN..self.buffer_len()].copy_from_slice(self.data);
    }
}

/// An option reply: header plus borrowed data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptionReply<'a> {
    /// The option being answered.
    pub option: u32,
    /// Reply type, see [`rep`].
    pub reply_type: u32,
    /// The reply's data.
    pub data: &'a [u8],
}

impl<'a> OptionReply<'a> {
    /// Parses a header and its complete data.
    pub fn parse(buf: &'a [u8]) -> Result<OptionReply<'a>, Error> {
        let b = need(buf, OPTION_REPLY_HEADER_LEN)?;
        let magic = be64(b, 0);
        if magic != OPTION_REPLY_MAGIC {
            return Err(Error::BadMagic(magic));
        }
        let len = be32(b, 16) as usize;
        let b = need(buf, OPTION_REPLY_HEADER_LEN + len)?;
        Ok(OptionReply {
            option: be32(b, 8),
            reply_type: be32(b, 12),
            data: &b[OPTION_REPLY_HEADER_LEN..],
        })
    }
    /// Bytes [`OptionReply::emit`] writes.
    pub fn buffer_len(&self) -> usize {
        OPTION_REPLY_HEADER_LEN + self.data.len()
    }
    /// Writes header and data.
    pub fn emit(&self, buf: &mut [u8]) {
        buf[0..8].copy_from_slice(&OPTION_REPLY_MAGIC.to_be_bytes());
        buf[8..12].copy_from_slice(&self.option.to_be_bytes());
        buf[12..16].copy_from_slice(&self.reply_type.to_be_bytes());
        buf[16..20].copy_from_slice(&(self.data.len() as u32).to_be_bytes());
        buf[OPTION_REPLY_HEADER_LEN..self.buffer_len()].copy_from_slice(self.data);
    }
}

/// The server's answer to `NBD_OPT_EXPORT_NAME`: size, flags and (unless NO_ZEROES was agreed)
/// 124 zero bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExportNameReply {
    /// Export size in bytes.
    pub size: u64,
    /// Transmission flags, see [`transmission_flags`].
    pub flags: u16,
    /// Whether the 124 zero bytes follow.
    pub zeroes: bool,
}

impl ExportNameReply {
    /// Parses the reply; `zeroes` says which form to expect.
    pub fn parse(buf: &[u8], zeroes: bool) -> Result<ExportNameReply, Error> {
        let r = ExportNameReply {
            size: 0,
            flags: 0,
            zeroes,
        };
        let b = need(buf, r.buffer_len())?;
        Ok(ExportNameReply {
            size: be64(b, 0),
            flags: be16(b, 8),
            zeroes,
        })
    }
    /// 10 or 134 bytes.
    pub fn buffer_len(&self) -> usize {
        if self.zeroes { 134 } else { 10 }
    }
    /// Writes the reply.
    pub fn emit(&self, buf: &mut [u8]) {
        buf[0..8].copy_from_slice(&self.size.to_be_bytes());
        buf[8..10].copy_from_slice(&self.flags.to_be_bytes());
        buf[10..self.buffer_len()].fill(0);
    }
}

/// The data of `NBD_OPT_INFO` / `NBD_OPT_GO`: an export name and the information types asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InfoRequest<'a> {
    /// Export name ("" = default export).
    pub name: &'a [u8],
    /// The requested information types, raw (2 bytes each); see [`InfoRequest::requests`].
    pub raw_requests: &'a [u8],
}

impl<'a> InfoRequest<'a> {
    /// Parses option data, checking the name length and the request count against the data
    /// length (the nbd-server CVE-2022-26495/26496 shapes).
    pub fn parse(data: &'a [u8]) -> Result<InfoRequest<'a>, Error> {
        let (name, rest) = take_prefixed(data)?;
        if name.len() > MAX_STRING_LEN {
            return Err(Error::StringTooLong);
        }
        let n = be16(need(rest, 2)?, 0) as usize;
        let raw_requests = &rest[2..];
        if raw_requests.len() != n * 2 {
            return Err(Error::BadLength);
        }
        Ok(InfoRequest { name, raw_requests })
    }
    /// The requested information types.
    pub fn requests(&self) -> impl Iterator<Item = u16> + 'a {
        self.raw_requests
            .chunks_exact(2)
            .map(|c| u16::from_be_bytes([c[0], c[1]]))
    }
    /// Bytes [`InfoRequest::emit`] writes.
    pub fn buffer_len(&self) -> usize {
        4 + self.name.len() + 2 + self.raw_requests.len()
    }
    /// Writes the option data.
    pub fn emit(&self, buf: &mut [u8]) {
        let n = self.name.len();
        buf[0..4].copy_from_slice(&(n as u32).to_be_bytes());
        buf[4..4 + n].copy_from_slice(self.name);
        buf[4 + n..6 + n].copy_from_slice(&((self.raw_requests.len() / 2) as u16).to_be_bytes());
        buf[6 + n..self.buffer_len()].copy_from_slice(self.raw_requests);
    }
}

/// The data of `NBD_OPT_LIST_META_CONTEXT` / `NBD_OPT_SET_META_CONTEXT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetaContextRequest<'a> {
    /// Export name.
    pub name: &'a [u8],
    /// The queries, raw (u32 length + bytes each), already validated; see
    /// [`MetaContextRequest::queries`].
    pub raw_queries: &'a [u8],
    /// Number of queries.
    pub count: u32,
}

impl<'a> MetaContextRequest<'a> {
    /// Parses option data; every query length is checked against what remains (a syntax error
    /// here MUST be answered with `ERR_INVALID`).
    pub fn parse(data: &'a [u8]) -> Result<MetaContextRequest<'a>, Error> {
        let (name, rest) = take_prefixed(data)?;
        if name.len() > MAX_STRING_LEN {
            return Err(Error::StringTooLong);
        }
        let count = be32(need(rest, 4)?, 0);
        let raw_queries = &rest[4..];
        let mut left = raw_queries;
        for _ in 0..count {
            let (q, r) = take_prefixed(left)?;
            if q.len() > MAX_STRING_LEN {
                return Err(Error::StringTooLong);
            }
            left = r;
        }
        if !left.is_empty() {
            return Err(Error::BadLength);
        }
        Ok(MetaContextRequest {
            name,
            raw_queries,
            count,
        })
    }
    /// The queries.
    pub fn queries(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        let mut left = self.raw_queries;
        std::iter::from_fn(move || {
            let (q, r) = take_prefixed(left).ok()?;
            left = r;
            Some(q)
        })
    }
    /// Bytes [`MetaContextRequest::emit`] writes.
    pub fn buffer_len(&self) -> usize {
        4 + self.name.len() + 4 + self.raw_queries.len()
    }
    /// Writes the option data.
    pub fn emit(&self, buf: &mut [u8]) {
        let n = self.name.len();
        buf[0..4].copy_from_slice(&(n as u32).to_be_bytes());
        buf[4..4 + n].copy_from_slice(self.name);
        buf[4 + n..8 + n].copy_from_slice(&self.count.to_be_bytes());
        buf[8 + n..self.buffer_len()].copy_from_slice(self.raw_queries);
    }
}

/// A transmission request header, compact (28 bytes, u32 length) or extended (32 bytes,
/// u64 length). A WRITE's payload follows it on the wire and is not part of this `Repr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    /// Command flags, see [`cmd_flags`].
    pub flags: u16,
    /// Command, see [`cmd`].
    pub command: u16,
    /// Opaque cookie, echoed in the reply.
    pub cookie: u64,
    /// Offset into the export.
    pub offset: u64,
    /// Length of the range (or payload, with `PAYLOAD_LEN`).
    pub length: u64,
    /// Whether this is the extended form.
    pub extended: bool,
}

impl Request {
    /// Parses a header of the form selected by `extended` (the negotiated header style: a
    /// compact magic after EXTENDED_HEADERS, or the reverse, is a bad magic).
    pub fn parse(buf: &[u8], extended: bool) -> Result<Request, Error> {
        let (len, want) = if extended {
            (EXTENDED_REQUEST_LEN, EXTENDED_REQUEST_MAGIC)
        } else {
            (REQUEST_LEN, REQUEST_MAGIC)
        };
        let b = need(buf, len)?;
        let magic = be32(b, 0);
        if magic != want {
            return Err(Error::BadMagic(magic.into()));
        }
        Ok(Request {
            flags: be16(b, 4),
            command: be16(b, 6),
            cookie: be64(b, 8),
            offset: be64(b, 16),
            length: if extended {
                be64(b, 24)
            } else {
                be32(b, 24).into()
            },
            extended,
        })
    }
    /// 28 or 32.
    pub fn buffer_len(&self) -> usize {
        if self.extended {
            EXTENDED_REQUEST_LEN
        } else {
            REQUEST_LEN
        }
    }
    /// Writes the header (a compact header keeps the low 32 bits of `length`).
    pub fn emit(&self, buf: &mut [u8]) {
        let magic = if self.extended {
            EXTENDED_REQUEST_MAGIC
        } else {
            REQUEST_MAGIC
        };
        buf[0..4].copy_from_slice(&magic.to_be_bytes());
        buf[4..6].copy_from_slice(&self.flags.to_be_bytes());
        buf[6..8].copy_from_slice(&self.command.to_be_bytes());
        buf[8..16].copy_from_slice(&self.cookie.to_be_bytes());
        buf[16..24].copy_from_slice(&self.offset.to_be_bytes());
        if self.extended {
            buf[24..32].copy_from_slice(&self.length.to_be_bytes());
        } else {
            buf[24..28].copy_from_slice(&(self.length as u32).to_be_bytes());
        }
    }
}

/// A simple reply header (a successful READ's data follows it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimpleReply {
    /// 0 or an [`errno`] value.
    pub error: u32,
    /// The request's cookie.
    pub cookie: u64,
}

impl SimpleReply {
    /// Parses and checks the magic.
    pub fn parse(buf: &[u8]) -> Result<SimpleReply, Error> {
        let b = need(buf, SIMPLE_REPLY_LEN)?;
        let magic = be32(b, 0);
        if magic != SIMPLE_REPLY_MAGIC {
            return Err(Error::BadMagic(magic.into()));
        }
        Ok(SimpleReply {
            error: be32(b, 4),
            cookie: be64(b, 8),
        })
    }
    /// 16.
    pub fn buffer_len(&self) -> usize {
        SIMPLE_REPLY_LEN
    }
    /// Writes the header.
    pub fn emit(&self, buf: &mut [u8]) {
        buf[0..4].copy_from_slice(&SIMPLE_REPLY_MAGIC.to_be_bytes());
        buf[4..8].copy_from_slice(&self.error.to_be_bytes());
        buf[8..16].copy_from_slice(&self.cookie.to_be_bytes());
    }
}

/// A reply chunk header: structured (20 bytes, u32 length) or extended (32 bytes, echoes the
/// request's offset, u64 length). The chunk's payload follows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkHeader {
    /// Reply flags ([`chunk::FLAG_DONE`]).
    pub flags: u16,
    /// Chunk type, see [`chunk`].
    pub kind: u16,
    /// The request's cookie.
    pub cookie: u64,
    /// The request's offset (extended form only; 0 in the structured form).
    pub offset: u64,
    /// Payload length.
    pub length: u64,
    /// Whether this is the extended form.
    pub extended: bool,
}

impl ChunkHeader {
    /// Parses the form selected by `extended` and checks the magic.
    pub fn parse(buf: &[u8], extended: bool) -> Result<ChunkHeader, Error> {
        let (len, want) = if extended {
            (EXTENDED_REPLY_LEN, EXTENDED_REPLY_MAGIC)
        } else {
            (STRUCTURED_REPLY_LEN, STRUCTURED_REPLY_MAGIC)
        };
        let b = need(buf, len)?;
        let magic = be32(b, 0);
        if magic != want {
            return Err(Error::BadMagic(magic.into()));
        }
        let (offset, length) = if extended {
            (be64(b, 16), be64(b, 24))
        } else {
            (0, be32(b, 16).into())
        };
        Ok(ChunkHeader {
            flags: be16(b, 4),
            kind: be16(b, 6),
            cookie: be64(b, 8),
            offset,
            length,
            extended,
        })
    }
    /// 20 or 32.
    pub fn buffer_len(&self) -> usize {
        if self.extended {
            EXTENDED_REPLY_LEN
        } else {
            STRUCTURED_REPLY_LEN
        }
    }
    /// Writes the header (the structured form keeps the low 32 bits of `length`).
    pub fn emit(&self, buf: &mut [u8]) {
        let magic = if self.extended {
            EXTENDED_REPLY_MAGIC
        } else {
            STRUCTURED_REPLY_MAGIC
        };
        buf[0..4].copy_from_slice(&magic.to_be_bytes());
        buf[4..6].copy_from_slice(&self.flags.to_be_bytes());
        buf[6..8].copy_from_slice(&self.kind.to_be_bytes());
        buf[8..16].copy_from_slice(&self.cookie.to_be_bytes());
        if self.extended {
            buf[16..24].copy_from_slice(&self.offset.to_be_bytes());
            buf[24..32].copy_from_slice(&self.length.to_be_bytes());
        } else {
            buf[16..20].copy_from_slice(&(self.length as u32).to_be_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greeting_bytes_as_nbdkit_sends_them() {
        let bytes = b"NBDMAGICIHAVEOPT\x00\x03";
        assert_eq!(Greeting::parse(bytes), Ok(Greeting { flags: 3 }));
        assert_eq!(
            Greeting::parse(&bytes[..10]),
            Err(Error::Truncated { need: 18, have: 10 })
        );
        assert!(matches!(
            Greeting::parse(b"NBDMAGICxxxxxxxx\x00\x03"),
            Err(Error::BadMagic(_))
        ));
    }

    #[test]
    fn go_option_as_libnbd_sends_it() {
        // IHAVEOPT, GO, len 10: namelen 0, "" , 1 request: BLOCK_SIZE
        let bytes = b"IHAVEOPT\x00\x00\x00\x07\x00\x00\x00\x08\x00\x00\x00\x00\x00\x01\x00\x03";
        let o = OptionRequest::parse(bytes).unwrap();
        assert_eq!(o.option, opt::GO);
        let i = InfoRequest::parse(o.data).unwrap();
        assert_eq!(i.name, b"");
        assert_eq!(i.requests().collect::<Vec<_>>(), [info::BLOCK_SIZE]);
        assert_eq!(
            OptionRequest::parse(&bytes[..20]),
            Err(Error::Truncated { need: 24, have: 20 })
        );
    }

    #[test]
    fn info_request_lengths_are_checked() {
        // CVE-2022-26495 shape: namelen 0xffffffff.
        assert_eq!(
            InfoRequest::parse(b"\xff\xff\xff\xff\x00\x00"),
            Err(Error::BadLength)
        );
        // request count larger than the data
        assert_eq!(
            InfoRequest::parse(b"\x00\x00\x00\x00\x00\x02\x00\x01"),
            Err(Error::BadLength)
        );
        let mut long = vec![0, 0, 0x10, 0x01];
        long.extend(std::iter::repeat_n(b'a', 4097));
        long.extend([0, 0]);
        assert_eq!(InfoRequest::parse(&long), Err(Error::StringTooLong));
    }

    #[test]
    fn meta_context_request() {
        let bytes = b"\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x0fbase:allocation";
        let m = MetaContextRequest::parse(bytes).unwrap();
        assert_eq!(m.queries().collect::<Vec<_>>(), [BASE_ALLOCATION]);
        assert_eq!(
            MetaContextRequest::parse(&bytes[..bytes.len() - 1]),
            Err(Error::BadLength)
        );
        let mut extra = bytes.to_vec();
        extra.push(0);
        assert_eq!(MetaContextRequest::parse(&extra), Err(Error::BadLength));
    }

    #[test]
    fn compact_read_request_as_the_kernel_sends_it() {
        let bytes = b"\x25\x60\x95\x13\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x2a\
                      \x00\x00\x00\x00\x00\x00\x10\x00\x00\x02\x00\x00";
        let r = Request::parse(bytes, false).unwrap();
        assert_eq!(
            r,
            Request {
                flags: 0,
                command: cmd::READ,
                cookie: 42,
                offset: 4096,
                length: 131072,
                extended: false
            }
        );
        assert_eq!(
            Request::parse(bytes, true),
            Err(Error::Truncated { need: 32, have: 28 })
        );
        let mut out = [0u8; 28];
        r.emit(&mut out);
        assert_eq!(&out, bytes);
    }

    #[test]
    fn replies_have_the_spec_layout() {
        let mut b = [0u8; 16];
        SimpleReply {
            error: errno::EINVAL,
            cookie: 7,
        }
        .emit(&mut b);
        assert_eq!(
            &b,
            b"\x67\x44\x66\x98\x00\x00\x00\x16\x00\x00\x00\x00\x00\x00\x00\x07"
        );
        let mut c = [0u8; 20];
        let h = ChunkHeader {
            flags: chunk::FLAG_DONE,
            kind: chunk::OFFSET_DATA,
            cookie: 1,
            offset: 0,
            length: 520,
            extended: false,
        };
        h.emit(&mut c);
        assert_eq!(
            &c,
            b"\x66\x8e\x33\xef\x00\x01\x00\x01\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x02\x08"
        );
        assert_eq!(ChunkHeader::parse(&c, false), Ok(h));
        let mut e = [0u8; 10];
        ExportNameReply {
            size: 1 << 20,
            flags: 3,
            zeroes: false,
        }
        .emit(&mut e);
        assert_eq!(&e, b"\x00\x00\x00\x00\x00\x10\x00\x00\x00\x03");
    }
}
