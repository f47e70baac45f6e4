//! Section-name matching: `fnmatch(3)` with `FNM_CASEFOLD` and no flags for lts5 (`*`, `?`,
//! `\`; brackets cannot occur in an lts.conf header), and the shell `case` patterns ini2sh
//! writes for ltsp19 (`*`, `?`, `|` alternatives; everything else was deleted).

/// Does `pattern` match `text`? `*` matches any run (including `.` and `:`), `?` one byte,
/// `\x` the byte `x`. `fold` compares ASCII case-insensitively. Linear-time two-pointer walk
/// with a single backtrack point, so no input can make it slow.
pub fn fnmatch(pattern: &str, text: &str, fold: bool) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let eq = |a: u8, b: u8| {
        if fold {
            a.eq_ignore_ascii_case(&b)
        } else {
            a == b
        }
    };
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some(b'*') => {
                star = Some((pi + 1, ti));
                pi += 1;
                continue;
            }
            Some(b'?') => {
                pi += 1;
                ti += 1;
                continue;
            }
            Some(b'\\') if pi + 1 < p.len() && eq(p[pi + 1], t[ti]) => {
                pi += 2;
                ti += 1;
                continue;
            }
            Some(&c) if c != b'\\' && eq(c, t[ti]) => {
                pi += 1;
                ti += 1;
                continue;
            }
            _ => {}
        }
        match star {
            Some((sp, st)) => {
                pi = sp;
                ti = st + 1;
                star = Some((sp, st + 1));
            }
            None => return false,
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// ltsp19: does the `case` pattern `pattern` (alternatives split on `|`) match `text`?
/// Case-sensitive, as in the shell: ini2sh lower-cases patterns but not the hostname.
pub fn case_match(pattern: &str, text: &str) -> bool {
    pattern.split('|').any(|alt| fnmatch(alt, text, false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnmatch_like_libc() {
        assert!(fnmatch("192.168.0.*", "192.168.0.5", true));
        assert!(fnmatch("*", "", true));
        assert!(fnmatch("52:54:00:AA:*", "52:54:00:aa:00:07", true));
        assert!(!fnmatch("52:54:00:AA:*", "52:54:00:aa:00:07", false));
        assert!(fnmatch("pc?1", "pc01", true));
        assert!(!fnmatch("pc?1", "pc1", true));
        assert!(fnmatch("a*b*c", "aXbYbZc", true));
        assert!(!fnmatch("a*b*c", "aXbYbZ", true));
        assert!(fnmatch("a\\*", "a*", true));
        assert!(!fnmatch("a\\*", "ab", true));
        assert!(fnmatch("10.*", "10.0.0.1", true));
    }

    #[test]
    fn case_patterns_alternate_and_keep_case() {
        assert!(case_match("b8:27:eb:*|dc:a6:32:*", "dc:a6:32:00:11:22"));
        assert!(!case_match("pc01", "PC01"));
    }
}
