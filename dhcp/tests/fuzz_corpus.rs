//! Replays the committed fuzz corpus on stable.

#[test]
fn replay_dhcp_packet_corpus() {
    netboot_testkit::replay_corpus("dhcp_packet", netboot_dhcp::fuzzing::packet);
}

#[test]
fn replay_dhcp_engine_corpus() {
    netboot_testkit::replay_corpus("dhcp_engine", netboot_dhcp::fuzzing::engine);
}
