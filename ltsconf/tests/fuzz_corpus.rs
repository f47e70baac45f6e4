//! Replays the committed fuzz corpora on stable: every input must go through without a panic.

#[test]
fn replay_ltsconf_parse_corpus() {
    let n = netboot_testkit::replay_corpus("ltsconf_parse", netboot_ltsconf::fuzzing::parse);
    assert!(n >= 10, "only {n} inputs in fuzz/corpus/ltsconf_parse");
}

#[test]
fn replay_ltsconf_resolve_corpus() {
    let n = netboot_testkit::replay_corpus("ltsconf_resolve", netboot_ltsconf::fuzzing::resolve);
    assert!(n >= 4, "only {n} inputs in fuzz/corpus/ltsconf_resolve");
}
