//! Byte search eight bytes at a time (SWAR), without `unsafe` or a dependency: line ends and
//! closing quotes are most of what the lexers look for, and comments are most of real files.

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// Bit 7 of each byte of the result is set where `word` has the byte `needle` (exact for the
/// lowest such byte, which is all callers use).
#[inline]
fn matches(word: u64, needle: u8) -> u64 {
    let x = word ^ (LO * u64::from(needle));
    x.wrapping_sub(LO) & !x & HI
}

/// The index of the first `needle` in `hay`.
#[inline]
pub(crate) fn find(hay: &[u8], needle: u8) -> Option<usize> {
    let mut chunks = hay.chunks_exact(8);
    let mut base = 0;
    for chunk in &mut chunks {
        let word = u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8]));
        let m = matches(word, needle);
        if m != 0 {
            return Some(base + (m.trailing_zeros() / 8) as usize);
        }
        base += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&c| c == needle)
        .map(|i| base + i)
}

/// The index of the first `a` or `b` in `hay`.
#[inline]
pub(crate) fn find2(hay: &[u8], a: u8, b: u8) -> Option<usize> {
    let mut chunks = hay.chunks_exact(8);
    let mut base = 0;
    for chunk in &mut chunks {
        let word = u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8]));
        let m = matches(word, a) | matches(word, b);
        if m != 0 {
            return Some(base + (m.trailing_zeros() / 8) as usize);
        }
        base += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&c| c == a || c == b)
        .map(|i| base + i)
}

/// Bit 7 of each byte of the result is set where `word`'s byte is at least `c` (`c` <= 0x80;
/// bytes of `word` below 0x80).
#[inline]
fn at_least(word: u64, c: u8) -> u64 {
    word.wrapping_add(LO * u64::from(0x80 - c)) & HI
}

/// Bit 7 set for each byte of `word` in `[A-Za-z0-9_]`, exactly (bytes never borrow from
/// each other).
#[inline]
fn name_bytes(word: u64) -> u64 {
    let ascii = !word & HI;
    let x = word & !HI;
    let digit = at_least(x, b'0') & !at_least(x, b'9' + 1);
    // `| 0x20` maps A-Z onto a-z and nothing else into a-z.
    let lower = x | (LO * 0x20);
    let letter = at_least(lower, b'a') & !at_least(lower, b'z' + 1);
    // Exact (no borrow between bytes): bit 7 set where `x ^ '_'` is a zero byte.
    let y = x ^ (LO * u64::from(b'_'));
    let underscore = !(((y & !HI).wrapping_add(LO * 0x7f)) | y) & HI;
    ascii & (digit | letter | underscore)
}

/// ASCII upper-case letters of `word` turned lower case, eight at a time.
#[inline]
fn lower(word: u64) -> u64 {
    let x = word & !HI;
    let upper = at_least(x, b'A') & !at_least(x, b'Z' + 1) & !word & HI;
    word | (upper >> 2)
}

/// `a.eq_ignore_ascii_case(b)`, eight bytes at a time (names are compared on every lookup).
#[inline]
pub(crate) fn eq_ignore_ascii_case(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let same = |x: u64, y: u64| x == y || lower(x) == lower(y);
    if a.len() <= 8 {
        return same(word(a), word(b));
    }
    let mut ca = a.chunks_exact(8);
    let mut cb = b.chunks_exact(8);
    for (x, y) in (&mut ca).zip(&mut cb) {
        if !same(word(x), word(y)) {
            return false;
        }
    }
    // The last eight bytes, overlapping the last whole chunk.
    ca.remainder().is_empty() || same(word(&a[a.len() - 8..]), word(&b[b.len() - 8..]))
}

/// The first (up to) eight bytes of `b` as a little-endian word, zero padded, with at most
/// three loads and no loop.
#[inline]
pub(crate) fn word(b: &[u8]) -> u64 {
    let n = b.len();
    let le32 = |s: &[u8]| u64::from(u32::from_le_bytes(s.try_into().unwrap_or([0; 4])));
    if n >= 8 {
        u64::from_le_bytes(b[..8].try_into().unwrap_or([0; 8]))
    } else if n >= 4 {
        // Two overlapping loads: the shared bytes are the same bytes, so OR keeps them.
        le32(&b[..4]) | le32(&b[n - 4..]) << (8 * (n - 4))
    } else if n > 0 {
        u64::from(b[0])
            | u64::from(b[n / 2]) << (8 * (n / 2))
            | u64::from(b[n - 1]) << (8 * (n - 1))
    } else {
        0
    }
}

/// How many bytes at the start of `hay` are in `[A-Za-z0-9_]` (shell name bytes), eight at
/// a time: keys are on every line.
#[inline]
pub(crate) fn name_len(hay: &[u8]) -> usize {
    let mut chunks = hay.chunks_exact(8);
    let mut base = 0;
    for chunk in &mut chunks {
        let word = u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8]));
        let bad = !name_bytes(word) & HI;
        if bad != 0 {
            return base + (bad.trailing_zeros() / 8) as usize;
        }
        base += 8;
    }
    base + chunks
        .remainder()
        .iter()
        .take_while(|&&c| c.is_ascii_alphanumeric() || c == b'_')
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_agrees_with_position() {
        let hay: Vec<u8> = (0..200u32).map(|i| (i * 37 % 251) as u8).collect();
        for start in 0..40 {
            for needle in [0u8, b'\n', b'"', 10, 200, 255, 1, 0x80, 0x81] {
                let h = &hay[start..];
                assert_eq!(find(h, needle), h.iter().position(|&c| c == needle));
            }
        }
        for start in 0..40 {
            let h = &hay[start..];
            assert_eq!(
                find2(h, b'"', b'\n'),
                h.iter().position(|&c| c == b'"' || c == b'\n')
            );
        }
        assert_eq!(find(b"\x01\x00\x0a", b'\n'), Some(2));
        assert_eq!(find(b"aaaaaaaa\x0b\x0a", b'\n'), Some(9));
    }

    #[test]
    fn word_is_the_zero_padded_prefix() {
        let b = b"0123456789";
        for n in 0..=10 {
            let mut w = [0u8; 8];
            let k = n.min(8);
            w[..k].copy_from_slice(&b[..k]);
            assert_eq!(word(&b[..n]), u64::from_le_bytes(w), "{n}");
        }
    }

    #[test]
    fn name_len_agrees_with_a_byte_loop() {
        let slow = |h: &[u8]| {
            h.iter()
                .take_while(|&&c| c.is_ascii_alphanumeric() || c == b'_')
                .count()
        };
        for c in 0..=255u8 {
            for at in 0..12 {
                let mut h = *b"Ab_09zZ_xyAB_0189";
                if at < h.len() {
                    h[at] = c;
                }
                assert_eq!(name_len(&h), slow(&h), "byte {c:#x} at {at}");
                assert_eq!(name_len(&h[3..]), slow(&h[3..]));
            }
        }
    }

    #[test]
    fn eq_ignore_ascii_case_agrees_with_std() {
        let base = b"Default-Node_01:aa:BB@[`{z";
        for c in 0..=255u8 {
            for at in 0..base.len() {
                let mut h = *base;
                h[at] = c;
                for other in [
                    &base[..],
                    &base.to_ascii_lowercase(),
                    &base.to_ascii_uppercase(),
                ] {
                    for len in [1, 2, 3, 5, 8, 11, 16, base.len()] {
                        let (x, y) = (&h[..len], &other[..len]);
                        assert_eq!(
                            eq_ignore_ascii_case(x, y),
                            x.eq_ignore_ascii_case(y),
                            "{c:#x} at {at}, {len} bytes"
                        );
                    }
                }
            }
        }
        assert!(!eq_ignore_ascii_case(b"a", b"ab"));
    }
}
