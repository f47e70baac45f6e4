//! Zero-copy views and constants for the NBD wire protocol.

use thiserror::Error;

/// `NBDMAGIC`, the first 8 bytes a server sends.
pub const NBDMAGIC: u64 = 0x4e42_444d_4147_4943;
/// `IHAVEOPT`, which follows it in the newstyle handshake.
pub const IHAVEOPT: u64 = 0x4948_4156_454f_5054;
/// Length of the newstyle greeting: magic, option magic, 16-bit handshake flags.
pub const GREETING_LEN: usize = 18;

/// Why bytes were rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Error {
    /// Fewer bytes than the structure needs.
    #[error("truncated: need {need} bytes, have {have}")]
    Truncated {
        /// Bytes the structure needs.
        need: usize,
        /// Bytes available.
        have: usize,
    },
    /// A magic number did not match.
    #[error("bad magic {0:#018x}")]
    BadMagic(u64),
}

/// The server's newstyle greeting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Greeting {
    /// Handshake flags (`NBD_FLAG_FIXED_NEWSTYLE` = bit 0, `NBD_FLAG_NO_ZEROES` = bit 1).
    pub flags: u16,
}

impl Greeting {
    /// Parses a greeting from the first [`GREETING_LEN`] bytes of `buf`.
    pub fn parse(buf: &[u8]) -> Result<Greeting, Error> {
        let Some(b) = buf.get(..GREETING_LEN) else {
            return Err(Error::Truncated {
                need: GREETING_LEN,
                have: buf.len(),
            });
        };
        for (range, want) in [(0..8, NBDMAGIC), (8..16, IHAVEOPT)] {
            let got = u64::from_be_bytes(b[range].try_into().unwrap_or_default());
            if got != want {
                return Err(Error::BadMagic(got));
            }
        }
        Ok(Greeting {
            flags: u16::from_be_bytes([b[16], b[17]]),
        })
    }

    /// Writes the greeting into the first [`GREETING_LEN`] bytes of `buf`.
    ///
    /// # Panics
    /// If `buf` is shorter than [`GREETING_LEN`] (an emitter's sizing bug, not input).
    pub fn emit(&self, buf: &mut [u8]) {
        buf[0..8].copy_from_slice(&NBDMAGIC.to_be_bytes());
        buf[8..16].copy_from_slice(&IHAVEOPT.to_be_bytes());
        buf[16..18].copy_from_slice(&self.flags.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greeting_bytes_as_nbdkit_sends_them() {
        let bytes = b"NBDMAGICIHAVEOPT\x00\x03";
        assert_eq!(Greeting::parse(bytes), Ok(Greeting { flags: 3 }));
        assert_eq!(
            Greeting::parse(&bytes[..10]),
            Err(Error::Truncated { need: 18, have: 10 })
        );
        assert!(matches!(
            Greeting::parse(b"NBDMAGICxxxxxxxx\x00\x03"),
            Err(Error::BadMagic(_))
        ));
    }
}
