//! A minimal blocking NBD server: one thread per client on `std::net::TcpListener`, serving
//! a writable `Vec<u8>` (shared, behind a mutex) through the sans-IO engine.
//!
//! ```sh
//! cargo run -p netboot-nbd --example serve_vec -- 127.0.0.1:10809 64   # 64 MiB RAM disk
//! nbdinfo nbd://127.0.0.1:10809
//! ```

use netboot_nbd::engine::{Command, Config, Connection, Event, Export, Step};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

fn serve(mut sock: TcpStream, config: &Config, disk: &Mutex<Vec<u8>>) -> std::io::Result<()> {
    let mut conn = Connection::new();
    let mut buf: Vec<u8> = Vec::new();
    let mut reply: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        // Let the engine consume what is buffered; serve each request it hands out.
        loop {
            let step = conn
                .handle(config, &buf)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
            let used = match step {
                Step::Need(_) => break,
                Step::Closed | Step::Event(_, Event::Close) => {
                    sock.write_all(conn.pending_output())?;
                    return Ok(());
                }
                Step::Consumed(n) | Step::Event(n, Event::Ready { .. }) => n,
                // Never happens: this config leaves TLS off, so STARTTLS gets ERR_POLICY.
                Step::Event(n, Event::StartTls) => n,
                Step::Event(n, Event::Request(r)) => {
                    let rep = conn.replies();
                    let mut disk = disk.lock().unwrap_or_else(|p| p.into_inner());
                    let range = r.offset as usize..(r.offset + r.length) as usize;
                    match r.command {
                        Command::Read => {
                            reply.extend_from_slice(&rep.read(r.cookie, r.offset, r.length));
                            reply.extend_from_slice(&disk[range]);
                        }
                        Command::Write => {
                            disk[range].copy_from_slice(r.data);
                            reply.extend_from_slice(&rep.ok(r.cookie, r.offset));
                        }
                        Command::WriteZeroes | Command::Trim => {
                            disk[range].fill(0);
                            reply.extend_from_slice(&rep.ok(r.cookie, r.offset));
                        }
                        Command::BlockStatus => {
                            rep.block_status(r.cookie, r.offset, &[(r.length, 0)], &mut reply)
                        }
                        Command::Flush | Command::Cache => {
                            reply.extend_from_slice(&rep.ok(r.cookie, r.offset))
                        }
                    }
                    n
                }
            };
            buf.drain(..used);
        }
        // Engine output (handshake, rejections) first, then our replies.
        sock.write_all(conn.pending_output())?;
        let n = conn.pending_output().len();
        conn.consume_output(n);
        sock.write_all(&reply)?;
        reply.clear();
        let n = sock.read(&mut chunk)?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:10809".into());
    let mib: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(16);
    let disk = Arc::new(Mutex::new(vec![0u8; mib << 20]));
    let config = Arc::new(Config {
        exports: vec![Export::writable("", (mib as u64) << 20, true)],
        ..Config::default()
    });
    let listener = TcpListener::bind(&addr)?;
    eprintln!("serving a {mib} MiB RAM disk on {addr}");
    for sock in listener.incoming() {
        let sock = sock?;
        sock.set_nodelay(true)?;
        let (config, disk) = (config.clone(), disk.clone());
        std::thread::spawn(move || {
            if let Err(e) = serve(sock, &config, &disk) {
                eprintln!("client: {e}");
            }
        });
    }
    Ok(())
}
