//! Text normalisation exactly as PyLate/BEIR do it in Python.
//!
//! Contract: [`py_strip`] removes leading and trailing characters for which Python's
//! `str.isspace()` is true, which is what `str.strip()` (no argument) removes. That set is
//! Rust's `char::is_whitespace` plus the four ASCII separators U+001C..U+001F (checked
//! over all of Unicode against a Python-generated fixture). [`document_text`] is PyLate's
//! `f"{title} {text}".strip()`.

/// True for the characters Python's `str.isspace()` accepts.
pub fn is_py_whitespace(c: char) -> bool {
    matches!(
        c,
        '\t'..='\r'
            | '\u{1c}'..='\u{1f}'
            | ' '
            | '\u{85}'
            | '\u{a0}'
            | '\u{1680}'
            | '\u{2000}'..='\u{200a}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{202f}'
            | '\u{205f}'
            | '\u{3000}'
    )
}

/// Python's `s.strip()`.
pub fn py_strip(s: &str) -> &str {
    s.trim_matches(is_py_whitespace)
}

/// The text PyLate encodes for a BEIR document: `f"{title} {text}".strip()`. A missing
/// title counts as empty (BEIR's loader would print `None` there; nobody wants that).
pub fn document_text(title: &str, text: &str) -> String {
    let mut s = String::with_capacity(title.len() + 1 + text.len());
    s.push_str(title);
    s.push(' ');
    s.push_str(text);
    let stripped = py_strip(&s);
    if stripped.len() == s.len() {
        s
    } else {
        stripped.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strip_matches_python_on_separators_and_unicode_spaces() {
        // Python: ' \x1cab\x1f '.strip() == 'ab'; Rust's trim() would keep \x1c and \x1f.
        assert_eq!(py_strip(" \u{1c}ab\u{1f} "), "ab");
        assert_eq!(" \u{1c}ab\u{1f} ".trim(), "\u{1c}ab\u{1f}");
        assert_eq!(py_strip("\u{3000}\u{a0}x y\u{2029}"), "x y");
        // zero-width space is not whitespace for Python
        assert_eq!(py_strip("\u{200b}x"), "\u{200b}x");
    }

    #[test]
    fn document_text_is_title_space_text_stripped() {
        assert_eq!(document_text("T", "body"), "T body");
        assert_eq!(document_text("", "body "), "body");
        assert_eq!(document_text("T", ""), "T");
        assert_eq!(document_text("", ""), "");
        assert_eq!(document_text(" T ", " b"), "T   b");
    }
}
