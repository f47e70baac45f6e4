//! Entry points for cargo-fuzz targets and the corpus replay test. Each must never panic.

/// Parses one datagram as the server would on receipt.
pub fn packet(data: &[u8]) {
    let _ = crate::wire::Opcode::parse(data);
}
