//! Byte search eight bytes at a time (SWAR), without `unsafe` or a dependency: line ends,
//! quotes, blanks and name bytes are most of what the parsers look at, and comments are most
//! of real files.

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// Bit 7 of each byte of the result is set where `word` has the byte `needle` (exact for the
/// lowest such byte, which is all the searches use).
#[inline(always)]
fn matches(word: u64, needle: u8) -> u64 {
    let x = word ^ (LO * u64::from(needle));
    x.wrapping_sub(LO) & !x & HI
}

/// Bit 7 of each byte of the result is set where `word` has the byte `needle`, exactly (no
/// borrow between bytes).
#[inline(always)]
fn equal(word: u64, needle: u8) -> u64 {
    let y = word ^ (LO * u64::from(needle));
    !(((y & !HI).wrapping_add(LO * 0x7f)) | y) & HI
}

/// Bit 7 of each byte of the result is set where `word`'s byte is at least `c` (`c` <= 0x80;
/// bytes of `word` below 0x80).
#[inline(always)]
fn at_least(word: u64, c: u8) -> u64 {
    word.wrapping_add(LO * u64::from(0x80 - c)) & HI
}

/// The index of the first byte of `hay` for which `hit` sets bit 7 (`hit` must be exact for
/// the lowest set byte). Whole words only: a short input is zero padded (hits in the padding
/// are ignored), and the tail is read as the last eight bytes, overlapping bytes already
/// known not to hit.
#[inline(always)]
fn first(hay: &[u8], hit: impl Fn(u64) -> u64) -> Option<usize> {
    let n = hay.len();
    let at = |m: u64| (m.trailing_zeros() / 8) as usize;
    let Some(last) = hay.last_chunk::<8>() else {
        let m = hit(word(hay));
        return (m != 0 && at(m) < n).then(|| at(m));
    };
    let (words, rest) = hay.as_chunks::<8>();
    for (k, w) in words.iter().enumerate() {
        let m = hit(u64::from_le_bytes(*w));
        if m != 0 {
            return Some(k * 8 + at(m));
        }
    }
    if rest.is_empty() {
        return None;
    }
    let m = hit(u64::from_le_bytes(*last));
    (m != 0).then(|| n - 8 + at(m))
}

/// The index of the first `needle` in `hay`.
///
/// Not inlined, like the other scans here: inside the parser's big loop the word constants
/// would not stay in registers.
#[inline(never)]
pub(crate) fn find(hay: &[u8], needle: u8) -> Option<usize> {
    first(hay, |w| matches(w, needle))
}

/// The index of the first `a` or `b` in `hay`.
#[inline(never)]
pub(crate) fn find2(hay: &[u8], a: u8, b: u8) -> Option<usize> {
    first(hay, |w| matches(w, a) | matches(w, b))
}

/// How many bytes at the start of `hay` are none of lts5's STRING stops, `= \n [ ] " ' #`
/// (where an unquoted word ends): eight table lookups OR-ed per step (cheaper than seven
/// word compares), then the byte in the step that stops.
#[inline(never)]
pub(crate) fn until_stop(hay: &[u8]) -> usize {
    static STOP: [bool; 256] = {
        let mut t = [false; 256];
        let stops = b"=\n[]\"'#";
        let mut i = 0;
        while i < stops.len() {
            t[stops[i] as usize] = true;
            i += 1;
        }
        t
    };
    let stop = |c: u8| STOP[usize::from(c)];
    let (words, _) = hay.as_chunks::<8>();
    let mut at = 0;
    for w in words {
        if w.iter().fold(false, |any, &c| any | stop(c)) {
            break;
        }
        at += 8;
    }
    at + hay[at..]
        .iter()
        .position(|&c| stop(c))
        .unwrap_or(hay.len() - at)
}

/// The index of the first byte at or after `i` in `b` that is not a space or tab (aligned
/// `=` signs make long runs of them). Most runs are none or one space around `=`: two
/// bytes here, words for long runs.
#[inline(always)]
pub(crate) fn skip_blanks(b: &[u8], i: usize) -> usize {
    let blank = |i: usize| matches!(b.get(i), Some(b' ' | b'\t'));
    if !blank(i) {
        i
    } else if !blank(i + 1) {
        i + 1
    } else {
        i + 2 + blank_run(&b[i + 2..])
    }
}

#[inline(never)]
fn blank_run(hay: &[u8]) -> usize {
    // Indents are short: bytes first, words for alignment runs.
    let blank = |c: &u8| *c == b' ' || *c == b'\t';
    let short = hay.iter().take(6).take_while(|c| blank(c)).count();
    if short < 6 || short == hay.len() {
        return short;
    }
    // Zero padding counts as "other", which `first` stops at the end of the input.
    let other = |w| !(equal(w, b' ') | equal(w, b'\t')) & HI;
    short + first(&hay[short..], other).unwrap_or(hay.len() - short)
}

/// Bit 7 set for each byte of `word` in `[A-Za-z0-9_]`, exactly.
#[inline(always)]
fn name_bytes(word: u64) -> u64 {
    let ascii = !word & HI;
    let x = word & !HI;
    let digit = at_least(x, b'0') & !at_least(x, b'9' + 1);
    // `| 0x20` maps A-Z onto a-z and nothing else into a-z.
    let lower = x | (LO * 0x20);
    let letter = at_least(lower, b'a') & !at_least(lower, b'z' + 1);
    ascii & (digit | letter | equal(x, b'_'))
}

/// How many bytes at the start of `hay` are in `[A-Za-z0-9_]` (shell name bytes), eight
/// at a time: keys are on every line.
#[inline(never)]
pub(crate) fn name_len(hay: &[u8]) -> usize {
    first(hay, |w| !name_bytes(w) & HI).unwrap_or(hay.len())
}

/// Whether `hay` has at least `min` words (runs of bytes other than ASCII White_Space:
/// space, `\t` `\n` VT FF `\r`), counting word starts eight bytes at a time; `None` when
/// the answer needs a byte that is not ASCII (Unicode has more spaces).
pub(crate) fn ascii_words_at_least(hay: &[u8], min: usize) -> Option<bool> {
    let mut count = 0;
    // Bit 7 of byte 0: the byte before it was a space (the start counts as one).
    let mut carry = 0x80;
    let mut i = 0;
    while i < hay.len() && count < min {
        let rest = &hay[i..];
        let (w, valid) = match rest.first_chunk::<8>() {
            Some(w) => (u64::from_le_bytes(*w), HI),
            None => (word(rest), HI >> (8 * (8 - rest.len()))),
        };
        if w & HI != 0 {
            return None;
        }
        let space = (equal(w, b' ') | (at_least(w, b'\t') & !at_least(w, b'\r' + 1))) & valid;
        let starts = !space & valid & ((space << 8) | carry);
        // One bit per byte: a multiply sums them (no `popcnt` in baseline x86-64).
        count += ((starts >> 7).wrapping_mul(LO) >> 56) as usize;
        carry = (space >> 56) & 0x80;
        i += 8;
    }
    Some(count >= min)
}

/// ASCII upper-case letters of `word` turned lower case, eight at a time.
#[inline(always)]
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
    let (wa, _) = a.as_chunks::<8>();
    let (wb, _) = b.as_chunks::<8>();
    wa.iter()
        .zip(wb)
        .all(|(x, y)| same(u64::from_le_bytes(*x), u64::from_le_bytes(*y)))
        // The last eight bytes, overlapping the last whole word.
        && same(word(&a[a.len() - 8..]), word(&b[b.len() - 8..]))
}

/// The first (up to) eight bytes of `b` as a little-endian word, zero padded, with at most
/// three loads and no loop.
#[inline]
pub(crate) fn word(b: &[u8]) -> u64 {
    let n = b.len();
    let le32 = |s: &[u8]| {
        s.first_chunk::<4>()
            .map_or(0, |c| u64::from(u32::from_le_bytes(*c)))
    };
    if let Some(w) = b.first_chunk::<8>() {
        u64::from_le_bytes(*w)
    } else if n >= 4 {
        // Two overlapping loads: the shared bytes are the same bytes, so OR keeps them.
        le32(b) | le32(&b[n - 4..]) << (8 * (n - 4))
    } else if n > 0 {
        u64::from(b[0])
            | u64::from(b[n / 2]) << (8 * (n / 2))
            | u64::from(b[n - 1]) << (8 * (n - 1))
    } else {
        0
    }
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
    fn until_stop_agrees_with_a_byte_loop() {
        for c in 0..=255u8 {
            for at in 0..19 {
                let mut h = *b"52:54:00:aa:*?-x.y ";
                h[at] = c;
                for from in [0, 1, 9] {
                    let slow = h[from..]
                        .iter()
                        .take_while(|&&c| !b"=\n[]\"'#".contains(&c))
                        .count();
                    assert_eq!(until_stop(&h[from..]), slow, "{c:#x} at {at}");
                }
            }
        }
    }

    #[test]
    fn blanks_agrees_with_a_byte_loop() {
        for c in 0..=255u8 {
            for at in 0..17 {
                let mut h = *b" \t      \t\t  \t    ";
                h[at] = c;
                for from in [0, 1, 5] {
                    let slow = h[from..]
                        .iter()
                        .take_while(|&&c| c == b' ' || c == b'\t')
                        .count();
                    assert_eq!(skip_blanks(&h, from), from + slow, "{c:#x} at {at}");
                }
            }
        }
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
