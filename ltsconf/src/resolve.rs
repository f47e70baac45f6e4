//! Resolution: the variables one client ends up with, by exactly LTSP's precedence for the
//! dialect, and where each came from.

use crate::model::{Dialect, Document, Entry, EntryKind};
use crate::names::{Fold, Key, NameMap};
use crate::{glob, known, ltsp19, version};
use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::BuildHasherDefault;

/// Who is asking: the identities LTSP matches section names against. Give the MAC in
/// lowercase with colons (what LTSP prints; see [`normalize_mac`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Client<'c> {
    /// Hardware address, `52:54:00:12:34:56`.
    pub mac: Option<&'c str>,
    /// IPv4 address, `198.18.0.10`.
    pub ip: Option<&'c str>,
    /// Host name, `node-1`.
    pub hostname: Option<&'c str>,
}

/// Which identity of the client a section matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Id {
    /// The host name.
    Hostname,
    /// The IP address.
    Ip,
    /// The MAC address.
    Mac,
}

/// Why a section applies to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// lts5: its name equals the client's identity (only one such section is used).
    Exact(Id),
    /// lts5: a `LIKE` in section `from` (an index into [`Document::sections`]) names it.
    Like {
        /// The section holding the `LIKE`.
        from: usize,
    },
    /// lts5: its name is a glob matching the identity (the first such section per identity).
    Glob(Id),
    /// lts5: `[Default]`, applied to everyone at the lowest priority.
    Default,
    /// ltsp19: the lines before the first header.
    Unnamed,
    /// ltsp19: it matched one of the fixed names LTSP calls for every client, `clients` or
    /// `common`.
    Special(&'static str),
    /// ltsp19: its `case` pattern was the first in the file to match the identity (for the
    /// host name: HOSTNAME as the MAC and IP sections left it, else the client's).
    Pattern(Id),
    /// ltsp19: an `INCLUDE=` in section `from` ran it.
    Include {
        /// The section holding the `INCLUDE=`.
        from: usize,
    },
}

/// One applied section: an index into [`Document::sections`] and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    /// Index into [`Document::sections`].
    pub section: usize,
    /// Why it applies.
    pub reason: Reason,
}

/// One assignment that applied to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    /// Index into [`Resolution::chain`].
    pub link: usize,
    /// Index into that section's entries ([`Document::entries_of`]).
    pub entry: usize,
}

/// One effective variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Var<'a> {
    /// The name as LTSP exports it (lts5: upper-cased).
    pub name: Cow<'a, str>,
    /// The value (see [`crate::Value::text`]).
    pub value: Cow<'a, str>,
    /// The assignment that won.
    pub setting: Setting,
}

/// The result of [`resolve`]: the sections that applied and the variables they produced.
#[derive(Debug, Clone)]
pub struct Resolution<'d, 'a> {
    /// The resolved document.
    pub doc: &'d Document<'a>,
    /// The sections that applied, highest priority first (lts5), or in the order they ran
    /// (ltsp19, where later ones win).
    pub chain: Vec<Link>,
    /// Every assignment that applied, the winning one first for each name.
    pub trace: Vec<Setting>,
    /// The effective variables, in LTSP's output order (lts5: getltscfg's order, the order of
    /// first assignment from `[Default]` upwards; ltsp19: order of first assignment), with each
    /// numbered family ([`known::family`]) gathered at its first member and sorted as LTSP runs
    /// it (see [`Resolution::list`]). lts5 `NONE` values are left out (unset).
    pub vars: Vec<Var<'a>>,
}

impl<'d, 'a> Resolution<'d, 'a> {
    /// The effective variable `name` (lts5: ASCII case-insensitive).
    pub fn get(&self, name: &str) -> Option<&Var<'a>> {
        self.vars
            .iter()
            .find(|v| crate::key_eq(self.doc.dialect, &v.name, name))
    }

    /// The entry behind a setting.
    pub fn entry(&self, s: Setting) -> &'d Entry<'a> {
        let section = &self.doc.sections[self.chain[s.link].section];
        &self.doc.entries_of(section)[s.entry]
    }

    /// The link (section and reason) behind a setting.
    pub fn link(&self, s: Setting) -> Link {
        self.chain[s.link]
    }

    /// Every assignment of `name` that applied, the winning one first: the answer to "where
    /// does this value come from, and what did it override?".
    pub fn explain(&self, name: &str) -> Vec<Setting> {
        self.trace
            .iter()
            .copied()
            .filter(|&s| crate::key_eq(self.doc.dialect, self.entry(s).key.text, name))
            .collect()
    }

    /// The values of the numbered family `prefix` (`RCFILE_`) in the order LTSP uses them.
    /// lts5: GNU `sort -V` of the whole `NAME=value` lines, so `RCFILE_2` runs before
    /// `RCFILE_10`. ltsp19: byte order of the names (`FSTAB_10` before `FSTAB_2`, as dash's
    /// `set` lists them), empty values skipped.
    pub fn list(&self, prefix: &str) -> Vec<&Var<'a>> {
        let dialect = self.doc.dialect;
        let mut v: Vec<&Var<'a>> = self
            .vars
            .iter()
            .filter(|v| v.name.len() > prefix.len() && crate::key_starts(dialect, &v.name, prefix))
            .filter(|v| dialect == Dialect::Lts5 || !v.value.is_empty())
            .collect();
        sort_family(dialect, &mut v);
        v
    }
}

fn sort_family(dialect: Dialect, v: &mut [&Var<'_>]) {
    match dialect {
        Dialect::Lts5 => {
            // `sort -V` compares whole `NAME=value` lines: build each line once.
            let mut lines: Vec<(String, &Var<'_>)> = v
                .iter()
                .map(|x| (format!("{}={}", x.name, x.value), *x))
                .collect();
            lines.sort_by(|a, b| version::sort_v(&a.0, &b.0));
            for (slot, (_, x)) in v.iter_mut().zip(lines) {
                *slot = x;
            }
        }
        Dialect::Ltsp19 => v.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes())),
    }
}

/// Lower-cases a MAC address and writes it with colons (`52-54-00-AA-BB-CC` and
/// `5254.00aa.bbcc` become `52:54:00:aa:bb:cc`), as LTSP sees it. `None` unless it is six
/// hexadecimal octets.
pub fn normalize_mac(mac: &str) -> Option<String> {
    let hex: Vec<u8> = mac
        .bytes()
        .filter(|c| !matches!(c, b':' | b'-' | b'.'))
        .collect();
    if hex.len() != 12 || !hex.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    let mut out = String::with_capacity(17);
    for (i, pair) in hex.chunks(2).enumerate() {
        if i > 0 {
            out.push(':');
        }
        out.extend(pair.iter().map(|c| char::from(c.to_ascii_lowercase())));
    }
    Some(out)
}

/// The variables `doc` gives `client`, by the dialect's rules. Works on any document,
/// including one with errors (it uses whatever was recovered); see
/// [`Document::as_getltscfg_would`] for what LTSP5 itself would use. Never loops: each
/// section is applied at most once, so a `LIKE` cycle ends. For many clients of one file, a
/// [`Resolver`] builds its index once.
pub fn resolve<'d, 'a>(doc: &'d Document<'a>, client: &Client<'_>) -> Resolution<'d, 'a> {
    Resolver::new(doc).resolve(client)
}

/// Resolves clients against one document, with the sections indexed by name so that each
/// resolve costs a few hash lookups plus a walk over the glob sections, not a scan of a
/// 10,000-section file.
#[derive(Debug, Clone)]
pub struct Resolver<'d, 'a> {
    doc: &'d Document<'a>,
    /// The first section of each name matched by equality (lts5: every section, ASCII
    /// case-insensitively; ltsp19: patterns without `*`, `?` or `|`, exactly).
    exact: NameMap<'d>,
    /// Sections whose name is a pattern, in file order.
    globs: Vec<usize>,
    /// ltsp19: for each section, the one whose body the shell runs (the last definition of
    /// the same function name).
    function: Vec<usize>,
}

impl<'d, 'a> Resolver<'d, 'a> {
    /// Indexes `doc` (one pass over its sections).
    pub fn new(doc: &'d Document<'a>) -> Resolver<'d, 'a> {
        let s = &doc.sections;
        let mut exact = NameMap::with_capacity_and_hasher(s.len(), Default::default());
        let mut globs = Vec::new();
        let mut function: Vec<usize> = (0..s.len()).collect();
        match doc.dialect {
            Dialect::Lts5 => {
                for (i, sec) in s.iter().enumerate() {
                    exact.entry(Key(sec.name.text, Fold::Ascii)).or_insert(i);
                    if sec
                        .name
                        .text
                        .bytes()
                        .any(|c| matches!(c, b'*' | b'?' | b'\\'))
                    {
                        globs.push(i);
                    }
                }
            }
            Dialect::Ltsp19 => {
                let mut last = NameMap::with_capacity_and_hasher(s.len(), Default::default());
                for (i, sec) in s.iter().enumerate() {
                    if sec.unnamed {
                        continue;
                    }
                    last.insert(Key(&sec.pattern, Fold::Function), i);
                    if sec.pattern.is_empty() {
                        continue;
                    }
                    if sec.pattern.bytes().any(|c| matches!(c, b'*' | b'?' | b'|')) {
                        globs.push(i);
                    } else {
                        exact.entry(Key(&sec.pattern, Fold::Exact)).or_insert(i);
                    }
                }
                for (i, sec) in s.iter().enumerate() {
                    if let Some(&l) = last.get(&Key(&sec.pattern, Fold::Function))
                        && !sec.unnamed
                    {
                        function[i] = l;
                    }
                }
            }
        }
        Resolver {
            doc,
            exact,
            globs,
            function,
        }
    }

    /// The first section (in file order) named `name`, by the dialect's equality.
    fn by_name(&self, name: &str) -> Option<usize> {
        let fold = match self.doc.dialect {
            Dialect::Lts5 => Fold::Ascii,
            Dialect::Ltsp19 => Fold::Exact,
        };
        self.exact.get(&Key(name, fold)).copied()
    }

    /// The variables the document gives `client`.
    pub fn resolve(&self, client: &Client<'_>) -> Resolution<'d, 'a> {
        let (chain, trace) = match self.doc.dialect {
            Dialect::Lts5 => self.lts5_chain(client),
            Dialect::Ltsp19 => self.ltsp19_chain(client),
        };
        let mut r = Resolution {
            doc: self.doc,
            chain,
            trace,
            vars: Vec::new(),
        };
        r.vars = merge(&r);
        r
    }

    /// getltscfg's chain: one exact section (hostname, then IP, then MAC), its `LIKE`s, then
    /// per identity the first glob section and its `LIKE`s, then `[Default]`.
    fn lts5_chain(&self, client: &Client<'_>) -> (Vec<Link>, Vec<Setting>) {
        let sections = &self.doc.sections;
        let mut chain: Vec<Link> = Vec::new();
        let mut used: Vec<usize> = Vec::new();
        let push = |chain: &mut Vec<Link>, used: &mut Vec<usize>, section: usize, reason| {
            // Chains are short: a linear check beats a bitmap the size of the file.
            if !used.contains(&section) {
                used.push(section);
                chain.push(Link { section, reason });
            }
        };
        let mut walked = 0;
        let expand = |chain: &mut Vec<Link>, used: &mut Vec<usize>, walked: &mut usize| {
            while *walked < chain.len() {
                let from = chain[*walked].section;
                for e in self.doc.entries_of(&sections[from]) {
                    if e.kind == EntryKind::Like
                        && let Some(t) = self.by_name(e.value.raw)
                    {
                        push(chain, used, t, Reason::Like { from });
                    }
                }
                *walked += 1;
            }
        };
        if let Some((id, i)) = ids(client).find_map(|(id, v)| self.by_name(v).map(|i| (id, i))) {
            push(&mut chain, &mut used, i, Reason::Exact(id));
        }
        expand(&mut chain, &mut used, &mut walked);
        for (id, v) in ids(client) {
            let hit = self.globs.iter().copied().find(|&i| {
                let name = sections[i].name.text;
                !name.eq_ignore_ascii_case(v) && glob::fnmatch(name, v, true)
            });
            if let Some(i) = hit {
                push(&mut chain, &mut used, i, Reason::Glob(id));
                expand(&mut chain, &mut used, &mut walked);
            }
        }
        if let Some(i) = self.by_name("default") {
            push(&mut chain, &mut used, i, Reason::Default);
        }
        // Highest priority first; inside a section the last duplicate wins.
        let trace = chain
            .iter()
            .enumerate()
            .flat_map(|(link, l)| {
                let entries = self.doc.entries_of(&sections[l.section]);
                (0..entries.len())
                    .rev()
                    .filter(move |&e| entries[e].kind == EntryKind::Assign)
                    .map(move |entry| Setting { link, entry })
            })
            .collect();
        (chain, trace)
    }

    /// ini2sh + eval_ini: `section_call unnamed clients common "$MAC" "$IP"`, then
    /// `section_call "$HOSTNAME"`; each call runs the first section (in file order) whose
    /// pattern matches, each section at most once, `INCLUDE=` inline.
    fn ltsp19_chain(&self, client: &Client<'_>) -> (Vec<Link>, Vec<Setting>) {
        let mut run = Run {
            resolver: self,
            chain: Vec::new(),
            ran: Vec::new(),
            order: Vec::new(),
        };
        if let Some(i) = self.doc.sections.iter().position(|s| s.unnamed) {
            run.section(i, Reason::Unnamed);
        }
        run.call("clients", Reason::Special("clients"));
        run.call("common", Reason::Special("common"));
        if let Some(mac) = client.mac {
            run.call(mac, Reason::Pattern(Id::Mac));
        }
        if let Some(ip) = client.ip {
            run.call(ip, Reason::Pattern(Id::Ip));
        }
        // `section_call "$HOSTNAME"` runs after the MAC and IP sections, which may set
        // HOSTNAME (`[3c:07:71:a2:02:e3]` `HOSTNAME=pc01`, then `[pc01]` applies).
        let set = run.order.iter().rev().map(|&st| {
            let l = run.chain[st.link];
            &self.doc.entries_of(&self.doc.sections[l.section])[st.entry]
        });
        let assigned = set
            .filter(|e| e.key.text == "HOSTNAME" && e.value.is_literal())
            .map(|e| e.value.text())
            .next();
        if let Some(h) = assigned.as_deref().or(client.hostname) {
            let h = h.to_string();
            run.call(&h, Reason::Pattern(Id::Hostname));
        }
        run.order.reverse();
        (run.chain, run.order)
    }
}

fn ids<'c>(client: &Client<'c>) -> impl Iterator<Item = (Id, &'c str)> {
    [
        (Id::Hostname, client.hostname),
        (Id::Ip, client.ip),
        (Id::Mac, client.mac),
    ]
    .into_iter()
    .filter_map(|(id, v)| v.map(|v| (id, v)))
}

struct Run<'r, 'd, 'a> {
    resolver: &'r Resolver<'d, 'a>,
    chain: Vec<Link>,
    /// The once-only guard, per function (the last section of each name).
    ran: Vec<usize>,
    /// Assignments in execution order.
    order: Vec<Setting>,
}

impl Run<'_, '_, '_> {
    fn call(&mut self, name: &str, reason: Reason) {
        let r = self.resolver;
        let exact = r.by_name(name);
        let glob = r
            .globs
            .iter()
            .copied()
            .take_while(|&g| exact.is_none_or(|e| g < e))
            .find(|&g| glob::case_match(&r.doc.sections[g].pattern, name));
        if let Some(i) = glob.or(exact) {
            self.section(i, reason);
        }
    }

    /// Runs the function of section `i`: with duplicate names the shell keeps the last
    /// definition.
    fn section(&mut self, i: usize, reason: Reason) {
        let sections = &self.resolver.doc.sections;
        let f = self.resolver.function[i];
        if self.ran.contains(&f) {
            return;
        }
        self.ran.push(f);
        let link = self.chain.len();
        self.chain.push(Link { section: f, reason });
        let doc = self.resolver.doc;
        for (entry, e) in doc.entries_of(&sections[f]).iter().enumerate() {
            match e.kind {
                EntryKind::Assign => self.order.push(Setting { link, entry }),
                EntryKind::Include => {
                    let target = ltsp19::sanitize(e.value.raw).to_ascii_lowercase();
                    self.call(&target, Reason::Include { from: f });
                }
                EntryKind::Like => {}
            }
        }
    }
}

/// Effective variables from the trace: the first setting of each name wins; positions follow
/// first assignment from the lowest priority up (getltscfg walks its chain from the tail).
fn merge<'a>(r: &Resolution<'_, 'a>) -> Vec<Var<'a>> {
    let dialect = r.doc.dialect;
    let mut vars: Vec<Var<'a>> = Vec::new();
    let mut at: HashMap<Cow<'a, str>, usize, BuildHasherDefault<crate::names::Fnv>> =
        HashMap::default();
    for &s in r.trace.iter().rev() {
        let e = r.entry(s);
        let name: Cow<'a, str> = match dialect {
            Dialect::Lts5 if e.key.text.bytes().any(|c| c.is_ascii_lowercase()) => {
                Cow::Owned(e.key.text.to_ascii_uppercase())
            }
            _ => Cow::Borrowed(e.key.text),
        };
        let var = Var {
            name: name.clone(),
            value: e.value.text(),
            setting: s,
        };
        match at.get(&name) {
            Some(&i) => vars[i] = var,
            None => {
                at.insert(name, vars.len());
                vars.push(var);
            }
        }
    }
    if dialect == Dialect::Lts5 {
        vars.retain(|v| !r.entry(v.setting).value.is_none());
    }
    group_families(dialect, vars)
}

/// Gathers each numbered family at its first member, sorted as LTSP runs it.
fn group_families<'a>(dialect: Dialect, vars: Vec<Var<'a>>) -> Vec<Var<'a>> {
    let fams: Vec<Option<&'static str>> = vars
        .iter()
        .map(|v| known::family(dialect, &v.name))
        .collect();
    if fams.iter().all(Option::is_none) {
        return vars;
    }
    let mut out: Vec<Var<'a>> = Vec::with_capacity(vars.len());
    let mut done: Vec<&'static str> = Vec::new();
    for (i, v) in vars.iter().enumerate() {
        match fams[i] {
            None => out.push(v.clone()),
            Some(f) if !done.contains(&f) => {
                done.push(f);
                let mut members: Vec<&Var<'a>> = vars
                    .iter()
                    .zip(&fams)
                    .filter(|(_, g)| **g == Some(f))
                    .map(|(v, _)| v)
                    .collect();
                sort_family(dialect, &mut members);
                out.extend(members.into_iter().cloned());
            }
            Some(_) => {}
        }
    }
    out
}
