//! Zero-copy views over TFTP datagrams.

use thiserror::Error;

/// Why a datagram was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Error {
    /// Shorter than the 2-byte opcode.
    #[error("datagram shorter than its opcode")]
    Truncated,
    /// An opcode RFC 1350/2347 does not define.
    #[error("unknown opcode {0}")]
    UnknownOpcode(u16),
}

/// The first two bytes of every TFTP datagram (RFC 1350 §5, RFC 2347 adds OACK).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opcode {
    /// 1: read request.
    Rrq,
    /// 2: write request.
    Wrq,
    /// 3: data block.
    Data,
    /// 4: acknowledgement.
    Ack,
    /// 5: error.
    Error,
    /// 6: option acknowledgement (RFC 2347).
    Oack,
}

impl Opcode {
    /// Reads the opcode at the start of `datagram`.
    pub fn parse(datagram: &[u8]) -> Result<Opcode, Error> {
        let [hi, lo, ..] = *datagram else {
            return Err(Error::Truncated);
        };
        Ok(match u16::from_be_bytes([hi, lo]) {
            1 => Opcode::Rrq,
            2 => Opcode::Wrq,
            3 => Opcode::Data,
            4 => Opcode::Ack,
            5 => Opcode::Error,
            6 => Opcode::Oack,
            other => return Err(Error::UnknownOpcode(other)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opcodes_of_real_datagrams() {
        // An RRQ as tftp-hpa sends it: "pxelinux.0", mode "octet".
        let rrq = b"\x00\x01pxelinux.0\x00octet\x00";
        assert_eq!(Opcode::parse(rrq), Ok(Opcode::Rrq));
        assert_eq!(Opcode::parse(&[0, 4, 0, 1]), Ok(Opcode::Ack));
        assert_eq!(Opcode::parse(&[0]), Err(Error::Truncated));
        assert_eq!(Opcode::parse(&[0, 9]), Err(Error::UnknownOpcode(9)));
    }
}
