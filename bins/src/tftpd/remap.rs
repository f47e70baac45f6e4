//! Filename remap rules (`--remap FILE`, `remap =` in the config): an ordered list of
//! rewrites applied to the requested name before root confinement, in the spirit of
//! tftpd-hpa's `--map-file` but without regular expressions (no backtracking, no surprises).
//!
//! # Syntax
//!
//! One rule per line; blank lines and lines starting with `#` are ignored:
//!
//! ```text
//! OP[:FLAGS] PATTERN [REPLACEMENT]
//! backslash[:FLAGS]
//! ```
//!
//! - `exact`: the whole name equals PATTERN → it becomes REPLACEMENT.
//! - `prefix`: the name starts with PATTERN → that prefix becomes REPLACEMENT.
//! - `replace`: every occurrence of PATTERN (left to right, not overlapping) becomes
//!   REPLACEMENT.
//! - `backslash`: every `\` becomes `/` (Windows-style clients).
//!
//! FLAGS are letters: `i` compares ASCII case-insensitively, `s` stops after this rule when it
//! matched (a "final" rule). REPLACEMENT may be omitted or written `""` for nothing. In
//! PATTERN and REPLACEMENT, `\s` stands for a space and `\\` for a backslash.
//!
//! Rules run in file order, each on the result of the ones before. The result is then
//! checked like any requested name (no `..`, resolved beneath the root), so a rule can
//! rename within the root but never reach outside it; a result longer than
//! [`super::fs::MAX_NAME_LEN`] is refused.
//!
//! ```text
//! # Windows clients, old menu paths, a case-insensitive prefix
//! backslash
//! prefix:i  /tftpboot/         ""
//! exact:s   pxelinux.cfg/Default pxelinux.cfg/default
//! replace   //                 /
//! ```

use std::path::Path;

/// What a rule does when it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Exact,
    Prefix,
    Replace,
    Backslash,
}

/// One line of the rules file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    op: Op,
    pattern: Vec<u8>,
    replacement: Vec<u8>,
    nocase: bool,
    stop: bool,
}

/// The ordered rules; empty means names pass unchanged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Remap {
    rules: Vec<Rule>,
}

/// A name the rules grew past this many bytes is refused (a rule like `replace a aa`
/// repeated could otherwise double it per rule).
const MAX_LEN: usize = super::fs::MAX_NAME_LEN;

impl Remap {
    /// Reads and parses a rules file; errors name the file and line.
    pub fn load(path: &Path) -> Result<Remap, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Remap::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parses rules text (see the module docs).
    pub fn parse(text: &str) -> Result<Remap, String> {
        let mut rules = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let rule = parse_rule(line).map_err(|e| format!("line {}: {e}", i + 1))?;
            rules.push(rule);
        }
        Ok(Remap { rules })
    }

    /// Whether there are no rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Applies the rules to `name`; `None` when the result grew too long.
    pub fn apply(&self, name: &[u8]) -> Option<Vec<u8>> {
        let mut cur = name.to_vec();
        for r in &self.rules {
            let matched = match r.op {
                Op::Backslash => {
                    let any = cur.contains(&b'\\');
                    cur.iter_mut()
                        .filter(|b| **b == b'\\')
                        .for_each(|b| *b = b'/');
                    any
                }
                Op::Exact => {
                    let hit = eq(&cur, &r.pattern, r.nocase);
                    if hit {
                        cur = r.replacement.clone();
                    }
                    hit
                }
                Op::Prefix => {
                    let hit = cur.len() >= r.pattern.len()
                        && eq(&cur[..r.pattern.len()], &r.pattern, r.nocase);
                    if hit {
                        let mut next = r.replacement.clone();
                        next.extend_from_slice(&cur[r.pattern.len()..]);
                        cur = next;
                    }
                    hit
                }
                Op::Replace => match replace_all(&cur, &r.pattern, &r.replacement, r.nocase) {
                    Some(next) => {
                        cur = next;
                        true
                    }
                    None => false,
                },
            };
            if cur.len() > MAX_LEN {
                return None;
            }
            if matched && r.stop {
                break;
            }
        }
        Some(cur)
    }
}

fn eq(a: &[u8], b: &[u8], nocase: bool) -> bool {
    if nocase {
        a.eq_ignore_ascii_case(b)
    } else {
        a == b
    }
}

/// Every non-overlapping occurrence of `pat` replaced; `None` when there is none. Stops
/// early once the result is over [`MAX_LEN`] (the caller refuses it anyway).
fn replace_all(s: &[u8], pat: &[u8], with: &[u8], nocase: bool) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut i = 0;
    let mut hit = false;
    while i < s.len() {
        if s.len() - i >= pat.len() && eq(&s[i..i + pat.len()], pat, nocase) {
            out.extend_from_slice(with);
            i += pat.len();
            hit = true;
            if out.len() > MAX_LEN {
                break;
            }
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    if hit {
        out.extend_from_slice(&s[i.min(s.len())..]);
        Some(out)
    } else {
        None
    }
}

fn parse_rule(line: &str) -> Result<Rule, String> {
    let mut words = line.split_whitespace();
    let head = words.next().unwrap_or_default();
    let (op, flags) = head.split_once(':').unwrap_or((head, ""));
    let op = match op {
        "exact" => Op::Exact,
        "prefix" => Op::Prefix,
        "replace" => Op::Replace,
        "backslash" => Op::Backslash,
        _ => {
            return Err(format!(
                "unknown rule {op:?} (exact, prefix, replace or backslash)"
            ));
        }
    };
    let (mut nocase, mut stop) = (false, false);
    for f in flags.chars() {
        match f {
            'i' => nocase = true,
            's' => stop = true,
            _ => return Err(format!("unknown flag {f:?} (i or s)")),
        }
    }
    let words: Vec<&str> = words.collect();
    let (pattern, replacement) = match (op, words.as_slice()) {
        (Op::Backslash, []) => (Vec::new(), Vec::new()),
        (Op::Backslash, _) => return Err("backslash takes no arguments".into()),
        (_, [p]) => (unescape(p)?, Vec::new()),
        (_, [p, r]) => (unescape(p)?, unescape(r)?),
        _ => return Err("expected PATTERN and an optional REPLACEMENT".into()),
    };
    if op != Op::Backslash && pattern.is_empty() {
        return Err("empty pattern".into());
    }
    Ok(Rule {
        op,
        pattern,
        replacement,
        nocase,
        stop,
    })
}

/// `""` is empty; `\s` is a space, `\\` a backslash; any other escape is an error.
fn unescape(word: &str) -> Result<Vec<u8>, String> {
    if word == "\"\"" {
        return Ok(Vec::new());
    }
    let mut out = Vec::with_capacity(word.len());
    let mut it = word.bytes();
    while let Some(b) = it.next() {
        if b != b'\\' {
            out.push(b);
            continue;
        }
        match it.next() {
            Some(b's') => out.push(b' '),
            Some(b'\\') => out.push(b'\\'),
            _ => return Err(format!("{word:?}: only \\s and \\\\ are escapes")),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(rules: &str, name: &str) -> Option<String> {
        let r = Remap::parse(rules).unwrap();
        r.apply(name.as_bytes())
            .map(|v| String::from_utf8(v).unwrap())
    }

    #[test]
    fn rules_apply_in_order() {
        let rules = "# comment\n\nbackslash\nprefix:i /TFTPBOOT/ \"\"\nexact:s pxelinux.cfg/Default pxelinux.cfg/default\nreplace // /\n";
        assert_eq!(run(rules, "\\tftpboot\\a\\b").as_deref(), Some("a/b"));
        assert_eq!(run(rules, "/TftpBoot/x//y").as_deref(), Some("x/y"));
        // `s` stops: the `replace` after it does not run.
        assert_eq!(
            run(rules, "pxelinux.cfg/Default").as_deref(),
            Some("pxelinux.cfg/default")
        );
        // Case-sensitive by default.
        assert_eq!(
            run(rules, "pxelinux.cfg/DEFAULT").as_deref(),
            Some("pxelinux.cfg/DEFAULT")
        );
        assert_eq!(run("exact:i A B", "a").as_deref(), Some("B"));
        assert_eq!(run("exact A B", "a").as_deref(), Some("a"));
        // Later rules see earlier results; a non-matching `s` rule does not stop.
        assert_eq!(
            run("exact:s x y\nprefix a b\nprefix b c", "aq").as_deref(),
            Some("cq")
        );
        assert_eq!(run("replace:i AB x", "abAbaB-ab").as_deref(), Some("xxx-x"));
        assert_eq!(run("replace aa b", "aaa").as_deref(), Some("ba"));
        assert_eq!(run("replace \\s _", "a b c").as_deref(), Some("a_b_c"));
        assert_eq!(run("replace \\\\ /", "a\\b").as_deref(), Some("a/b"));
        assert_eq!(run("prefix x", "xy").as_deref(), Some("y"));
    }

    /// Random rules over a small alphabet full of `.`, `/` and `\\`, applied to random
    /// names: whatever they produce, the name that reaches the file system has no `..`
    /// component and is relative (the kernel's `RESOLVE_BENEATH` is the second guard).
    #[test]
    fn no_rule_output_passes_confinement_with_a_parent_component() {
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        let alphabet = [".", "..", "/", "a", "\\\\", "../", "/.."];
        let word = |next: &mut dyn FnMut(u64) -> u64| {
            let len = 1 + next(4);
            (0..len)
                .map(|_| alphabet[next(alphabet.len() as u64) as usize])
                .collect::<String>()
        };
        let ops = [
            "exact",
            "prefix",
            "replace",
            "exact:i",
            "prefix:s",
            "replace:is",
        ];
        for _ in 0..3000 {
            let mut text = String::new();
            for _ in 0..1 + next(4) {
                if next(5) == 0 {
                    text.push_str("backslash\n");
                    continue;
                }
                let op = ops[next(ops.len() as u64) as usize];
                let (p, r) = (word(&mut next), word(&mut next));
                text.push_str(&format!("{op} {p} {r}\n"));
            }
            let rules = Remap::parse(&text).unwrap();
            let name = word(&mut next).replace("\\\\", "\\");
            let Some(mapped) = rules.apply(name.as_bytes()) else {
                continue;
            };
            for map_backslash in [false, true] {
                if let Ok(rel) = super::super::fs::relative_name(&mapped, map_backslash) {
                    assert!(
                        !rel.split(|&b| b == b'/').any(|c| c == b"..")
                            && rel.first() != Some(&b'/'),
                        "{text:?} on {name:?} gave {:?}",
                        String::from_utf8_lossy(&rel)
                    );
                }
            }
        }
    }

    #[test]
    fn growth_is_bounded() {
        let rules = "replace a aaaaaaaa\n".repeat(10);
        assert_eq!(run(&rules, "aaaa"), None);
        assert_eq!(run(&rules, "bbbb").as_deref(), Some("bbbb"));
    }

    #[test]
    fn bad_rules_name_the_line() {
        for (text, want) in [
            ("regex a b", "line 1: unknown rule"),
            ("\nprefix:q a b", "line 2: unknown flag"),
            ("prefix", "line 1: expected PATTERN"),
            ("prefix a b c", "line 1: expected PATTERN"),
            ("backslash x", "line 1: backslash takes no arguments"),
            ("exact \"\" x", "line 1: empty pattern"),
            ("exact a\\n b", "line 1: \"a\\\\n\": only"),
        ] {
            let e = Remap::parse(text).unwrap_err();
            assert!(e.starts_with(want), "{text:?}: {e}");
        }
    }
}
