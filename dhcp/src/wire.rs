//! Zero-copy views over BOOTP/DHCP packets (RFC 2131 §2).

use thiserror::Error;

/// The fixed BOOTP header plus the 4-byte magic cookie.
pub const MIN_LEN: usize = 240;
/// RFC 2131 §3: the options field starts with 99.130.83.99.
pub const MAGIC_COOKIE: [u8; 4] = [99, 130, 83, 99];

/// Why a packet was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Error {
    /// Shorter than the fixed header and cookie.
    #[error("packet of {0} bytes is shorter than the 240-byte BOOTP header")]
    Truncated(usize),
    /// The magic cookie is missing: plain BOOTP or garbage.
    #[error("no DHCP magic cookie")]
    NoCookie,
}

/// A checked view over a DHCP packet.
#[derive(Debug, Clone, Copy)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps `buffer` after checking its length and magic cookie; accessors never panic after.
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        let b = buffer.as_ref();
        if b.len() < MIN_LEN {
            return Err(Error::Truncated(b.len()));
        }
        if b[236..240] != MAGIC_COOKIE {
            return Err(Error::NoCookie);
        }
        Ok(Packet { buffer })
    }

    /// `op`: 1 BOOTREQUEST, 2 BOOTREPLY.
    pub fn op(&self) -> u8 {
        self.buffer.as_ref()[0]
    }

    /// `xid`: the transaction id chosen by the client.
    pub fn xid(&self) -> u32 {
        let b = self.buffer.as_ref();
        u32::from_be_bytes([b[4], b[5], b[6], b[7]])
    }

    /// `chaddr`: the client hardware address field (16 bytes, `hlen` of them meaningful).
    pub fn chaddr(&self) -> &[u8] {
        &self.buffer.as_ref()[28..44]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_fields_and_rejections() {
        let mut buf = [0u8; 300];
        buf[0] = 1;
        buf[4..8].copy_from_slice(&0xdead_beef_u32.to_be_bytes());
        buf[28..34].copy_from_slice(&[0x52, 0x54, 0, 0x12, 0x34, 0x56]);
        buf[236..240].copy_from_slice(&MAGIC_COOKIE);
        let p = Packet::new_checked(&buf[..]).unwrap();
        assert_eq!((p.op(), p.xid()), (1, 0xdead_beef));
        assert_eq!(&p.chaddr()[..6], &[0x52, 0x54, 0, 0x12, 0x34, 0x56]);
        assert_eq!(
            Packet::new_checked(&buf[..100]).unwrap_err(),
            Error::Truncated(100)
        );
        buf[236] = 0;
        assert_eq!(Packet::new_checked(&buf[..]).unwrap_err(), Error::NoCookie);
    }
}
