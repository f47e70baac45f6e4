//! Replays the committed fuzz corpus on stable.

#[test]
fn replay_nbd_handshake_corpus() {
    netboot_testkit::replay_corpus("nbd_handshake", netboot_nbd::fuzzing::handshake);
}
