//! Replays the committed fuzz corpus on stable.

#[test]
fn replay_tftp_packet_corpus() {
    netboot_testkit::replay_corpus("tftp_packet", netboot_tftp::fuzzing::packet);
}
