//! A bounded UDP echo peer for the test harness's own tests.
//!
//! `netboot-udp-echo serve ADDR:PORT COUNT SECS` echoes COUNT datagrams or gives up after SECS;
//! `netboot-udp-echo send ADDR:PORT MESSAGE` sends one datagram and prints the reply (2 s bound).

use std::net::UdpSocket;
use std::process::ExitCode;
use std::time::{Duration, Instant};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["serve", addr, count, secs] => serve(addr, count, secs),
        ["send", addr, msg] => send(addr, msg),
        _ => Err(
            "usage: netboot-udp-echo serve ADDR:PORT COUNT SECS | send ADDR:PORT MESSAGE".into(),
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("netboot-udp-echo: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve(addr: &str, count: &str, secs: &str) -> Result<(), String> {
    let count: u32 = count.parse().map_err(|e| format!("COUNT: {e}"))?;
    let secs: u64 = secs.parse().map_err(|e| format!("SECS: {e}"))?;
    let sock = UdpSocket::bind(addr).map_err(|e| format!("bind {addr}: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut buf = [0u8; 2048];
    for _ in 0..count {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err("time bound reached".into());
        }
        sock.set_read_timeout(Some(left))
            .map_err(|e| e.to_string())?;
        let (n, peer) = sock.recv_from(&mut buf).map_err(|e| format!("recv: {e}"))?;
        sock.send_to(&buf[..n], peer)
            .map_err(|e| format!("send: {e}"))?;
    }
    Ok(())
}

fn send(addr: &str, msg: &str) -> Result<(), String> {
    let sock = UdpSocket::bind("0.0.0.0:0").map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(Duration::from_secs(2)))
        .map_err(|e| e.to_string())?;
    sock.send_to(msg.as_bytes(), addr)
        .map_err(|e| format!("send to {addr}: {e}"))?;
    let mut buf = [0u8; 2048];
    let (n, from) = sock.recv_from(&mut buf).map_err(|e| format!("recv: {e}"))?;
    println!("{} from {from}", String::from_utf8_lossy(&buf[..n]));
    Ok(())
}
