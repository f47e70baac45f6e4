//! Replays the committed fuzz corpora on stable.

#[test]
fn replay_tftp_packet_corpus() {
    let n = netboot_testkit::replay_corpus("tftp_packet", netboot_tftp::fuzzing::packet);
    assert!(n >= 3);
}

#[test]
fn replay_tftp_engine_corpus() {
    let n = netboot_testkit::replay_corpus("tftp_engine", netboot_tftp::fuzzing::engine);
    assert!(n >= 3);
}
