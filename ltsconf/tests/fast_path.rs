//! The lts5 parser reads plain `KEY = value` lines without tokens; on every input it must give
//! exactly the document the token path gives (entries, spans, diagnostics, truncation).

use netboot_ltsconf::fuzzing::lts5_paths_agree;
use proptest::prelude::*;

/// Lines made of the pieces that decide which path a line takes.
fn line() -> impl Strategy<Value = String> {
    let piece = prop::sample::select(vec![
        "KEY",
        "k_2",
        "LIKE",
        "A B",
        " ",
        "\t",
        "=",
        " = ",
        "\"",
        "'",
        "#",
        "# c",
        "[",
        "]",
        "x",
        "val ue",
        "\r",
        "\x0b",
        "include ",
        ";",
        "é",
        "\"q # = [x]\"",
        "NONE",
        "[Default]",
    ]);
    prop::collection::vec(piece, 0..8).prop_map(|p| p.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn fast_and_token_paths_agree(lines in prop::collection::vec(line(), 0..8), last_newline in any::<bool>()) {
        let mut text = String::from("[Default]\n");
        text.push_str(&lines.join("\n"));
        if last_newline {
            text.push('\n');
        }
        prop_assert!(lts5_paths_agree(&text), "{:?}", text);
    }

    #[test]
    fn agree_on_any_text(text in any::<String>()) {
        prop_assert!(lts5_paths_agree(&text));
    }
}

#[test]
fn agree_on_the_fixtures() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
    for e in std::fs::read_dir(dir).unwrap() {
        let text = std::fs::read_to_string(e.unwrap().path()).unwrap();
        assert!(lts5_paths_agree(&text));
    }
}
