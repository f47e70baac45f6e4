//! Entry points for cargo-fuzz targets and the corpus replay test. Each must never panic.

/// Feeds client bytes to the handshake parser.
pub fn handshake(data: &[u8]) {
    let _ = crate::wire::Greeting::parse(data);
}
