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
        assert_eq!(find(b"\x01\x00\x0a", b'\n'), Some(2));
        assert_eq!(find(b"aaaaaaaa\x0b\x0a", b'\n'), Some(9));
    }
}
