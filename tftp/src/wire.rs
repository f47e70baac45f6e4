//! Zero-copy views over TFTP datagrams.
//!
//! [`Repr::parse`] turns a datagram into a [`Repr`] that borrows from it; [`Repr::emit`]
//! writes one back. [`Packet`] is the thinner view for the hot path (opcode and block number
//! without parsing the rest). [`Options`] is the parsed form of the RFC 2347 option list, and
//! doubles as the OACK builder: it only ever holds values the RFCs allow, so an OACK built
//! from it is conformant by construction.
//!
//! Parsing is strict where the RFCs are (NUL-terminated strings, request length, known
//! opcodes, options in name/value pairs) and never panics or allocates.

use thiserror::Error;

/// RFC 1350 §1: block size when no `blksize` option is negotiated.
pub const DEFAULT_BLKSIZE: u16 = 512;
/// RFC 2348: smallest `blksize` a client may request.
pub const MIN_BLKSIZE: u16 = 8;
/// RFC 2348: largest `blksize` (65535 − 20 IPv4 − 8 UDP − 4 TFTP − 39, as the RFC states).
pub const MAX_BLKSIZE: u16 = 65464;
/// RFC 2347 §"Packet formats": a request with options must fit in 512 octets.
pub const MAX_REQUEST_LEN: usize = 512;
/// Size of the DATA/ACK/ERROR header: opcode plus block number or error code.
pub const HEADER_LEN: usize = 4;
/// Largest datagram this crate ever emits or needs to receive (DATA at [`MAX_BLKSIZE`]).
pub const MAX_DATAGRAM_LEN: usize = HEADER_LEN + MAX_BLKSIZE as usize;

/// Why a datagram was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Error {
    /// Shorter than its fixed header (opcode, block number, error code).
    #[error("datagram shorter than its header")]
    Truncated,
    /// An opcode RFC 1350/2347 does not define.
    #[error("unknown opcode {0}")]
    UnknownOpcode(u16),
    /// A request or OACK whose last string lacks its terminating NUL (CVE-2021-46671 shape).
    #[error("string field not NUL-terminated")]
    Unterminated,
    /// A request longer than the configured limit (512 octets by RFC 2347).
    #[error("request longer than {0} bytes")]
    TooLong(usize),
    /// A transfer mode other than `netascii`, `octet` or `mail`.
    #[error("unknown transfer mode")]
    BadMode,
    /// An option name without a value, or an empty option name.
    #[error("malformed option list")]
    BadOption,
    /// An OACK carrying a value outside its RFC range.
    #[error("option value out of range")]
    BadOptionValue,
    /// Bytes after a fixed-size packet (ACK).
    #[error("trailing bytes after packet")]
    TrailingBytes,
    /// The output buffer is too small for [`Repr::emit`].
    #[error("buffer too small")]
    BufferTooSmall,
}

/// The first two bytes of every TFTP datagram (RFC 1350 §5, RFC 2347 adds OACK).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opcode {
    /// 1: read request.
    Rrq,
    /// 2: write request.
    Wrq,
    /// 3: data block.
    Data,
    /// 4: acknowledgement.
    Ack,
    /// 5: error.
    Error,
    /// 6: option acknowledgement (RFC 2347).
    Oack,
}

impl Opcode {
    /// Reads the opcode at the start of `datagram`.
    pub fn parse(datagram: &[u8]) -> Result<Opcode, Error> {
        let [hi, lo, ..] = *datagram else {
            return Err(Error::Truncated);
        };
        Ok(match u16::from_be_bytes([hi, lo]) {
            1 => Opcode::Rrq,
            2 => Opcode::Wrq,
            3 => Opcode::Data,
            4 => Opcode::Ack,
            5 => Opcode::Error,
            6 => Opcode::Oack,
            other => return Err(Error::UnknownOpcode(other)),
        })
    }

    /// The on-wire value.
    pub fn code(self) -> u16 {
        match self {
            Opcode::Rrq => 1,
            Opcode::Wrq => 2,
            Opcode::Data => 3,
            Opcode::Ack => 4,
            Opcode::Error => 5,
            Opcode::Oack => 6,
        }
    }
}

/// Transfer mode of a request (RFC 1350 §5: compared case-insensitively).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `netascii`: lines end in CR LF, a lone CR is sent as CR NUL (RFC 764).
    Netascii,
    /// `octet`: raw bytes.
    Octet,
    /// `mail`: obsolete (RFC 1350 says it SHOULD NOT be implemented); parsed so it can be refused.
    Mail,
}

impl Mode {
    /// Parses a mode name, ignoring ASCII case.
    pub fn parse(name: &[u8]) -> Result<Mode, Error> {
        if name.eq_ignore_ascii_case(b"octet") {
            Ok(Mode::Octet)
        } else if name.eq_ignore_ascii_case(b"netascii") {
            Ok(Mode::Netascii)
        } else if name.eq_ignore_ascii_case(b"mail") {
            Ok(Mode::Mail)
        } else {
            Err(Error::BadMode)
        }
    }

    /// The canonical (lower-case) name.
    pub fn name(self) -> &'static [u8] {
        match self {
            Mode::Netascii => b"netascii",
            Mode::Octet => b"octet",
            Mode::Mail => b"mail",
        }
    }
}

/// An ERROR packet's code (RFC 1350 §5 "Error Codes", RFC 2347 adds 8). Kept as the raw
/// number so any code a peer sends survives a round trip.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ErrorCode(pub u16);

impl ErrorCode {
    /// 0: not defined, see message (iPXE's "TFTP Aborted" uses it).
    pub const UNDEFINED: ErrorCode = ErrorCode(0);
    /// 1: file not found.
    pub const FILE_NOT_FOUND: ErrorCode = ErrorCode(1);
    /// 2: access violation.
    pub const ACCESS_VIOLATION: ErrorCode = ErrorCode(2);
    /// 3: disk full or allocation exceeded (also: WRQ `tsize` over quota, RFC 2349).
    pub const DISK_FULL: ErrorCode = ErrorCode(3);
    /// 4: illegal TFTP operation.
    pub const ILLEGAL_OPERATION: ErrorCode = ErrorCode(4);
    /// 5: unknown transfer ID (a datagram from a port that is not the session's peer).
    pub const UNKNOWN_TID: ErrorCode = ErrorCode(5);
    /// 6: file already exists.
    pub const FILE_EXISTS: ErrorCode = ErrorCode(6);
    /// 7: no such user.
    pub const NO_SUCH_USER: ErrorCode = ErrorCode(7);
    /// 8: option negotiation refused (RFC 2347); UEFI sends it after its `tsize` probe.
    pub const OPTION_REFUSED: ErrorCode = ErrorCode(8);
}

/// A validated, raw RFC 2347 option list: `name\0value\0` pairs, borrowed from the datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OptionList<'a> {
    raw: &'a [u8],
}

impl<'a> OptionList<'a> {
    /// Validates `raw` as zero or more `name\0value\0` pairs with non-empty names.
    pub fn parse(raw: &'a [u8]) -> Result<OptionList<'a>, Error> {
        if !raw.is_empty() && raw.last() != Some(&0) {
            return Err(Error::Unterminated);
        }
        let list = OptionList { raw };
        let mut fields = split_fields(raw);
        while let Some(name) = fields.next() {
            if name.is_empty() || fields.next().is_none() {
                return Err(Error::BadOption);
            }
        }
        Ok(list)
    }

    /// The raw bytes (each pair NUL-terminated).
    pub fn as_bytes(&self) -> &'a [u8] {
        self.raw
    }

    /// Whether there are no options.
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// The `(name, value)` pairs in order, duplicates included.
    pub fn iter(&self) -> impl Iterator<Item = (&'a [u8], &'a [u8])> + 'a {
        let mut fields = split_fields(self.raw);
        std::iter::from_fn(move || Some((fields.next()?, fields.next()?)))
    }
}

/// NUL-terminated fields of `raw` (which ends in NUL or is empty).
fn split_fields(raw: &[u8]) -> impl Iterator<Item = &[u8]> {
    let body = raw.strip_suffix(&[0]).unwrap_or(raw);
    let mut parts = body.split(|&b| b == 0);
    let empty = raw.is_empty();
    std::iter::from_fn(move || if empty { None } else { parts.next() })
}

/// A read or write request (RFC 1350 §5, options per RFC 2347).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request<'a> {
    /// The file name exactly as sent (any bytes but NUL; the server decides what is allowed).
    pub filename: &'a [u8],
    /// The transfer mode.
    pub mode: Mode,
    /// The options after the mode, possibly empty.
    pub options: OptionList<'a>,
}

impl<'a> Request<'a> {
    /// Parses the part after the opcode: `filename\0mode\0[name\0value\0]*`.
    fn parse_body(body: &'a [u8]) -> Result<Request<'a>, Error> {
        if body.last() != Some(&0) {
            return Err(Error::Unterminated);
        }
        let name_end = body
            .iter()
            .position(|&b| b == 0)
            .ok_or(Error::Unterminated)?;
        let rest = &body[name_end + 1..];
        let mode_end = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or(Error::Unterminated)?;
        Ok(Request {
            filename: &body[..name_end],
            mode: Mode::parse(&rest[..mode_end])?,
            options: OptionList::parse(&rest[mode_end + 1..])?,
        })
    }

    fn body_len(&self) -> usize {
        self.filename.len() + 1 + self.mode.name().len() + 1 + self.options.raw.len()
    }
}

/// A parsed TFTP datagram, borrowing from the buffer it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repr<'a> {
    /// Read request (opcode 1).
    Rrq(Request<'a>),
    /// Write request (opcode 2).
    Wrq(Request<'a>),
    /// A data block (opcode 3); a block shorter than the block size ends the transfer.
    Data {
        /// The 16-bit block number (wraps, see the engine's rollover policy).
        block: u16,
        /// The payload, 0..=blksize bytes.
        data: &'a [u8],
    },
    /// Acknowledgement of `block` (opcode 4); block 0 acknowledges an OACK.
    Ack {
        /// The acknowledged block number.
        block: u16,
    },
    /// An error (opcode 5); it ends the transfer and is never acknowledged.
    Error {
        /// The error code.
        code: ErrorCode,
        /// The message without its NUL (not necessarily UTF-8).
        message: &'a [u8],
    },
    /// Option acknowledgement (opcode 6, RFC 2347).
    Oack(OptionList<'a>),
}

impl<'a> Repr<'a> {
    /// Parses a datagram, accepting requests up to [`MAX_REQUEST_LEN`] bytes.
    pub fn parse(datagram: &'a [u8]) -> Result<Repr<'a>, Error> {
        Repr::parse_with_limit(datagram, MAX_REQUEST_LEN)
    }

    /// Parses a datagram, accepting requests up to `max_request_len` bytes (some clients send
    /// long paths; RFC 2347 says 512).
    ///
    /// An ERROR's message is taken up to its NUL, or to the end when a sloppy peer left the
    /// NUL out: an ERROR must always be recognised, since it ends the transfer.
    pub fn parse_with_limit(datagram: &'a [u8], max_request_len: usize) -> Result<Repr<'a>, Error> {
        let opcode = Opcode::parse(datagram)?;
        let body = &datagram[2..];
        let block = || match *body {
            [hi, lo, ..] => Ok(u16::from_be_bytes([hi, lo])),
            _ => Err(Error::Truncated),
        };
        match opcode {
            Opcode::Rrq | Opcode::Wrq => {
                if datagram.len() > max_request_len {
                    return Err(Error::TooLong(max_request_len));
                }
                let req = Request::parse_body(body)?;
                Ok(if opcode == Opcode::Rrq {
                    Repr::Rrq(req)
                } else {
                    Repr::Wrq(req)
                })
            }
            Opcode::Data => Ok(Repr::Data {
                block: block()?,
                data: &body[2..],
            }),
            Opcode::Ack => {
                let block = block()?;
                if body.len() > 2 {
                    return Err(Error::TrailingBytes);
                }
                Ok(Repr::Ack { block })
            }
            Opcode::Error => {
                let code = ErrorCode(block()?);
                let text = &body[2..];
                let end = text.iter().position(|&b| b == 0).unwrap_or(text.len());
                Ok(Repr::Error {
                    code,
                    message: &text[..end],
                })
            }
            Opcode::Oack => Ok(Repr::Oack(OptionList::parse(body)?)),
        }
    }

    /// The opcode of this packet.
    pub fn opcode(&self) -> Opcode {
        match self {
            Repr::Rrq(_) => Opcode::Rrq,
            Repr::Wrq(_) => Opcode::Wrq,
            Repr::Data { .. } => Opcode::Data,
            Repr::Ack { .. } => Opcode::Ack,
            Repr::Error { .. } => Opcode::Error,
            Repr::Oack(_) => Opcode::Oack,
        }
    }

    /// Bytes [`Repr::emit`] writes.
    pub fn buffer_len(&self) -> usize {
        2 + match self {
            Repr::Rrq(r) | Repr::Wrq(r) => r.body_len(),
            Repr::Data { data, .. } => 2 + data.len(),
            Repr::Ack { .. } => 2,
            Repr::Error { message, .. } => 2 + message.len() + 1,
            Repr::Oack(list) => list.raw.len(),
        }
    }

    /// Writes the packet to the start of `buf`, returning its length.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, Error> {
        let len = self.buffer_len();
        let out = buf.get_mut(..len).ok_or(Error::BufferTooSmall)?;
        out[..2].copy_from_slice(&self.opcode().code().to_be_bytes());
        let mut w = Writer { buf: out, pos: 2 };
        match self {
            Repr::Rrq(r) | Repr::Wrq(r) => {
                w.put(r.filename);
                w.put(&[0]);
                w.put(r.mode.name());
                w.put(&[0]);
                w.put(r.options.raw);
            }
            Repr::Data { block, data } => {
                w.put(&block.to_be_bytes());
                w.put(data);
            }
            Repr::Ack { block } => w.put(&block.to_be_bytes()),
            Repr::Error { code, message } => {
                w.put(&code.0.to_be_bytes());
                w.put(message);
                w.put(&[0]);
            }
            Repr::Oack(list) => w.put(list.raw),
        }
        Ok(len)
    }
}

/// Sequential writes into a buffer already checked to be large enough.
struct Writer<'b> {
    buf: &'b mut [u8],
    pos: usize,
}

impl Writer<'_> {
    fn put(&mut self, bytes: &[u8]) {
        let end = self.pos + bytes.len();
        if let Some(dst) = self.buf.get_mut(self.pos..end) {
            dst.copy_from_slice(bytes);
        }
        self.pos = end;
    }
}

/// Writes a DATA header for `block` into `buf[..4]` (the payload goes at `buf[4..]`, so a
/// driver can read file bytes straight into the datagram). Returns `false` when `buf` is
/// shorter than the header.
pub fn emit_data_header(buf: &mut [u8], block: u16) -> bool {
    let Some(head) = buf.get_mut(..HEADER_LEN) else {
        return false;
    };
    head[..2].copy_from_slice(&Opcode::Data.code().to_be_bytes());
    head[2..].copy_from_slice(&block.to_be_bytes());
    true
}

/// Writes an ERROR packet with `message`, truncated so the packet fits `buf`. Returns its
/// length (0 when `buf` cannot even hold the header and NUL).
pub fn emit_error(buf: &mut [u8], code: ErrorCode, message: &str) -> usize {
    if buf.len() < HEADER_LEN + 1 {
        return 0;
    }
    let text = &message.as_bytes()[..message.len().min(buf.len() - HEADER_LEN - 1)];
    Repr::Error {
        code,
        message: text,
    }
    .emit(buf)
    .unwrap_or(0)
}

/// A zero-copy view of a datagram for the hot path: the opcode and block number are read in
/// place, without parsing the rest.
#[derive(Debug, Clone, Copy)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
    opcode: Opcode,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Checks that `buffer` has a known opcode and the fixed header its opcode needs, so the
    /// accessors below cannot fail.
    pub fn new_checked(buffer: T) -> Result<Packet<T>, Error> {
        let bytes = buffer.as_ref();
        let opcode = Opcode::parse(bytes)?;
        let fixed = match opcode {
            Opcode::Data | Opcode::Ack | Opcode::Error => HEADER_LEN,
            Opcode::Rrq | Opcode::Wrq | Opcode::Oack => 2,
        };
        if bytes.len() < fixed {
            return Err(Error::Truncated);
        }
        Ok(Packet { buffer, opcode })
    }

    /// The opcode.
    pub fn opcode(&self) -> Opcode {
        self.opcode
    }

    /// The block number of a DATA or ACK (or the code of an ERROR); `None` for others.
    pub fn block(&self) -> Option<u16> {
        match (self.opcode, self.buffer.as_ref()) {
            (Opcode::Data | Opcode::Ack | Opcode::Error, [_, _, hi, lo, ..]) => {
                Some(u16::from_be_bytes([*hi, *lo]))
            }
            _ => None,
        }
    }

    /// The payload of a DATA packet (empty for others).
    pub fn payload(&self) -> &[u8] {
        match self.opcode {
            Opcode::Data => self.buffer.as_ref().get(HEADER_LEN..).unwrap_or(&[]),
            _ => &[],
        }
    }

    /// The whole datagram.
    pub fn as_bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// Parses a decimal option value: ASCII digits only, at most `u64`, no sign, no spaces.
/// Returns `None` on anything else (overflow included) instead of wrapping.
pub fn parse_decimal(value: &[u8]) -> Option<u64> {
    if value.is_empty() || value.len() > 20 {
        return None;
    }
    value.iter().try_fold(0u64, |acc, &b| {
        let digit = b.checked_sub(b'0').filter(|d| *d <= 9)?;
        acc.checked_mul(10)?.checked_add(u64::from(digit))
    })
}

/// The options netboot understands, as requested by a client or acknowledged in an OACK.
///
/// Every field holds only values valid for its RFC, so emitting an OACK from it is always
/// conformant. Options it does not know are dropped (RFC 2347: a server omits options it
/// does not support).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Options {
    /// RFC 2348 `blksize`, 8..=65464.
    pub blksize: Option<u16>,
    /// RFC 2349 `timeout` in seconds, 1..=255.
    pub timeout: Option<u8>,
    /// RFC 2349 `tsize`: 0 on RRQ asks for the size; on WRQ and in an OACK, the size.
    pub tsize: Option<u64>,
    /// RFC 7440 `windowsize`, 1..=65535.
    pub windowsize: Option<u16>,
}

/// Option names as emitted (RFC 2347: names compare case-insensitively).
const BLKSIZE: &[u8] = b"blksize";
const TIMEOUT: &[u8] = b"timeout";
const TSIZE: &[u8] = b"tsize";
const WINDOWSIZE: &[u8] = b"windowsize";

impl Options {
    /// Reads a request's options. Names are matched ignoring case; the first occurrence of a
    /// name decides (a duplicate is honoured once and so echoed once); a value that is not a
    /// plain decimal or is out of range drops the option, except that a `blksize` above
    /// 65464 or a `windowsize` above 65535 is lowered to the maximum (RFC 2348 lets the
    /// server answer with a smaller block size; RFC 7440 a smaller window).
    pub fn from_request(list: &OptionList<'_>) -> Options {
        let mut out = Options::default();
        let mut seen = [false; 4];
        for (name, value) in list.iter() {
            let Some(slot) = [BLKSIZE, TIMEOUT, TSIZE, WINDOWSIZE]
                .iter()
                .position(|n| name.eq_ignore_ascii_case(n))
            else {
                continue;
            };
            if std::mem::replace(&mut seen[slot], true) {
                continue;
            }
            let v = parse_decimal(value);
            match slot {
                0 => {
                    out.blksize = v
                        .filter(|v| *v >= u64::from(MIN_BLKSIZE))
                        .map(|v| v.min(u64::from(MAX_BLKSIZE)) as u16);
                }
                1 => out.timeout = v.filter(|v| (1..=255).contains(v)).map(|v| v as u8),
                2 => out.tsize = v,
                _ => out.windowsize = v.filter(|v| *v >= 1).map(|v| v.min(65535) as u16),
            }
        }
        out
    }

    /// Reads an OACK strictly: every value must be in its RFC range, names may not repeat.
    /// Unknown names are skipped (a client ignores what it did not ask for).
    pub fn from_oack(list: &OptionList<'_>) -> Result<Options, Error> {
        let mut out = Options::default();
        for (name, value) in list.iter() {
            let v = parse_decimal(value).ok_or(Error::BadOptionValue)?;
            let in_range = |lo: u64, hi: u64| (lo..=hi).contains(&v);
            let (dup, ok) = if name.eq_ignore_ascii_case(BLKSIZE) {
                let ok = in_range(u64::from(MIN_BLKSIZE), u64::from(MAX_BLKSIZE));
                (out.blksize.replace(v as u16).is_some(), ok)
            } else if name.eq_ignore_ascii_case(TIMEOUT) {
                (out.timeout.replace(v as u8).is_some(), in_range(1, 255))
            } else if name.eq_ignore_ascii_case(TSIZE) {
                (out.tsize.replace(v).is_some(), true)
            } else if name.eq_ignore_ascii_case(WINDOWSIZE) {
                (
                    out.windowsize.replace(v as u16).is_some(),
                    in_range(1, 65535),
                )
            } else {
                continue;
            };
            if dup || !ok {
                return Err(Error::BadOptionValue);
            }
        }
        Ok(out)
    }

    /// Whether no option is set (then no OACK is sent: RFC 2347 never sends an empty one).
    pub fn is_empty(&self) -> bool {
        *self == Options::default()
    }

    fn pairs(&self) -> impl Iterator<Item = (&'static [u8], u64)> {
        [
            (BLKSIZE, self.blksize.map(u64::from)),
            (TIMEOUT, self.timeout.map(u64::from)),
            (TSIZE, self.tsize),
            (WINDOWSIZE, self.windowsize.map(u64::from)),
        ]
        .into_iter()
        .filter_map(|(n, v)| Some((n, v?)))
    }

    /// Length of the OACK datagram [`Options::emit_oack`] writes (opcode included).
    pub fn oack_len(&self) -> usize {
        2 + self
            .pairs()
            .map(|(n, v)| n.len() + 1 + Digits::new(v).len() + 1)
            .sum::<usize>()
    }

    /// Writes an OACK datagram with these options, returning its length.
    pub fn emit_oack(&self, buf: &mut [u8]) -> Result<usize, Error> {
        let out = buf
            .get_mut(..self.oack_len())
            .ok_or(Error::BufferTooSmall)?;
        out[..2].copy_from_slice(&Opcode::Oack.code().to_be_bytes());
        Ok(2 + self.emit_pairs(&mut out[2..]))
    }

    /// Writes the bare option list, as it follows the mode in a request (for clients and
    /// tests); needs `oack_len() - 2` bytes.
    pub fn emit_request_options(&self, buf: &mut [u8]) -> Result<usize, Error> {
        let out = buf
            .get_mut(..self.oack_len() - 2)
            .ok_or(Error::BufferTooSmall)?;
        Ok(self.emit_pairs(out))
    }

    /// Writes `name\0value\0` pairs into `out`, which is exactly large enough.
    fn emit_pairs(&self, out: &mut [u8]) -> usize {
        let mut w = Writer { buf: out, pos: 0 };
        for (name, value) in self.pairs() {
            w.put(name);
            w.put(&[0]);
            w.put(Digits::new(value).as_bytes());
            w.put(&[0]);
        }
        w.pos
    }
}

/// Decimal digits of a `u64` without allocating.
struct Digits {
    buf: [u8; 20],
    start: usize,
}

impl Digits {
    fn new(mut v: u64) -> Digits {
        let mut buf = [b'0'; 20];
        let mut start = 20;
        loop {
            start -= 1;
            buf[start] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        Digits { buf, start }
    }
    fn as_bytes(&self) -> &[u8] {
        &self.buf[self.start..]
    }
    fn len(&self) -> usize {
        20 - self.start
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opcodes_of_real_datagrams() {
        // An RRQ as tftp-hpa sends it: "pxelinux.0", mode "octet".
        let rrq = b"\x00\x01pxelinux.0\x00octet\x00";
        assert_eq!(Opcode::parse(rrq), Ok(Opcode::Rrq));
        assert_eq!(Opcode::parse(&[0, 4, 0, 1]), Ok(Opcode::Ack));
        assert_eq!(Opcode::parse(&[0]), Err(Error::Truncated));
        assert_eq!(Opcode::parse(&[0, 9]), Err(Error::UnknownOpcode(9)));
    }

    #[test]
    fn ovmf_first_request() {
        // OVMF (EDK2 2022.11) as captured: tsize 0, blksize 1468, windowsize 4.
        let d =
            b"\x00\x01bootx64.efi\x00octet\x00tsize\x000\x00blksize\x001468\x00windowsize\x004\x00";
        let Ok(Repr::Rrq(req)) = Repr::parse(d) else {
            panic!("not an RRQ")
        };
        assert_eq!(req.filename, b"bootx64.efi");
        assert_eq!(req.mode, Mode::Octet);
        let o = Options::from_request(&req.options);
        assert_eq!(
            o,
            Options {
                blksize: Some(1468),
                timeout: None,
                tsize: Some(0),
                windowsize: Some(4)
            }
        );
        let mut buf = [0u8; 600];
        let n = Repr::Rrq(req).emit(&mut buf).unwrap();
        assert_eq!(&buf[..n], d);
    }

    #[test]
    fn ipxe_and_curl_requests() {
        let ipxe = b"\x00\x01/ltsp/ltsp.img\x00octet\x00blksize\x001432\x00tsize\x000\x00";
        let Ok(Repr::Rrq(r)) = Repr::parse(ipxe) else {
            panic!()
        };
        let o = Options::from_request(&r.options);
        assert_eq!((o.blksize, o.tsize), (Some(1432), Some(0)));
        // curl 7.88: tsize 0, blksize 512, timeout 6.
        let curl = b"\x00\x01f\x00octet\x00tsize\x000\x00blksize\x00512\x00timeout\x006\x00";
        let Ok(Repr::Rrq(r)) = Repr::parse(curl) else {
            panic!()
        };
        assert_eq!(Options::from_request(&r.options).timeout, Some(6));
        // tftp-hpa's default: netascii, upper case accepted.
        let hpa = b"\x00\x01f\x00NetASCII\x00";
        assert!(matches!(
            Repr::parse(hpa),
            Ok(Repr::Rrq(Request {
                mode: Mode::Netascii,
                ..
            }))
        ));
    }

    #[test]
    fn strict_request_rules() {
        // No trailing NUL (CVE-2021-46671 shape).
        assert_eq!(Repr::parse(b"\x00\x01f\x00octet"), Err(Error::Unterminated));
        assert_eq!(Repr::parse(b"\x00\x01f"), Err(Error::Unterminated));
        assert_eq!(Repr::parse(b"\x00\x01f\x00"), Err(Error::Unterminated));
        assert_eq!(Repr::parse(b"\x00\x01f\x00xyz\x00"), Err(Error::BadMode));
        assert_eq!(
            Repr::parse(b"\x00\x01f\x00octet\x00blksize\x00"),
            Err(Error::BadOption)
        );
        assert_eq!(
            Repr::parse(b"\x00\x01f\x00octet\x00\x001\x00"),
            Err(Error::BadOption)
        );
        let mut long = b"\x00\x01".to_vec();
        long.extend(std::iter::repeat_n(b'a', 600));
        long.extend(b"\x00octet\x00");
        assert_eq!(Repr::parse(&long), Err(Error::TooLong(512)));
        assert!(Repr::parse_with_limit(&long, 1024).is_ok());
    }

    #[test]
    fn option_values() {
        let opts = |raw: &[u8]| Options::from_request(&OptionList::parse(raw).unwrap());
        assert_eq!(
            opts(b"BLKSIZE\x001024\x00blksize\x002048\x00").blksize,
            Some(1024)
        );
        assert_eq!(opts(b"blksize\x007\x00").blksize, None);
        assert_eq!(opts(b"blksize\x00abc\x00").blksize, None);
        assert_eq!(opts(b"blksize\x00-1\x00").blksize, None);
        assert_eq!(opts(b"blksize\x0099999999999999999999\x00").blksize, None);
        assert_eq!(opts(b"blksize\x0065465\x00").blksize, Some(65464));
        assert_eq!(opts(b"timeout\x000\x00timeout\x005\x00").timeout, None);
        assert_eq!(opts(b"timeout\x00256\x00").timeout, None);
        assert_eq!(opts(b"windowsize\x000\x00").windowsize, None);
        assert_eq!(opts(b"windowsize\x0065536\x00").windowsize, Some(65535));
        assert_eq!(
            opts(b"tsize\x0018446744073709551615\x00").tsize,
            Some(u64::MAX)
        );
        assert_eq!(opts(b"tsize\x0018446744073709551616\x00").tsize, None);
        assert!(opts(b"multicast\x00\x00utimeout\x00100\x00").is_empty());
    }

    #[test]
    fn oack_builder_echoes_once() {
        let o = Options {
            blksize: Some(1468),
            timeout: None,
            tsize: Some(123456),
            windowsize: Some(4),
        };
        let mut buf = [0u8; 64];
        let n = o.emit_oack(&mut buf).unwrap();
        assert_eq!(n, o.oack_len());
        assert_eq!(
            &buf[..n],
            b"\x00\x06blksize\x001468\x00tsize\x00123456\x00windowsize\x004\x00"
        );
        let Ok(Repr::Oack(list)) = Repr::parse(&buf[..n]) else {
            panic!()
        };
        assert_eq!(Options::from_oack(&list), Ok(o));
        assert_eq!(o.emit_oack(&mut buf[..10]), Err(Error::BufferTooSmall));
        let dup = OptionList::parse(b"blksize\x00512\x00blksize\x00512\x00").unwrap();
        assert_eq!(Options::from_oack(&dup), Err(Error::BadOptionValue));
    }

    #[test]
    fn short_and_odd_packets() {
        for d in [
            &b""[..],
            b"\x00",
            b"\x00\x03",
            b"\x00\x03\x00",
            b"\x00\x04\x00",
            b"\x00\x05\x00",
        ] {
            assert_eq!(Repr::parse(d), Err(Error::Truncated), "{d:?}");
            if d.len() >= 2 {
                assert_eq!(Packet::new_checked(d).err(), Some(Error::Truncated));
            }
        }
        assert_eq!(
            Repr::parse(b"\x00\x04\x00\x01\x00"),
            Err(Error::TrailingBytes)
        );
        assert_eq!(Repr::parse(b"\x00\x00"), Err(Error::UnknownOpcode(0)));
        // UEFI's abort after the tsize probe, and iPXE's.
        let uefi = b"\x00\x05\x00\x08User aborted the transfer\x00";
        assert_eq!(
            Repr::parse(uefi),
            Ok(Repr::Error {
                code: ErrorCode::OPTION_REFUSED,
                message: b"User aborted the transfer"
            })
        );
        assert_eq!(
            Repr::parse(b"\x00\x05\x00\x00TFTP Aborted"),
            Ok(Repr::Error {
                code: ErrorCode(0),
                message: b"TFTP Aborted"
            })
        );
        let p = Packet::new_checked(&b"\x00\x03\x01\x02hello"[..]).unwrap();
        assert_eq!(
            (p.opcode(), p.block(), p.payload()),
            (Opcode::Data, Some(0x0102), &b"hello"[..])
        );
        assert_eq!(
            Repr::parse(b"\x00\x03\xff\xff"),
            Ok(Repr::Data {
                block: 65535,
                data: b""
            })
        );
    }

    #[test]
    fn error_text_is_truncated_to_fit() {
        let mut buf = [0u8; 10];
        let n = emit_error(&mut buf, ErrorCode::FILE_NOT_FOUND, "File not found");
        assert_eq!(&buf[..n], b"\x00\x05\x00\x01File \x00");
        let mut tiny = [0u8; 4];
        assert_eq!(emit_error(&mut tiny, ErrorCode(0), "x"), 0);
    }

    #[test]
    fn decimal_parsing() {
        assert_eq!(parse_decimal(b"0"), Some(0));
        assert_eq!(parse_decimal(b"00012"), Some(12));
        assert_eq!(parse_decimal(b""), None);
        assert_eq!(parse_decimal(b" 1"), None);
        assert_eq!(parse_decimal(b"+1"), None);
        assert_eq!(parse_decimal(b"000000000000000000001"), None);
    }
}
