//! Replays the committed fuzz corpus on stable.

#[test]
fn replay_dhcp_packet_corpus() {
    netboot_testkit::replay_corpus("dhcp_packet", netboot_dhcp::fuzzing::packet);
}
