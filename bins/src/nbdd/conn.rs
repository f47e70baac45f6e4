//! The per-connection driver: moves bytes between a stream and the sans-IO engine, and
//! serves the engine's requests from the export's storage.
//!
//! Two halves run concurrently in the connection's task. The reader feeds received bytes to
//! the engine, serves each request as soon as it is parsed and queues its reply (header +
//! payload, the payload often a slice of the shared RAM image); the writer sends whatever is
//! queued with one `writev`. So new requests keep being read while earlier replies are still
//! going out, and a client's pipeline never drains. The queue holds at most `max_in_flight`
//! replies, and payloads read into buffers are bounded by a per-connection byte budget: that is
//! what one client can make the server hold.

use super::export::{Payload, ServedExport, Storage};
use bytes::{Buf, BytesMut};
use netboot_nbd::engine::{Command, Config, Connection, Event, Fatal, Header, Request, Step};
use netboot_nbd::wire::errno;
use std::io::IoSlice;
use std::os::fd::{AsFd, BorrowedFd};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

/// What every connection shares.
pub struct Shared {
    pub config: Config,
    pub exports: Vec<ServedExport>,
    /// What each export was built from (spec key, file identity), for reuse at reload.
    pub sources: Vec<(String, Option<super::export::FileId>)>,
    pub handshake_timeout: Duration,
    /// Close a connection in transmission after this long without a request while no reply
    /// is pending (None: never).
    pub idle_timeout: Option<Duration>,
    pub max_in_flight: usize,
    /// Bytes each copy-on-write overlay may hold.
    pub cow_max: u64,
    /// The TLS server side for STARTTLS (None: TLS off).
    pub tls: Option<tokio_rustls::TlsAcceptor>,
}

/// Bytes of buffered READ data one connection may hold at once.
const READ_BUDGET: u32 = 64 << 20;
/// Replies gathered into one `writev`: many small ones (4 KiB random reads share a call),
/// but not megabytes of data behind one call, which in 8-client storms on this 2-core box
/// went no faster (the measurements were too noisy under the shared load to say more).
const MAX_BATCH: usize = 128;
const MAX_BATCH_BYTES: usize = 1 << 20;

/// How a connection ended, for its log line.
enum End {
    Disconnect,
    Eof,
    Protocol(Fatal),
    HandshakeTimeout,
    IdleTimeout,
    Tls(std::io::Error),
    Io(std::io::Error),
    WriterGone,
}

impl std::fmt::Display for End {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            End::Disconnect => f.write_str("client disconnect"),
            End::Eof => f.write_str("client closed the socket"),
            End::Protocol(e) => write!(f, "protocol violation: {e}"),
            End::HandshakeTimeout => f.write_str("handshake timeout"),
            End::IdleTimeout => f.write_str("idle timeout"),
            End::Tls(e) => write!(f, "TLS handshake failed: {e}"),
            End::Io(e) => write!(f, "I/O error: {e}"),
            End::WriterGone => f.write_str("send failed"),
        }
    }
}

/// Read buffers handed back by the writer once sent, so file reads reuse memory instead of
/// allocating and zeroing a buffer per request. Bounded: at most `POOL_BUFFERS` buffers of
/// at most `POOL_MAX_BUF` bytes each.
#[derive(Default, Clone)]
struct Pool(Arc<std::sync::Mutex<Vec<Vec<u8>>>>);

const POOL_BUFFERS: usize = 16;
const POOL_MAX_BUF: usize = 512 << 10;

impl Pool {
    fn take(&self) -> Vec<u8> {
        self.0
            .lock()
            .ok()
            .and_then(|mut p| p.pop())
            .unwrap_or_default()
    }
    fn give(&self, v: Vec<u8>) {
        if v.capacity() <= POOL_MAX_BUF
            && let Ok(mut p) = self.0.lock()
            && p.len() < POOL_BUFFERS
        {
            p.push(v);
        }
    }
}

/// One queued message: a reply (header + payload) or engine output (empty header).
struct Out {
    header: Header,
    payload: Payload,
    _budget: Option<OwnedSemaphorePermit>,
}

/// Any byte stream a client may come in on (stdio, a TLS session...).
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A client's stream during the handshake; split into reader and [`Sink`] for transmission.
/// Plain sockets stay themselves so replies can use `sendfile` and MSG_MORE.
pub enum Transport {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
    Other(Box<dyn Io>),
}

impl AsyncRead for Transport {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Transport::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Transport::Unix(s) => Pin::new(s).poll_read(cx, buf),
            Transport::Other(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Transport {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Transport::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Transport::Unix(s) => Pin::new(s).poll_write(cx, buf),
            Transport::Other(s) => Pin::new(s).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Transport::Tcp(s) => Pin::new(s).poll_flush(cx),
            Transport::Unix(s) => Pin::new(s).poll_flush(cx),
            Transport::Other(s) => Pin::new(s).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Transport::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Transport::Unix(s) => Pin::new(s).poll_shutdown(cx),
            Transport::Other(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// Where replies go. Sockets get `sendmsg` with MSG_MORE and `sendfile` (large reads leave
/// straight from the page cache, and a header marked MORE is not pushed alone ahead of its
/// data); any other stream (stdio, TLS) gets plain vectored writes of buffered data.
pub enum Sink {
    Tcp(tokio::net::tcp::OwnedWriteHalf),
    Unix(tokio::net::unix::OwnedWriteHalf),
    Stream(Box<dyn AsyncWrite + Unpin + Send>),
}

impl Sink {
    /// Whether [`Payload::File`] may be queued for this sink.
    pub fn takes_sendfile(&self) -> bool {
        !matches!(self, Sink::Stream(_))
    }

    /// Runs `f` on the socket's descriptor whenever it is writable, until it does not block.
    async fn io<R>(
        &mut self,
        mut f: impl FnMut(BorrowedFd) -> std::io::Result<R>,
    ) -> std::io::Result<R> {
        use tokio::io::Interest;
        match self {
            Sink::Tcp(w) => {
                let s: &tokio::net::TcpStream = w.as_ref();
                s.async_io(Interest::WRITABLE, || f(s.as_fd())).await
            }
            Sink::Unix(w) => {
                let s: &tokio::net::UnixStream = w.as_ref();
                s.async_io(Interest::WRITABLE, || f(s.as_fd())).await
            }
            Sink::Stream(_) => Err(std::io::ErrorKind::Unsupported.into()),
        }
    }

    /// Writes all of `bufs`, however the kernel splits it; `more` when data follows at once.
    async fn write_all_vectored(
        &mut self,
        mut bufs: &mut [IoSlice<'_>],
        more: bool,
    ) -> std::io::Result<()> {
        use rustix::net::{SendAncillaryBuffer, SendFlags, sendmsg};
        let flags = if more {
            SendFlags::MORE
        } else {
            SendFlags::empty()
        } | SendFlags::NOSIGNAL;
        while !bufs.is_empty() {
            let n = match self {
                Sink::Stream(s) => s.write_vectored(bufs).await?,
                _ => {
                    let iov: &[IoSlice] = bufs;
                    self.io(|fd| {
                        Ok(sendmsg(
                            fd,
                            iov,
                            &mut SendAncillaryBuffer::default(),
                            flags,
                        )?)
                    })
                    .await?
                }
            };
            if n == 0 {
                return Err(std::io::ErrorKind::WriteZero.into());
            }
            IoSlice::advance_slices(&mut bufs, n);
        }
        Ok(())
    }

    /// Sends `len` bytes of `file` from `offset` with `sendfile`.
    async fn sendfile(
        &mut self,
        file: &std::fs::File,
        offset: u64,
        len: usize,
    ) -> std::io::Result<()> {
        let (mut off, end) = (offset, offset + len as u64);
        while off < end {
            let want = (end - off) as usize;
            let n = self
                .io(|fd| Ok(rustix::fs::sendfile(fd, file, Some(&mut off), want)?))
                .await?;
            if n == 0 {
                // The file shrank under us: the reply header already promised the bytes.
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
        }
        Ok(())
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Sink::Stream(s) => s.flush().await,
            _ => Ok(()),
        }
    }

    async fn shutdown(&mut self) -> std::io::Result<()> {
        match self {
            Sink::Tcp(w) => w.shutdown().await,
            Sink::Unix(w) => w.shutdown().await,
            Sink::Stream(s) => s.shutdown().await,
        }
    }
}

/// Sends queued messages in batches until the reader hangs up: buffered parts of consecutive
/// replies share one vectored write; a `sendfile` payload goes out after its header (marked
/// MORE) and everything before it.
async fn writer(
    mut w: Sink,
    mut rx: mpsc::Receiver<Out>,
    pool: Pool,
    unsent: Arc<AtomicUsize>,
) -> std::io::Result<()> {
    let mut batch: Vec<Out> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.recv().await {
        let mut bytes = first.payload.len();
        batch.push(first);
        while batch.len() < MAX_BATCH && bytes < MAX_BATCH_BYTES {
            match rx.try_recv() {
                Ok(m) => {
                    bytes += m.payload.len();
                    batch.push(m);
                }
                Err(_) => break,
            }
        }
        let mut iov: Vec<IoSlice> = Vec::with_capacity(2 * batch.len());
        for m in &batch {
            if !m.header.is_empty() {
                iov.push(IoSlice::new(&m.header));
            }
            match &m.payload {
                Payload::None => {}
                Payload::Owned(v) => iov.push(IoSlice::new(v)),
                Payload::Shared(b) => iov.push(IoSlice::new(b)),
                Payload::File { file, offset, len } => {
                    w.write_all_vectored(&mut iov, true).await?;
                    iov.clear();
                    w.sendfile(file, *offset, *len).await?;
                }
            }
        }
        w.write_all_vectored(&mut iov, false).await?;
        drop(iov);
        w.flush().await?;
        unsent.fetch_sub(batch.len(), Ordering::Relaxed);
        for m in batch.drain(..) {
            if let Payload::Owned(v) = m.payload {
                pool.give(v);
            }
        }
    }
    w.shutdown().await
}

struct Reader {
    conn: Connection,
    storage: Option<Storage>,
    export_name: String,
    read: u64,
    written: u64,
    budget: Arc<Semaphore>,
    tx: mpsc::Sender<Out>,
    pool: Pool,
    /// Messages queued or being written: while any are, the client is not idle.
    unsent: Arc<AtomicUsize>,
    /// The sink takes [`Payload::File`].
    sendfile: bool,
}

impl Reader {
    async fn send(
        &self,
        header: Header,
        payload: Payload,
        budget: Option<OwnedSemaphorePermit>,
    ) -> bool {
        let m = Out {
            header,
            payload,
            _budget: budget,
        };
        self.unsent.fetch_add(1, Ordering::Relaxed);
        self.tx.send(m).await.is_ok()
    }

    /// Queues what the engine wants sent.
    async fn send_engine_output(&mut self) -> bool {
        if self.conn.pending_output().is_empty() {
            return true;
        }
        let v = self.conn.pending_output().to_vec();
        self.conn.consume_output(v.len());
        self.send(Header::default(), Payload::Owned(v), None).await
    }

    /// Writes what the engine queued straight to the stream (handshake phase), within
    /// `deadline`.
    async fn write_engine_output(
        &mut self,
        t: &mut Transport,
        deadline: tokio::time::Instant,
    ) -> Result<(), End> {
        let out = self.conn.pending_output();
        if out.is_empty() {
            return Ok(());
        }
        let res = tokio::time::timeout_at(deadline, async {
            t.write_all(out).await?;
            t.flush().await
        })
        .await;
        let n = out.len();
        self.conn.consume_output(n);
        match res {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(End::Io(e)),
            Err(_) => Err(End::HandshakeTimeout),
        }
    }

    /// The handshake, on the whole stream (so STARTTLS can wrap it), within the handshake
    /// timeout. Returns the stream to transmit on, once an export is chosen.
    async fn negotiate(
        &mut self,
        mut t: Transport,
        buf: &mut BytesMut,
        sh: &Shared,
    ) -> Result<Transport, End> {
        let deadline = tokio::time::Instant::now() + sh.handshake_timeout;
        loop {
            loop {
                let step = match self.conn.handle(&sh.config, buf) {
                    Ok(s) => s,
                    Err(f) => {
                        // Send what the engine queued before the hard disconnect.
                        let _ = self.write_engine_output(&mut t, deadline).await;
                        return Err(End::Protocol(f));
                    }
                };
                match step {
                    Step::Need(n) => {
                        buf.reserve(n.saturating_sub(buf.len()));
                        break;
                    }
                    Step::Consumed(n) => buf.advance(n),
                    Step::Closed
                    | Step::Event(_, Event::Close)
                    | Step::Event(_, Event::Request(_)) => {
                        self.write_engine_output(&mut t, deadline).await?;
                        return Err(End::Disconnect);
                    }
                    Step::Event(n, Event::Ready { export }) => {
                        buf.advance(n);
                        let e = &sh.exports[export];
                        self.storage = Some(Storage::open(e, sh.cow_max));
                        self.export_name = e.export.name.clone();
                        self.write_engine_output(&mut t, deadline).await?;
                        return Ok(t);
                    }
                    Step::Event(n, Event::StartTls) => {
                        buf.advance(n);
                        self.write_engine_output(&mut t, deadline).await?;
                        let Some(acceptor) = &sh.tls else {
                            return Err(End::Disconnect);
                        };
                        if !buf.is_empty() {
                            return Err(End::Protocol(Fatal::DataAfterStartTls));
                        }
                        t = match tokio::time::timeout_at(deadline, acceptor.accept(t)).await {
                            Ok(Ok(s)) => Transport::Other(Box::new(s)),
                            Ok(Err(e)) => return Err(End::Tls(e)),
                            Err(_) => return Err(End::HandshakeTimeout),
                        };
                        self.conn.tls_started();
                    }
                }
            }
            self.write_engine_output(&mut t, deadline).await?;
            match tokio::time::timeout_at(deadline, t.read_buf(buf)).await {
                Ok(Ok(0)) => return Err(End::Eof),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(End::Io(e)),
                Err(_) => return Err(End::HandshakeTimeout),
            }
        }
    }

    /// Transmission: reads requests, serves them, queues replies for the writer.
    async fn run<R: AsyncRead + Unpin>(&mut self, mut r: R, sh: &Shared, mut buf: BytesMut) -> End {
        loop {
            // Handle everything buffered.
            let mut closing = false;
            loop {
                let step = match self.conn.handle(&sh.config, &buf) {
                    Ok(s) => s,
                    Err(f) => {
                        // Send what the engine queued before the hard disconnect.
                        self.send_engine_output().await;
                        return End::Protocol(f);
                    }
                };
                let consumed = match step {
                    Step::Need(n) => {
                        buf.reserve(n.saturating_sub(buf.len()));
                        break;
                    }
                    Step::Closed | Step::Event(_, Event::Ready { .. } | Event::StartTls) => {
                        closing = true;
                        break;
                    }
                    Step::Consumed(n) => n,
                    Step::Event(n, Event::Close) => {
                        closing = true;
                        buf.advance(n);
                        break;
                    }
                    Step::Event(n, Event::Request(req)) => {
                        // Rejections the engine answered itself go out first, in order.
                        if !self.send_engine_output().await || !self.serve(&req).await {
                            return End::WriterGone;
                        }
                        n
                    }
                };
                buf.advance(consumed);
            }
            if !self.send_engine_output().await {
                return End::WriterGone;
            }
            if closing {
                return End::Disconnect;
            }
            let res = match sh.idle_timeout {
                None => r.read_buf(&mut buf).await,
                Some(idle) => loop {
                    match tokio::time::timeout(idle, r.read_buf(&mut buf)).await {
                        Ok(res) => break res,
                        // Replies still going out: the client is waiting on us, not idle.
                        Err(_) if self.unsent.load(Ordering::Relaxed) > 0 => {}
                        Err(_) => return End::IdleTimeout,
                    }
                },
            };
            match res {
                Ok(0) => return End::Eof,
                Ok(_) => {}
                Err(e) => return End::Io(e),
            }
        }
    }

    /// Runs transmission on `r` and `w` with the writer in its own task (so copying replies
    /// into the socket and serving the next requests can use two cores).
    async fn transmit<R: AsyncRead + Unpin>(
        &mut self,
        r: R,
        w: Sink,
        rx: mpsc::Receiver<Out>,
        sh: &Shared,
        buf: BytesMut,
    ) -> End {
        self.sendfile = w.takes_sendfile();
        let writer = tokio::spawn(writer(w, rx, self.pool.clone(), self.unsent.clone()));
        let end = self.run(r, sh, buf).await;
        // Closing the queue lets the writer finish what is queued, then shut down.
        let (tx, _) = mpsc::channel(1);
        drop(std::mem::replace(&mut self.tx, tx));
        match (end, writer.await) {
            (End::WriterGone, Ok(Err(e))) => End::Io(e),
            (e, _) => e,
        }
    }

    /// Serves one request and queues its reply; false when the writer is gone.
    async fn serve(&mut self, r: &Request<'_>) -> bool {
        let Some(st) = self.storage.as_mut() else {
            return false;
        };
        // Data read into a buffer (not shared RAM) is paid for from the budget first.
        let buffered = !st.unbuffered(r.length, self.sendfile);
        let permit = if r.command == Command::Read && buffered && r.length > 0 {
            let n = r.length.min(u64::from(READ_BUDGET)) as u32;
            self.budget.clone().acquire_many_owned(n).await.ok()
        } else {
            None
        };
        let (header, payload) = execute(st, &self.conn, r, &self.pool, self.sendfile);
        match r.command {
            Command::Read => self.read += payload.len() as u64,
            Command::Write => self.written += r.length,
            _ => {}
        }
        self.send(header, payload, permit).await
    }
}

/// Serves one client until it leaves; logs one line about it.
pub async fn serve(t: Transport, peer: String, sh: Arc<Shared>) {
    let start = Instant::now();
    let (tx, rx) = mpsc::channel(sh.max_in_flight);
    let mut reader = Reader {
        conn: Connection::new(),
        storage: None,
        export_name: "-".into(),
        read: 0,
        written: 0,
        budget: Arc::new(Semaphore::new(READ_BUDGET as usize)),
        tx,
        pool: Pool::default(),
        unsent: Arc::default(),
        sendfile: false,
    };
    let mut buf = BytesMut::with_capacity(16 << 10);
    let end = match reader.negotiate(t, &mut buf, &sh).await {
        Err(end) => end,
        // Split for transmission: sockets by halves (no lock between them), anything else
        // (stdio, TLS) through tokio's split.
        Ok(Transport::Tcp(s)) => {
            let (r, w) = s.into_split();
            reader.transmit(r, Sink::Tcp(w), rx, &sh, buf).await
        }
        Ok(Transport::Unix(s)) => {
            let (r, w) = s.into_split();
            reader.transmit(r, Sink::Unix(w), rx, &sh, buf).await
        }
        Ok(Transport::Other(s)) => {
            let (r, w) = tokio::io::split(s);
            let w = Sink::Stream(Box::new(w));
            reader.transmit(r, w, rx, &sh, buf).await
        }
    };
    tracing::info!(
        client = %peer,
        export = %reader.export_name,
        tls = reader.conn.tls(),
        bytes_read = reader.read,
        bytes_written = reader.written,
        secs = format!("{:.3}", start.elapsed().as_secs_f64()),
        end = %end,
        "connection closed"
    );
}

/// The NBD error for a failed storage operation.
pub(super) fn io_errno(e: &std::io::Error) -> u32 {
    match e.kind() {
        std::io::ErrorKind::StorageFull => errno::ENOSPC,
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
    pool: &Pool,
    sendfile: bool,
) -> (Header, Payload) {
    let rep = conn.replies();
    let done = |res: std::io::Result<()>| match res {
        Ok(()) => (rep.ok(r.cookie, r.offset), Payload::None),
        Err(e) => (rep.error(r.cookie, r.offset, io_errno(&e)), Payload::None),
    };
    match r.command {
        Command::Read => match st.read(r.offset, r.length, sendfile, pool.take()) {
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
            let mut v = Vec::new();
            rep.block_status(r.cookie, r.offset, &ext, &mut v);
            // The whole reply is in `v`; send it as the "payload" of an empty header.
            (Header::default(), Payload::Owned(v))
        }
    }
}
