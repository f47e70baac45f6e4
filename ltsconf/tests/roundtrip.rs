//! Property tests: render → parse gives back the same variables in both dialects, shell
//! output survives a real `eval` in dash byte for byte, and our `sort -V` is GNU's.

use netboot_ltsconf::{Client, Dialect, Kind, Severity, parse, render, resolve, version};
use proptest::prelude::*;
use std::process::Command;

/// Keys that are shell names and not in the known-variable table (no value-rule warnings).
fn key() -> impl Strategy<Value = String> {
    "K[A-Z0-9_]{0,12}"
}

/// Any text without NUL; newlines only where the dialect can hold them.
fn value(newlines: bool) -> impl Strategy<Value = String> {
    let special = prop::sample::select(vec![
        "\"",
        "'",
        "$",
        "`",
        "\\",
        "#",
        "=",
        "[",
        "]",
        ";",
        " ",
        "\t",
        "\r",
        "$(id)",
        "${x}",
        "~",
        "*",
        "NONE",
        "é",
        "\n",
        "\n[x]",
        "\nINCLUDE=y",
        "\nA=b",
        "'\\''",
    ]);
    let piece = prop_oneof![
        any::<String>(),
        special.prop_map(str::to_string),
        "[ -~]{0,6}"
    ];
    prop::collection::vec(piece, 0..6).prop_map(move |v| {
        let s: String = v.concat().replace('\0', "");
        if newlines { s } else { s.replace('\n', " ") }
    })
}

fn lts5_value() -> impl Strategy<Value = String> {
    value(false).prop_filter("NONE means unset", |v| !v.eq_ignore_ascii_case("none"))
}

/// Distinct keys with values.
fn vars(newlines: bool) -> impl Strategy<Value = Vec<(String, String)>> {
    prop::collection::btree_map(key(), value(newlines), 0..8).prop_map(|m| m.into_iter().collect())
}

fn lts5_vars() -> impl Strategy<Value = Vec<(String, String)>> {
    // At least one: an empty lts.conf section is an error.
    prop::collection::btree_map(key(), lts5_value(), 1..8).prop_map(|m| m.into_iter().collect())
}

fn file(dialect: Dialect, section: &str, vars: &[(String, String)]) -> String {
    let mut text = format!("[{section}]\n");
    for (k, v) in vars {
        text.push_str(&render::entry_line(dialect, k, v).expect("representable"));
    }
    text
}

fn resolved(text: &str, dialect: Dialect) -> Vec<(String, String)> {
    let doc = parse(text, dialect);
    let errors: Vec<String> = doc
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .map(|d| d.render("gen", text))
        .collect();
    assert!(errors.is_empty(), "{text:?}\n{}", errors.concat());
    for d in &doc.diagnostics {
        assert_eq!(d.kind, Kind::QuoteInValue, "unexpected warning {d}");
    }
    let r = resolve(&doc, &Client::default());
    let mut got: Vec<(String, String)> = r
        .vars
        .iter()
        .map(|v| (v.name.to_string(), v.value.to_string()))
        .collect();
    got.sort();
    got
}

/// Runs `script` in dash and returns what it printed.
fn dash(script: &str) -> Vec<u8> {
    let sh = netboot_testkit::require_tool("dash");
    let out = Command::new(sh)
        .arg("-c")
        .arg(script)
        .output()
        .expect("run dash");
    assert!(
        out.status.success(),
        "dash failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn lts5_render_then_parse(vars in lts5_vars()) {
        let text = file(Dialect::Lts5, "Default", &vars);
        prop_assert_eq!(resolved(&text, Dialect::Lts5), vars);
    }

    #[test]
    fn ltsp19_render_then_parse(vars in vars(true)) {
        let text = file(Dialect::Ltsp19, "clients", &vars);
        prop_assert_eq!(resolved(&text, Dialect::Ltsp19), vars);
    }

    #[test]
    fn parse_never_panics(text in any::<String>()) {
        for dialect in [Dialect::Lts5, Dialect::Ltsp19] {
            let doc = parse(&text, dialect);
            let _ = resolve(&doc, &Client { mac: Some("aa:bb:cc:dd:ee:ff"), ip: Some("1.2.3.4"), hostname: Some("x") });
        }
    }
}

proptest! {
    // Each case starts a dash process: fewer cases, several variables each.
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// The shell rendering, eval'd by a real dash, gives every value back byte for byte
    /// (and runs none of the `$(...)` or backticks inside them).
    #[test]
    fn shell_output_evals_to_the_same_bytes(vars in vars(true)) {
        let text = file(Dialect::Ltsp19, "clients", &vars);
        let doc = parse(&text, Dialect::Ltsp19);
        let r = resolve(&doc, &Client::default());
        let (sh, skipped) = render::shell(&r);
        prop_assert!(skipped.is_empty());
        let mut script = format!("eval {}\n", netboot_ltsconf::quote(&sh));
        for (k, _) in &vars {
            script.push_str(&format!("printf '%s\\000' \"${k}\"\n"));
        }
        let out = dash(&script);
        let want: Vec<u8> = vars.iter().flat_map(|(_, v)| v.bytes().chain([0])).collect();
        prop_assert_eq!(String::from_utf8_lossy(&out), String::from_utf8_lossy(&want));
    }

    /// `version::sort_v` orders lines exactly as `LC_ALL=C sort -V`.
    #[test]
    fn sort_v_matches_gnu_sort(lines in prop::collection::vec("(RCFILE|FSTAB|X)_[0-9a-zA-Z_.~-]{0,8}=[ -~]{0,6}", 1..12)) {
        let mut ours = lines.clone();
        ours.sort_by(|a, b| version::sort_v(a, b));
        let input: String = lines.iter().map(|l| format!("{l}\n")).collect();
        let script = format!("printf '%s' {} | LC_ALL=C sort -V", netboot_ltsconf::quote(&input));
        let out = String::from_utf8(dash(&script)).unwrap();
        let gnu: Vec<&str> = out.lines().collect();
        prop_assert_eq!(ours, gnu);
    }
}
