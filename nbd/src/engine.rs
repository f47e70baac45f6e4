//! The sans-IO server engine: one [`Connection`] per client.
//!
//! The driver owns the socket and a receive buffer. It calls [`Connection::handle`] with the
//! buffered bytes; the engine answers with a [`Step`]: how many bytes it consumed, an
//! [`Event`] to act on (a validated [`Request`] whose data borrows from the buffer, the start
//! of transmission, or the end of the connection), or how many bytes it needs before it can go
//! on. Everything the engine says itself (greeting, option replies, the error replies of
//! requests it rejected) accumulates in [`Connection::pending_output`]; the driver sends it.
//! The driver answers the requests it serves with the builders of [`Replies`], in any order,
//! as many in flight as it likes: every reply is a self-contained message keyed by cookie.
//!
//! Every request reaching the driver has been checked: known command and flags, advertised
//! feature, permitted on this export, `offset + length` inside the export (overflow-checked),
//! payload within the limit. The driver only moves bytes. Rejections follow `proto.md`:
//! EINVAL for unknown commands/flags, unadvertised features and out-of-range reads, ENOSPC for
//! writes past the end, EPERM for writes to a read-only export; a rejected WRITE's payload is
//! consumed (up to [`Limits::max_discard`]) so the stream stays in sync.

use crate::wire::{
    self, ChunkHeader, ExportNameReply, InfoRequest, MetaContextRequest, OptionHeader, OptionReply,
    SimpleReply, chunk, cmd, cmd_flags, errno, handshake_flags, info, opt, rep,
    transmission_flags as tf,
};
use thiserror::Error;

/// The metadata context id this engine gives `base:allocation` after SET_META_CONTEXT.
pub const BASE_ALLOCATION_ID: u32 = 1;

/// One export as the engine advertises it. The driver provides the bytes behind it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Export {
    /// Name clients ask for ("" selects the first export).
    pub name: String,
    /// Description sent in LIST and INFO_DESCRIPTION.
    pub description: String,
    /// Size in bytes.
    pub size: u64,
    /// Writes fail with EPERM.
    pub read_only: bool,
    /// Advertise CAN_MULTI_CONN: all connections see the same bytes and FLUSH is global.
    pub multi_conn: bool,
    /// Advertise FLUSH and FUA.
    pub flush: bool,
    /// Advertise TRIM (writable exports only).
    pub trim: bool,
    /// Advertise WRITE_ZEROES with NO_HOLE (writable exports only).
    pub write_zeroes: bool,
    /// Advertise FAST_ZERO (with `write_zeroes`).
    pub fast_zero: bool,
    /// Advertise CACHE.
    pub cache: bool,
}

impl Export {
    /// A read-only, multi-conn export with FLUSH/FUA (no-ops) and CACHE: the boot-image case.
    pub fn read_only(name: impl Into<String>, size: u64) -> Export {
        Export {
            name: name.into(),
            description: String::new(),
            size,
            read_only: true,
            multi_conn: true,
            flush: true,
            trim: false,
            write_zeroes: false,
            fast_zero: false,
            cache: true,
        }
    }

    /// A writable export with every write feature advertised.
    pub fn writable(name: impl Into<String>, size: u64, multi_conn: bool) -> Export {
        Export {
            read_only: false,
            multi_conn,
            trim: true,
            write_zeroes: true,
            fast_zero: true,
            ..Export::read_only(name, size)
        }
    }

    /// Transmission flags; DF is only advertised once structured replies are agreed.
    pub fn transmission_flags(&self, structured: bool) -> u16 {
        let mut f = tf::HAS_FLAGS;
        let mut set = |on: bool, bit: u16| {
            if on {
                f |= bit
            }
        };
        set(self.read_only, tf::READ_ONLY);
        set(self.flush, tf::SEND_FLUSH | tf::SEND_FUA);
        set(!self.read_only && self.trim, tf::SEND_TRIM);
        set(!self.read_only && self.write_zeroes, tf::SEND_WRITE_ZEROES);
        set(
            !self.read_only && self.write_zeroes && self.fast_zero,
            tf::SEND_FAST_ZERO,
        );
        set(structured, tf::SEND_DF);
        set(self.multi_conn, tf::CAN_MULTI_CONN);
        set(self.cache, tf::SEND_CACHE);
        f
    }
}

/// Bounds on what one client may make the server hold or do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Options per connection before a hard disconnect.
    pub max_options: u32,
    /// Largest option data accepted; larger is a hard disconnect (it would be buffered).
    pub max_option_len: u32,
    /// Largest READ/WRITE payload, advertised in INFO_BLOCK_SIZE (spec default 32 MiB).
    pub max_payload: u32,
    /// Largest rejected WRITE payload the engine swallows to stay in sync; beyond, disconnect.
    pub max_discard: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_options: 64,
            max_option_len: 64 * 1024,
            max_payload: 32 << 20,
            max_discard: 64 << 20,
        }
    }
}

/// Whether the server offers TLS through `NBD_OPT_STARTTLS` (proto.md, "TLS support").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Tls {
    /// No TLS: STARTTLS is answered `ERR_POLICY`.
    #[default]
    Off,
    /// STARTTLS is accepted; clients that do not ask are served in plaintext.
    Optional,
    /// STARTTLS is accepted and required ("FORCEDTLS"): before it, every option but STARTTLS
    /// and ABORT is answered `ERR_TLS_REQD`, and EXPORT_NAME (which cannot carry an error)
    /// ends the connection.
    Required,
}

/// What the server offers; shared by all connections.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    /// The exports; the first is the default one.
    pub exports: Vec<Export>,
    /// Limits.
    pub limits: Limits,
    /// Refuse `NBD_OPT_LIST` with `ERR_POLICY`.
    pub hide_list: bool,
    /// STARTTLS policy; the driver does the TLS itself on [`Event::StartTls`].
    pub tls: Tls,
}

impl Config {
    fn find(&self, name: &[u8]) -> Option<usize> {
        if name.is_empty() && !self.exports.is_empty() {
            return Some(0);
        }
        self.exports.iter().position(|e| e.name.as_bytes() == name)
    }
}

/// Why a connection must be dropped (the spec's "hard disconnect" cases).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Fatal {
    /// Client flags with bits the server did not offer.
    #[error("unknown client flags {0:#x}")]
    ClientFlags(u32),
    /// An option or request with the wrong magic.
    #[error("bad magic {0:#x}")]
    BadMagic(u64),
    /// More options than [`Limits::max_options`].
    #[error("too many options")]
    TooManyOptions,
    /// Option data longer than [`Limits::max_option_len`].
    #[error("option data of {0} bytes too large")]
    OptionTooLarge(u32),
    /// EXPORT_NAME for an unknown export (that option cannot carry an error).
    #[error("EXPORT_NAME for an unknown export")]
    UnknownExport,
    /// EXPORT_NAME after extended headers were agreed.
    #[error("EXPORT_NAME after EXTENDED_HEADERS")]
    ExportNameWithExtendedHeaders,
    /// A rejected payload too large to swallow.
    #[error("payload of {0} bytes too large")]
    PayloadTooLarge(u64),
    /// EXPORT_NAME before STARTTLS while TLS is required.
    #[error("EXPORT_NAME without TLS while TLS is required")]
    TlsRequired,
    /// Client bytes after STARTTLS, before the TLS handshake (they would be taken as TLS).
    #[error("data after STARTTLS before the TLS handshake")]
    DataAfterStartTls,
}

/// A transmission command the driver serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Send `length` bytes at `offset` (header from [`Replies::read`]).
    Read,
    /// Store `data` at `offset`.
    Write,
    /// Make every completed write persistent.
    Flush,
    /// Discard the range (a hint; may be a no-op).
    Trim,
    /// Prefetch the range (a hint).
    Cache,
    /// Write zeroes to the range.
    WriteZeroes,
    /// Report allocation of the range ([`Replies::block_status`]).
    BlockStatus,
}

/// A validated request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request<'a> {
    /// What to do.
    pub command: Command,
    /// Command flags ([`cmd_flags`]), only those valid for this command.
    pub flags: u16,
    /// Echo in the reply.
    pub cookie: u64,
    /// Start of the range; `offset + length <= size` holds.
    pub offset: u64,
    /// Length of the range (may be 0).
    pub length: u64,
    /// WRITE payload (`length` bytes), empty otherwise.
    pub data: &'a [u8],
}

impl Request<'_> {
    /// Force unit access: persist before replying.
    pub fn fua(&self) -> bool {
        self.flags & cmd_flags::FUA != 0
    }
    /// WRITE_ZEROES must not deallocate.
    pub fn no_hole(&self) -> bool {
        self.flags & cmd_flags::NO_HOLE != 0
    }
    /// WRITE_ZEROES must fail with ENOTSUP unless it is fast.
    pub fn fast_zero(&self) -> bool {
        self.flags & cmd_flags::FAST_ZERO != 0
    }
    /// BLOCK_STATUS wants exactly one extent.
    pub fn req_one(&self) -> bool {
        self.flags & cmd_flags::REQ_ONE != 0
    }
}

/// Something the driver must act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event<'a> {
    /// Negotiation finished; transmission on export `export` (index into [`Config::exports`]).
    Ready {
        /// Index of the export.
        export: usize,
    },
    /// Serve this request and answer it.
    Request(Request<'a>),
    /// The client ended the connection (ABORT or DISC): send what is pending, finish the
    /// requests in flight, then close.
    Close,
    /// STARTTLS was accepted: send the pending output (its ACK), run the server side of a TLS
    /// handshake on the same stream, then call [`Connection::tls_started`] and go on feeding
    /// the decrypted bytes. The client must not have sent anything after the option; if it
    /// did, the driver ends the connection ([`Fatal::DataAfterStartTls`]).
    StartTls,
}

/// The engine's answer to [`Connection::handle`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step<'a> {
    /// Buffer at least this many bytes (from the start of the input) and call again.
    Need(usize),
    /// `consumed` bytes were used up; no event (any replies are in the pending output).
    Consumed(usize),
    /// `consumed` bytes were used up and produced `event`; the event may borrow the input, so
    /// act on it before discarding those bytes.
    Event(usize, Event<'a>),
    /// The connection is over; nothing more will be read.
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    ClientFlags,
    Options,
    Transmission,
    /// Swallowing a rejected payload; its error reply goes out once the payload is read
    /// (clients match replies only to requests they have finished sending).
    Skip(u64, Header),
    Closed,
}

/// The state of one client connection.
#[derive(Debug, Clone)]
pub struct Connection {
    state: State,
    no_zeroes: bool,
    structured: bool,
    extended: bool,
    /// Export name `base:allocation` was selected for by SET_META_CONTEXT.
    meta: Option<Vec<u8>>,
    options: u32,
    export: Option<usize>,
    /// TLS is up (after STARTTLS and the driver's handshake).
    tls: bool,
    out: Vec<u8>,
}

impl Default for Connection {
    fn default() -> Connection {
        Connection::new()
    }
}

impl Connection {
    /// A new connection; the greeting is already pending.
    pub fn new() -> Connection {
        let mut out = vec![0; wire::GREETING_LEN];
        wire::Greeting {
            flags: handshake_flags::FIXED_NEWSTYLE | handshake_flags::NO_ZEROES,
        }
        .emit(&mut out);
        Connection {
            state: State::ClientFlags,
            no_zeroes: false,
            structured: false,
            extended: false,
            meta: None,
            options: 0,
            export: None,
            tls: false,
            out,
        }
    }

    /// Bytes the engine wants sent, in order.
    pub fn pending_output(&self) -> &[u8] {
        &self.out
    }

    /// Marks the first `n` pending bytes as sent.
    pub fn consume_output(&mut self, n: usize) {
        self.out.drain(..n.min(self.out.len()));
    }

    /// The export in transmission, once negotiated.
    pub fn export(&self) -> Option<usize> {
        self.export
    }

    /// Whether the handshake is over (transmission or closed).
    pub fn in_transmission(&self) -> bool {
        matches!(self.state, State::Transmission | State::Skip(..))
    }

    /// Whether structured replies were agreed.
    pub fn structured(&self) -> bool {
        self.structured
    }

    /// Whether extended headers were agreed.
    pub fn extended(&self) -> bool {
        self.extended
    }

    /// Whether TLS was started.
    pub fn tls(&self) -> bool {
        self.tls
    }

    /// Tells the engine the driver finished the TLS handshake after [`Event::StartTls`].
    /// Whatever was negotiated in plaintext is forgotten, as the spec requires (structured
    /// replies, extended headers, metadata contexts): the client negotiates them again.
    pub fn tls_started(&mut self) {
        self.tls = true;
        self.structured = false;
        self.extended = false;
        self.meta = None;
    }

    /// The reply builders for the negotiated reply style.
    pub fn replies(&self) -> Replies {
        Replies {
            structured: self.structured,
            extended: self.extended,
        }
    }

    /// Consumes client bytes from the front of `input`. Call repeatedly, discarding the
    /// consumed bytes, until it returns [`Step::Need`] or [`Step::Closed`].
    pub fn handle<'a>(&mut self, config: &Config, input: &'a [u8]) -> Result<Step<'a>, Fatal> {
        match self.state {
            State::Closed => Ok(Step::Closed),
            State::ClientFlags => {
                let Ok(f) = wire::ClientFlags::parse(input) else {
                    return Ok(Step::Need(wire::CLIENT_FLAGS_LEN));
                };
                let known = u32::from(handshake_flags::FIXED_NEWSTYLE | handshake_flags::NO_ZEROES);
                if f.flags & !known != 0 {
                    self.state = State::Closed;
                    return Err(Fatal::ClientFlags(f.flags));
                }
                self.no_zeroes = f.flags & u32::from(handshake_flags::NO_ZEROES) != 0;
                self.state = State::Options;
                Ok(Step::Consumed(wire::CLIENT_FLAGS_LEN))
            }
            State::Options => self.option(config, input),
            State::Transmission => self.request(config, input),
            State::Skip(left, reply) => {
                if input.is_empty() {
                    return Ok(Step::Need(1));
                }
                let n = left.min(input.len() as u64);
                if n == left {
                    self.out.extend_from_slice(&reply);
                    self.state = State::Transmission;
                } else {
                    self.state = State::Skip(left - n, reply);
                }
                Ok(Step::Consumed(n as usize))
            }
        }
    }

    fn fail(&mut self, f: Fatal) -> Result<Step<'static>, Fatal> {
        self.state = State::Closed;
        Err(f)
    }

    fn opt_reply(&mut self, option: u32, reply_type: u32, parts: &[&[u8]]) {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let start = self.out.len();
        self.out.resize(start + wire::OPTION_REPLY_HEADER_LEN, 0);
        OptionReply {
            option,
            reply_type,
            data: &[],
        }
        .emit(&mut self.out[start..]);
        self.out[start + 16..start + 20].copy_from_slice(&(len as u32).to_be_bytes());
        for p in parts {
            self.out.extend_from_slice(p);
        }
    }

    fn option<'a>(&mut self, config: &Config, input: &'a [u8]) -> Result<Step<'a>, Fatal> {
        let h = match OptionHeader::parse(input) {
            Ok(h) => h,
            Err(wire::Error::BadMagic(m)) => return self.fail(Fatal::BadMagic(m)),
            Err(_) => return Ok(Step::Need(wire::OPTION_HEADER_LEN)),
        };
        if h.length > config.limits.max_option_len {
            return self.fail(Fatal::OptionTooLarge(h.length));
        }
        let total = wire::OPTION_HEADER_LEN + h.length as usize;
        let Some(data) = input.get(wire::OPTION_HEADER_LEN..total) else {
            return Ok(Step::Need(total));
        };
        self.options += 1;
        if self.options > config.limits.max_options {
            return self.fail(Fatal::TooManyOptions);
        }
        let o = h.option;
        if config.tls == Tls::Required && !self.tls && o != opt::STARTTLS && o != opt::ABORT {
            if o == opt::EXPORT_NAME {
                return self.fail(Fatal::TlsRequired);
            }
            self.opt_reply(o, rep::ERR_TLS_REQD, &[b"TLS required: use STARTTLS"]);
            return Ok(Step::Consumed(total));
        }
        match o {
            opt::EXPORT_NAME => {
                if self.extended {
                    return self.fail(Fatal::ExportNameWithExtendedHeaders);
                }
                let Some(i) = config.find(data) else {
                    return self.fail(Fatal::UnknownExport);
                };
                let e = &config.exports[i];
                let r = ExportNameReply {
                    size: e.size,
                    flags: e.transmission_flags(self.structured),
                    zeroes: !self.no_zeroes,
                };
                let start = self.out.len();
                self.out.resize(start + r.buffer_len(), 0);
                r.emit(&mut self.out[start..]);
                return Ok(self.start_transmission(data, i, total));
            }
            opt::ABORT => {
                self.opt_reply(o, rep::ACK, &[]);
                self.state = State::Closed;
                return Ok(Step::Event(total, Event::Close));
            }
            opt::LIST if !data.is_empty() => self.opt_reply(o, rep::ERR_INVALID, &[]),
            opt::LIST if config.hide_list => self.opt_reply(o, rep::ERR_POLICY, &[]),
            opt::LIST => {
                for e in &config.exports {
                    let n = (e.name.len() as u32).to_be_bytes();
                    self.opt_reply(
                        o,
                        rep::SERVER,
                        &[&n, e.name.as_bytes(), e.description.as_bytes()],
                    );
                }
                self.opt_reply(o, rep::ACK, &[]);
            }
            opt::STARTTLS if !data.is_empty() => self.opt_reply(o, rep::ERR_INVALID, &[]),
            opt::STARTTLS if config.tls == Tls::Off => {
                self.opt_reply(o, rep::ERR_POLICY, &[b"TLS not configured"])
            }
            opt::STARTTLS if self.tls => self.opt_reply(o, rep::ERR_INVALID, &[b"TLS already on"]),
            opt::STARTTLS => {
                self.opt_reply(o, rep::ACK, &[]);
                return Ok(Step::Event(total, Event::StartTls));
            }
            opt::INFO | opt::GO => {
                if let Some(i) = self.info(config, o, data)
                    && o == opt::GO
                {
                    let name = InfoRequest::parse(data).map(|r| r.name).unwrap_or(b"");
                    return Ok(self.start_transmission(name, i, total));
                }
            }
            opt::STRUCTURED_REPLY | opt::EXTENDED_HEADERS => {
                let already = if o == opt::STRUCTURED_REPLY {
                    self.structured
                } else {
                    self.extended
                };
                if !data.is_empty() || already {
                    self.opt_reply(o, rep::ERR_INVALID, &[]);
                } else {
                    self.structured = true;
                    self.extended |= o == opt::EXTENDED_HEADERS;
                    self.opt_reply(o, rep::ACK, &[]);
                }
            }
            opt::LIST_META_CONTEXT | opt::SET_META_CONTEXT => self.meta_context(config, o, data),
            _ => self.opt_reply(o, rep::ERR_UNSUP, &[]),
        }
        Ok(Step::Consumed(total))
    }

    fn start_transmission(&mut self, name: &[u8], export: usize, consumed: usize) -> Step<'static> {
        // Contexts chosen for another export do not carry over (proto.md, SET_META_CONTEXT).
        if self.meta.as_deref().is_some_and(|m| m != name) {
            self.meta = None;
        }
        self.export = Some(export);
        self.state = State::Transmission;
        Step::Event(consumed, Event::Ready { export })
    }

    /// Answers INFO/GO; returns the export index on success.
    fn info(&mut self, config: &Config, o: u32, data: &[u8]) -> Option<usize> {
        let req = match InfoRequest::parse(data) {
            Ok(r) => r,
            Err(wire::Error::StringTooLong) => {
                self.opt_reply(o, rep::ERR_TOO_BIG, &[b"export name too long"]);
                return None;
            }
            Err(_) => {
                self.opt_reply(o, rep::ERR_INVALID, &[b"malformed INFO/GO data"]);
                return None;
            }
        };
        let Some(i) = config.find(req.name) else {
            self.opt_reply(o, rep::ERR_UNKNOWN, &[b"no such export"]);
            return None;
        };
        let e = &config.exports[i];
        let flags = e.transmission_flags(self.structured);
        self.opt_reply(
            o,
            rep::INFO,
            &[
                &info::EXPORT.to_be_bytes(),
                &e.size.to_be_bytes(),
                &flags.to_be_bytes(),
            ],
        );
        let (mut name, mut desc) = (false, false);
        for r in req.requests() {
            name |= r == info::NAME;
            desc |= r == info::DESCRIPTION;
        }
        if name {
            self.opt_reply(
                o,
                rep::INFO,
                &[&info::NAME.to_be_bytes(), e.name.as_bytes()],
            );
        }
        if desc && !e.description.is_empty() {
            let d = e.description.as_bytes();
            let d = &d[..d.len().min(wire::MAX_STRING_LEN)];
            self.opt_reply(o, rep::INFO, &[&info::DESCRIPTION.to_be_bytes(), d]);
        }
        // Sent unasked, as qemu and nbdkit do: minimum 1 (no alignment demands), preferred 4 KiB.
        let max = config.limits.max_payload;
        self.opt_reply(
            o,
            rep::INFO,
            &[
                &info::BLOCK_SIZE.to_be_bytes(),
                &1u32.to_be_bytes(),
                &4096u32.min(max).to_be_bytes(),
                &max.to_be_bytes(),
            ],
        );
        self.opt_reply(o, rep::ACK, &[]);
        Some(i)
    }

    fn meta_context(&mut self, config: &Config, o: u32, data: &[u8]) {
        let set = o == opt::SET_META_CONTEXT;
        if set {
            // A SET replaces the previous selection even when it fails.
            self.meta = None;
        }
        let req = match MetaContextRequest::parse(data) {
            Ok(r) => r,
            Err(wire::Error::StringTooLong) => return self.opt_reply(o, rep::ERR_TOO_BIG, &[]),
            Err(_) => return self.opt_reply(o, rep::ERR_INVALID, &[b"malformed query"]),
        };
        if set && !self.structured {
            return self.opt_reply(o, rep::ERR_INVALID, &[b"structured replies first"]);
        }
        if config.find(req.name).is_none() {
            return self.opt_reply(o, rep::ERR_UNKNOWN, &[b"no such export"]);
        }
        // `base:` alone is the namespace wildcard; other namespaces are ignored.
        let matched = if req.count == 0 {
            !set
        } else {
            req.queries()
                .any(|q| q == wire::BASE_ALLOCATION || q == b"base:")
        };
        if matched {
            let id = if set { BASE_ALLOCATION_ID } else { 0 };
            self.opt_reply(
                o,
                rep::META_CONTEXT,
                &[&id.to_be_bytes(), wire::BASE_ALLOCATION],
            );
            if set {
                self.meta = Some(req.name.to_vec());
            }
        }
        self.opt_reply(o, rep::ACK, &[]);
    }

    fn request<'a>(&mut self, config: &Config, input: &'a [u8]) -> Result<Step<'a>, Fatal> {
        let hlen = if self.extended {
            wire::EXTENDED_REQUEST_LEN
        } else {
            wire::REQUEST_LEN
        };
        // Check the magic as soon as it is here: a client speaking the wrong header style
        // must not leave us waiting for bytes that never come.
        let want = if self.extended {
            wire::EXTENDED_REQUEST_MAGIC
        } else {
            wire::REQUEST_MAGIC
        };
        if let Some(m) = input.get(..4) {
            let m = u32::from_be_bytes([m[0], m[1], m[2], m[3]]);
            if m != want {
                return self.fail(Fatal::BadMagic(m.into()));
            }
        }
        let r = match wire::Request::parse(input, self.extended) {
            Ok(r) => r,
            Err(wire::Error::BadMagic(m)) => return self.fail(Fatal::BadMagic(m)),
            Err(_) => return Ok(Step::Need(hlen)),
        };
        let payload_len = config.limits.max_payload;
        // Bytes that follow the header on the wire, whatever we think of the request.
        let payload = if r.command == cmd::WRITE
            || (self.extended && r.flags & cmd_flags::PAYLOAD_LEN != 0)
        {
            r.length
        } else {
            0
        };
        let Some(e) = self.export.and_then(|i| config.exports.get(i)) else {
            return self.fail(Fatal::UnknownExport);
        };
        match self.check(e, payload_len, &r) {
            Ok(None) => {
                self.state = State::Closed;
                Ok(Step::Event(hlen, Event::Close))
            }
            Ok(Some(command)) => {
                // `check` bounded the payload by `max_payload`, so it may be buffered whole.
                let total = hlen + payload as usize;
                let Some(data) = input.get(hlen..total) else {
                    return Ok(Step::Need(total));
                };
                Ok(Step::Event(
                    total,
                    Event::Request(Request {
                        command,
                        flags: r.flags & !cmd_flags::PAYLOAD_LEN,
                        cookie: r.cookie,
                        offset: r.offset,
                        length: r.length,
                        data,
                    }),
                ))
            }
            Err(code) => {
                let h = self.replies().error(r.cookie, r.offset, code);
                if payload > config.limits.max_discard {
                    return self.fail(Fatal::PayloadTooLarge(payload));
                }
                if payload > 0 {
                    self.state = State::Skip(payload, h);
                } else {
                    self.out.extend_from_slice(&h);
                }
                Ok(Step::Consumed(hlen))
            }
        }
    }

    /// Validates a request; `Ok(None)` is DISC.
    fn check(&self, e: &Export, max: u32, r: &wire::Request) -> Result<Option<Command>, u32> {
        use cmd_flags::*;
        let max = u64::from(max);
        let in_range = r
            .offset
            .checked_add(r.length)
            .is_some_and(|end| end <= e.size);
        let fua = if e.flush { FUA } else { 0 };
        let (command, allowed) = match r.command {
            cmd::DISC => return Ok(None),
            cmd::READ => (Command::Read, fua | if self.structured { DF } else { 0 }),
            cmd::WRITE => (
                Command::Write,
                fua | if self.extended { PAYLOAD_LEN } else { 0 },
            ),
            cmd::FLUSH if e.flush => (Command::Flush, fua),
            cmd::TRIM if e.trim && !e.read_only => (Command::Trim, fua),
            cmd::TRIM if e.read_only => return Err(errno::EPERM),
            cmd::CACHE if e.cache => (Command::Cache, fua),
            cmd::WRITE_ZEROES if e.write_zeroes && !e.read_only => (
                Command::WriteZeroes,
                fua | NO_HOLE | if e.fast_zero { FAST_ZERO } else { 0 },
            ),
            cmd::WRITE_ZEROES if e.read_only => return Err(errno::EPERM),
            cmd::BLOCK_STATUS if self.structured && self.meta.is_some() => {
                (Command::BlockStatus, fua | REQ_ONE)
            }
            _ => return Err(errno::EINVAL),
        };
        if r.flags & !allowed != 0 {
            return Err(errno::EINVAL);
        }
        let writes = matches!(
            command,
            Command::Write | Command::WriteZeroes | Command::Trim
        );
        if writes && e.read_only {
            return Err(errno::EPERM);
        }
        match command {
            Command::Read | Command::Write if r.length > max => Err(errno::EINVAL),
            Command::Flush if r.offset != 0 || r.length != 0 => Err(errno::EINVAL),
            Command::Write | Command::WriteZeroes if !in_range => Err(errno::ENOSPC),
            Command::BlockStatus if r.length == 0 => Err(errno::EINVAL),
            Command::Flush => Ok(Some(command)),
            _ if !in_range => Err(errno::EINVAL),
            _ => Ok(Some(command)),
        }
    }
}

/// A reply header of at most 40 bytes, built on the stack.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Header {
    buf: [u8; 48],
    len: usize,
}

impl Default for Header {
    /// An empty header (for a reply the driver builds whole, like BLOCK_STATUS).
    fn default() -> Header {
        Header::new()
    }
}

impl Header {
    fn new() -> Header {
        Header {
            buf: [0; 48],
            len: 0,
        }
    }
}

impl std::ops::Deref for Header {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl std::fmt::Debug for Header {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Header({:02x?})", &**self)
    }
}

/// Reply builders for the negotiated style: simple, structured or extended. `Copy`, so a
/// driver may hand it to whatever task finishes a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replies {
    /// Structured replies agreed.
    pub structured: bool,
    /// Extended headers agreed.
    pub extended: bool,
}

impl Replies {
    fn chunk(&self, cookie: u64, offset: u64, kind: u16, length: u64, h: &mut Header) {
        let c = ChunkHeader {
            flags: chunk::FLAG_DONE,
            kind,
            cookie,
            offset,
            length,
            extended: self.extended,
        };
        c.emit(&mut h.buf);
        h.len = c.buffer_len();
    }

    /// The header to send right before `length` bytes of READ data (zero-copy: the data itself
    /// goes out from wherever the driver keeps it, e.g. with `writev`).
    pub fn read(&self, cookie: u64, offset: u64, length: u64) -> Header {
        let mut h = Header::new();
        if !self.structured {
            SimpleReply { error: 0, cookie }.emit(&mut h.buf);
            h.len = wire::SIMPLE_REPLY_LEN;
        } else if length == 0 {
            // OFFSET_DATA needs at least one byte of data; an empty read is just "done".
            self.chunk(cookie, offset, chunk::NONE, 0, &mut h);
        } else {
            self.chunk(cookie, offset, chunk::OFFSET_DATA, 8 + length, &mut h);
            h.buf[h.len..h.len + 8].copy_from_slice(&offset.to_be_bytes());
            h.len += 8;
        }
        h
    }

    /// Success without data (every command but READ and BLOCK_STATUS).
    pub fn ok(&self, cookie: u64, offset: u64) -> Header {
        let mut h = Header::new();
        if self.structured {
            self.chunk(cookie, offset, chunk::NONE, 0, &mut h);
        } else {
            SimpleReply { error: 0, cookie }.emit(&mut h.buf);
            h.len = wire::SIMPLE_REPLY_LEN;
        }
        h
    }

    /// Failure with an [`errno`] value.
    pub fn error(&self, cookie: u64, offset: u64, error: u32) -> Header {
        let mut h = Header::new();
        if self.structured {
            self.chunk(cookie, offset, chunk::ERROR, 6, &mut h);
            h.buf[h.len..h.len + 4].copy_from_slice(&error.to_be_bytes());
            h.len += 6; // then a zero u16 message length
        } else {
            SimpleReply { error, cookie }.emit(&mut h.buf);
            h.len = wire::SIMPLE_REPLY_LEN;
        }
        h
    }

    /// Appends a BLOCK_STATUS reply for `base:allocation` to `out`. Each extent is a
    /// (length, flags) pair: bit 0 hole, bit 1 reads as zeroes. With the compact chunk an
    /// extent length must fit in u32, so longer ones are split.
    pub fn block_status(
        &self,
        cookie: u64,
        offset: u64,
        extents: &[(u64, u32)],
        out: &mut Vec<u8>,
    ) {
        let mut h = Header::new();
        let start = out.len();
        if self.extended {
            let n = extents.len() as u64;
            self.chunk(cookie, offset, chunk::BLOCK_STATUS_EXT, 8 + 16 * n, &mut h);
            out.extend_from_slice(&h);
            out.extend_from_slice(&BASE_ALLOCATION_ID.to_be_bytes());
            out.extend_from_slice(&(n as u32).to_be_bytes());
            for &(len, flags) in extents {
                out.extend_from_slice(&len.to_be_bytes());
                out.extend_from_slice(&u64::from(flags).to_be_bytes());
            }
            return;
        }
        self.chunk(cookie, offset, chunk::BLOCK_STATUS, 0, &mut h);
        out.extend_from_slice(&h);
        out.extend_from_slice(&BASE_ALLOCATION_ID.to_be_bytes());
        // The largest u32 that keeps 512-byte granularity.
        const STEP: u64 = (u32::MAX as u64) & !511;
        for &(mut len, flags) in extents {
            while len > 0 {
                let l = len.min(STEP);
                out.extend_from_slice(&(l as u32).to_be_bytes());
                out.extend_from_slice(&flags.to_be_bytes());
                len -= l;
            }
        }
        let plen = (out.len() - start - wire::STRUCTURED_REPLY_LEN) as u32;
        out[start + 16..start + 20].copy_from_slice(&plen.to_be_bytes());
    }
}
