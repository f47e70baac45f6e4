//! One fixture per rule of the two dialects (research notes §2–§7), written for this project.

use netboot_ltsconf::{Client, Dialect, Document, Kind, Reason, Severity, parse, render, resolve};

fn lts5(src: &str) -> Document<'_> {
    parse(src, Dialect::Lts5)
}

fn ltsp19(src: &str) -> Document<'_> {
    parse(src, Dialect::Ltsp19)
}

/// (kind, severity, line, column) of every diagnostic.
fn diags(doc: &Document<'_>) -> Vec<(Kind, Severity, u32, u32)> {
    doc.diagnostics
        .iter()
        .map(|d| (d.kind, d.severity, d.span.line, d.span.column))
        .collect()
}

fn vars(doc: &Document<'_>, client: &Client<'_>) -> Vec<(String, String)> {
    resolve(doc, client)
        .vars
        .iter()
        .map(|v| (v.name.to_string(), v.value.to_string()))
        .collect()
}

fn default_vars(doc: &Document<'_>) -> Vec<(String, String)> {
    vars(doc, &Client::default())
}

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

const E: Severity = Severity::Error;
const W: Severity = Severity::Warning;

#[test]
fn lts5_values_are_trimmed_quoted_or_commented() {
    let doc = lts5(
        "[Default]\n\tA\t=\tv v\t\nB = v # c\nC=v#c\nD = \"q # = [x]\"\nE = \"  s  \"\nF = \"\"\n",
    );
    assert_eq!(diags(&doc), []);
    assert_eq!(
        default_vars(&doc),
        pairs(&[
            ("A", "v v"),
            ("B", "v"),
            ("C", "v"),
            ("D", "q # = [x]"),
            ("E", "  s  "),
            ("F", "")
        ])
    );
}

#[test]
fn lts5_quotes_run_to_the_last_quote_of_the_line() {
    let doc = lts5("[Default]\nA = \"x\" # c \"y\"\n");
    assert_eq!(diags(&doc), [(Kind::QuoteInValue, W, 2, 6)]);
    assert_eq!(default_vars(&doc), pairs(&[("A", "x\" # c \"y")]));
}

#[test]
fn lts5_value_on_the_next_line() {
    let doc = lts5("[Default]\nA =\n   val\n");
    assert_eq!(diags(&doc), [(Kind::ValueOnNextLine, W, 3, 4)]);
    assert_eq!(default_vars(&doc), pairs(&[("A", "val")]));
}

#[test]
fn lts5_missing_value_takes_the_next_key_for_getltscfg() {
    let doc = lts5("[Default]\nA =\nB = 2\n");
    assert_eq!(diags(&doc), [(Kind::Syntax, E, 2, 3)]);
    assert!(doc.diagnostics[0].message.contains("takes `B`"));
    // We recover and read B; getltscfg would have A="B" and then stop.
    assert_eq!(default_vars(&doc), pairs(&[("B", "2")]));
    assert_eq!(default_vars(&doc.as_getltscfg_would()), pairs(&[]));
}

#[test]
fn lts5_unquoted_equals_or_bracket_ends_the_value() {
    let doc = lts5("[Default]\nA = x=y\nB = 1\n");
    assert_eq!(diags(&doc), [(Kind::UnquotedSpecial, E, 2, 6)]);
    assert_eq!(default_vars(&doc), pairs(&[("A", "x"), ("B", "1")]));
    // getltscfg keeps A="x" and loses everything after.
    assert_eq!(
        default_vars(&doc.as_getltscfg_would()),
        pairs(&[("A", "x")])
    );

    let two = lts5("[Default]\nA=1 B=2\n");
    assert_eq!(diags(&two), [(Kind::UnquotedSpecial, E, 2, 6)]);
    assert_eq!(default_vars(&two), pairs(&[("A", "1 B")]));

    let bracket = lts5("[Default]\nA = x[1]\n");
    assert_eq!(diags(&bracket)[0].0, Kind::UnquotedSpecial);
}

#[test]
fn lts5_single_quotes_and_lone_double_quotes() {
    let doc = lts5("[Default]\nA='x y'\n");
    assert_eq!(
        diags(&doc),
        [(Kind::SingleQuote, E, 2, 3), (Kind::SingleQuote, E, 2, 7)]
    );
    assert_eq!(default_vars(&doc), pairs(&[("A", "x y")]));
    let lone = lts5("[Default]\nA = \"abc\n");
    assert_eq!(diags(&lone), [(Kind::UnterminatedQuote, E, 2, 5)]);
    assert_eq!(default_vars(&lone), pairs(&[("A", "abc")]));
}

#[test]
fn lts5_semicolon_is_not_a_comment() {
    let doc = lts5("[Default]\n; old setting\nA = 1\n");
    assert_eq!(diags(&doc), [(Kind::UnknownConstruct, E, 2, 1)]);
    assert_eq!(default_vars(&doc), pairs(&[("A", "1")]));
    assert_eq!(default_vars(&doc.as_getltscfg_would()), pairs(&[]));
}

#[test]
fn lts5_comment_on_the_last_line_needs_a_newline() {
    let doc = lts5("[Default]\nA = 1\n# end");
    assert_eq!(diags(&doc), [(Kind::Syntax, E, 3, 1)]);
    assert!(!lts5("[Default]\nA = 1\n# end\n").has_errors());
}

#[test]
fn lts5_headers() {
    let doc = lts5("[ h1 ]\nA = 1\n[\"h2\"]\nB = 2\n[Default] \n  C = 3\n");
    assert_eq!(diags(&doc), []);
    let names: Vec<_> = doc.sections.iter().map(|s| s.name.text).collect();
    assert_eq!(names, ["h1", "h2", "Default"]);

    let open = lts5("[Default\nA = 1\n");
    assert_eq!(diags(&open), [(Kind::Syntax, E, 1, 9)]);
    let globs = lts5("[10.0.0.[0-9]]\nA = 1\n");
    assert_eq!(diags(&globs)[0], (Kind::Syntax, E, 1, 9));
}

#[test]
fn lts5_empty_sections_and_keys_before_any_section() {
    let doc = lts5("[x]\n# nothing\n[y]\nA = 1\n");
    assert_eq!(diags(&doc), [(Kind::EmptySection, E, 1, 1)]);
    assert_eq!(doc.as_getltscfg_would().sections.len(), 0);
    let at_end = lts5("[Default]\nA = 1\n[late]\n");
    assert_eq!(diags(&at_end), [(Kind::EmptySection, E, 3, 1)]);
    assert_eq!(at_end.as_getltscfg_would().sections.len(), 1);

    let early = lts5("A = 1\n[Default]\nB = 2\n");
    assert_eq!(diags(&early), [(Kind::KeyBeforeSection, E, 1, 1)]);
    assert_eq!(default_vars(&early), pairs(&[("B", "2")]));
    assert_eq!(default_vars(&early.as_getltscfg_would()), pairs(&[]));
    // Only comments: fine, and nothing set.
    assert!(lts5("# only\n\n").diagnostics.is_empty());
    assert!(lts5("").diagnostics.is_empty());
}

#[test]
fn lts5_crlf() {
    let doc = lts5("[Default]\r\nA = 1\r\n");
    assert_eq!(diags(&doc), [(Kind::Crlf, E, 1, 10)]);
    assert_eq!(default_vars(&doc), pairs(&[("A", "1")]));
    assert_eq!(default_vars(&doc.as_getltscfg_would()), pairs(&[]));
    // A `\r` that trim() eats (after an unquoted value, or in a comment) is harmless.
    let soft = lts5("[Default] # c\r\nA = 1\r\n");
    assert_eq!(diags(&soft), [(Kind::Crlf, W, 1, 14)]);
}

#[test]
fn lts5_keys_are_case_insensitive_and_upper_cased() {
    let doc = lts5("[Default]\nmy_key = 1\nMY_KEY = 2\n");
    assert_eq!(diags(&doc), [(Kind::DuplicateKey, W, 3, 1)]);
    assert_eq!(default_vars(&doc), pairs(&[("MY_KEY", "2")]));
    let bad = lts5("[Default]\nMY KEY = 2\n");
    assert_eq!(diags(&bad), [(Kind::BadKey, E, 2, 1)]);
    let r = resolve(&bad, &Client::default());
    let (sh, skipped) = render::shell(&r);
    assert_eq!((sh.as_str(), skipped.len()), ("", 1));
}

#[test]
fn lts5_none_unsets() {
    let doc = lts5("[Default]\nA = 1\nB = 2\n[aa:bb:cc:dd:ee:ff]\nA = none\n");
    let c = Client {
        mac: Some("aa:bb:cc:dd:ee:ff"),
        ..Client::default()
    };
    assert_eq!(vars(&doc, &c), pairs(&[("B", "2")]));
    let r = resolve(&doc, &c);
    assert_eq!(r.explain("a").len(), 2, "NONE is still explained");
}

#[test]
fn lts5_include_is_reported_not_followed() {
    let doc = lts5("include /etc/ltsp/more.conf\n[Default]\nA = 1\n");
    assert_eq!(diags(&doc), [(Kind::UnknownConstruct, W, 1, 1)]);
    assert_eq!(doc.includes[0].text, "/etc/ltsp/more.conf");
    assert_eq!(default_vars(&doc), pairs(&[("A", "1")]));
}

const FARM: &str = "\
[Default]
SERVER = 198.18.0.1
RCFILE_10 = ten
RCFILE_2 = two
RCFILE_1 = one
[pc01]
WHO = hostname
LIKE = group
[198.18.0.5]
WHO = ip
[AA:BB:CC:DD:EE:01]
WHO = mac
[group]
WHO = group
GROUP = yes
LIKE = deeper
[deeper]
DEEP = yes
GROUP = deeper
[198.18.0.*]
NET = ip-glob
[198.*]
NET = wider
WIDE = yes
[aa:bb:cc:*]
MACGLOB = yes
NET = mac-glob
[pc*]
NET = host-glob
";

#[test]
fn lts5_precedence_exact_like_globs_default() {
    let doc = lts5(FARM);
    assert_eq!(diags(&doc), []);
    let all = Client {
        mac: Some("aa:bb:cc:dd:ee:01"),
        ip: Some("198.18.0.5"),
        hostname: Some("pc01"),
    };
    let r = resolve(&doc, &all);
    let chain: Vec<(&str, Reason)> = r
        .chain
        .iter()
        .map(|l| (doc.sections[l.section].name.text, l.reason))
        .collect();
    use netboot_ltsconf::Id::*;
    assert_eq!(
        chain,
        [
            ("pc01", Reason::Exact(Hostname)),
            ("group", Reason::Like { from: 1 }),
            ("deeper", Reason::Like { from: 4 }),
            ("pc*", Reason::Glob(Hostname)),
            ("198.18.0.*", Reason::Glob(Ip)),
            ("aa:bb:cc:*", Reason::Glob(Mac)),
            ("Default", Reason::Default),
        ]
    );
    let get = |k: &str| r.get(k).map(|v| v.value.to_string());
    assert_eq!(get("WHO").as_deref(), Some("hostname"));
    assert_eq!(get("GROUP").as_deref(), Some("yes"), "nearer LIKE wins");
    assert_eq!(get("NET").as_deref(), Some("host-glob"));
    assert_eq!(
        get("WIDE"),
        None,
        "only the first glob per identity applies"
    );
    // Without a hostname, the IP section is the exact one and the MAC section is ignored.
    let r2 = resolve(
        &doc,
        &Client {
            hostname: None,
            ..all
        },
    );
    assert_eq!(r2.get("who").unwrap().value, "ip");
    assert_eq!(r2.get("net").unwrap().value, "ip-glob");
    // MAC only: matched case-insensitively.
    let r3 = resolve(
        &doc,
        &Client {
            mac: all.mac,
            ..Client::default()
        },
    );
    assert_eq!(r3.get("who").unwrap().value, "mac");
    assert_eq!(r3.get("net").unwrap().value, "mac-glob");
    // Numbered lists in sort -V order.
    let rc: Vec<_> = r
        .list("RCFILE_")
        .iter()
        .map(|v| v.value.to_string())
        .collect();
    assert_eq!(rc, ["one", "two", "ten"]);
}

#[test]
fn lts5_duplicate_sections_first_wins_and_default_like_is_ignored() {
    let doc =
        lts5("[Default]\nLIKE = extra\nA = 1\n[extra]\nX = 1\n[pc]\nB = first\n[PC]\nB = second\n");
    assert_eq!(diags(&doc), [(Kind::DuplicateSection, W, 8, 1)]);
    let c = Client {
        hostname: Some("pc"),
        ..Client::default()
    };
    assert_eq!(vars(&doc, &c), pairs(&[("A", "1"), ("B", "first")]));
}

#[test]
fn lts5_like_missing_and_cycles_never_hang() {
    let doc = lts5(
        "[a]\nLIKE = b\n[b]\nLIKE = c\n[c]\nLIKE = A\nX = 1\n[d]\nLIKE = nowhere\n[e]\nlike = e\n",
    );
    assert_eq!(
        diags(&doc),
        [
            (Kind::LikeCycle, E, 6, 1),
            (Kind::LikeMissing, W, 9, 8),
            (Kind::LikeCycle, E, 11, 1),
        ]
    );
    assert!(doc.diagnostics[0].message.contains("[a] → [b] → [c] → [a]"));
    let r = resolve(
        &doc,
        &Client {
            hostname: Some("a"),
            ..Client::default()
        },
    );
    assert_eq!(r.chain.len(), 3);
    assert_eq!(r.get("x").unwrap().value, "1");
}

#[test]
fn lts5_getltscfg_format_is_byte_exact() {
    let doc = lts5("[Default]\nb = 2\nA = \"x $y\"\n");
    let r = resolve(&doc, &Client::default());
    assert_eq!(
        render::getltscfg(&r),
        "B=\"2\"\nA=\"x $y\"\nexport B\nexport A\n"
    );
    assert_eq!(render::unsafe_values(&r).collect::<Vec<_>>(), ["A"]);
}

#[test]
fn lts5_known_variable_rules() {
    let doc = lts5(
        "[Default]\nLTSP_NBD_TO_RAM = True\nLDM_DIRECTX = 1\nVOLUME = loud\nLDM_LENGUAGE = eu\n",
    );
    let kinds: Vec<_> = diags(&doc).iter().map(|d| (d.0, d.2)).collect();
    assert_eq!(
        kinds,
        [
            (Kind::Value, 2),
            (Kind::Value, 3),
            (Kind::Value, 4),
            (Kind::Value, 5)
        ]
    );
    assert!(doc.diagnostics[0].message.contains("lowercase `true`"));
}

#[test]
fn ltsp19_sections_run_in_ltsp_order() {
    let doc = ltsp19(
        "A=unnamed\n[server]\nNAT=1\nA=server\n[common]\nA=common\nC=common\n[clients]\nA=clients\nB=clients\n\
         [52:54:00:*]\nA=mac-glob\n[52:54:00:12:34:56]\nA=never\n[198.18.0.*]\nIP=yes\n[pc01]\nA=host\n",
    );
    assert_eq!(diags(&doc), []);
    let c = Client {
        mac: Some("52:54:00:12:34:56"),
        ip: Some("198.18.0.9"),
        hostname: Some("pc01"),
    };
    let r = resolve(&doc, &c);
    let names: Vec<_> = r
        .chain
        .iter()
        .map(|l| doc.sections[l.section].pattern.to_string())
        .collect();
    assert_eq!(
        names,
        [
            "unnamed",
            "clients",
            "common",
            "52:54:00:*",
            "198.18.0.*",
            "pc01"
        ]
    );
    let get = |k: &str| r.get(k).map(|v| v.value.to_string());
    assert_eq!(get("A").as_deref(), Some("host"));
    assert_eq!(get("B").as_deref(), Some("clients"));
    assert_eq!(get("NAT"), None, "[server] is not for clients");
    // Hostnames are not lower-cased, patterns are.
    let upper = resolve(
        &doc,
        &Client {
            hostname: Some("PC01"),
            ..Client::default()
        },
    );
    assert_eq!(upper.get("A").unwrap().value, "common");
}

#[test]
fn ltsp19_alternatives_include_and_once_guard() {
    let doc = ltsp19(
        "[clients]\nINCLUDE=group\nX=after\n[b8:27:eb:*|dc:a6:32:*]\nPI=1\n[group]\nX=group\nY=group\nINCLUDE=Group\nINCLUDE = clients\n",
    );
    assert_eq!(diags(&doc), []);
    let r = resolve(
        &doc,
        &Client {
            mac: Some("dc:a6:32:01:02:03"),
            ..Client::default()
        },
    );
    assert_eq!(r.get("X").unwrap().value, "after");
    assert_eq!(r.get("Y").unwrap().value, "group");
    assert_eq!(r.get("PI").unwrap().value, "1");
    assert_eq!(r.chain.len(), 3);
}

#[test]
fn ltsp19_star_first_hijacks_everything() {
    let doc = ltsp19("[*]\nA=star\n[clients]\nA=clients\n");
    let r = resolve(&doc, &Client::default());
    assert_eq!(r.get("A").unwrap().value, "star");
    assert_eq!(r.chain.len(), 1);
}

#[test]
fn ltsp19_duplicate_sections_last_definition_wins() {
    let doc = ltsp19(
        "[clients]\nA=1\n[lab.a]\nB=first\n[clients]\nA=2\n[lab-a]\nB=second\n[x]\nINCLUDE=lab.a\n",
    );
    assert_eq!(
        diags(&doc),
        [
            (Kind::DuplicateSection, W, 1, 1),
            (Kind::DuplicateSection, W, 3, 1)
        ]
    );
    let r = resolve(
        &doc,
        &Client {
            hostname: Some("x"),
            ..Client::default()
        },
    );
    assert_eq!(r.get("A").unwrap().value, "2");
    assert_eq!(r.get("B").unwrap().value, "second");
}

#[test]
fn ltsp19_values_are_shell_words() {
    let doc = ltsp19(
        "[clients]\nA = \"v w\"\nB='it''s'\nC=\"${nfs_ip}:/home\"\nD=plain # comment\nE=\nF=\"multi\nline\"\n",
    );
    assert_eq!(diags(&doc), []);
    let r = resolve(&doc, &Client::default());
    let get = |k: &str| r.get(k).map(|v| v.value.to_string()).unwrap();
    assert_eq!(get("A"), "v w");
    assert_eq!(get("B"), "its");
    assert_eq!(
        get("C"),
        "\"${nfs_ip}:/home\"",
        "expansions stay as written"
    );
    assert_eq!(get("D"), "plain");
    assert_eq!(get("E"), "");
    assert_eq!(get("F"), "multi\nline");
}

#[test]
fn ltsp19_problems() {
    let doc = ltsp19("[clients]\nA = a b\n  B = v\n  C=v\nLIKE=x\n[default]\nD=\"open\n");
    assert_eq!(
        diags(&doc),
        [
            (Kind::Syntax, E, 2, 7),
            (Kind::UnknownConstruct, E, 3, 3),
            (Kind::UnknownConstruct, W, 4, 3),
            (Kind::UnknownConstruct, W, 5, 1),
            (Kind::UnknownConstruct, W, 6, 1),
            (Kind::UnterminatedQuote, E, 7, 3),
        ]
    );
    let mangled = ltsp19("[clients]\nX=\"first\n[not a header]\"\n");
    assert_eq!(diags(&mangled), [(Kind::Syntax, E, 3, 1)]);
    let crlf = ltsp19("[clients]\r\nA=1\r\n");
    assert_eq!(diags(&crlf), [(Kind::Crlf, E, 2, 4)]);
    let known = ltsp19("[clients]\nIMAGE_TO_RAM=true\nRCFILE_1=x\n");
    assert_eq!(
        diags(&known),
        [(Kind::Value, W, 2, 1), (Kind::Value, W, 3, 1)]
    );
}

#[test]
fn ltsp19_lists_are_byte_ordered_and_skip_empty() {
    let doc = ltsp19(
        "[clients]\nFSTAB_2=b\nFSTAB_10=c\nFSTAB_1=a\nFSTAB_3=\nPOST_INIT_b=2\nPOST_INIT_a=1\n",
    );
    let r = resolve(&doc, &Client::default());
    let fstab: Vec<_> = r
        .list("FSTAB_")
        .iter()
        .map(|v| v.value.to_string())
        .collect();
    assert_eq!(fstab, ["a", "c", "b"]);
    let post: Vec<_> = r
        .list("POST_INIT_")
        .iter()
        .map(|v| v.name.to_string())
        .collect();
    assert_eq!(post, ["POST_INIT_a", "POST_INIT_b"]);
}

#[test]
fn dialect_detection() {
    assert_eq!(Dialect::detect("[clients]\nA=1\n"), Dialect::Ltsp19);
    assert_eq!(Dialect::detect("# /bin/sh -n\n"), Dialect::Ltsp19);
    assert_eq!(Dialect::detect("[x]\nINCLUDE = y\n"), Dialect::Ltsp19);
    assert_eq!(Dialect::detect("[Default]\nLIKE = x\n"), Dialect::Lts5);
}

#[test]
fn caret_excerpt() {
    let src = "[Default]\nA = x=y\n";
    let doc = lts5(src);
    assert_eq!(
        doc.diagnostics[0]
            .render("farm.conf", src)
            .lines()
            .skip(1)
            .collect::<Vec<_>>(),
        [" 2 | A = x=y", "   |      ^"]
    );
}

#[test]
fn ltsp19_hostname_set_by_a_mac_section_selects_the_hostname_section() {
    let doc = ltsp19(
        "[3c:07:71:a2:02:e3]\nHOSTNAME=pc01\n[pc01]\nINCLUDE=nvidia\n[nvidia]\nX_DRIVER=nvidia\n",
    );
    let r = resolve(
        &doc,
        &Client {
            mac: Some("3c:07:71:a2:02:e3"),
            hostname: Some("ltsp123"),
            ..Client::default()
        },
    );
    assert_eq!(
        r.get("X_DRIVER").map(|v| v.value.to_string()).as_deref(),
        Some("nvidia")
    );
    // Without the MAC section, the client's own name is used.
    let other = resolve(
        &doc,
        &Client {
            hostname: Some("pc01"),
            ..Client::default()
        },
    );
    assert!(other.get("X_DRIVER").is_some());
    let none = resolve(
        &doc,
        &Client {
            hostname: Some("pc02"),
            ..Client::default()
        },
    );
    assert!(none.get("X_DRIVER").is_none());
}
