//! A minimal blocking TFTP server on `std::net::UdpSocket`, one transfer at a time, built on
//! the sans-IO engine. It shows the whole driver contract: feed datagrams and timeouts in,
//! send what `poll_transmit` writes, read file bytes when asked.
//!
//! ```sh
//! cargo run -p netboot-tftp --example blocking_server -- 127.0.0.1:6969 /srv/tftp
//! curl -o out tftp://127.0.0.1:6969/file
//! ```
//!
//! Not a production server (no confinement beyond refusing `..`, no concurrency): see
//! `netboot-tftpd` for that.

use std::net::UdpSocket;
use std::time::Instant;

use netboot_tftp::engine::{Config, ReadTransfer};
use netboot_tftp::wire::{self, ErrorCode, Repr};

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let listen = args.next().unwrap_or_else(|| "127.0.0.1:6969".into());
    let root = std::path::PathBuf::from(args.next().unwrap_or_else(|| ".".into()));
    let server = UdpSocket::bind(&listen)?;
    let mut buf = vec![0u8; wire::MAX_DATAGRAM_LEN];
    loop {
        let (n, peer) = server.recv_from(&mut buf)?;
        let Ok(Repr::Rrq(req)) = Repr::parse(&buf[..n]) else {
            continue;
        };
        // Each transfer gets its own port (its transfer ID, RFC 1350 §4).
        let sock = UdpSocket::bind((server.local_addr()?.ip(), 0))?;
        let name = String::from_utf8_lossy(req.filename)
            .trim_start_matches('/')
            .to_owned();
        let file = match name.split('/').any(|c| c == "..") {
            true => Err(std::io::ErrorKind::PermissionDenied.into()),
            false => std::fs::read(root.join(&name)),
        };
        let Ok(file) = file else {
            let len = wire::emit_error(&mut buf, ErrorCode::FILE_NOT_FOUND, "File not found");
            sock.send_to(&buf[..len], peer)?;
            continue;
        };
        let mut tx = ReadTransfer::new(Instant::now(), &req, file.len() as u64, &Config::default());
        let mut out = vec![0u8; tx.max_datagram_len().max(512)];
        let mut src = file.as_slice();
        while !tx.is_closed() {
            while let Some(len) = tx.poll_transmit(Instant::now(), &mut out, &mut src) {
                sock.send_to(&out[..len], peer)?;
            }
            let Some(deadline) = tx.poll_timeout() else {
                break;
            };
            let wait = deadline.saturating_duration_since(Instant::now());
            sock.set_read_timeout(Some(wait.max(std::time::Duration::from_millis(1))))?;
            match sock.recv_from(&mut buf) {
                Ok((len, from)) if from == peer => tx.handle_datagram(Instant::now(), &buf[..len]),
                Ok(_) => {} // another port: not this transfer's peer
                Err(_) => tx.handle_timeout(Instant::now()),
            }
        }
        eprintln!(
            "{peer} {name}: {:?}, {} bytes",
            tx.outcome(),
            tx.stats().bytes
        );
    }
}
