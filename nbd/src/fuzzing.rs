//! Entry points for cargo-fuzz targets and the corpus replay test. Each must never panic.

use crate::engine::{Command, Config, Connection, Event, Export, Step, Tls};
use crate::wire;

/// Feeds bytes to every wire parser.
pub fn wire(data: &[u8]) {
    let _ = wire::Greeting::parse(data);
    let _ = wire::ClientFlags::parse(data);
    let _ = wire::OptionRequest::parse(data);
    let _ = wire::OptionReply::parse(data);
    let _ = wire::InfoRequest::parse(data).map(|r| r.requests().count());
    let _ = wire::MetaContextRequest::parse(data).map(|r| r.queries().count());
    for ext in [false, true] {
        let _ = wire::Request::parse(data, ext);
        let _ = wire::ChunkHeader::parse(data, ext);
        let _ = wire::ExportNameReply::parse(data, ext);
    }
    let _ = wire::SimpleReply::parse(data);
}

/// Feeds client bytes to the handshake parser (kept for the original corpus).
pub fn handshake(data: &[u8]) {
    wire(data);
    engine(data);
}

/// Feeds an arbitrary client byte stream through a whole connection: handshake, then
/// transmission, in pieces whose sizes the first byte picks, answering every request.
pub fn engine(data: &[u8]) {
    let Some((&chunking, data)) = data.split_first() else {
        return;
    };
    let mut disk = vec![0u8; 1 << 16];
    let config = Config {
        exports: vec![
            Export::writable("rw", disk.len() as u64, true),
            Export::read_only("ro", 1 << 20),
        ],
        // The top bits pick the TLS policy; a STARTTLS "handshake" succeeds at once.
        tls: match chunking >> 6 {
            0 | 1 => Tls::Off,
            2 => Tls::Optional,
            _ => Tls::Required,
        },
        ..Config::default()
    };
    let piece = usize::from(chunking % 17) + 1;
    let mut conn = Connection::new();
    let mut buf: Vec<u8> = Vec::new();
    let mut fed = 0;
    let mut out = Vec::new();
    // Every step consumes bytes or asks for more, so this loop ends; the bound is a backstop.
    for _ in 0..100_000 {
        let step = match conn.handle(&config, &buf) {
            Ok(s) => s,
            Err(_) => return,
        };
        let consumed = match step {
            Step::Closed => return,
            Step::Need(n) => {
                if fed >= data.len() {
                    return;
                }
                let want = n.saturating_sub(buf.len()).max(piece);
                let end = (fed + want).min(data.len());
                buf.extend_from_slice(&data[fed..end]);
                fed = end;
                continue;
            }
            Step::Consumed(n) => n,
            Step::Event(n, Event::Request(r)) => {
                let rep = conn.replies();
                let (start, end) = (r.offset as usize, (r.offset + r.length) as usize);
                match r.command {
                    Command::Read => {
                        out.extend_from_slice(&rep.read(r.cookie, r.offset, r.length));
                        if conn.export() == Some(0) {
                            out.extend_from_slice(&disk[start..end]);
                        }
                    }
                    Command::Write => {
                        disk[start..end].copy_from_slice(r.data);
                        out.extend_from_slice(&rep.ok(r.cookie, r.offset));
                    }
                    Command::BlockStatus => {
                        rep.block_status(r.cookie, r.offset, &[(r.length, 0)], &mut out)
                    }
                    _ => out.extend_from_slice(&rep.ok(r.cookie, r.offset)),
                }
                n
            }
            Step::Event(n, Event::StartTls) => {
                conn.tls_started();
                n
            }
            Step::Event(n, _) => n,
        };
        buf.drain(..consumed);
        let pending = conn.pending_output().len();
        conn.consume_output(pending);
        out.clear();
    }
}
