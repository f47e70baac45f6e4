//! The sans-IO transfer engine: one [`ReadTransfer`] (server side of an RRQ) or
//! [`WriteTransfer`] (server side of a WRQ) per session.
//!
//! The engine never touches a socket, file or clock. The driver feeds it the datagrams that
//! arrive from the session's peer (`handle_datagram`) and the current time, fires its timer
//! (`poll_timeout` / `handle_timeout`), and sends what `poll_transmit` writes. File bytes are
//! asked for by offset and length through [`BlockSource`] / written through [`BlockSink`], so
//! the driver decides how to read (pread, a shared mapping, memory in a test).
//!
//! Rules it enforces, each tested on a virtual clock:
//! - Sorcerer's Apprentice (RFC 1123 §4.2.3.1): only the timer retransmits; a duplicate or
//!   stale ACK never causes a send.
//! - RFC 7440: an ACK for a block short of the last one sent means a gap: sending restarts
//!   right after the ACKed block. Stale ACKs are ignored.
//! - Block numbers are a 64-bit count on the inside and wrap on the wire per [`Rollover`], so
//!   files beyond 65535 blocks work.
//! - An ERROR from the peer (UEFI's ERROR 8 after its `tsize` probe, iPXE's ERROR 0) ends the
//!   transfer at once and quietly.
//! - Bounded: a retry limit per block and a total time limit per transfer.

use std::collections::VecDeque;
use std::io;
use std::time::{Duration, Instant};

use crate::wire::{self, ErrorCode, HEADER_LEN, Mode, Options, Repr, Request};

/// What block number follows 65535 (RFC 1350 leaves it open; see research fact 8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Rollover {
    /// 65535 → 0: what every common server does and iPXE and EDK2 expect.
    #[default]
    ToZero,
    /// 65535 → 1: tftp-hpa's `rollover 1`, some embedded clients.
    ToOne,
    /// No rollover: files needing more than 65535 blocks are refused.
    Refuse,
}

/// Limits and policy for a transfer; the defaults are safe for a network-boot server.
#[derive(Debug, Clone)]
pub struct Config {
    /// Largest block size granted (a larger request is answered with this, RFC 2348).
    pub max_blksize: u16,
    /// Largest window granted, in blocks (RFC 7440 allows the server to answer smaller).
    pub max_windowsize: u16,
    /// Window × block size cap in bytes, so a window never overflows a receive buffer
    /// (research fact 10). The window is at least one block whatever this says.
    pub max_window_bytes: u32,
    /// Retransmission timeout when the client did not negotiate `timeout`.
    pub default_timeout: Duration,
    /// Retransmissions of the same packet before the transfer is abandoned.
    pub max_retries: u32,
    /// Upper bound on a whole transfer, however slowly the peer keeps it alive.
    pub max_transfer_time: Duration,
    /// Block number after 65535.
    pub rollover: Rollover,
    /// Largest upload accepted (WRQ); `None` for no limit.
    pub max_upload: Option<u64>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            max_blksize: wire::MAX_BLKSIZE,
            max_windowsize: 64,
            max_window_bytes: 64 * 1024,
            default_timeout: Duration::from_secs(1),
            max_retries: 5,
            max_transfer_time: Duration::from_secs(600),
            rollover: Rollover::ToZero,
            max_upload: None,
        }
    }
}

/// Where a [`ReadTransfer`] gets file bytes.
pub trait BlockSource {
    /// Fills `buf` with the bytes at `offset`. Returns fewer than `buf.len()` bytes only at
    /// the end of the file.
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<usize>;
}

impl BlockSource for &[u8] {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(self.len());
        let n = buf.len().min(self.len() - start);
        buf[..n].copy_from_slice(&self[start..start + n]);
        Ok(n)
    }
}

/// Where a [`WriteTransfer`] puts received bytes (already converted from netascii).
pub trait BlockSink {
    /// Writes `data` at `offset`; offsets only grow, without gaps.
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()>;
}

impl BlockSink for Vec<u8> {
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        let start = usize::try_from(offset).map_err(|_| io::ErrorKind::InvalidInput)?;
        self.truncate(start);
        self.extend_from_slice(data);
        Ok(())
    }
}

/// How a transfer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// Every block was acknowledged (RRQ) or received (WRQ).
    Complete,
    /// The peer sent an ERROR with this code; nothing was sent back.
    PeerError(ErrorCode),
    /// The peer stopped answering and the retries ran out.
    TimedOut,
    /// We ended it with an ERROR of this code.
    Failed(ErrorCode),
}

/// Counters for the transfer's log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    /// File bytes acknowledged (RRQ) or received (WRQ).
    pub bytes: u64,
    /// DATA packets sent (RRQ) or ACK packets sent (WRQ), retransmissions included.
    pub packets_sent: u64,
    /// Timer-driven retransmissions and gap restarts.
    pub retransmits: u64,
}

/// The parameters a transfer runs with after option negotiation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    /// Block size in bytes.
    pub blksize: u16,
    /// Window in blocks (1 = RFC 1350 lockstep).
    pub windowsize: u16,
    /// Retransmission timeout.
    pub timeout: Duration,
    /// The options acknowledged in the OACK (empty: no OACK was sent).
    pub oack: Options,
}

/// Negotiates the request's options against `cfg`. `tsize` is the file size for an RRQ
/// (`None` when unknown, e.g. netascii, where the converted size would need a pre-scan).
fn negotiate(req: &Request<'_>, cfg: &Config, tsize: Option<u64>) -> Negotiated {
    let asked = Options::from_request(&req.options);
    let max_blk = cfg.max_blksize.clamp(wire::MIN_BLKSIZE, wire::MAX_BLKSIZE);
    let blksize = asked.blksize.map(|b| b.min(max_blk));
    let blk = u32::from(blksize.unwrap_or(wire::DEFAULT_BLKSIZE));
    // Windows stay below 32768 blocks so an ACK's 16-bit number maps to one block even
    // with rollover to 1 (period 65535).
    let by_bytes = (cfg.max_window_bytes / blk).clamp(1, 32768) as u16;
    let windowsize = asked
        .windowsize
        .map(|w| w.min(cfg.max_windowsize.max(1)).min(by_bytes));
    let oack = Options {
        blksize,
        timeout: asked.timeout,
        // A size of 0 is left out: curl (7.88) rejects `tsize 0` in an OACK as invalid, and
        // omitting an option is always allowed (RFC 2347).
        tsize: asked.tsize.and(tsize).filter(|&t| t > 0),
        windowsize,
    };
    Negotiated {
        blksize: blksize.unwrap_or(wire::DEFAULT_BLKSIZE),
        windowsize: windowsize.unwrap_or(1),
        timeout: asked
            .timeout
            .map_or(cfg.default_timeout, |t| Duration::from_secs(t.into())),
        oack,
    }
}

/// What both directions share: timers, retries, the pending ERROR, the outcome.
#[derive(Debug)]
struct Common {
    neg: Negotiated,
    rollover: Rollover,
    max_retries: u32,
    deadline: Instant,
    give_up_at: Instant,
    retries: u32,
    error_out: Option<(ErrorCode, &'static str)>,
    outcome: Option<Outcome>,
    closed: bool,
    stats: Stats,
}

impl Common {
    fn new(now: Instant, neg: Negotiated, cfg: &Config) -> Common {
        Common {
            neg,
            rollover: cfg.rollover,
            max_retries: cfg.max_retries,
            deadline: now + neg.timeout,
            give_up_at: now + cfg.max_transfer_time,
            retries: 0,
            error_out: None,
            outcome: None,
            closed: false,
            stats: Stats::default(),
        }
    }

    /// The 16-bit block number of the `index`-th block (1-based; 0 is the OACK's ACK).
    fn wire_block(&self, index: u64) -> u16 {
        match self.rollover {
            Rollover::ToZero | Rollover::Refuse => index as u16,
            Rollover::ToOne if index == 0 => 0,
            Rollover::ToOne => ((index - 1) % 65535 + 1) as u16,
        }
    }

    /// Finds the block index in `lo..=hi` (a span shorter than the wrap period) whose wire
    /// number is `block`.
    fn index_in(&self, block: u16, lo: u64, hi: u64) -> Option<u64> {
        if hi < lo {
            return None;
        }
        let period = if self.rollover == Rollover::ToOne {
            65535
        } else {
            65536
        };
        let base = self.wire_block(lo);
        let mut dist = u64::from(block.wrapping_sub(base));
        if self.rollover == Rollover::ToOne && block < base {
            dist = dist.checked_sub(1)?;
        }
        if self.rollover == Rollover::ToOne && block == 0 && lo > 0 {
            return None;
        }
        let idx = lo + dist % period;
        (idx <= hi && self.wire_block(idx) == block).then_some(idx)
    }

    fn fail(&mut self, code: ErrorCode, text: &'static str) {
        if self.outcome.is_none() {
            self.error_out = Some((code, text));
        }
    }

    fn finish(&mut self, outcome: Outcome) {
        if self.outcome.is_none() {
            self.outcome = Some(outcome);
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        (!self.closed).then(|| self.deadline.min(self.give_up_at))
    }

    /// Handles the timer; returns `true` when the caller must retransmit.
    fn on_timeout(&mut self, now: Instant) -> bool {
        if self.closed || self.error_out.is_some() {
            return false;
        }
        if now >= self.give_up_at {
            self.fail(ErrorCode::UNDEFINED, "Transfer time limit exceeded");
            return false;
        }
        if now < self.deadline {
            return false;
        }
        self.retries += 1;
        if self.retries > self.max_retries {
            self.finish(Outcome::TimedOut);
            self.closed = true;
            return false;
        }
        self.stats.retransmits += 1;
        self.deadline = now + self.neg.timeout;
        true
    }

    /// Emits the pending ERROR, if any, and closes.
    fn transmit_error(&mut self, buf: &mut [u8]) -> Option<usize> {
        let (code, text) = self.error_out.take()?;
        self.finish(Outcome::Failed(code));
        self.closed = true;
        Some(wire::emit_error(buf, code, text))
    }

    /// Reacts to an ERROR from the peer: quiet end, nothing sent (never answer an ERROR).
    fn on_peer_error(&mut self, code: ErrorCode) {
        self.finish(Outcome::PeerError(code));
        self.error_out = None;
        self.closed = true;
    }
}

/// Position in the file where a block starts; for netascii also the second byte of a
/// CR LF / CR NUL pair that did not fit in the previous block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Cursor {
    offset: u64,
    carry: Option<u8>,
}

/// The server side of a read request: sends the file.
#[derive(Debug)]
pub struct ReadTransfer {
    c: Common,
    mode: Mode,
    /// OACK still to be sent (or resent) before any DATA.
    oack_due: bool,
    /// Waiting for ACK 0 of the OACK.
    oack_pending: bool,
    /// Blocks acknowledged: the next one the client needs is `acked + 1`.
    acked: u64,
    /// Next block to send in the current pass.
    next: u64,
    /// Highest block sent so far.
    highest_sent: u64,
    /// Index of the final (short) block, once seen.
    last: Option<u64>,
    /// `cursors[i]` is where block `acked + 1 + i` starts; covers every block encoded so far
    /// plus the one after, so a restart re-reads exactly the same bytes.
    cursors: VecDeque<Cursor>,
    /// Raw bytes for netascii conversion.
    scratch: Vec<u8>,
}

impl ReadTransfer {
    /// Starts sending a file of `file_size` bytes (the size goes into `tsize` when asked and
    /// the mode is octet). The first datagram (OACK or DATA 1, or an ERROR when the request
    /// cannot be served) comes out of [`ReadTransfer::poll_transmit`].
    pub fn new(now: Instant, req: &Request<'_>, file_size: u64, cfg: &Config) -> ReadTransfer {
        let tsize = (req.mode == Mode::Octet).then_some(file_size);
        let neg = negotiate(req, cfg, tsize);
        let mut c = Common::new(now, neg, cfg);
        let blocks = file_size / u64::from(neg.blksize) + 1;
        if req.mode == Mode::Mail {
            c.fail(ErrorCode::ILLEGAL_OPERATION, "Mail mode not supported");
        } else if cfg.rollover == Rollover::Refuse && blocks > 65535 && req.mode == Mode::Octet {
            c.fail(
                ErrorCode::DISK_FULL,
                "File too large without block rollover",
            );
        }
        let oack = !neg.oack.is_empty();
        ReadTransfer {
            c,
            mode: req.mode,
            oack_due: oack,
            oack_pending: oack,
            acked: 0,
            next: 1,
            highest_sent: 0,
            last: None,
            cursors: VecDeque::from([Cursor::default()]),
            scratch: Vec::new(),
        }
    }

    /// The negotiated parameters (the driver sizes its buffers from `blksize`/`windowsize`).
    pub fn negotiated(&self) -> &Negotiated {
        &self.c.neg
    }

    /// The largest datagram [`ReadTransfer::poll_transmit`] writes.
    pub fn max_datagram_len(&self) -> usize {
        HEADER_LEN + usize::from(self.c.neg.blksize)
    }

    /// Feeds one datagram from the session's peer. Anything but an ACK in range or an ERROR
    /// is ignored, except a DATA or request, which is an illegal operation here.
    pub fn handle_datagram(&mut self, now: Instant, datagram: &[u8]) {
        if self.c.closed {
            return;
        }
        match Repr::parse(datagram) {
            Ok(Repr::Ack { block }) => self.on_ack(now, block),
            Ok(Repr::Error { code, .. }) => self.c.on_peer_error(code),
            Ok(Repr::Data { .. } | Repr::Wrq(_) | Repr::Oack(_)) => {
                self.c
                    .fail(ErrorCode::ILLEGAL_OPERATION, "Illegal TFTP operation");
            }
            // A repeated RRQ from the same port: the OACK or DATA 1 got lost; the timer
            // resends it (answering here would let a duplicate double the traffic).
            Ok(Repr::Rrq(_)) | Err(_) => {}
        }
    }

    fn on_ack(&mut self, now: Instant, block: u16) {
        if self.oack_pending {
            if block == 0 {
                self.oack_pending = false;
                self.oack_due = false;
                self.c.retries = 0;
                self.c.deadline = now + self.c.neg.timeout;
            }
            return;
        }
        // Only an ACK that moves `acked` forward counts; the rest are duplicates or stale
        // (ignoring them is the Sorcerer's Apprentice fix).
        let Some(idx) = self.c.index_in(block, self.acked + 1, self.highest_sent) else {
            return;
        };
        let advanced = usize::try_from(idx - self.acked).unwrap_or(usize::MAX);
        self.cursors
            .drain(..advanced.min(self.cursors.len().saturating_sub(1)));
        self.acked = idx;
        self.c.retries = 0;
        self.c.deadline = now + self.c.neg.timeout;
        if self.last == Some(idx) {
            self.c.finish(Outcome::Complete);
            self.c.closed = true;
            return;
        }
        if idx < self.next - 1 {
            // RFC 7440 §4: the receiver ACKed the last block before a gap; go back there.
            self.c.stats.retransmits += 1;
        }
        self.next = idx + 1;
    }

    /// Fires the retransmission timer (call at or after [`ReadTransfer::poll_timeout`]).
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.c.on_timeout(now) {
            if self.oack_pending {
                self.oack_due = true;
            } else {
                self.next = self.acked + 1;
            }
        }
    }

    /// When the driver must call [`ReadTransfer::handle_timeout`]; `None` once closed.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.c.poll_timeout()
    }

    /// Writes the next datagram to send into `buf` (at least
    /// [`ReadTransfer::max_datagram_len`] bytes) and returns its length; `None` when
    /// nothing is due. Call until `None` after every input: a window comes out as
    /// consecutive DATA datagrams, all full-size but possibly the last, ready for a batched
    /// send.
    pub fn poll_transmit(
        &mut self,
        now: Instant,
        buf: &mut [u8],
        src: &mut impl BlockSource,
    ) -> Option<usize> {
        if let Some(n) = self.c.transmit_error(buf) {
            return Some(n);
        }
        if self.c.closed {
            return None;
        }
        if self.oack_due {
            self.oack_due = false;
            self.c.deadline = now + self.c.neg.timeout;
            return self.c.neg.oack.emit_oack(buf).ok();
        }
        if self.oack_pending {
            return None;
        }
        let window = u64::from(self.c.neg.windowsize);
        if self.next > self.acked + window || self.last.is_some_and(|l| self.next > l) {
            return None;
        }
        if self.c.rollover == Rollover::Refuse && self.next > 65535 {
            self.c.fail(
                ErrorCode::DISK_FULL,
                "File too large without block rollover",
            );
            return self.c.transmit_error(buf);
        }
        let blk = usize::from(self.c.neg.blksize);
        let out = buf.get_mut(..HEADER_LEN + blk)?;
        let pos = usize::try_from(self.next - self.acked - 1).ok()?;
        let start = *self.cursors.get(pos)?;
        let (len, after) = match self.fill(start, &mut out[HEADER_LEN..], src) {
            Ok(r) => r,
            Err(_) => {
                self.c.fail(ErrorCode::UNDEFINED, "Read error");
                return self.c.transmit_error(buf);
            }
        };
        if pos + 1 == self.cursors.len() {
            self.cursors.push_back(after);
        }
        if len < blk {
            self.last = Some(self.next);
        }
        wire::emit_data_header(out, self.c.wire_block(self.next));
        self.highest_sent = self.highest_sent.max(self.next);
        self.next += 1;
        self.c.stats.packets_sent += 1;
        self.c.deadline = now + self.c.neg.timeout;
        Some(HEADER_LEN + len)
    }

    /// Reads the block starting at `at` into `out` (blksize bytes), converting to netascii
    /// when asked. Returns the length and where the next block starts.
    fn fill(
        &mut self,
        at: Cursor,
        out: &mut [u8],
        src: &mut impl BlockSource,
    ) -> io::Result<(usize, Cursor)> {
        if self.mode != Mode::Netascii {
            let n = src.read_at(at.offset, out)?;
            let next = Cursor {
                offset: at.offset + n as u64,
                carry: None,
            };
            return Ok((n, next));
        }
        let mut cur = at;
        let mut n = 0;
        if let Some(b) = cur.carry.take()
            && let Some(slot) = out.first_mut()
        {
            *slot = b;
            n = 1;
        }
        let want = out.len() - n;
        self.scratch.resize(want, 0);
        let got = src.read_at(cur.offset, &mut self.scratch[..want])?;
        for &b in &self.scratch[..got] {
            if n == out.len() {
                break;
            }
            let (first, second) = match b {
                b'\n' => (b'\r', Some(b'\n')),
                b'\r' => (b'\r', Some(0)),
                other => (other, None),
            };
            out[n] = first;
            n += 1;
            cur.offset += 1;
            if let Some(s) = second {
                match out.get_mut(n) {
                    Some(slot) => {
                        *slot = s;
                        n += 1;
                    }
                    None => cur.carry = Some(s),
                }
            }
        }
        Ok((n, cur))
    }

    /// How the transfer ended, once it has.
    pub fn outcome(&self) -> Option<Outcome> {
        self.c.outcome
    }

    /// Whether the engine needs nothing more (no datagram, no timer).
    pub fn is_closed(&self) -> bool {
        self.c.closed
    }

    /// Counters so far.
    pub fn stats(&self) -> Stats {
        Stats {
            bytes: self.cursors.front().map_or(0, |c| c.offset),
            ..self.c.stats
        }
    }

    /// Ends the transfer with an ERROR to the peer (e.g. the driver's file went away).
    pub fn abort(&mut self, code: ErrorCode, text: &'static str) {
        self.c.fail(code, text);
    }
}

/// The server side of a write request: receives a file.
#[derive(Debug)]
pub struct WriteTransfer {
    c: Common,
    mode: Mode,
    max_upload: Option<u64>,
    /// OACK (instead of ACK 0) answers the request and is resent until DATA 1 arrives.
    oack_pending: bool,
    /// The ACK (or OACK) is due to be sent.
    ack_due: bool,
    /// Blocks received in order.
    received: u64,
    /// Highest block number ACKed so far (for the window).
    acked: u64,
    /// A gap was already reported for the current `received` (one ACK per gap).
    gap_reported: bool,
    /// `received` when a duplicate DATA last caused a re-ACK.
    reacked: Option<u64>,
    /// Bytes written to the sink.
    written: u64,
    /// Netascii: a CR ended the previous block.
    cr_pending: bool,
    /// The final block arrived; dallying to re-ACK a retransmitted final DATA.
    dallying: bool,
    scratch: Vec<u8>,
}

impl WriteTransfer {
    /// Starts receiving. The first datagram (OACK or ACK 0, or an ERROR such as ERROR 3 when
    /// the announced `tsize` exceeds [`Config::max_upload`]) comes out of `poll_transmit`.
    pub fn new(now: Instant, req: &Request<'_>, cfg: &Config) -> WriteTransfer {
        let asked = Options::from_request(&req.options);
        // RFC 2349: on a WRQ the client states the size and the server echoes it.
        let mut neg = negotiate(req, cfg, asked.tsize);
        if req.mode == Mode::Netascii {
            neg.oack.tsize = None;
        }
        let mut c = Common::new(now, neg, cfg);
        if req.mode == Mode::Mail {
            c.fail(ErrorCode::ILLEGAL_OPERATION, "Mail mode not supported");
        } else if let (Some(size), Some(max)) = (asked.tsize, cfg.max_upload)
            && size > max
        {
            c.fail(ErrorCode::DISK_FULL, "Disk full or allocation exceeded");
        }
        WriteTransfer {
            c,
            mode: req.mode,
            max_upload: cfg.max_upload,
            oack_pending: !neg.oack.is_empty(),
            ack_due: true,
            received: 0,
            acked: 0,
            gap_reported: false,
            reacked: None,
            written: 0,
            cr_pending: false,
            dallying: false,
            scratch: Vec::new(),
        }
    }

    /// The negotiated parameters.
    pub fn negotiated(&self) -> &Negotiated {
        &self.c.neg
    }

    /// Feeds one datagram from the peer; DATA in order goes to `sink`.
    pub fn handle_datagram(&mut self, now: Instant, datagram: &[u8], sink: &mut impl BlockSink) {
        if self.c.closed {
            return;
        }
        match Repr::parse(datagram) {
            Ok(Repr::Data { block, data }) => self.on_data(now, block, data, sink),
            Ok(Repr::Error { code, .. }) => self.c.on_peer_error(code),
            Ok(Repr::Ack { .. } | Repr::Rrq(_) | Repr::Oack(_)) => {
                self.c
                    .fail(ErrorCode::ILLEGAL_OPERATION, "Illegal TFTP operation");
            }
            Ok(Repr::Wrq(_)) | Err(_) => {}
        }
    }

    fn on_data(&mut self, now: Instant, block: u16, data: &[u8], sink: &mut impl BlockSink) {
        let blk = usize::from(self.c.neg.blksize);
        let expected = self.c.wire_block(self.received + 1);
        if self.dallying || block != expected {
            let window = u64::from(self.c.neg.windowsize);
            let behind = self.received.saturating_sub(window) + 1;
            if self.c.index_in(block, behind, self.received).is_some() {
                // The sender timed out and resent: our ACK got lost. Re-ACK once per
                // progress (always while dallying, which one timeout bounds), so duplicated
                // DATA cannot multiply our ACKs; our own timer covers a lost re-ACK.
                if self.dallying || self.reacked != Some(self.received) {
                    self.reacked = Some(self.received);
                    self.ack_due = true;
                }
            } else if !self.gap_reported && !self.dallying {
                // A gap (RFC 7440): ACK the last block received in order, once.
                self.gap_reported = true;
                self.ack_due = true;
            }
            return;
        }
        if data.len() > blk {
            self.c
                .fail(ErrorCode::ILLEGAL_OPERATION, "Block larger than negotiated");
            return;
        }
        if self.c.rollover == Rollover::Refuse && self.received >= 65535 {
            self.c.fail(
                ErrorCode::DISK_FULL,
                "File too large without block rollover",
            );
            return;
        }
        self.oack_pending = false;
        let last = data.len() < blk;
        let decoded: &[u8] = if self.mode == Mode::Netascii {
            decode_netascii(data, &mut self.cr_pending, last, &mut self.scratch);
            &self.scratch
        } else {
            data
        };
        if self
            .max_upload
            .is_some_and(|max| self.written + decoded.len() as u64 > max)
        {
            self.c
                .fail(ErrorCode::DISK_FULL, "Disk full or allocation exceeded");
            return;
        }
        if sink.write_at(self.written, decoded).is_err() {
            self.c.fail(ErrorCode::DISK_FULL, "Write error");
            return;
        }
        self.written += decoded.len() as u64;
        self.received += 1;
        self.gap_reported = false;
        self.c.retries = 0;
        self.c.deadline = now + self.c.neg.timeout;
        if last {
            self.dallying = true;
            self.c.stats.bytes = self.written;
            self.c.finish(Outcome::Complete);
        }
        if last || self.received - self.acked >= u64::from(self.c.neg.windowsize) {
            self.ack_due = true;
        }
    }

    /// Fires the timer: resend the last ACK (or OACK); after the final block, end the dally.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.dallying && now >= self.c.deadline {
            self.c.closed = true;
            return;
        }
        if self.c.on_timeout(now) {
            self.ack_due = true;
        }
    }

    /// When the driver must call [`WriteTransfer::handle_timeout`]; `None` once closed.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.c.poll_timeout()
    }

    /// Writes the next datagram to send (an ACK, the OACK or an ERROR) into `buf`.
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        if let Some(n) = self.c.transmit_error(buf) {
            return Some(n);
        }
        if self.c.closed || !std::mem::take(&mut self.ack_due) {
            return None;
        }
        self.c.deadline = now + self.c.neg.timeout;
        if self.oack_pending {
            return self.c.neg.oack.emit_oack(buf).ok();
        }
        self.acked = self.received;
        self.c.stats.packets_sent += 1;
        Repr::Ack {
            block: self.c.wire_block(self.received),
        }
        .emit(buf)
        .ok()
    }

    /// How the transfer ended, once it has. `Complete` appears as soon as the final block
    /// is stored (the engine then dallies to re-ACK a retransmission).
    pub fn outcome(&self) -> Option<Outcome> {
        self.c.outcome
    }

    /// Whether the engine needs nothing more.
    pub fn is_closed(&self) -> bool {
        self.c.closed
    }

    /// Counters so far.
    pub fn stats(&self) -> Stats {
        Stats {
            bytes: self.written,
            ..self.c.stats
        }
    }

    /// Ends the transfer with an ERROR to the peer. Also valid right after the final block
    /// arrived and before its ACK is sent (e.g. storing the file failed): the client then
    /// gets the ERROR instead of the ACK.
    pub fn abort(&mut self, code: ErrorCode, text: &'static str) {
        if !self.c.closed {
            self.c.outcome = None;
            self.ack_due = false;
            self.c.fail(code, text);
        }
    }
}

/// Netascii → local: CR LF → LF, CR NUL → CR; a CR at the end of a block waits for the next.
fn decode_netascii(data: &[u8], cr_pending: &mut bool, last: bool, out: &mut Vec<u8>) {
    out.clear();
    for &b in data {
        if std::mem::take(cr_pending) {
            match b {
                b'\n' => {
                    out.push(b'\n');
                    continue;
                }
                0 => {
                    out.push(b'\r');
                    continue;
                }
                _ => out.push(b'\r'),
            }
        }
        if b == b'\r' {
            *cr_pending = true;
        } else {
            out.push(b);
        }
    }
    if last && std::mem::take(cr_pending) {
        out.push(b'\r');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_numbers_wrap_as_configured() {
        let neg = negotiate(
            &Request {
                filename: b"f",
                mode: Mode::Octet,
                options: Default::default(),
            },
            &Config::default(),
            None,
        );
        let now = Instant::now();
        let mut c = Common::new(now, neg, &Config::default());
        assert_eq!(c.wire_block(65535), 65535);
        assert_eq!(c.wire_block(65536), 0);
        assert_eq!(c.wire_block(65537), 1);
        assert_eq!(c.index_in(0, 65530, 65540), Some(65536));
        assert_eq!(c.index_in(65534, 65535, 65540), None);
        c.rollover = Rollover::ToOne;
        assert_eq!(c.wire_block(65536), 1);
        assert_eq!(c.wire_block(65535 * 2), 65535);
        assert_eq!(c.wire_block(65535 * 2 + 1), 1);
        assert_eq!(c.index_in(1, 65530, 65540), Some(65536));
        assert_eq!(c.index_in(65535, 65530, 65540), Some(65535));
        assert_eq!(c.index_in(0, 65530, 65540), None);
        assert_eq!(c.index_in(0, 0, 3), Some(0));
    }

    #[test]
    fn netascii_decode_handles_split_pairs() {
        let mut out = Vec::new();
        let mut cr = false;
        decode_netascii(b"a\r\nb\r", &mut cr, false, &mut out);
        assert_eq!((out.as_slice(), cr), (&b"a\nb"[..], true));
        decode_netascii(b"\0c\r", &mut cr, true, &mut out);
        assert_eq!(out, b"\rc\r");
    }
}
