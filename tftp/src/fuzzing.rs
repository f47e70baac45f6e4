//! Entry points for cargo-fuzz targets and the corpus replay test. Each must never panic.

use std::time::{Duration, Instant};

use crate::engine::{Config, ReadTransfer, Rollover, WriteTransfer};
use crate::wire::{self, Options, Packet, Repr};

/// Parses one datagram as the server would on receipt, and checks that whatever parses
/// re-emits to a datagram that parses to the same value.
pub fn packet(data: &[u8]) {
    let _ = Packet::new_checked(data).map(|p| (p.block(), p.payload().len()));
    let Ok(repr) = Repr::parse_with_limit(data, usize::MAX) else {
        return;
    };
    if let Repr::Rrq(r) | Repr::Wrq(r) = repr {
        let opts = Options::from_request(&r.options);
        let mut buf = vec![0u8; opts.oack_len()];
        let n = opts.emit_oack(&mut buf).unwrap_or(0);
        assert!(matches!(Repr::parse(&buf[..n]), Ok(Repr::Oack(_))));
    }
    let mut buf = vec![0u8; repr.buffer_len()];
    let n = repr.emit(&mut buf).unwrap_or(0);
    let again = Repr::parse_with_limit(&buf[..n], usize::MAX);
    // An ERROR without its NUL re-emits with one; all else must be identical.
    assert_eq!(again, Ok(repr));
}

/// Drives one read and one write transfer with a scripted sequence of events taken from
/// the input: the first bytes pick the request, then each step is either a timer tick or a
/// datagram from the peer. Checks the engine's promises as it goes.
pub fn engine(data: &[u8]) {
    let [sel, ws, blk, size_lo, size_hi, rest @ ..] = data else {
        return;
    };
    let mut req_buf = Vec::from(&b"\x00\x01f\x00octet\x00"[..]);
    let opts = Options {
        blksize: Some(u16::from(*blk).max(8)),
        timeout: (sel & 2 == 2).then_some(1),
        tsize: (sel & 4 == 4).then_some(0),
        windowsize: Some(u16::from(*ws % 8).max(1)),
    };
    let mut tail = vec![0u8; opts.oack_len()];
    let n = opts.emit_request_options(&mut tail).unwrap_or(0);
    req_buf.extend_from_slice(&tail[..n]);
    let Ok(Repr::Rrq(mut req)) = Repr::parse(&req_buf) else {
        return;
    };
    if sel & 16 == 16 {
        req.mode = wire::Mode::Netascii;
    }
    let cfg = Config {
        rollover: match sel >> 5 & 3 {
            0 => Rollover::ToZero,
            1 => Rollover::ToOne,
            _ => Rollover::Refuse,
        },
        max_upload: Some(4096),
        ..Config::default()
    };
    let file: Vec<u8> = (0..usize::from(u16::from_le_bytes([*size_lo, *size_hi]) % 4096))
        .map(|i| if i % 7 == 0 { b'\n' } else { i as u8 })
        .collect();
    let mut now = Instant::now();
    let mut rd = ReadTransfer::new(now, &req, file.len() as u64, &cfg);
    let mut wr = WriteTransfer::new(now, &req, &cfg);
    let mut sink = Vec::new();
    let mut buf = vec![0u8; rd.max_datagram_len().max(wire::MAX_REQUEST_LEN)];
    let mut src = file.as_slice();
    let mut dgram = Vec::new();
    for step in rest.chunks(4).take(2000) {
        let mut sent = 0;
        while let Some(n) = rd.poll_transmit(now, &mut buf, &mut src) {
            assert!(n <= buf.len());
            sent += 1;
            assert!(sent <= 9, "a burst never exceeds the window (+ OACK)");
        }
        while wr.poll_transmit(now, &mut buf).is_some() {}
        dgram.clear();
        match *step {
            [0, d, ..] => {
                now += Duration::from_millis(u64::from(d) * 20);
                rd.handle_timeout(now);
                wr.handle_timeout(now);
                continue;
            }
            [1, hi, lo, ..] => dgram.extend([0, 4, hi, lo]),
            [2, hi, lo, len] => {
                dgram.extend([0, 3, hi, lo]);
                dgram.extend((0..len).map(|i| if i % 5 == 0 { b'\r' } else { i }));
            }
            [3, code, ..] => dgram.extend([0, 5, 0, code, b'x', 0]),
            _ => dgram.extend_from_slice(step),
        }
        rd.handle_datagram(now, &dgram);
        wr.handle_datagram(now, &dgram, &mut sink);
        if rd.is_closed() {
            assert!(rd.poll_timeout().is_none());
        }
    }
    assert!(sink.len() <= 4096);
}
