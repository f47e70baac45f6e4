//! The per-connection driver: moves bytes between a stream and the sans-IO engine, and
//! serves the engine's requests from the export's storage.
//!
//! Requests are served in batches: every complete request in the receive buffer is handled,
//! its reply queued (header + payload, the payload often a slice of the shared RAM image),
//! and the batch goes out in one `writev`. A batch is capped at `max_in_flight` requests and
//! 16 MiB of payload, which bounds what one client can make the server hold.

use crate::export::{Payload, ServedExport, Storage};
use bytes::{Buf, BytesMut};
use netboot_nbd::engine::{Command, Config, Connection, Event, Fatal, Header, Request, Step};
use netboot_nbd::wire::errno;
use std::io::IoSlice;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// What every connection shares.
pub struct Shared {
    pub config: Config,
    pub exports: Vec<ServedExport>,
    pub handshake_timeout: Duration,
    pub max_in_flight: usize,
}

/// How a connection ended, for its log line.
enum End {
    Disconnect,
    Eof,
    Protocol(Fatal),
    HandshakeTimeout,
    Io(std::io::Error),
}

impl std::fmt::Display for End {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            End::Disconnect => f.write_str("client disconnect"),
            End::Eof => f.write_str("client closed the socket"),
            End::Protocol(e) => write!(f, "protocol violation: {e}"),
            End::HandshakeTimeout => f.write_str("handshake timeout"),
            End::Io(e) => write!(f, "I/O error: {e}"),
        }
    }
}

const BATCH_BYTES: usize = 16 << 20;

struct Outbox {
    replies: Vec<(Header, Payload)>,
    bytes: usize,
    pool: Vec<Vec<u8>>,
}

/// Writes all of `bufs`, however the kernel splits it.
async fn write_all_vectored<S: AsyncWrite + Unpin>(
    s: &mut S,
    mut bufs: &mut [IoSlice<'_>],
) -> std::io::Result<()> {
    while !bufs.is_empty() {
        let n = s.write_vectored(bufs).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut bufs, n);
    }
    Ok(())
}

impl Outbox {
    async fn flush<S: AsyncWrite + Unpin>(
        &mut self,
        s: &mut S,
        conn: &mut Connection,
    ) -> std::io::Result<()> {
        {
            let engine = conn.pending_output();
            let mut iov: Vec<IoSlice> = Vec::with_capacity(1 + 2 * self.replies.len());
            if !engine.is_empty() {
                iov.push(IoSlice::new(engine));
            }
            for (h, p) in &self.replies {
                if !h.is_empty() {
                    iov.push(IoSlice::new(h));
                }
                if !p.as_slice().is_empty() {
                    iov.push(IoSlice::new(p.as_slice()));
                }
            }
            write_all_vectored(s, &mut iov).await?;
        }
        s.flush().await?;
        let n = conn.pending_output().len();
        conn.consume_output(n);
        for (_, p) in self.replies.drain(..) {
            if let Payload::Owned(v) = p
                && self.pool.len() < 8
            {
                self.pool.push(v);
            }
        }
        self.bytes = 0;
        Ok(())
    }
}

/// Serves one client until it leaves; logs one line about it.
pub async fn serve<S>(mut s: S, peer: String, sh: Arc<Shared>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let start = Instant::now();
    let deadline = tokio::time::Instant::now() + sh.handshake_timeout;
    let mut conn = Connection::new();
    let mut buf = BytesMut::with_capacity(16 << 10);
    let mut out = Outbox {
        replies: Vec::new(),
        bytes: 0,
        pool: Vec::new(),
    };
    let mut storage: Option<Storage> = None;
    let mut export_name = String::from("-");
    let (mut read, mut written) = (0u64, 0u64);
    let end = 'conn: loop {
        // Handle everything buffered.
        let mut closing = false;
        loop {
            let step = match conn.handle(&sh.config, &buf) {
                Ok(s) => s,
                Err(f) => {
                    // Send what the engine queued (e.g. the reply before a hard disconnect).
                    let _ = out.flush(&mut s, &mut conn).await;
                    break 'conn End::Protocol(f);
                }
            };
            let consumed = match step {
                Step::Need(n) => {
                    buf.reserve(n.saturating_sub(buf.len()));
                    break;
                }
                Step::Closed => {
                    closing = true;
                    break;
                }
                Step::Consumed(n) => n,
                Step::Event(n, Event::Close) => {
                    closing = true;
                    buf.advance(n);
                    break;
                }
                Step::Event(n, Event::Ready { export }) => {
                    let e = &sh.exports[export];
                    storage = Some(Storage::open(e));
                    export_name = e.export.name.clone();
                    n
                }
                Step::Event(n, Event::Request(r)) => {
                    let Some(st) = storage.as_mut() else {
                        break 'conn End::Protocol(Fatal::UnknownExport);
                    };
                    let reply = execute(st, &conn, &r, &mut out.pool);
                    match r.command {
                        Command::Read => read += reply.1.as_slice().len() as u64,
                        Command::Write => written += r.length,
                        _ => {}
                    }
                    out.bytes += reply.1.as_slice().len();
                    out.replies.push(reply);
                    n
                }
            };
            buf.advance(consumed);
            if (out.replies.len() >= sh.max_in_flight || out.bytes >= BATCH_BYTES)
                && let Err(e) = out.flush(&mut s, &mut conn).await
            {
                break 'conn End::Io(e);
            }
        }
        if let Err(e) = out.flush(&mut s, &mut conn).await {
            break End::Io(e);
        }
        if closing {
            break End::Disconnect;
        }
        let r = if conn.in_transmission() {
            s.read_buf(&mut buf).await
        } else {
            match tokio::time::timeout_at(deadline, s.read_buf(&mut buf)).await {
                Ok(r) => r,
                Err(_) => break End::HandshakeTimeout,
            }
        };
        match r {
            Ok(0) => break End::Eof,
            Ok(_) => {}
            Err(e) => break End::Io(e),
        }
    };
    let _ = s.shutdown().await;
    tracing::info!(
        client = %peer,
        export = %export_name,
        bytes_read = read,
        bytes_written = written,
        secs = format!("{:.3}", start.elapsed().as_secs_f64()),
        end = %end,
        "connection closed"
    );
}

fn io_errno(e: &std::io::Error) -> u32 {
    match e.kind() {
        std::io::ErrorKind::PermissionDenied => errno::EPERM,
        std::io::ErrorKind::Unsupported => errno::ENOTSUP,
        std::io::ErrorKind::OutOfMemory => errno::ENOMEM,
        _ => errno::EIO,
    }
}

/// Serves one validated request; returns the reply header and its payload.
fn execute(
    st: &mut Storage,
    conn: &Connection,
    r: &Request,
    pool: &mut Vec<Vec<u8>>,
) -> (Header, Payload) {
    let rep = conn.replies();
    let done = |res: std::io::Result<()>| match res {
        Ok(()) => (rep.ok(r.cookie, r.offset), Payload::None),
        Err(e) => (rep.error(r.cookie, r.offset, io_errno(&e)), Payload::None),
    };
    match r.command {
        Command::Read => match st.read(r.offset, r.length, pool) {
            Ok(p) => (rep.read(r.cookie, r.offset, r.length), p),
            Err(e) => (rep.error(r.cookie, r.offset, io_errno(&e)), Payload::None),
        },
        Command::Write => done(st.write(r.offset, r.data, r.fua())),
        Command::Flush => done(st.flush()),
        // TRIM is a hint and CACHE a prefetch; the data stays readable either way.
        Command::Trim | Command::Cache => done(Ok(())),
        Command::WriteZeroes => done(st.write_zeroes(r.offset, r.length, r.fua(), r.fast_zero())),
        Command::BlockStatus => {
            let ext = st.extents(r.offset, r.length, r.req_one());
            let mut v = pool.pop().unwrap_or_default();
            v.clear();
            rep.block_status(r.cookie, r.offset, &ext, &mut v);
            // The whole reply is in `v`; send it as the "payload" of an empty header.
            (Header::default(), Payload::Owned(v))
        }
    }
}
