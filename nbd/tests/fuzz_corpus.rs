//! Replays the committed fuzz corpora on stable.

#[test]
fn replay_nbd_handshake_corpus() {
    netboot_testkit::replay_corpus("nbd_handshake", netboot_nbd::fuzzing::handshake);
}

#[test]
fn replay_nbd_wire_corpus() {
    netboot_testkit::replay_corpus("nbd_wire", netboot_nbd::fuzzing::wire);
}

#[test]
fn replay_nbd_engine_corpus() {
    netboot_testkit::replay_corpus("nbd_engine", netboot_nbd::fuzzing::engine);
}
