//! proptest round-trips: parse(emit(x)) == x for every wire `Repr`.

use netboot_nbd::wire::*;
use proptest::prelude::*;

proptest! {
    #[test]
    fn request(flags: u16, command: u16, cookie: u64, offset: u64, length: u64, extended: bool) {
        let length = if extended { length } else { length & 0xffff_ffff };
        let r = Request { flags, command, cookie, offset, length, extended };
        let mut b = vec![0; r.buffer_len()];
        r.emit(&mut b);
        prop_assert_eq!(Request::parse(&b, extended), Ok(r));
        prop_assert!(Request::parse(&b, !extended).is_err());
    }

    #[test]
    fn chunk_header(flags: u16, kind: u16, cookie: u64, offset: u64, length: u64, extended: bool) {
        let (offset, length) = if extended { (offset, length) } else { (0, length & 0xffff_ffff) };
        let c = ChunkHeader { flags, kind, cookie, offset, length, extended };
        let mut b = vec![0; c.buffer_len()];
        c.emit(&mut b);
        prop_assert_eq!(ChunkHeader::parse(&b, extended), Ok(c));
    }

    #[test]
    fn simple_reply_and_greeting(error: u32, cookie: u64, flags: u16, cflags: u32) {
        let r = SimpleReply { error, cookie };
        let mut b = [0; 16];
        r.emit(&mut b);
        prop_assert_eq!(SimpleReply::parse(&b), Ok(r));
        let g = Greeting { flags };
        let mut b = [0; GREETING_LEN];
        g.emit(&mut b);
        prop_assert_eq!(Greeting::parse(&b), Ok(g));
        let c = ClientFlags { flags: cflags };
        let mut b = [0; 4];
        c.emit(&mut b);
        prop_assert_eq!(ClientFlags::parse(&b), Ok(c));
    }

    #[test]
    fn options_and_replies(option: u32, reply_type: u32, data in proptest::collection::vec(any::<u8>(), 0..300)) {
        let o = OptionRequest { option, data: &data };
        let mut b = vec![0; o.buffer_len()];
        o.emit(&mut b);
        prop_assert_eq!(OptionRequest::parse(&b), Ok(o));
        let r = OptionReply { option, reply_type, data: &data };
        let mut b = vec![0; r.buffer_len()];
        r.emit(&mut b);
        prop_assert_eq!(OptionReply::parse(&b), Ok(r));
        // Any truncation is reported, never a panic.
        for cut in 0..b.len() {
            prop_assert!(OptionReply::parse(&b[..cut]).is_err());
        }
    }

    #[test]
    fn info_request(name in proptest::collection::vec(any::<u8>(), 0..100), reqs in proptest::collection::vec(any::<u16>(), 0..20)) {
        let raw: Vec<u8> = reqs.iter().flat_map(|r| r.to_be_bytes()).collect();
        let i = InfoRequest { name: &name, raw_requests: &raw };
        let mut b = vec![0; i.buffer_len()];
        i.emit(&mut b);
        let p = InfoRequest::parse(&b).unwrap();
        prop_assert_eq!(p, i);
        prop_assert_eq!(p.requests().collect::<Vec<_>>(), reqs);
    }

    #[test]
    fn meta_context_request(name in proptest::collection::vec(any::<u8>(), 0..50), queries in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..8)) {
        let mut raw = Vec::new();
        for q in &queries {
            raw.extend_from_slice(&(q.len() as u32).to_be_bytes());
            raw.extend_from_slice(q);
        }
        let m = MetaContextRequest { name: &name, raw_queries: &raw, count: queries.len() as u32 };
        let mut b = vec![0; m.buffer_len()];
        m.emit(&mut b);
        let p = MetaContextRequest::parse(&b).unwrap();
        prop_assert_eq!(p, m);
        prop_assert_eq!(p.queries().map(<[u8]>::to_vec).collect::<Vec<_>>(), queries);
    }

    #[test]
    fn export_name_reply(size: u64, flags: u16, zeroes: bool) {
        let r = ExportNameReply { size, flags, zeroes };
        let mut b = vec![0; r.buffer_len()];
        r.emit(&mut b);
        prop_assert_eq!(ExportNameReply::parse(&b, zeroes), Ok(r));
    }

    #[test]
    fn engine_never_panics(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        netboot_nbd::fuzzing::engine(&data);
        netboot_nbd::fuzzing::wire(&data);
    }
}
