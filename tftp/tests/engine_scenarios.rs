//! Engine scenarios on a virtual clock: every timer fires at once, so lost packets,
//! rollover past 65535 blocks and slow clients run in milliseconds.

use std::time::{Duration, Instant};

use netboot_tftp::engine::{Config, Outcome, ReadTransfer, Rollover, WriteTransfer};
use netboot_tftp::wire::{ErrorCode, Options, Repr};

fn request(opcode: u8, mode: &str, opts: &[(&str, &str)]) -> Vec<u8> {
    let mut v = vec![0, opcode];
    v.extend_from_slice(b"file\0");
    v.extend_from_slice(mode.as_bytes());
    v.push(0);
    for (k, val) in opts {
        v.extend_from_slice(k.as_bytes());
        v.push(0);
        v.extend_from_slice(val.as_bytes());
        v.push(0);
    }
    v
}

fn rrq(mode: &str, opts: &[(&str, &str)]) -> Vec<u8> {
    request(1, mode, opts)
}

/// What the server sent, in order.
#[derive(Debug, Default)]
struct Trace {
    data_blocks: Vec<u16>,
    oacks: Vec<Vec<u8>>,
    errors: Vec<u16>,
}

/// A receiving client per RFC 1350/7440: ACKs the last block of each window, or on a gap
/// the last block received in order; `lose(i, block)` drops the i-th DATA datagram;
/// `dup_acks` sends every ACK twice.
struct Client {
    got: Vec<u8>,
    expect: u16,
    blksize: usize,
    window: usize,
    in_window: usize,
    done: bool,
    dup_acks: bool,
    wrap_to_one: bool,
}

impl Client {
    fn on_datagram(&mut self, d: &[u8]) -> Vec<[u8; 4]> {
        let ack = |b: u16| {
            let b = b.to_be_bytes();
            [0, 4, b[0], b[1]]
        };
        let acks = match Repr::parse(d).expect("server datagram parses") {
            Repr::Oack(list) => {
                let o = Options::from_oack(&list).expect("conformant OACK");
                self.blksize = o.blksize.map_or(512, usize::from);
                self.window = o.windowsize.map_or(1, usize::from);
                vec![ack(0)]
            }
            Repr::Data { block, data } if block == self.expect => {
                self.got.extend_from_slice(data);
                self.expect = match self.expect.wrapping_add(1) {
                    0 if self.wrap_to_one => 1,
                    b => b,
                };
                self.in_window += 1;
                if data.len() < self.blksize {
                    self.done = true;
                }
                if self.done || self.in_window == self.window {
                    self.in_window = 0;
                    vec![ack(block)]
                } else {
                    vec![]
                }
            }
            Repr::Data { .. } => {
                // Gap or duplicate: ACK the last in-order block.
                self.in_window = 0;
                let last = match self.expect.wrapping_sub(1) {
                    0 if self.wrap_to_one && self.got.len() > 8 => 65535,
                    b => b,
                };
                vec![ack(last)]
            }
            _ => vec![],
        };
        if self.dup_acks {
            acks.iter().flat_map(|a| [*a, *a]).collect()
        } else {
            acks
        }
    }
}

struct Run {
    client: Client,
    trace: Trace,
    outcome: Option<Outcome>,
    elapsed: Duration,
    sent: u64,
}

fn fetch(
    req: &[u8],
    file: &[u8],
    cfg: &Config,
    dup_acks: bool,
    mut lose: impl FnMut(usize, u16) -> bool,
) -> Run {
    let Ok(Repr::Rrq(r)) = Repr::parse(req) else {
        panic!("bad test request")
    };
    let t0 = Instant::now();
    let mut now = t0;
    let mut tx = ReadTransfer::new(now, &r, file.len() as u64, cfg);
    let mut buf = vec![0u8; tx.max_datagram_len().max(600)];
    let mut src = file;
    let mut client = Client {
        got: Vec::new(),
        expect: 1,
        blksize: 512,
        window: 1,
        in_window: 0,
        done: false,
        dup_acks,
        wrap_to_one: cfg.rollover == Rollover::ToOne,
    };
    let mut trace = Trace::default();
    let mut n_data = 0usize;
    for _ in 0..2_000_000 {
        let mut replies = Vec::new();
        while let Some(n) = tx.poll_transmit(now, &mut buf, &mut src) {
            let d = &buf[..n];
            match Repr::parse(d).unwrap() {
                Repr::Data { block, .. } => {
                    trace.data_blocks.push(block);
                    n_data += 1;
                    if lose(n_data, block) {
                        continue;
                    }
                }
                Repr::Oack(_) => trace.oacks.push(d.to_vec()),
                Repr::Error { code, .. } => trace.errors.push(code.0),
                _ => {}
            }
            replies.extend(client.on_datagram(d));
        }
        for a in &replies {
            tx.handle_datagram(now, a);
        }
        if tx.is_closed() {
            break;
        }
        if replies.is_empty() {
            now = tx.poll_timeout().expect("open transfer has a timer");
            tx.handle_timeout(now);
        }
    }
    Run {
        sent: tx.stats().packets_sent,
        client,
        trace,
        outcome: tx.outcome(),
        elapsed: now - t0,
    }
}

fn file_of(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

#[test]
fn lockstep_and_windowed_transfers_deliver_the_file() {
    for (len, opts) in [
        (0, vec![]),
        (511, vec![]),
        (512, vec![]),
        (1024, vec![]),
        (5000, vec![("blksize", "1468"), ("windowsize", "4")]),
        (1468 * 8, vec![("blksize", "1468"), ("windowsize", "4")]),
        (100_000, vec![("blksize", "1432"), ("tsize", "0")]),
        (100_000, vec![("windowsize", "7"), ("blksize", "100")]),
    ] {
        let file = file_of(len);
        let run = fetch(
            &rrq("octet", &opts),
            &file,
            &Config::default(),
            false,
            |_, _| false,
        );
        assert_eq!(run.outcome, Some(Outcome::Complete), "{len} {opts:?}");
        assert_eq!(run.client.got, file, "{len} {opts:?}");
        let blk = opts
            .iter()
            .find(|(k, _)| *k == "blksize")
            .map_or(512, |(_, v)| v.parse().unwrap());
        // A file of k×blksize ends with an empty DATA: k+1 blocks.
        assert_eq!(run.trace.data_blocks.len(), len / blk + 1, "{len} {opts:?}");
        assert_eq!(run.elapsed, Duration::ZERO, "no timer needed without loss");
    }
}

#[test]
fn lost_ack_is_recovered_by_the_timer_only() {
    let file = file_of(3000);
    // Lose the 2nd DATA datagram once: the client never ACKs it, the timer resends.
    let run = fetch(
        &rrq("octet", &[]),
        &file,
        &Config::default(),
        false,
        |i, _| i == 2,
    );
    assert_eq!(run.client.got, file);
    assert_eq!(run.trace.data_blocks, [1, 2, 2, 3, 4, 5, 6]);
    assert_eq!(run.elapsed, Duration::from_secs(1));
}

#[test]
fn duplicate_acks_never_cause_duplicate_data() {
    // Sorcerer's Apprentice: atftpd sent 1023 duplicates for 1025 blocks here.
    let file = file_of(1024 * 512 + 100);
    for opts in [vec![], vec![("windowsize", "4")]] {
        let run = fetch(
            &rrq("octet", &opts),
            &file,
            &Config::default(),
            true,
            |_, _| false,
        );
        assert_eq!(run.client.got, file);
        assert_eq!(run.trace.data_blocks.len(), 1025, "{opts:?}");
        assert_eq!(run.sent, 1025);
    }
}

#[test]
fn a_gap_in_a_window_resends_from_the_last_acked_block() {
    let file = file_of(1000 * 10);
    let opts = [("blksize", "1000"), ("windowsize", "4")];
    // Lose the datagram carrying block 2 the first time.
    let run = fetch(
        &rrq("octet", &opts),
        &file,
        &Config::default(),
        false,
        |i, _| i == 2,
    );
    assert_eq!(run.client.got, file);
    // Window 1..4 with 2 lost: the client ACKs 1 when 3 arrives (gap) and again at 4 (a
    // duplicate, ignored); the server restarts from 2 at once, no timer involved.
    assert_eq!(&run.trace.data_blocks[..4], [1, 2, 3, 4]);
    assert_eq!(&run.trace.data_blocks[4..8], [2, 3, 4, 5]);
    assert_eq!(run.elapsed, Duration::ZERO);
}

#[test]
fn rollover_past_65535_blocks() {
    // 65,549 blocks of 8 bytes (as in the research probe), lockstep.
    let file = file_of(8 * 65_548 + 4);
    let opts = [("blksize", "8")];
    let run = fetch(
        &rrq("octet", &opts),
        &file,
        &Config::default(),
        false,
        |_, _| false,
    );
    assert_eq!(run.outcome, Some(Outcome::Complete));
    assert_eq!(run.client.got, file);
    let b = &run.trace.data_blocks;
    assert_eq!(b.len(), 65_549);
    assert_eq!(&b[65_533..65_537], [65_534, 65_535, 0, 1]);

    let cfg = Config {
        rollover: Rollover::ToOne,
        ..Config::default()
    };
    let run = fetch(&rrq("octet", &opts), &file, &cfg, false, |_, _| false);
    let b = &run.trace.data_blocks;
    assert_eq!(&b[65_533..65_537], [65_534, 65_535, 1, 2]);
    assert!(!b.contains(&0));

    // Refused: the file needs more blocks than 16 bits hold → ERROR up front.
    let cfg = Config {
        rollover: Rollover::Refuse,
        ..Config::default()
    };
    let run = fetch(&rrq("octet", &opts), &file, &cfg, false, |_, _| false);
    assert_eq!(run.outcome, Some(Outcome::Failed(ErrorCode::DISK_FULL)));
    assert!(run.trace.data_blocks.is_empty());
}

#[test]
fn windowed_rollover_with_loss_around_the_wrap() {
    let file = file_of(8 * 65_600);
    let opts = [("blksize", "8"), ("windowsize", "16")];
    // The first DATA numbered 65535 and the first numbered 0 are lost.
    let mut lost = std::collections::HashSet::new();
    let run = fetch(
        &rrq("octet", &opts),
        &file,
        &Config::default(),
        false,
        |i, b| (b == 0 || b == 65_535) && lost.insert(b) && i < 70_000,
    );
    assert_eq!(run.outcome, Some(Outcome::Complete));
    assert_eq!(run.client.got, file);
}

#[test]
fn ovmf_tsize_probe_then_error_8_ends_quietly() {
    let file = file_of(30_000_000 / 1000);
    let req = rrq(
        "octet",
        &[("tsize", "0"), ("blksize", "1468"), ("windowsize", "4")],
    );
    let Ok(Repr::Rrq(r)) = Repr::parse(&req) else {
        unreachable!()
    };
    let now = Instant::now();
    let mut tx = ReadTransfer::new(now, &r, file.len() as u64, &Config::default());
    let mut buf = vec![0u8; tx.max_datagram_len()];
    let mut src = file.as_slice();
    let n = tx.poll_transmit(now, &mut buf, &mut src).unwrap();
    let Ok(Repr::Oack(list)) = Repr::parse(&buf[..n]) else {
        panic!("OACK first")
    };
    let o = Options::from_oack(&list).unwrap();
    assert_eq!(o.tsize, Some(file.len() as u64));
    assert_eq!((o.blksize, o.windowsize), (Some(1468), Some(4)));
    tx.handle_datagram(now, b"\x00\x05\x00\x08User aborted the transfer\x00");
    assert_eq!(
        tx.outcome(),
        Some(Outcome::PeerError(ErrorCode::OPTION_REFUSED))
    );
    assert!(tx.is_closed());
    assert_eq!(tx.poll_transmit(now, &mut buf, &mut src), None);
    assert_eq!(tx.poll_timeout(), None);
    tx.handle_timeout(now + Duration::from_secs(10));
    assert_eq!(tx.poll_transmit(now, &mut buf, &mut src), None);

    // iPXE's ERROR 0 in the middle of a transfer ends it just as quietly.
    let mut tx = ReadTransfer::new(now, &r, file.len() as u64, &Config::default());
    while tx.poll_transmit(now, &mut buf, &mut src).is_some() {}
    tx.handle_datagram(now, &[0, 4, 0, 0]);
    assert_eq!(
        tx.poll_transmit(now, &mut buf, &mut src).map(|n| n > 4),
        Some(true)
    );
    tx.handle_datagram(now, b"\x00\x05\x00\x00TFTP Aborted\x00");
    assert_eq!(tx.outcome(), Some(Outcome::PeerError(ErrorCode(0))));
    assert_eq!(tx.poll_transmit(now, &mut buf, &mut src), None);
}

#[test]
fn a_client_that_never_acks_is_bounded() {
    let file = file_of(10_000);
    let cfg = Config::default();
    let run = fetch(
        &rrq("octet", &[("timeout", "2")]),
        &file,
        &cfg,
        false,
        |_, _| true,
    );
    assert_eq!(run.outcome, Some(Outcome::TimedOut));
    // OACK acknowledged, then DATA 1 sent once plus max_retries times.
    assert_eq!(run.trace.data_blocks, vec![1; 1 + cfg.max_retries as usize]);
    assert_eq!(
        run.elapsed,
        Duration::from_secs(2 * (1 + u64::from(cfg.max_retries)))
    );
}

#[test]
fn a_slow_client_hits_the_total_time_limit() {
    let file = file_of(512 * 100);
    let cfg = Config {
        max_transfer_time: Duration::from_secs(30),
        ..Config::default()
    };
    // Every DATA is lost once: each block costs one timeout (1 s).
    let mut seen = std::collections::HashSet::new();
    let run = fetch(&rrq("octet", &[]), &file, &cfg, false, |_, b| {
        seen.insert(b)
    });
    assert_eq!(run.outcome, Some(Outcome::Failed(ErrorCode::UNDEFINED)));
    assert_eq!(run.trace.errors, [0]);
    assert_eq!(run.elapsed, Duration::from_secs(30));
}

#[test]
fn options_are_capped_and_echoed_once() {
    let cfg = Config {
        max_blksize: 1468,
        max_window_bytes: 1468 * 8,
        ..Config::default()
    };
    let req = rrq(
        "octet",
        &[
            ("BLKSIZE", "65464"),
            ("blksize", "512"),
            ("windowsize", "64"),
            ("timeout", "0"),
            ("utimeout", "1000"),
            ("multicast", ""),
        ],
    );
    let run = fetch(&req, &file_of(50_000), &cfg, false, |_, _| false);
    assert_eq!(run.client.got, file_of(50_000));
    assert_eq!(
        run.trace.oacks,
        [b"\x00\x06blksize\x001468\x00windowsize\x008\x00".to_vec()]
    );
    // blksize 8 + 30 unknown options (CVE-2021-41054 shape): the OACK carries blksize only.
    let junk: Vec<(String, String)> = (0..30).map(|i| (format!("x{i}"), "1".into())).collect();
    let mut opts: Vec<(&str, &str)> = vec![("blksize", "8")];
    opts.extend(junk.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let run = fetch(&rrq("octet", &opts), &file_of(100), &cfg, false, |_, _| {
        false
    });
    assert_eq!(run.trace.oacks, [b"\x00\x06blksize\x008\x00".to_vec()]);
    // No options requested: no OACK at all.
    let run = fetch(&rrq("octet", &[]), &file_of(100), &cfg, false, |_, _| false);
    assert!(run.trace.oacks.is_empty());
    // Mail mode is refused.
    let run = fetch(&rrq("mail", &[]), &file_of(100), &cfg, false, |_, _| false);
    assert_eq!(run.trace.errors, [4]);
}

#[test]
fn netascii_conversion_across_block_boundaries() {
    let file = b"line1\nline2\r\nbare\rend\n".repeat(50);
    let expected: Vec<u8> = file
        .iter()
        .flat_map(|&b| match b {
            b'\n' => vec![b'\r', b'\n'],
            b'\r' => vec![b'\r', 0],
            b => vec![b],
        })
        .collect();
    for blk in ["8", "9", "512"] {
        for ws in ["1", "3"] {
            let opts = [("blksize", blk), ("windowsize", ws), ("tsize", "0")];
            // Lose every 5th datagram to exercise restarts from stored cursors.
            let run = fetch(
                &rrq("netascii", &opts),
                &file,
                &Config::default(),
                false,
                |i, _| i % 5 == 0,
            );
            assert_eq!(run.outcome, Some(Outcome::Complete));
            assert_eq!(run.client.got, expected, "blksize {blk} ws {ws}");
            // tsize is not offered in netascii (it would need a pre-scan).
            let o = Repr::parse(&run.trace.oacks[0]).unwrap();
            let Repr::Oack(list) = o else { panic!() };
            assert_eq!(Options::from_oack(&list).unwrap().tsize, None);
        }
    }
}

/// Sends `file` to a WriteTransfer as a client would, window `ws`, optionally losing the
/// first transmission of a block and duplicating every DATA.
fn upload(
    req: &[u8],
    file: &[u8],
    blk: usize,
    ws: usize,
    lose_block: Option<u16>,
    cfg: &Config,
) -> (Vec<u8>, Option<Outcome>, Vec<Vec<u8>>) {
    let Ok(Repr::Wrq(r)) = Repr::parse(req) else {
        panic!()
    };
    let mut now = Instant::now();
    let mut rx = WriteTransfer::new(now, &r, cfg);
    let mut sink = Vec::new();
    let mut buf = [0u8; 600];
    let mut from_server = Vec::new();
    let blocks: Vec<&[u8]> = if file.is_empty() {
        vec![&[]]
    } else {
        let mut v: Vec<&[u8]> = file.chunks(blk).collect();
        if file.len().is_multiple_of(blk) {
            v.push(&[]);
        }
        v
    };
    let mut acked = 0usize; // blocks acknowledged
    let mut lost = false;
    for _ in 0..10_000 {
        let mut got_ack = None;
        while let Some(n) = rx.poll_transmit(now, &mut buf) {
            from_server.push(buf[..n].to_vec());
            match Repr::parse(&buf[..n]).unwrap() {
                Repr::Ack { block } => got_ack = Some(block),
                Repr::Oack(_) => got_ack = Some(0),
                _ => {}
            }
        }
        if rx.is_closed() {
            break;
        }
        if let Some(b) = got_ack {
            // Map the 16-bit ACK back onto our count (no rollover in these tests).
            acked = acked.max(usize::from(b));
            for (i, payload) in blocks.iter().enumerate().skip(acked).take(ws) {
                let block = (i + 1) as u16;
                if Some(block) == lose_block && !lost {
                    lost = true;
                    continue;
                }
                let mut d = vec![0, 3];
                d.extend_from_slice(&block.to_be_bytes());
                d.extend_from_slice(payload);
                rx.handle_datagram(now, &d, &mut sink);
            }
        } else {
            now = rx.poll_timeout().unwrap();
            rx.handle_timeout(now);
        }
    }
    (sink, rx.outcome(), from_server)
}

#[test]
fn uploads_lockstep_windowed_lossy_and_netascii() {
    let cfg = Config::default();
    let file = file_of(5000);
    let (got, outcome, _) = upload(&request(2, "octet", &[]), &file, 512, 1, None, &cfg);
    assert_eq!((got, outcome), (file.clone(), Some(Outcome::Complete)));
    let req = request(
        2,
        "octet",
        &[("blksize", "100"), ("windowsize", "4"), ("tsize", "5000")],
    );
    let (got, outcome, sent) = upload(&req, &file, 100, 4, Some(7), &cfg);
    assert_eq!((got, outcome), (file.clone(), Some(Outcome::Complete)));
    assert_eq!(
        sent[0],
        b"\x00\x06blksize\x00100\x00tsize\x005000\x00windowsize\x004\x00"
    );
    let (got, _, _) = upload(
        &request(2, "octet", &[]),
        &file_of(1024),
        512,
        1,
        None,
        &cfg,
    );
    assert_eq!(got, file_of(1024));
    let (got, _, _) = upload(&request(2, "octet", &[]), &[], 512, 1, None, &cfg);
    assert!(got.is_empty());
    let (got, _, _) = upload(
        &request(2, "netascii", &[("blksize", "8")]),
        b"a\r\nb\r\0c\r\n",
        8,
        1,
        None,
        &cfg,
    );
    assert_eq!(got, b"a\nb\rc\n");
}

#[test]
fn upload_over_quota_is_refused_with_error_3() {
    let cfg = Config {
        max_upload: Some(1000),
        ..Config::default()
    };
    let req = request(2, "octet", &[("tsize", "5000")]);
    let (got, outcome, sent) = upload(&req, &file_of(5000), 512, 1, None, &cfg);
    assert!(got.is_empty());
    assert_eq!(outcome, Some(Outcome::Failed(ErrorCode::DISK_FULL)));
    assert_eq!(&sent[0][..4], [0, 5, 0, 3]);
    // Without tsize the quota still holds once the data exceeds it.
    let (got, outcome, _) = upload(
        &request(2, "octet", &[]),
        &file_of(5000),
        512,
        1,
        None,
        &cfg,
    );
    assert!(got.len() <= 1000);
    assert_eq!(outcome, Some(Outcome::Failed(ErrorCode::DISK_FULL)));
}

#[test]
fn final_ack_dally_re_acks_a_retransmitted_last_block() {
    let req = request(2, "octet", &[]);
    let Ok(Repr::Wrq(r)) = Repr::parse(&req) else {
        unreachable!()
    };
    let now = Instant::now();
    let mut rx = WriteTransfer::new(now, &r, &Config::default());
    let mut sink = Vec::new();
    let mut buf = [0u8; 16];
    assert_eq!(rx.poll_transmit(now, &mut buf), Some(4));
    assert_eq!(&buf[..4], [0, 4, 0, 0]);
    rx.handle_datagram(now, b"\x00\x03\x00\x01hi", &mut sink);
    assert_eq!(rx.poll_transmit(now, &mut buf), Some(4));
    assert_eq!(&buf[..4], [0, 4, 0, 1]);
    assert_eq!(rx.outcome(), Some(Outcome::Complete));
    assert!(!rx.is_closed(), "dallying");
    // Our ACK was lost; the client resends the last DATA: re-ACK, data not written twice.
    rx.handle_datagram(now, b"\x00\x03\x00\x01hi", &mut sink);
    assert_eq!(rx.poll_transmit(now, &mut buf), Some(4));
    assert_eq!(&buf[..4], [0, 4, 0, 1]);
    assert_eq!(sink, b"hi");
    let t = rx.poll_timeout().unwrap();
    rx.handle_timeout(t);
    assert!(rx.is_closed());
}

#[test]
fn windowed_rollover_to_one() {
    let file = file_of(16 * 65_600 + 5);
    let cfg = Config {
        rollover: Rollover::ToOne,
        ..Config::default()
    };
    let opts = [("blksize", "16"), ("windowsize", "16")];
    let run = fetch(&rrq("octet", &opts), &file, &cfg, false, |_, _| false);
    assert_eq!(run.outcome, Some(Outcome::Complete));
    assert!(
        run.client.got == file,
        "{} of {} bytes",
        run.client.got.len(),
        file.len()
    );
    assert_eq!(
        &run.trace.data_blocks[65_533..65_537],
        [65_534, 65_535, 1, 2]
    );
}
