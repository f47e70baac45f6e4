//! The indexed [`Resolver`] against a literal, scan-everything model of LTSP's rules
//! (research notes §4 and §7), on generated files: the index must change speed, not answers.

use netboot_ltsconf::{Client, Dialect, EntryKind, Resolver, fnmatch, parse};
use proptest::prelude::*;

/// getltscfg, literally: sections are scanned in file order for every lookup.
fn lts5_model(text: &str, c: &Client<'_>) -> Vec<usize> {
    let doc = parse(text, Dialect::Lts5);
    let s = &doc.sections;
    let by_name = |n: &str| s.iter().position(|x| x.name.text.eq_ignore_ascii_case(n));
    let ids: Vec<&str> = [c.hostname, c.ip, c.mac].into_iter().flatten().collect();
    let mut chain: Vec<usize> = Vec::new();
    let add = |chain: &mut Vec<usize>, i: usize| {
        if !chain.contains(&i) {
            chain.push(i);
        }
    };
    let expand = |chain: &mut Vec<usize>| {
        let mut k = 0;
        while k < chain.len() {
            for e in doc.entries_of(&s[chain[k]]) {
                if e.kind == EntryKind::Like
                    && let Some(t) = by_name(e.value.raw)
                {
                    add(chain, t);
                }
            }
            k += 1;
        }
    };
    if let Some(i) = ids.iter().find_map(|id| by_name(id)) {
        add(&mut chain, i);
    }
    expand(&mut chain);
    for id in &ids {
        if let Some(i) = s
            .iter()
            .position(|x| !x.name.text.eq_ignore_ascii_case(id) && fnmatch(x.name.text, id, true))
        {
            add(&mut chain, i);
            expand(&mut chain);
        }
    }
    if let Some(i) = by_name("default") {
        add(&mut chain, i);
    }
    chain
}

/// eval_ini, literally: each call runs the first matching section's last definition, once.
fn ltsp19_model(text: &str, c: &Client<'_>) -> Vec<usize> {
    let doc = parse(text, Dialect::Ltsp19);
    let s = &doc.sections;
    fn run(
        doc: &netboot_ltsconf::Document<'_>,
        name: &str,
        ran: &mut Vec<usize>,
        host: &mut Option<String>,
    ) {
        let s = &doc.sections;
        let Some(i) = s.iter().position(|x| {
            !x.unnamed && !x.pattern.is_empty() && netboot_ltsconf::case_match(&x.pattern, name)
        }) else {
            return;
        };
        let f = |p: &str| -> String {
            p.bytes()
                .map(|c| {
                    if c.is_ascii_lowercase() || c.is_ascii_digit() {
                        c as char
                    } else {
                        '_'
                    }
                })
                .collect()
        };
        let me = f(&s[i].pattern);
        let last = (0..s.len())
            .rev()
            .find(|&j| !s[j].unnamed && f(&s[j].pattern) == me)
            .unwrap();
        if ran.contains(&last) {
            return;
        }
        ran.push(last);
        for e in doc.entries_of(&s[last]) {
            if e.kind == EntryKind::Include {
                run(doc, &e.value.raw.to_ascii_lowercase(), ran, host);
            } else if e.key.text == "HOSTNAME" {
                *host = Some(e.value.raw.to_string());
            }
        }
    }
    let mut ran = Vec::new();
    let mut host = None;
    if let Some(u) = s.iter().position(|x| x.unnamed) {
        ran.push(u);
        for e in doc.entries_of(&s[u]) {
            if e.kind == EntryKind::Include {
                run(&doc, &e.value.raw.to_ascii_lowercase(), &mut ran, &mut host);
            } else if e.key.text == "HOSTNAME" {
                host = Some(e.value.raw.to_string());
            }
        }
    }
    for name in ["clients", "common"]
        .into_iter()
        .chain([c.mac, c.ip].into_iter().flatten())
    {
        run(&doc, name, &mut ran, &mut host);
    }
    if let Some(h) = host.or(c.hostname.map(str::to_string)) {
        run(&doc, &h, &mut ran, &mut None);
    }
    ran
}

fn chain_of(text: &str, dialect: Dialect, c: &Client<'_>) -> Vec<usize> {
    let doc = parse(text, dialect);
    let r = Resolver::new(&doc).resolve(c);
    r.chain.iter().map(|l| l.section).collect()
}

const NAMES: &[&str] = &[
    "Default",
    "default",
    "pc01",
    "PC01",
    "pc*",
    "10.0.0.5",
    "10.0.*",
    "10.*",
    "aa:bb:cc:dd:ee:01",
    "AA:BB:CC:*",
    "*",
    "grp",
    "other",
    "clients",
    "common",
    "x?y",
];

fn lts5_file() -> impl Strategy<Value = String> {
    let section = (
        prop::sample::select(NAMES),
        prop::collection::vec(prop::sample::select(NAMES), 0..3),
    );
    prop::collection::vec(section, 0..10).prop_map(|secs| {
        let mut t = String::new();
        for (name, likes) in secs {
            t.push_str(&format!("[{name}]\nA = {name}\n"));
            for l in likes {
                t.push_str(&format!("LIKE = {l}\n"));
            }
        }
        t
    })
}

fn ltsp19_file() -> impl Strategy<Value = String> {
    let pats = prop::sample::select(vec![
        "clients",
        "common",
        "pc01",
        "pc*",
        "10.0.0.5",
        "10.0.*",
        "aa:bb:cc:dd:ee:01",
        "aa:bb:*|10.*",
        "*",
        "grp",
        "g.r.p",
        "g-r-p",
        "server",
    ]);
    let section = (pats.clone(), prop::collection::vec(pats, 0..3));
    (prop::collection::vec(section, 0..10), any::<bool>()).prop_map(|(secs, unnamed)| {
        let mut t = String::new();
        if unnamed {
            t.push_str("INCLUDE=grp\nU=1\n");
        }
        for (name, incs) in secs {
            t.push_str(&format!("[{name}]\nA={}\n", name.replace('|', "_")));
            if name.starts_with("aa:") || name.starts_with("10.") {
                t.push_str("HOSTNAME=grp\n");
            }
            for i in incs {
                t.push_str(&format!("INCLUDE={i}\n"));
            }
        }
        t
    })
}

fn client() -> impl Strategy<
    Value = (
        Option<&'static str>,
        Option<&'static str>,
        Option<&'static str>,
    ),
> {
    (
        prop::option::of(prop::sample::select(vec![
            "aa:bb:cc:dd:ee:01",
            "aa:bb:cc:00:00:02",
            "11:22:33:44:55:66",
        ])),
        prop::option::of(prop::sample::select(vec![
            "10.0.0.5",
            "10.0.1.1",
            "10.9.9.9",
            "192.0.2.1",
        ])),
        prop::option::of(prop::sample::select(vec![
            "pc01", "PC01", "pc02", "xzy", "grp",
        ])),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn lts5_resolver_matches_the_model(text in lts5_file(), (mac, ip, hostname) in client()) {
        let c = Client { mac, ip, hostname };
        prop_assert_eq!(chain_of(&text, Dialect::Lts5, &c), lts5_model(&text, &c), "{}", text);
    }

    #[test]
    fn ltsp19_resolver_matches_the_model(text in ltsp19_file(), (mac, ip, hostname) in client()) {
        let c = Client { mac, ip, hostname };
        prop_assert_eq!(chain_of(&text, Dialect::Ltsp19, &c), ltsp19_model(&text, &c), "{}", text);
    }
}
