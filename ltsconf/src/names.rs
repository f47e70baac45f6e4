//! Section names as hash keys under each dialect's notion of "the same name", so duplicate
//! detection, `LIKE` lookups and the [`crate::Resolver`] index are one pass over the sections
//! instead of a sort (which dominated `parse` on big files).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};

/// How two names compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fold {
    /// lts5 names: ASCII case-insensitive (getltscfg uses `strcasecmp`).
    Ascii,
    /// ltsp19 `case` patterns: byte for byte.
    Exact,
    /// ltsp19 function names: ini2sh turns every byte outside `[a-z0-9]` into `_`.
    Function,
}

impl Fold {
    #[inline]
    fn byte(self, c: u8) -> u8 {
        match self {
            Fold::Ascii => c.to_ascii_lowercase(),
            Fold::Exact => c,
            Fold::Function => {
                if c.is_ascii_lowercase() || c.is_ascii_digit() {
                    c
                } else {
                    b'_'
                }
            }
        }
    }
}

/// A name compared and hashed under a [`Fold`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Key<'a>(pub(crate) &'a str, pub(crate) Fold);

impl PartialEq for Key<'_> {
    fn eq(&self, other: &Self) -> bool {
        let (a, b) = (self.0.as_bytes(), other.0.as_bytes());
        match (self.1, other.1) {
            (Fold::Exact, Fold::Exact) => a == b,
            (Fold::Ascii, Fold::Ascii) => crate::bytes::eq_ignore_ascii_case(a, b),
            _ => {
                a.len() == b.len()
                    && a.iter()
                        .zip(b)
                        .all(|(&x, &y)| self.1.byte(x) == other.1.byte(y))
            }
        }
    }
}

impl Eq for Key<'_> {}

impl Hash for Key<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.fold_hash());
    }
}

impl Key<'_> {
    /// A hash of the folded name, eight bytes per step. lts5 names fold by setting bit 5 of
    /// every byte (`| 0x20`), which maps A-Z onto a-z and so hashes names that are equal
    /// ignoring ASCII case alike, without a byte loop.
    #[inline]
    fn fold_hash(&self) -> u64 {
        const K: u64 = 0x9e37_79b9_7f4a_7c15;
        let b = self.0.as_bytes();
        let or = match self.1 {
            Fold::Exact => 0,
            Fold::Ascii => 0x2020_2020_2020_2020,
            Fold::Function => return self.function_hash(),
        };
        let mix = |h: u64, w: u64| (h ^ w).wrapping_mul(K).rotate_left(26);
        let word = crate::bytes::word;
        let mut h = (b.len() as u64).wrapping_mul(K);
        if b.len() <= 8 {
            h = mix(h, word(b) | or);
        } else {
            let mut chunks = b.chunks_exact(8);
            for c in &mut chunks {
                h = mix(h, word(c) | or);
            }
            if !chunks.remainder().is_empty() {
                // The last eight bytes, overlapping the last whole chunk: no padding copy.
                h = mix(h, word(&b[b.len() - 8..]) | or);
            }
        }
        h ^ (h >> 29)
    }

    /// ltsp19 function names (rare: one per section of an ltsp.conf), byte by byte.
    fn function_hash(&self) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for &c in self.0.as_bytes() {
            h = (h ^ u64::from(self.1.byte(c))).wrapping_mul(0x0100_0000_01b3);
        }
        h ^ (h >> 29)
    }
}

/// FNV-1a over words: the keys are short names from a config file, where SipHash's
/// flooding resistance buys little and costs most of a lookup. (A file crafted to collide
/// only slows its own parse.)
#[derive(Default)]
pub(crate) struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }
    fn write_u64(&mut self, n: u64) {
        let h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        self.0 = (h ^ n).wrapping_mul(0x0100_0000_01b3).rotate_left(29);
    }
    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
}

/// A map from names to section indices.
pub(crate) type NameMap<'a> = HashMap<Key<'a>, usize, BuildHasherDefault<Fnv>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds() {
        let mut m = NameMap::default();
        m.insert(Key("Default", Fold::Ascii), 1);
        assert_eq!(m.get(&Key("DEFAULT", Fold::Ascii)), Some(&1));
        assert_eq!(m.get(&Key("DEFAULTS", Fold::Ascii)), None);
        m.insert(Key("a.b", Fold::Function), 2);
        assert_eq!(m.get(&Key("a-b", Fold::Function)), Some(&2));
        assert_eq!(m.get(&Key("a-b", Fold::Exact)), None);
        m.insert(Key("0123456789abcdef:x", Fold::Exact), 3);
        assert_eq!(m.get(&Key("0123456789abcdef:x", Fold::Exact)), Some(&3));
    }
}
