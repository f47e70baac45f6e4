//! The real lts.conf / ltsp.conf files of the shared corpus (other people's data, read in
//! place, never copied): `NETBOOT_CORPUS_DIR` names the corpus root and the files are in its
//! `ltsconf/` folder. CI sets it; when it is set the folder must exist.

use netboot_ltsconf::{Client, Dialect, Kind, Severity, parse, render, resolve};
use std::path::PathBuf;

/// What each known file must produce: (file-name prefix, expected diagnostic kinds with their
/// lines). Files not listed must parse without errors (or with errors, when named *INVALID*).
/// A diagnostic's kind, severity and line.
type Expected = (Kind, Severity, u32);

const EXPECTED: &[(&str, &[Expected])] = &[
    ("01-", &[]),
    ("02-", &[]),
    ("03-", &[]),
    (
        "04-",
        &[
            (Kind::DuplicateKey, Severity::Warning, 16),
            (Kind::DuplicateKey, Severity::Warning, 18),
            (Kind::DuplicateKey, Severity::Warning, 20),
        ],
    ),
    // NEWT_COLORS="root=,black" #window=...": the quotes run to the last `"`.
    ("05-", &[(Kind::QuoteInValue, Severity::Warning, 41)]),
    ("06-", &[]),
    // LDM_LENGUAGE: a typo of LDM_LANGUAGE that LTSP ignores.
    ("07-", &[(Kind::Value, Severity::Warning, 10)]),
    (
        "08-",
        &[
            (Kind::KeyBeforeSection, Severity::Error, 2),
            (Kind::SingleQuote, Severity::Error, 7),
            (Kind::SingleQuote, Severity::Error, 7),
            (Kind::SingleQuote, Severity::Error, 8),
            (Kind::SingleQuote, Severity::Error, 8),
        ],
    ),
    ("09-", &[]),
    ("10-", &[]),
];

fn corpus() -> Option<Vec<PathBuf>> {
    let Some(root) = std::env::var_os("NETBOOT_CORPUS_DIR") else {
        eprintln!("NETBOOT_CORPUS_DIR is not set: the ltsconf corpus test did not run");
        return None;
    };
    let dir = PathBuf::from(root).join("ltsconf");
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| {
        panic!(
            "NETBOOT_CORPUS_DIR is set but {} cannot be read: {e}",
            dir.display()
        )
    });
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("readable directory entry").path())
        .filter(|p| p.to_string_lossy().ends_with(".conf"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no *.conf files in {}", dir.display());
    Some(files)
}

fn dialect_of(name: &str) -> Dialect {
    if name.ends_with("ltsp.conf") {
        Dialect::Ltsp19
    } else {
        Dialect::Lts5
    }
}

#[test]
fn every_corpus_file_parses_as_expected() {
    let Some(files) = corpus() else { return };
    let mut checked = 0;
    for path in &files {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let text = std::fs::read_to_string(path).expect("corpus files are UTF-8");
        let dialect = dialect_of(&name);
        if !name.contains("INVALID") {
            assert_eq!(Dialect::detect(&text), dialect, "{name}: detected dialect");
        }
        let doc = parse(&text, dialect);
        let got: Vec<(Kind, Severity, u32)> = doc
            .diagnostics
            .iter()
            .map(|d| (d.kind, d.severity, d.span.line))
            .collect();
        let shown: Vec<String> = doc
            .diagnostics
            .iter()
            .map(|d| d.render(&name, &text))
            .collect();
        match EXPECTED.iter().find(|(p, _)| name.starts_with(p)) {
            Some((_, want)) => {
                assert_eq!(&got, want, "{name}:\n{}", shown.concat());
                checked += 1;
            }
            None if name.contains("INVALID") => {
                assert!(doc.has_errors(), "{name} must produce errors")
            }
            None => assert!(!doc.has_errors(), "{name}:\n{}", shown.concat()),
        }
        if name.contains("INVALID") {
            assert!(doc.has_errors(), "{name} must produce errors");
        }
        // Resolving works for anyone, and its shell rendering is complete.
        for client in [
            Client::default(),
            Client {
                mac: Some("00:11:25:84:ce:ba"),
                ip: Some("192.168.100.123"),
                hostname: Some("administrator-pc"),
            },
        ] {
            for d in [doc.clone(), doc.as_getltscfg_would()] {
                let r = resolve(&d, &client);
                let (sh, skipped) = render::shell(&r);
                assert!(skipped.is_empty(), "{name}: {skipped:?}");
                assert_eq!(sh.is_empty(), r.vars.is_empty(), "{name}");
            }
        }
    }
    assert_eq!(
        checked,
        EXPECTED.len(),
        "every expected corpus file was found"
    );
}

fn load(prefix: &str) -> Option<String> {
    let files = corpus()?;
    let path = files
        .iter()
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
        .unwrap_or_else(|| panic!("corpus file {prefix}* missing"));
    Some(std::fs::read_to_string(path).unwrap())
}

fn value(text: &str, dialect: Dialect, client: Client<'_>, key: &str) -> Option<String> {
    let doc = parse(text, dialect);
    resolve(&doc, &client).get(key).map(|v| v.value.to_string())
}

#[test]
fn corpus_files_resolve_like_ltsp() {
    let Some(t02) = load("02-") else { return };
    let mac = |m| Client {
        mac: Some(m),
        ..Client::default()
    };
    // Upper-case MAC section, lower-case client MAC (as getltscfg prints it).
    assert_eq!(
        value(&t02, Dialect::Lts5, mac("00:11:25:84:ce:ba"), "XSERVER").as_deref(),
        Some("vesa")
    );
    assert_eq!(
        value(&t02, Dialect::Lts5, mac("00:11:25:84:ce:ba"), "SOUND").as_deref(),
        Some("True")
    );
    let t06 = load("06-").unwrap();
    let ip = Client {
        ip: Some("192.168.100.123"),
        ..Client::default()
    };
    assert_eq!(
        value(&t06, Dialect::Lts5, ip, "LDM_USERNAME").as_deref(),
        Some("kvaps")
    );
    assert_eq!(
        value(&t06, Dialect::Lts5, Client::default(), "LDM_USERNAME"),
        None
    );
    let t03 = load("03-").unwrap();
    let doc = parse(&t03, Dialect::Lts5);
    let r = resolve(&doc, &Client::default());
    let rc: Vec<_> = r
        .list("RCFILE_")
        .iter()
        .map(|v| v.name.to_string())
        .collect();
    assert_eq!(rc.len(), 7);
    assert!(rc.windows(2).all(|w| w[0] < w[1]), "{rc:?}");
    let t08 = load("08-").unwrap();
    let doc = parse(&t08, Dialect::Lts5);
    assert!(
        resolve(&doc.as_getltscfg_would(), &Client::default())
            .vars
            .is_empty(),
        "getltscfg keeps nothing of a file whose first key has no section"
    );
    let t10 = load("10-").unwrap();
    assert_eq!(
        value(
            &t10,
            Dialect::Ltsp19,
            mac("5c:9a:d8:67:09:3f"),
            "PWMERGE_SUR"
        )
        .as_deref(),
        Some("lehrer")
    );
    assert_eq!(
        value(&t10, Dialect::Ltsp19, Client::default(), "FSTAB_NFS").as_deref(),
        Some("\"${nfs_ip}:/home/nfs /home nfs defaults,nolock 0 0\"")
    );
    // The ltsp19 template read as lts5 fails like getltscfg (empty sections).
    let t09 = load("09-").unwrap();
    assert!(
        parse(&t09, Dialect::Lts5)
            .diagnostics
            .iter()
            .any(|d| d.kind == Kind::EmptySection)
    );
}
