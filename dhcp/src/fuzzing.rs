//! Entry points for cargo-fuzz targets and the corpus replay test. Each must never panic.

/// Parses one received datagram.
pub fn packet(data: &[u8]) {
    if let Ok(p) = crate::wire::Packet::new_checked(data) {
        let _ = (p.op(), p.xid(), p.chaddr());
    }
}
