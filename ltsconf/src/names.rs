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
    pub(crate) fn fold_hash(&self) -> u64 {
        const K: u64 = 0x9e37_79b9_7f4a_7c15;
        let b = self.0.as_bytes();
        let or = match self.1 {
            Fold::Exact => 0,
            Fold::Ascii => 0x2020_2020_2020_2020,
            Fold::Function => return self.function_hash(),
        };
        // The folded 128-bit product: every input bit reaches both halves, so the high half
        // (the tag) and the low bits (the slot) both tell names apart.
        let mix = |h: u64, w: u64| {
            let p = u128::from(h ^ w) * u128::from(K);
            (p as u64) ^ ((p >> 64) as u64)
        };
        let word = crate::bytes::word;
        let mut h = (b.len() as u64).wrapping_mul(K);
        if b.len() <= 8 {
            h = mix(h, word(b) | or);
        } else {
            let (words, rest) = b.as_chunks::<8>();
            for w in words {
                h = mix(h, u64::from_le_bytes(*w) | or);
            }
            if !rest.is_empty() {
                // The last eight bytes, overlapping the last whole chunk: no padding copy.
                h = mix(h, word(&b[b.len() - 8..]) | or);
            }
        }
        h
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

/// Names to indices (of sections) by open addressing, for the whole-file checks, which
/// build one per parse: a slot is (high half of the name's hash, index + 1), 0 for empty, and
/// a stored index's name is read back through a `name_of` function, so the table holds no
/// strings. Cheaper to build than a [`NameMap`], which matters on 10,000-section files.
pub(crate) struct Index {
    slots: Vec<(u32, u32)>,
    mask: usize,
}

impl Index {
    /// Room for `n` names (the table stays at most half full).
    pub(crate) fn with_capacity(n: usize) -> Index {
        let len = n.saturating_mul(2).next_power_of_two().max(8);
        Index {
            slots: vec![(0, 0); len],
            mask: len - 1,
        }
    }

    /// The slot of the index whose name equals `key`, or the empty slot where it would go,
    /// and that index.
    fn find<'k>(
        &self,
        key: Key<'k>,
        name_of: impl Fn(usize) -> Key<'k>,
    ) -> (usize, u32, Option<usize>) {
        let h = key.fold_hash();
        let tag = (h >> 32) as u32;
        let mut at = h as usize & self.mask;
        // At most half full, so an empty slot ends every probe; the bound is for safety.
        for _ in 0..self.slots.len() {
            let (t, v) = self.slots[at];
            let Some(i) = (v as usize).checked_sub(1) else {
                return (at, tag, None);
            };
            if t == tag && name_of(i) == key {
                return (at, tag, Some(i));
            }
            at = (at + 1) & self.mask;
        }
        (at, tag, None)
    }

    /// The index stored under `key`.
    pub(crate) fn get<'k>(
        &self,
        key: Key<'k>,
        name_of: impl Fn(usize) -> Key<'k>,
    ) -> Option<usize> {
        self.find(key, name_of).2
    }

    /// Stores `index` under `key` unless a name equal to it is there (or, with `replace`,
    /// in any case); returns the index that was there.
    pub(crate) fn insert<'k>(
        &mut self,
        key: Key<'k>,
        index: usize,
        replace: bool,
        name_of: impl Fn(usize) -> Key<'k>,
    ) -> Option<usize> {
        let (at, tag, old) = self.find(key, name_of);
        if old.is_none() || replace {
            self.slots[at] = (tag, u32::try_from(index + 1).unwrap_or(u32::MAX));
        }
        old
    }
}

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

    #[test]
    fn index_finds_the_first_or_last() {
        let names: Vec<String> = (0..300).map(|i| format!("Node-{}", i % 100)).collect();
        let key = |i: usize| Key(&names[i], Fold::Ascii);
        let mut first = Index::with_capacity(names.len());
        let mut last = Index::with_capacity(names.len());
        for i in 0..names.len() {
            assert_eq!(
                first.insert(key(i), i, false, key),
                i.checked_sub(100).map(|j| j % 100)
            );
            last.insert(key(i), i, true, key);
        }
        assert_eq!(first.get(Key("NODE-7", Fold::Ascii), key), Some(7));
        assert_eq!(last.get(Key("node-7", Fold::Ascii), key), Some(207));
        assert_eq!(first.get(Key("node-100", Fold::Ascii), key), None);
    }
}
