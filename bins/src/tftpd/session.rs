//! One transfer: resolve the file, run the engine, move its datagrams.
//!
//! A session is a task on the single-threaded runtime with its own UDP socket (its port is
//! the server's transfer ID, RFC 1350 §4). Its memory is the engine plus one window of
//! datagrams, whatever the file size. A window leaves in one UDP GSO send, or one `sendmmsg` call
//! where GSO is refused ([`Sender`]).

use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use netboot_tftp::engine::{Outcome, ReadTransfer, Stats, WriteTransfer};
use netboot_tftp::wire::{self, ErrorCode, Mode, Repr, Request};
use nix::sys::socket::{ControlMessage, MsgFlags, SockaddrStorage, sendmsg};
use rustix::net::{MMsgHdr, SendAncillaryBuffer, SendFlags, SocketAddrAny};
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::time::Sleep;

use super::fs::{self, Refusal};
use super::{Ctx, SessionGuard};

/// Datagrams per `sendmmsg` call at most.
const BATCH: usize = 64;

/// Serves one request that arrived on a listening socket.
pub(super) async fn serve(
    ctx: Arc<Ctx>,
    sock: std::net::UdpSocket,
    peer: SocketAddr,
    request: Vec<u8>,
    guard: SessionGuard,
) {
    let start = Instant::now();
    // Registered here, with the event loop this session runs on.
    let Ok(sock) = UdpSocket::from_std(sock) else {
        return;
    };
    let (req, write) = match Repr::parse_with_limit(&request, ctx.max_request_len) {
        Ok(Repr::Rrq(r)) => (r, false),
        Ok(Repr::Wrq(r)) => (r, true),
        _ => return,
    };
    let name = format!("{:?}", String::from_utf8_lossy(req.filename));
    let result = if write {
        serve_write(&ctx, &sock, peer, &req).await
    } else {
        serve_read(&ctx, &sock, peer, &req, &guard).await
    };
    let ms = start.elapsed().as_millis();
    let kind = if write { "WRQ" } else { "RRQ" };
    match result {
        Ok(Done {
            outcome,
            stats,
            blksize,
            windowsize,
            oack,
        }) => tracing::info!(
            client = %peer, kind, file = %name, mode = ?req.mode, blksize, windowsize,
            tsize = ?oack.tsize, timeout = ?oack.timeout,
            bytes = stats.bytes, ms, retransmits = stats.retransmits,
            outcome = %outcome.map_or("Unfinished".to_string(), |o| format!("{o:?}")), "transfer"
        ),
        Err(r) => {
            // The session ends before its ERROR leaves: a client that asks again at once,
            // from the same port, is a new request and not a retransmission of this one.
            drop(guard);
            let e = refuse(&sock, peer, r).await;
            tracing::info!(client = %peer, kind, file = %name, ms, outcome = %e, "transfer refused");
            return;
        }
    }
    drop(guard);
}

/// Summary for the log line.
struct Done {
    outcome: Option<Outcome>,
    stats: Stats,
    blksize: u16,
    windowsize: u16,
    /// The options acknowledged (tsize, timeout for the log).
    oack: wire::Options,
}

/// Sends an ERROR for a refused request (from the session's own port, as RFC 1350 wants).
async fn refuse(sock: &UdpSocket, peer: SocketAddr, r: Refusal) -> String {
    let (code, text) = r.error();
    let mut buf = [0u8; 64];
    let n = wire::emit_error(&mut buf, code, text);
    let _ = sock.send_to(&buf[..n], peer).await;
    format!("ERROR {} {text}", code.0)
}

/// The requested name after the remap rules and the root-confinement checks.
fn resolve(ctx: &Ctx, name: &[u8]) -> Result<Vec<u8>, Refusal> {
    if ctx.remap.is_empty() {
        return fs::relative_name(name, ctx.map_backslash);
    }
    let mapped = ctx.remap.apply(name).ok_or(Refusal::Access)?;
    if mapped != name {
        tracing::debug!(from = %String::from_utf8_lossy(name), to = %String::from_utf8_lossy(&mapped), "remapped");
    }
    fs::relative_name(&mapped, ctx.map_backslash)
}

async fn serve_read(
    ctx: &Ctx,
    sock: &UdpSocket,
    peer: SocketAddr,
    req: &Request<'_>,
    guard: &SessionGuard,
) -> Result<Done, Refusal> {
    let rel = resolve(ctx, req.filename)?;
    let file = fs::open_read(&ctx.root, &rel)?;
    let mut tx = ReadTransfer::new(Instant::now(), req, file.size, &ctx.engine);
    let neg = *tx.negotiated();
    let slot = tx.max_datagram_len().max(512);
    let mut out = vec![0u8; slot * usize::from(neg.windowsize).clamp(1, BATCH)];
    let mut lens = Vec::with_capacity(BATCH);
    let mut rbuf = [0u8; 1024];
    let mut src = fs::ReadAhead::new(&file);
    let timer = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(timer);
    let mut armed = None;
    let mut sender = Sender::new(peer);
    let mut spin = Spin::new(!ctx.busy_poll.is_zero());
    let mut acked = false;
    loop {
        let now = Instant::now();
        loop {
            let i = lens.len();
            if i * slot == out.len() {
                sender.send_batch(sock, &out, slot, &lens).await;
                lens.clear();
                continue;
            }
            match tx.poll_transmit(now, &mut out[i * slot..(i + 1) * slot], &mut src) {
                Some(n) => lens.push(n),
                None => break,
            }
        }
        sender.send_batch(sock, &out, slot, &lens).await;
        lens.clear();
        if tx.is_closed() {
            break;
        }
        let Some(deadline) = tx.poll_timeout() else {
            break;
        };
        // The transfer is latency-bound: read the next window into the packet slots now,
        // while the client turns this one around, so answering its ACK is only a send (not
        // before its first ACK, so a client that never answers costs no reads).
        if acked && req.mode == Mode::Octet {
            src.prefill(&mut out, slot, wire::HEADER_LEN, usize::from(neg.blksize));
        }
        // When the server is nearly idle, wait for the ACK by
        // polling for a few microseconds before going to sleep in epoll (a sleep and a
        // wake-up cost more than a client's whole turn, on a VM all the more).
        if spin.wanted() && guard.live() <= BUSY_POLL_MAX_SESSIONS {
            let got = busy_poll(sock, &mut rbuf, Instant::now() + ctx.busy_poll).await;
            spin.record(got.is_some());
            match got {
                Some(Ok((n, from))) if from == peer => {
                    tx.handle_datagram(Instant::now(), &rbuf[..n]);
                    acked = true;
                    continue;
                }
                Some(Ok((_, from))) => {
                    unknown_tid(sock, from).await;
                    continue;
                }
                Some(Err(_)) | None => {}
            }
        }
        arm(timer.as_mut(), &mut armed, deadline);
        tokio::select! {
            biased;
            r = sock.recv_from(&mut rbuf) => match r {
                Ok((n, from)) if from == peer => {
                    tx.handle_datagram(Instant::now(), &rbuf[..n]);
                    acked = true;
                }
                Ok((_, from)) => unknown_tid(sock, from).await,
                Err(_) => {}
            },
            _ = &mut timer => tx.handle_timeout(Instant::now()),
        }
    }
    Ok(Done {
        outcome: tx.outcome(),
        stats: tx.stats(),
        blksize: neg.blksize,
        windowsize: neg.windowsize,
        oack: neg.oack,
    })
}

async fn serve_write(
    ctx: &Ctx,
    sock: &UdpSocket,
    peer: SocketAddr,
    req: &Request<'_>,
) -> Result<Done, Refusal> {
    if !ctx.allow_write {
        return Err(Refusal::Access);
    }
    let rel = resolve(ctx, req.filename)?;
    let mut upload = fs::create_upload(&ctx.root, &rel, ctx.allow_overwrite)?;
    let mut rx = WriteTransfer::new(Instant::now(), req, &ctx.engine);
    let neg = *rx.negotiated();
    let mut out = [0u8; 512];
    let mut rbuf = vec![0u8; wire::HEADER_LEN + usize::from(neg.blksize) + 1];
    let mut committed = false;
    let timer = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(timer);
    let mut armed = None;
    loop {
        // The file is renamed into place before the final ACK leaves: a client that saw
        // its upload acknowledged finds it there.
        if rx.outcome() == Some(Outcome::Complete) && !committed {
            committed = true;
            if let Err(r) = upload.commit() {
                let (code, text) = r.error();
                rx.abort(code, text);
            }
        }
        let now = Instant::now();
        while let Some(n) = rx.poll_transmit(now, &mut out) {
            let _ = sock.send_to(&out[..n], peer).await;
        }
        if rx.is_closed() {
            break;
        }
        let Some(deadline) = rx.poll_timeout() else {
            break;
        };
        arm(timer.as_mut(), &mut armed, deadline);
        tokio::select! {
            biased;
            r = sock.recv_from(&mut rbuf) => match r {
                Ok((n, from)) if from == peer => rx.handle_datagram(Instant::now(), &rbuf[..n], &mut upload),
                Ok((_, from)) => unknown_tid(sock, from).await,
                Err(_) => {}
            },
            _ = &mut timer => rx.handle_timeout(Instant::now()),
        }
    }
    Ok(Done {
        outcome: rx.outcome(),
        stats: rx.stats(),
        blksize: neg.blksize,
        windowsize: neg.windowsize,
        oack: neg.oack,
    })
}

/// Busy polling only while at most this many transfers run: with more, the event loop is
/// kept busy by the others and a spinning session would only take their turns.
const BUSY_POLL_MAX_SESSIONS: usize = 2;

/// Whether busy polling pays off for this session. Polling that keeps timing out (a slow
/// client, or a loaded machine where the client waits for the CPU we spin on) only burns
/// that CPU, so each miss halves the credit and each hit adds one; with no credit left the
/// session sleeps in epoll and tries polling again only every [`Spin::RETRY`] packets.
struct Spin {
    credit: u32,
    skipped: u32,
}

impl Spin {
    const MAX_CREDIT: u32 = 16;
    const RETRY: u32 = 512;

    fn new(enabled: bool) -> Spin {
        Spin {
            credit: if enabled { 4 } else { 0 },
            skipped: if enabled { 0 } else { u32::MAX },
        }
    }

    fn wanted(&mut self) -> bool {
        if self.credit > 0 {
            return true;
        }
        if self.skipped == u32::MAX {
            return false;
        }
        self.skipped += 1;
        if self.skipped >= Self::RETRY {
            self.skipped = 0;
            self.credit = 1;
        }
        self.credit > 0
    }

    fn record(&mut self, hit: bool) {
        self.credit = if hit {
            (self.credit + 1).min(Self::MAX_CREDIT)
        } else {
            self.credit / 2
        };
    }
}

/// Polls `sock` until a datagram arrives or `until` passes. Each round yields to the
/// runtime, which polls its I/O driver without sleeping, so other sessions still run.
async fn busy_poll(
    sock: &UdpSocket,
    buf: &mut [u8],
    until: Instant,
) -> Option<io::Result<(usize, SocketAddr)>> {
    loop {
        match sock.try_recv_from(buf) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            r => return Some(r),
        }
        if Instant::now() >= until {
            return None;
        }
        tokio::task::yield_now().await;
    }
}

/// Re-arms the session's one timer only when the engine wants to wake earlier than it is
/// set, or it has fired. Waking early is harmless (the engine checks the time itself), and
/// not re-arming on every packet keeps timer-wheel work off the lockstep hot path.
fn arm(timer: Pin<&mut Sleep>, armed: &mut Option<Instant>, deadline: Instant) {
    if armed.is_none_or(|at| deadline < at || timer.is_elapsed()) {
        timer.reset(deadline.into());
        *armed = Some(deadline);
    }
}

/// RFC 1350 §4: a datagram from a port that is not the peer's gets ERROR 5 and the
/// transfer goes on.
async fn unknown_tid(sock: &UdpSocket, from: SocketAddr) {
    let mut buf = [0u8; 32];
    let n = wire::emit_error(&mut buf, ErrorCode::UNKNOWN_TID, "Unknown transfer ID");
    let _ = sock.send_to(&buf[..n], from).await;
}

/// Most segments the kernel takes in one UDP GSO send (`UDP_MAX_SEGMENTS` on older kernels).
const GSO_MAX_SEGMENTS: usize = 64;
/// Most payload bytes in one GSO send: the whole super-datagram must fit one IP length field.
const GSO_MAX_BYTES: usize = 65_000;

/// Sends a session's datagrams. A window of equal-sized DATA blocks (only the last may be
/// shorter) leaves as one UDP GSO send (`UDP_SEGMENT`): one trip through the stack, cut into
/// datagrams by the kernel or the NIC. When the kernel refuses it (no GSO support, or a
/// block too large for the path MTU, which GSO cannot fragment) the session falls back to
/// `sendmmsg` for good; errors are otherwise dropped like lost packets, and the engine's
/// timer recovers.
pub(super) struct Sender {
    peer: SocketAddr,
    addr: SockaddrStorage,
    gso: bool,
}

impl Sender {
    pub(super) fn new(peer: SocketAddr) -> Sender {
        Sender {
            peer,
            addr: SockaddrStorage::from(peer),
            gso: true,
        }
    }

    /// Sends `lens.len()` datagrams laid out every `slot` bytes in `out`.
    async fn send_batch(&mut self, sock: &UdpSocket, out: &[u8], slot: usize, lens: &[usize]) {
        let mut i = 0;
        while i < lens.len() {
            let n = if self.gso { gso_run(&lens[i..]) } else { 1 };
            if n >= 2 {
                match self.send_gso(sock, out, slot, &lens[i..i + n], i).await {
                    Ok(()) => {
                        i += n;
                        continue;
                    }
                    Err(e) => {
                        tracing::debug!(client = %self.peer, error = %e, "UDP GSO refused, using sendmmsg");
                        self.gso = false;
                    }
                }
            }
            if lens.len() - i == 1 {
                let _ = sock.send_to(&out[i * slot..][..lens[i]], self.peer).await;
                return;
            }
            let end = if self.gso { i + n } else { lens.len() };
            if send_mmsg(sock, self.peer, out, slot, &lens[i..end], i)
                .await
                .is_err()
            {
                return;
            }
            i = end;
        }
    }

    /// One GSO send of the datagrams `first..first + lens.len()`.
    async fn send_gso(
        &self,
        sock: &UdpSocket,
        out: &[u8],
        slot: usize,
        lens: &[usize],
        first: usize,
    ) -> io::Result<()> {
        let seg =
            u16::try_from(lens[0]).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        let iovs: Vec<IoSlice<'_>> = lens
            .iter()
            .enumerate()
            .map(|(k, &len)| IoSlice::new(&out[(first + k) * slot..][..len]))
            .collect();
        let total: usize = lens.iter().sum();
        let sent = sock
            .async_io(Interest::WRITABLE, || {
                sendmsg(
                    sock.as_raw_fd(),
                    &iovs,
                    &[ControlMessage::UdpGsoSegments(&seg)],
                    MsgFlags::empty(),
                    Some(&self.addr),
                )
                .map_err(io::Error::from)
            })
            .await?;
        if sent == total {
            Ok(())
        } else {
            Err(io::Error::from(io::ErrorKind::WriteZero))
        }
    }
}

/// How many datagrams from the start of `lens` one GSO send can carry: equal sizes, the last
/// possibly shorter, within the kernel's segment and byte limits.
fn gso_run(lens: &[usize]) -> usize {
    let Some(&seg) = lens.first() else { return 0 };
    let mut total = 0;
    let mut n = 0;
    for &len in lens.iter().take(GSO_MAX_SEGMENTS) {
        if len > seg || total + len > GSO_MAX_BYTES {
            break;
        }
        total += len;
        n += 1;
        if len < seg {
            break;
        }
    }
    n
}

/// Sends datagrams `first..first + lens.len()` with as few `sendmmsg` calls as the kernel
/// allows.
async fn send_mmsg(
    sock: &UdpSocket,
    peer: SocketAddr,
    out: &[u8],
    slot: usize,
    lens: &[usize],
    first: usize,
) -> io::Result<()> {
    let addr = SocketAddrAny::from(peer);
    let mut sent = 0;
    while sent < lens.len() {
        let n = sock
            .async_io(Interest::WRITABLE, || {
                let iovs: Vec<IoSlice<'_>> = lens[sent..]
                    .iter()
                    .enumerate()
                    .map(|(i, &len)| IoSlice::new(&out[(first + sent + i) * slot..][..len]))
                    .collect();
                let mut controls: Vec<SendAncillaryBuffer<'_, '_, '_>> = iovs
                    .iter()
                    .map(|_| SendAncillaryBuffer::default())
                    .collect();
                let mut msgs: Vec<MMsgHdr<'_>> = iovs
                    .iter()
                    .zip(controls.iter_mut())
                    .map(|(iov, c)| MMsgHdr::new_with_addr(&addr, std::slice::from_ref(iov), c))
                    .collect();
                rustix::net::sendmmsg(sock, &mut msgs, SendFlags::empty()).map_err(io::Error::from)
            })
            .await?;
        if n == 0 {
            return Err(io::Error::from(io::ErrorKind::WriteZero));
        }
        sent += n;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::gso_run;

    #[test]
    fn gso_runs_take_equal_blocks_and_a_short_last_one() {
        assert_eq!(gso_run(&[]), 0);
        assert_eq!(gso_run(&[1472]), 1);
        assert_eq!(gso_run(&[1472; 16]), 16);
        assert_eq!(gso_run(&[1472, 1472, 100]), 3);
        assert_eq!(gso_run(&[1472, 100, 1472]), 2);
        assert_eq!(gso_run(&[100, 1472]), 1);
        assert_eq!(gso_run(&[516; 100]), super::GSO_MAX_SEGMENTS);
        // 8196-byte datagrams: 7 fit in 65000 bytes.
        assert_eq!(gso_run(&[8196; 8]), 7);
    }
}
