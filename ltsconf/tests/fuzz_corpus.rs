//! Replays the committed fuzz corpus on stable.

#[test]
fn replay_ltsconf_parse_corpus() {
    netboot_testkit::replay_corpus("ltsconf_parse", netboot_ltsconf::fuzzing::parse);
}
