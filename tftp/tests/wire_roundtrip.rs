//! Property tests: parse(emit(x)) == x for every packet kind, and the option parser never
//! echoes a name twice or an out-of-range value.

use netboot_tftp::wire::{ErrorCode, Mode, OptionList, Options, Repr, Request};
use proptest::prelude::*;

fn name() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(1u8..=255, 0..40)
}

fn options_raw() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec((name(), prop::collection::vec(1u8..=255, 0..12)), 0..6).prop_map(
        |pairs| {
            let mut raw = Vec::new();
            for (mut k, v) in pairs {
                if k.is_empty() {
                    k.push(b'x');
                }
                raw.extend(k);
                raw.push(0);
                raw.extend(v);
                raw.push(0);
            }
            raw
        },
    )
}

fn mode() -> impl Strategy<Value = Mode> {
    prop_oneof![Just(Mode::Octet), Just(Mode::Netascii), Just(Mode::Mail)]
}

fn roundtrip(repr: Repr<'_>) {
    let mut buf = vec![0u8; repr.buffer_len()];
    let n = repr.emit(&mut buf).unwrap();
    assert_eq!(n, buf.len());
    assert_eq!(Repr::parse_with_limit(&buf, usize::MAX), Ok(repr));
}

proptest! {
    #[test]
    fn requests(file in name(), mode in mode(), raw in options_raw(), wrq: bool) {
        let options = OptionList::parse(&raw).unwrap();
        let req = Request { filename: &file, mode, options };
        roundtrip(if wrq { Repr::Wrq(req) } else { Repr::Rrq(req) });
    }

    #[test]
    fn data_ack_error(block: u16, data in prop::collection::vec(any::<u8>(), 0..1500),
                      code: u16, msg in name()) {
        roundtrip(Repr::Data { block, data: &data });
        roundtrip(Repr::Ack { block });
        roundtrip(Repr::Error { code: ErrorCode(code), message: &msg });
    }

    #[test]
    fn oack_from_options(blksize in proptest::option::of(8u16..=65464),
                         timeout in proptest::option::of(1u8..=255),
                         tsize: Option<u64>,
                         windowsize in proptest::option::of(1u16..=65535)) {
        let o = Options { blksize, timeout, tsize, windowsize };
        let mut buf = vec![0u8; o.oack_len()];
        let n = o.emit_oack(&mut buf).unwrap();
        let Ok(Repr::Oack(list)) = Repr::parse(&buf[..n]) else { panic!("OACK") };
        prop_assert_eq!(Options::from_oack(&list), Ok(o));
        roundtrip(Repr::Oack(list));
    }

    #[test]
    fn request_options_are_in_range(raw in options_raw(), names in prop::collection::vec(
        prop_oneof![Just("blksize"), Just("TIMEOUT"), Just("tsize"), Just("WindowSize")], 0..8),
        values in prop::collection::vec("[0-9]{0,22}|-?[0-9a-z]{1,4}", 8)) {
        let mut raw = raw;
        for (k, v) in names.iter().zip(&values) {
            raw.extend_from_slice(k.as_bytes());
            raw.push(0);
            raw.extend_from_slice(v.as_bytes());
            raw.push(0);
        }
        let o = Options::from_request(&OptionList::parse(&raw).unwrap());
        // Whatever came in, the OACK built from it is conformant and lists each name once.
        let mut buf = vec![0u8; o.oack_len()];
        let n = o.emit_oack(&mut buf).unwrap();
        let Ok(Repr::Oack(list)) = Repr::parse(&buf[..n]) else { panic!("OACK") };
        prop_assert_eq!(Options::from_oack(&list), Ok(o));
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..700)) {
        netboot_tftp::fuzzing::packet(&data);
        netboot_tftp::fuzzing::engine(&data);
    }
}
