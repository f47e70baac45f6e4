//! Engine scenarios: a scripted client talks to a `Connection`, every byte checked.

use netboot_nbd::engine::{Command, Config, Connection, Event, Export, Fatal, Limits, Step, Tls};
use netboot_nbd::wire::{
    self, ChunkHeader, OptionReply, OptionRequest, SimpleReply, chunk, cmd, cmd_flags, errno, info,
    opt, rep, transmission_flags as tf,
};

fn config() -> Config {
    let mut ro = Export::read_only("ro", 1 << 20);
    ro.description = "boot image".into();
    Config {
        exports: vec![ro, Export::writable("rw", 1 << 16, false)],
        ..Config::default()
    }
}

fn option(o: u32, data: &[u8]) -> Vec<u8> {
    let r = OptionRequest { option: o, data };
    let mut b = vec![0; r.buffer_len()];
    r.emit(&mut b);
    b
}

fn go_data(name: &[u8], reqs: &[u16]) -> Vec<u8> {
    let mut d = (name.len() as u32).to_be_bytes().to_vec();
    d.extend_from_slice(name);
    d.extend_from_slice(&(reqs.len() as u16).to_be_bytes());
    for r in reqs {
        d.extend_from_slice(&r.to_be_bytes());
    }
    d
}

fn meta_data(name: &[u8], queries: &[&[u8]]) -> Vec<u8> {
    let mut d = (name.len() as u32).to_be_bytes().to_vec();
    d.extend_from_slice(name);
    d.extend_from_slice(&(queries.len() as u32).to_be_bytes());
    for q in queries {
        d.extend_from_slice(&(q.len() as u32).to_be_bytes());
        d.extend_from_slice(q);
    }
    d
}

fn request(ext: bool, command: u16, flags: u16, cookie: u64, offset: u64, length: u64) -> Vec<u8> {
    let r = wire::Request {
        flags,
        command,
        cookie,
        offset,
        length,
        extended: ext,
    };
    let mut b = vec![0; r.buffer_len()];
    r.emit(&mut b);
    b
}

/// A client-side harness: feeds bytes, collects what the engine emits and the events.
struct Harness {
    cfg: Config,
    conn: Connection,
    buf: Vec<u8>,
    out: Vec<u8>,
}

#[derive(Debug, PartialEq)]
enum Ev {
    Ready(usize),
    Req(Command, u16, u64, u64, u64, Vec<u8>),
    Close,
    StartTls,
}

impl Harness {
    fn new(cfg: Config) -> Harness {
        let mut h = Harness {
            cfg,
            conn: Connection::new(),
            buf: Vec::new(),
            out: Vec::new(),
        };
        h.drain_out();
        assert_eq!(&h.out[..16], b"NBDMAGICIHAVEOPT");
        assert_eq!(&h.out[16..], &[0, 3]);
        h.out.clear();
        h
    }
    fn drain_out(&mut self) {
        self.out.extend_from_slice(self.conn.pending_output());
        let n = self.conn.pending_output().len();
        self.conn.consume_output(n);
    }
    /// Feeds bytes; returns the events until the engine needs more.
    fn feed(&mut self, bytes: &[u8]) -> Result<Vec<Ev>, Fatal> {
        self.buf.extend_from_slice(bytes);
        let mut evs = Vec::new();
        loop {
            let step = self.conn.handle(&self.cfg, &self.buf);
            let step = match step {
                Ok(s) => s,
                Err(f) => {
                    self.drain_out();
                    return Err(f);
                }
            };
            let n = match step {
                Step::Need(n) => {
                    assert!(
                        n > self.buf.len(),
                        "Need({n}) with {} buffered",
                        self.buf.len()
                    );
                    break;
                }
                Step::Closed => break,
                Step::Consumed(n) => n,
                Step::Event(n, e) => {
                    evs.push(match e {
                        Event::Ready { export } => Ev::Ready(export),
                        Event::Close => Ev::Close,
                        Event::StartTls => Ev::StartTls,
                        Event::Request(r) => Ev::Req(
                            r.command,
                            r.flags,
                            r.cookie,
                            r.offset,
                            r.length,
                            r.data.to_vec(),
                        ),
                    });
                    n
                }
            };
            assert!(n > 0);
            self.buf.drain(..n);
        }
        self.drain_out();
        Ok(evs)
    }
    /// Takes every option reply emitted so far.
    fn replies(&mut self) -> Vec<(u32, u32, Vec<u8>)> {
        let mut v = Vec::new();
        let mut rest = &self.out[..];
        while !rest.is_empty() {
            let r = OptionReply::parse(rest).unwrap();
            v.push((r.option, r.reply_type, r.data.to_vec()));
            rest = &rest[r.buffer_len()..];
        }
        self.out.clear();
        v
    }
    fn take_out(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }
    fn negotiated(cfg: Config, flags: u32, opts: &[Vec<u8>], name: &[u8]) -> Harness {
        let mut h = Harness::new(cfg);
        h.feed(&flags.to_be_bytes()).unwrap();
        for o in opts {
            h.feed(o).unwrap();
        }
        let evs = h.feed(&option(opt::GO, &go_data(name, &[]))).unwrap();
        assert!(matches!(evs[..], [Ev::Ready(_)]), "{evs:?}");
        h.replies();
        h
    }
}

fn simple_error(out: &[u8]) -> (u32, u64) {
    let r = SimpleReply::parse(out).unwrap();
    (r.error, r.cookie)
}

#[test]
fn unknown_client_flags_close() {
    let mut h = Harness::new(config());
    assert_eq!(h.feed(&[0, 0, 0, 4]), Err(Fatal::ClientFlags(4)));
    assert_eq!(h.conn.handle(&h.cfg, b"more"), Ok(Step::Closed));
}

#[test]
fn export_name_with_and_without_zeroes() {
    for (flags, len) in [(3u32, 10usize), (1, 134)] {
        let mut h = Harness::new(config());
        h.feed(&flags.to_be_bytes()).unwrap();
        let evs = h.feed(&option(opt::EXPORT_NAME, b"rw")).unwrap();
        assert_eq!(evs, [Ev::Ready(1)]);
        let out = h.take_out();
        assert_eq!(out.len(), len);
        let r = wire::ExportNameReply::parse(&out, len == 134).unwrap();
        assert_eq!(r.size, 1 << 16);
        assert_eq!(r.flags & tf::READ_ONLY, 0);
        assert_eq!(r.flags & tf::SEND_DF, 0, "DF only with structured replies");
        assert!(out[10..].iter().all(|&b| b == 0));
    }
}

#[test]
fn export_name_unknown_is_a_hard_disconnect() {
    let mut h = Harness::new(config());
    h.feed(&[0, 0, 0, 3]).unwrap();
    assert_eq!(
        h.feed(&option(opt::EXPORT_NAME, b"nope")),
        Err(Fatal::UnknownExport)
    );
}

#[test]
fn list_info_unknown_starttls_abort_stay_in_sync() {
    let mut h = Harness::new(config());
    h.feed(&[0, 0, 0, 3]).unwrap();
    // Everything in one write: the engine must answer each in turn.
    let mut all = option(opt::LIST, b"");
    all.extend(option(0x7654321, b"some data the server must skip"));
    all.extend(option(opt::PEEK_EXPORT, b""));
    all.extend(option(opt::STARTTLS, b""));
    all.extend(option(opt::STARTTLS, b"x"));
    all.extend(option(opt::LIST, b"x"));
    all.extend(option(
        opt::INFO,
        &go_data(b"ro", &[info::NAME, info::DESCRIPTION, info::BLOCK_SIZE]),
    ));
    all.extend(option(opt::INFO, &go_data(b"missing", &[])));
    all.extend(option(opt::INFO, b"\xff\xff\xff\xff\0\0"));
    all.extend(option(opt::ABORT, b""));
    assert_eq!(h.feed(&all).unwrap(), [Ev::Close]);
    let r = h.replies();
    let types: Vec<(u32, u32)> = r.iter().map(|(o, t, _)| (*o, *t)).collect();
    assert_eq!(
        types,
        [
            (opt::LIST, rep::SERVER),
            (opt::LIST, rep::SERVER),
            (opt::LIST, rep::ACK),
            (0x7654321, rep::ERR_UNSUP),
            (opt::PEEK_EXPORT, rep::ERR_UNSUP),
            (opt::STARTTLS, rep::ERR_POLICY),
            (opt::STARTTLS, rep::ERR_INVALID),
            (opt::LIST, rep::ERR_INVALID),
            (opt::INFO, rep::INFO),
            (opt::INFO, rep::INFO),
            (opt::INFO, rep::INFO),
            (opt::INFO, rep::INFO),
            (opt::INFO, rep::ACK),
            (opt::INFO, rep::ERR_UNKNOWN),
            (opt::INFO, rep::ERR_INVALID),
            (opt::ABORT, rep::ACK),
        ]
    );
    assert_eq!(r[0].2, b"\0\0\0\x02roboot image");
    assert_eq!(r[1].2, b"\0\0\0\x02rw");
    // INFO_EXPORT: type 0, size, flags
    let e = &r[8].2;
    assert_eq!(e.len(), 12);
    assert_eq!(&e[2..10], &(1u64 << 20).to_be_bytes());
    let flags = u16::from_be_bytes([e[10], e[11]]);
    assert_eq!(
        flags,
        tf::HAS_FLAGS
            | tf::READ_ONLY
            | tf::SEND_FLUSH
            | tf::SEND_FUA
            | tf::CAN_MULTI_CONN
            | tf::SEND_CACHE
    );
    assert_eq!(r[9].2, b"\0\x01ro");
    assert_eq!(r[10].2, b"\0\x02boot image");
    assert_eq!(r[11].2, b"\0\x03\0\0\0\x01\0\0\x10\0\x02\0\0\0");
}

#[test]
fn bad_option_magic_and_limits_disconnect() {
    let mut h = Harness::new(config());
    h.feed(&[0, 0, 0, 3]).unwrap();
    assert!(matches!(
        h.feed(b"IHAVEOPX\0\0\0\x03\0\0\0\0"),
        Err(Fatal::BadMagic(_))
    ));

    // The CVE-2022-26495 shape at the header level: a 4 GiB option is refused, not buffered.
    let mut h = Harness::new(config());
    h.feed(&[0, 0, 0, 3]).unwrap();
    assert_eq!(
        h.feed(b"IHAVEOPT\0\0\0\x07\xff\xff\xff\xff"),
        Err(Fatal::OptionTooLarge(u32::MAX))
    );

    // An option flood ends after max_options.
    let cfg = Config {
        limits: Limits {
            max_options: 5,
            ..Limits::default()
        },
        ..config()
    };
    let mut h = Harness::new(cfg);
    h.feed(&[0, 0, 0, 3]).unwrap();
    for _ in 0..5 {
        h.feed(&option(99, b"")).unwrap();
    }
    assert_eq!(h.replies().len(), 5);
    assert_eq!(h.feed(&option(99, b"")), Err(Fatal::TooManyOptions));
}

#[test]
fn meta_contexts() {
    let mut h = Harness::new(config());
    h.feed(&[0, 0, 0, 3]).unwrap();
    // SET before structured replies: ERR_INVALID.
    h.feed(&option(
        opt::SET_META_CONTEXT,
        &meta_data(b"ro", &[b"base:allocation"]),
    ))
    .unwrap();
    assert_eq!(h.replies()[0].1, rep::ERR_INVALID);
    // LIST with no queries lists everything; unknown namespaces are ignored; a truncated query
    // is ERR_INVALID.
    h.feed(&option(opt::LIST_META_CONTEXT, &meta_data(b"ro", &[])))
        .unwrap();
    h.feed(&option(
        opt::LIST_META_CONTEXT,
        &meta_data(b"ro", &[b"qemu:dirty-bitmap:x"]),
    ))
    .unwrap();
    let mut bad = meta_data(b"ro", &[b"base:allocation"]);
    bad.pop();
    h.feed(&option(opt::LIST_META_CONTEXT, &bad)).unwrap();
    let r = h.replies();
    assert_eq!(
        r[0],
        (
            opt::LIST_META_CONTEXT,
            rep::META_CONTEXT,
            b"\0\0\0\0base:allocation".to_vec()
        )
    );
    assert_eq!(r[1].1, rep::ACK);
    assert_eq!(r[2].1, rep::ACK);
    assert_eq!(r[3].1, rep::ERR_INVALID);
    h.feed(&option(opt::STRUCTURED_REPLY, b"")).unwrap();
    h.feed(&option(opt::STRUCTURED_REPLY, b"")).unwrap();
    h.feed(&option(
        opt::SET_META_CONTEXT,
        &meta_data(b"ro", &[b"base:"]),
    ))
    .unwrap();
    let r = h.replies();
    assert_eq!(r[0].1, rep::ACK);
    assert_eq!(r[1].1, rep::ERR_INVALID, "repeated STRUCTURED_REPLY");
    assert_eq!(
        r[2],
        (
            opt::SET_META_CONTEXT,
            rep::META_CONTEXT,
            b"\0\0\0\x01base:allocation".to_vec()
        )
    );
    assert_eq!(
        h.feed(&option(opt::GO, &go_data(b"ro", &[]))).unwrap(),
        [Ev::Ready(0)]
    );
    let r = h.replies();
    let flags = u16::from_be_bytes([r[0].2[10], r[0].2[11]]);
    assert_ne!(flags & tf::SEND_DF, 0);
    h.feed(&request(
        false,
        cmd::BLOCK_STATUS,
        cmd_flags::REQ_ONE,
        5,
        512,
        4096,
    ))
    .unwrap();
    assert!(
        h.take_out().is_empty(),
        "served by the driver, not rejected"
    );
}

#[test]
fn block_status_without_context_is_einval() {
    let sr = option(opt::STRUCTURED_REPLY, b"");
    let mut h = Harness::negotiated(config(), 3, &[sr], b"ro");
    assert!(
        h.feed(&request(false, cmd::BLOCK_STATUS, 0, 5, 0, 4096))
            .unwrap()
            .is_empty()
    );
    let out = h.take_out();
    let c = ChunkHeader::parse(&out, false).unwrap();
    assert_eq!(
        (c.kind, c.flags, c.cookie, c.length),
        (chunk::ERROR, chunk::FLAG_DONE, 5, 6)
    );
    assert_eq!(&out[20..26], &[0, 0, 0, errno::EINVAL as u8, 0, 0]);
}

#[test]
fn transmission_errors_per_spec() {
    let mut h = Harness::negotiated(config(), 3, &[], b"ro");
    let size = 1u64 << 20;
    let cases: &[(Vec<u8>, u32)] = &[
        (request(false, cmd::READ, 0, 1, size - 1, 2), errno::EINVAL),
        (
            request(false, cmd::READ, 0, 2, u64::MAX - 10, 512),
            errno::EINVAL,
        ),
        (request(false, cmd::READ, 0x40, 3, 0, 512), errno::EINVAL),
        (
            request(false, cmd::READ, cmd_flags::DF, 4, 0, 512),
            errno::EINVAL,
        ),
        (request(false, 42, 0, 5, 0, 0), errno::EINVAL),
        (request(false, cmd::TRIM, 0, 6, 0, 512), errno::EPERM),
        (
            request(false, cmd::WRITE_ZEROES, 0, 7, 0, 512),
            errno::EPERM,
        ),
        (request(false, cmd::FLUSH, 0, 8, 1, 0), errno::EINVAL),
        (request(false, cmd::CACHE, 0, 9, size, 1), errno::EINVAL),
        (request(false, cmd::READ, 0, 10, 0, 64 << 20), errno::EINVAL),
        (
            request(false, cmd::BLOCK_STATUS, 0, 11, 0, 512),
            errno::EINVAL,
        ),
    ];
    for (bytes, want) in cases {
        assert!(h.feed(bytes).unwrap().is_empty());
        let out = h.take_out();
        assert_eq!(out.len(), 16);
        assert_eq!(simple_error(&out).0, *want, "{bytes:02x?}");
    }
    // A rejected WRITE's payload is consumed: the READ after it is parsed correctly, even when
    // the payload arrives byte by byte.
    let mut w = request(false, cmd::WRITE, 0, 20, 0, 1000);
    w.extend(std::iter::repeat_n(0x25, 1000)); // payload that looks like request magic bytes
    for b in &w {
        assert!(h.feed(&[*b]).unwrap().is_empty());
        // The error reply waits until the whole payload is in: libnbd only matches replies to
        // requests it has finished sending.
        if h.out.is_empty() {
            continue;
        }
        assert!(
            std::ptr::eq(b, w.last().unwrap()),
            "reply before the payload was read"
        );
    }
    assert_eq!(simple_error(&h.take_out()), (errno::EPERM, 20));
    let evs = h
        .feed(&request(
            false,
            cmd::READ,
            cmd_flags::FUA,
            21,
            size - 512,
            512,
        ))
        .unwrap();
    assert_eq!(
        evs,
        [Ev::Req(
            Command::Read,
            cmd_flags::FUA,
            21,
            size - 512,
            512,
            vec![]
        )]
    );
    // Zero-length requests are accepted.
    let evs = h.feed(&request(false, cmd::READ, 0, 22, size, 0)).unwrap();
    assert_eq!(evs, [Ev::Req(Command::Read, 0, 22, size, 0, vec![])]);
    let evs = h.feed(&request(false, cmd::FLUSH, 0, 23, 0, 0)).unwrap();
    assert_eq!(evs, [Ev::Req(Command::Flush, 0, 23, 0, 0, vec![])]);
    // A bad request magic is a hard disconnect.
    let mut bad = request(false, cmd::READ, 0, 24, 0, 1);
    bad[0] ^= 1;
    assert!(matches!(h.feed(&bad), Err(Fatal::BadMagic(_))));
}

#[test]
fn writable_export_write_paths() {
    let mut h = Harness::negotiated(config(), 3, &[], b"rw");
    let size = 1u64 << 16;
    // Past the end: ENOSPC, payload swallowed.
    let mut w = request(false, cmd::WRITE, 0, 1, size - 2, 4);
    w.extend_from_slice(b"abcd");
    w.extend(request(false, cmd::WRITE_ZEROES, 0, 2, size, 1));
    w.extend(request(false, cmd::TRIM, 0, 3, size, 1));
    // Partial WRITE: nothing until the payload is whole.
    let mut ok = request(false, cmd::WRITE, cmd_flags::FUA, 4, 10, 4);
    ok.extend_from_slice(b"wxyz");
    w.extend_from_slice(&ok[..30]);
    assert!(h.feed(&w).unwrap().is_empty());
    let out = h.take_out();
    assert_eq!(simple_error(&out[0..]), (errno::ENOSPC, 1));
    assert_eq!(simple_error(&out[16..]), (errno::ENOSPC, 2));
    assert_eq!(simple_error(&out[32..]), (errno::EINVAL, 3));
    let evs = h.feed(&ok[30..]).unwrap();
    assert_eq!(
        evs,
        [Ev::Req(
            Command::Write,
            cmd_flags::FUA,
            4,
            10,
            4,
            b"wxyz".to_vec()
        )]
    );
    let zf = cmd_flags::NO_HOLE | cmd_flags::FAST_ZERO;
    let evs = h
        .feed(&request(false, cmd::WRITE_ZEROES, zf, 5, 0, size))
        .unwrap();
    assert_eq!(evs, [Ev::Req(Command::WriteZeroes, zf, 5, 0, size, vec![])]);
    // NO_HOLE on a WRITE is a misapplied flag.
    let mut w = request(false, cmd::WRITE, cmd_flags::NO_HOLE, 6, 0, 2);
    w.extend_from_slice(b"zz");
    assert!(h.feed(&w).unwrap().is_empty());
    assert_eq!(simple_error(&h.take_out()), (errno::EINVAL, 6));
    // An oversized WRITE beyond the discard limit ends the connection.
    let w = request(false, cmd::WRITE, 0, 7, 0, 0xffff_ffff);
    assert_eq!(h.feed(&w), Err(Fatal::PayloadTooLarge(0xffff_ffff)));
}

#[test]
fn many_requests_in_flight_then_disc() {
    let mut h = Harness::negotiated(config(), 3, &[], b"ro");
    let mut all = Vec::new();
    for c in 0..100u64 {
        all.extend(request(false, cmd::READ, 0, c, c * 512, 512));
    }
    all.extend(request(false, cmd::DISC, 0, 1000, 0, 0));
    all.extend(request(false, cmd::READ, 0, 1001, 0, 512));
    let evs = h.feed(&all).unwrap();
    assert_eq!(evs.len(), 101);
    assert_eq!(evs[100], Ev::Close);
    // Replies built in reverse order are each complete and carry their own cookie.
    let rep = h.conn.replies();
    for c in (0..100u64).rev() {
        let hd = rep.read(c, c * 512, 512);
        assert_eq!(
            SimpleReply::parse(&hd).unwrap(),
            SimpleReply {
                error: 0,
                cookie: c
            }
        );
    }
    assert_eq!(h.conn.handle(&h.cfg, &[]), Ok(Step::Closed));
}

#[test]
fn structured_reply_shapes() {
    let sr = option(opt::STRUCTURED_REPLY, b"");
    let h = Harness::negotiated(config(), 3, &[sr], b"ro");
    let r = h.conn.replies();
    let hd = r.read(7, 4096, 512);
    assert_eq!(hd.len(), 28);
    let c = ChunkHeader::parse(&hd, false).unwrap();
    assert_eq!(
        (c.kind, c.flags, c.cookie, c.length),
        (chunk::OFFSET_DATA, chunk::FLAG_DONE, 7, 520)
    );
    assert_eq!(&hd[20..], &4096u64.to_be_bytes());
    let c = ChunkHeader::parse(&r.read(8, 0, 0), false).unwrap();
    assert_eq!((c.kind, c.length), (chunk::NONE, 0));
    let mut out = Vec::new();
    r.block_status(9, 0, &[(4096, 0), (8192, 3)], &mut out);
    let c = ChunkHeader::parse(&out, false).unwrap();
    assert_eq!((c.kind, c.length), (chunk::BLOCK_STATUS, 4 + 16));
    assert_eq!(
        &out[20..],
        b"\0\0\0\x01\0\0\x10\0\0\0\0\0\0\0\x20\0\0\0\0\x03"
    );
}

#[test]
fn extended_headers() {
    let eh = option(opt::EXTENDED_HEADERS, b"");
    let meta = option(
        opt::SET_META_CONTEXT,
        &meta_data(b"rw", &[b"base:allocation"]),
    );
    let mut h = Harness::negotiated(config(), 3, &[eh, meta], b"rw");
    assert!(h.conn.extended() && h.conn.structured());
    // Compact requests are now a bad magic.
    let mut w = request(true, cmd::WRITE, cmd_flags::PAYLOAD_LEN, 1, 8, 3);
    w.extend_from_slice(b"xyz");
    let evs = h.feed(&w).unwrap();
    assert_eq!(evs, [Ev::Req(Command::Write, 0, 1, 8, 3, b"xyz".to_vec())]);
    // A 64-bit TRIM length is fine; BLOCK_STATUS with a payload we do not support: EINVAL and
    // the payload skipped.
    let mut bs = request(true, cmd::BLOCK_STATUS, cmd_flags::PAYLOAD_LEN, 2, 0, 4);
    bs.extend_from_slice(&[0x21, 0xe4, 0x1c, 0x71]);
    bs.extend(request(true, cmd::BLOCK_STATUS, 0, 3, 0, 1 << 16));
    let evs = h.feed(&bs).unwrap();
    assert_eq!(
        evs,
        [Ev::Req(Command::BlockStatus, 0, 3, 0, 1 << 16, vec![])]
    );
    let out = h.take_out();
    let c = ChunkHeader::parse(&out, true).unwrap();
    assert_eq!(
        (c.kind, c.cookie, c.offset, c.length),
        (chunk::ERROR, 2, 0, 6)
    );
    let mut out = Vec::new();
    h.conn
        .replies()
        .block_status(3, 0, &[(1 << 16, 0)], &mut out);
    let c = ChunkHeader::parse(&out, true).unwrap();
    assert_eq!((c.kind, c.length), (chunk::BLOCK_STATUS_EXT, 8 + 16));
    let hd = h.conn.replies().read(4, 100, 10);
    let c = ChunkHeader::parse(&hd, true).unwrap();
    assert_eq!(
        (c.kind, c.offset, c.length, hd.len()),
        (chunk::OFFSET_DATA, 100, 18, 40)
    );
    assert!(matches!(
        h.feed(&request(false, cmd::READ, 0, 5, 0, 1)),
        Err(Fatal::BadMagic(_))
    ));
}

#[test]
fn export_name_after_extended_headers_disconnects() {
    let mut h = Harness::new(config());
    h.feed(&[0, 0, 0, 3]).unwrap();
    h.feed(&option(opt::EXTENDED_HEADERS, b"")).unwrap();
    assert_eq!(
        h.feed(&option(opt::EXPORT_NAME, b"ro")),
        Err(Fatal::ExportNameWithExtendedHeaders)
    );
}

#[test]
fn go_clears_contexts_of_another_export() {
    let sr = option(opt::STRUCTURED_REPLY, b"");
    let meta = option(
        opt::SET_META_CONTEXT,
        &meta_data(b"rw", &[b"base:allocation"]),
    );
    let mut h = Harness::negotiated(config(), 3, &[sr, meta], b"ro");
    h.feed(&request(false, cmd::BLOCK_STATUS, 0, 1, 0, 512))
        .unwrap();
    let c = ChunkHeader::parse(&h.take_out(), false).unwrap();
    assert_eq!(c.kind, chunk::ERROR);
}

fn tls(mode: Tls) -> Config {
    Config {
        tls: mode,
        ..config()
    }
}

#[test]
fn tls_required_refuses_everything_but_starttls_and_abort() {
    let mut h = Harness::new(tls(Tls::Required));
    h.feed(&[0, 0, 0, 3]).unwrap();
    let mut all = option(opt::LIST, b"");
    all.extend(option(opt::INFO, &go_data(b"ro", &[])));
    all.extend(option(opt::GO, &go_data(b"ro", &[])));
    all.extend(option(opt::STRUCTURED_REPLY, b""));
    all.extend(option(0x7654321, b"skip me"));
    all.extend(option(opt::STARTTLS, b"x"));
    assert_eq!(h.feed(&all).unwrap(), []);
    let types: Vec<(u32, u32)> = h.replies().iter().map(|(o, t, _)| (*o, *t)).collect();
    assert_eq!(
        types,
        [
            (opt::LIST, rep::ERR_TLS_REQD),
            (opt::INFO, rep::ERR_TLS_REQD),
            (opt::GO, rep::ERR_TLS_REQD),
            (opt::STRUCTURED_REPLY, rep::ERR_TLS_REQD),
            (0x7654321, rep::ERR_TLS_REQD),
            (opt::STARTTLS, rep::ERR_INVALID),
        ]
    );
    // STARTTLS: ACK, then the driver's handshake.
    assert_eq!(h.feed(&option(opt::STARTTLS, b"")).unwrap(), [Ev::StartTls]);
    assert_eq!(h.replies(), [(opt::STARTTLS, rep::ACK, vec![])]);
    assert!(!h.conn.tls());
    h.conn.tls_started();
    assert!(h.conn.tls());
    // Now everything works; a second STARTTLS is invalid.
    h.feed(&option(opt::STARTTLS, b"")).unwrap();
    h.feed(&option(opt::STRUCTURED_REPLY, b"")).unwrap();
    let types: Vec<(u32, u32)> = h.replies().iter().map(|(o, t, _)| (*o, *t)).collect();
    assert_eq!(
        types,
        [
            (opt::STARTTLS, rep::ERR_INVALID),
            (opt::STRUCTURED_REPLY, rep::ACK)
        ]
    );
    let evs = h.feed(&option(opt::GO, &go_data(b"rw", &[]))).unwrap();
    assert_eq!(evs, [Ev::Ready(1)]);
    assert!(h.conn.structured());
}

#[test]
fn tls_required_export_name_disconnects_and_abort_is_acked() {
    let mut h = Harness::new(tls(Tls::Required));
    h.feed(&[0, 0, 0, 3]).unwrap();
    assert_eq!(
        h.feed(&option(opt::EXPORT_NAME, b"ro")),
        Err(Fatal::TlsRequired)
    );
    let mut h = Harness::new(tls(Tls::Required));
    h.feed(&[0, 0, 0, 3]).unwrap();
    assert_eq!(h.feed(&option(opt::ABORT, b"")).unwrap(), [Ev::Close]);
    assert_eq!(h.replies(), [(opt::ABORT, rep::ACK, vec![])]);
}

#[test]
fn tls_optional_serves_plaintext_and_starttls_resets_negotiation() {
    // Plaintext client: served as without TLS.
    Harness::negotiated(tls(Tls::Optional), 3, &[], b"ro");
    // STARTTLS after STRUCTURED_REPLY: the agreement is forgotten once TLS is up.
    let mut h = Harness::new(tls(Tls::Optional));
    h.feed(&[0, 0, 0, 3]).unwrap();
    h.feed(&option(opt::STRUCTURED_REPLY, b"")).unwrap();
    assert!(h.conn.structured());
    assert_eq!(h.feed(&option(opt::STARTTLS, b"")).unwrap(), [Ev::StartTls]);
    h.conn.tls_started();
    assert!(!h.conn.structured());
    h.replies();
    // Without TLS configured, STARTTLS stays ERR_POLICY.
    let mut h = Harness::new(config());
    h.feed(&[0, 0, 0, 3]).unwrap();
    assert_eq!(h.feed(&option(opt::STARTTLS, b"")).unwrap(), []);
    assert_eq!(h.replies()[0].1, rep::ERR_POLICY);
}
