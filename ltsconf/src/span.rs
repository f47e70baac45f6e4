//! Positions in the input: every token and diagnostic carries one.

use std::ops::Range;

/// Where a token sits in its file: 1-based line and column (in bytes) and the byte range.
///
/// `Copy` and four words: the lexer fills it in as it goes (it already knows the line and the
/// line's start), so no token ever needs a second pass over the text to be located.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    /// 1-based line number.
    pub line: u32,
    /// 1-based column, counted in bytes.
    pub column: u32,
    /// Byte offset of the first byte.
    pub start: usize,
    /// Byte offset one past the last byte.
    pub end: usize,
}

impl Span {
    /// The span of `len` bytes at `offset` in `text`; offsets past the end are clamped.
    ///
    /// Counts lines from the start, so it is for one-off lookups (diagnostics found after
    /// parsing); the lexer builds spans incrementally instead.
    pub fn at(text: &str, offset: usize, len: usize) -> Span {
        let offset = offset.min(text.len());
        let before = &text.as_bytes()[..offset];
        let line_start = before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
        Span {
            line: saturate(line),
            column: saturate(offset - line_start + 1),
            start: offset,
            end: offset.saturating_add(len).min(text.len()),
        }
    }

    /// The byte range, for slicing the input.
    pub fn bytes(&self) -> Range<usize> {
        self.start..self.end
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.end - self.start
    }

    /// True when the span covers no byte (a position, e.g. end of file).
    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }
}

/// Line and column numbers beyond `u32::MAX` (a 4 GiB line) are clamped, never wrapped.
pub(crate) fn saturate(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_count_lines_and_columns_from_one() {
        let text = "# c\n[Default]\n  LDM_DIRECTX = True\n";
        let at = text.find("LDM").unwrap();
        assert_eq!(
            Span::at(text, at, 11),
            Span {
                line: 3,
                column: 3,
                start: at,
                end: at + 11
            }
        );
        assert_eq!(Span::at(text, 999, 5).bytes(), text.len()..text.len());
    }
}
