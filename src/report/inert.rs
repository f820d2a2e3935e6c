//! Untrusted text made inert before it reaches a terminal.
//!
//! Much of what rampart shows comes from elsewhere: rule comments, error
//! output and facts a host printed, host names and values from inventory
//! and ssh_config files. A terminal interprets some characters: ESC starts
//! a sequence that can recolour, move the cursor, rewrite lines already
//! shown, set the window title (or worse on some terminals); a carriage
//! return overwrites the line; bidi controls reorder what is displayed.
//! So the human report, the progress lines and rampart's own messages on
//! stderr pass every such text through [`text`] (multi-line text) or
//! [`line`] (a field that must stay on one line, like a host name).
//!
//! Notation (docs/design.md, "Formats"): a C0 control character other than
//! newline and tab, and DEL, is written `\xHH` (ESC is `\x1b`, CR `\x0d`);
//! a C1 control (U+0080 to U+009F) or a bidi control (U+061C, U+200E,
//! U+200F, U+202A to U+202E, U+2066 to U+2069) is written `\u{HHHH}` (the
//! Rust notation, lowercase hex). [`line`] also writes newline as `\x0a`
//! (tab stays). Everything else, backslashes included, is shown as is: the
//! JSON report carries the exact text.
//!
//! JSON (`--format json`): serde escapes C0 controls (`\u001b`); [`json`]
//! also escapes DEL, C1 and bidi controls, which JSON allows raw. JUnit:
//! [`xml`] replaces what XML 1.0 forbids.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Does `c` need escaping before a terminal shows it? Newline and tab are
/// the caller's choice.
fn unsafe_char(c: char) -> bool {
    let u = c as u32;
    u < 0x20
        || (0x7f..=0x9f).contains(&u)
        || matches!(u, 0x061c | 0x200e | 0x200f | 0x202a..=0x202e | 0x2066..=0x2069)
}

fn escape(s: &str, keep_newline: bool) -> Cow<'_, str> {
    let keep = |c: char| c == '\t' || (keep_newline && c == '\n');
    if !s.chars().any(|c| unsafe_char(c) && !keep(c)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if !unsafe_char(c) || keep(c) {
            out.push(c);
        } else if (c as u32) < 0x80 {
            let _ = write!(out, "\\x{:02x}", c as u32);
        } else {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
    }
    Cow::Owned(out)
}

/// Text that may span lines (an error, a diff): newlines and tabs kept,
/// every other control escaped.
pub fn text(s: &str) -> Cow<'_, str> {
    escape(s, true)
}

/// One field of one line (a host name, an address, an OS id): newlines are
/// escaped too, so no field can forge a line of the report.
pub fn line(s: &str) -> Cow<'_, str> {
    escape(s, false)
}

/// A JSON document (as serde_json prints it) with DEL, C1 and bidi
/// controls escaped as `\uXXXX`: outside strings, a JSON document has
/// ASCII only, so each such character is inside a string, where the escape
/// means the same character. serde_json already escapes C0 controls.
pub fn json(doc: &str) -> Cow<'_, str> {
    if !doc.chars().any(|c| unsafe_char(c) && c as u32 >= 0x20) {
        return Cow::Borrowed(doc);
    }
    let mut out = String::with_capacity(doc.len() + 8);
    for c in doc.chars() {
        if unsafe_char(c) && c as u32 >= 0x20 {
            let _ = write!(out, "\\u{:04x}", c as u32);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Text for XML 1.0 character data or attribute values: markup characters
/// as entities; the characters XML 1.0 forbids (C0 controls other than tab,
/// newline and carriage return; U+FFFE, U+FFFF) replaced by their
/// [`text`] notation, so a CI viewer neither rejects the file nor loses
/// the information; DEL, C1 and bidi controls (allowed, but a terminal or
/// a browser interprets them) written the same way. In attributes, tab,
/// newline and carriage return are character references, since an XML
/// parser would turn them into spaces.
pub fn xml(s: &str, attribute: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' if attribute => {
                let _ = write!(out, "&#{};", c as u32);
            }
            '\t' | '\n' => out.push(c),
            '\u{fffe}' | '\u{ffff}' => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c if unsafe_char(c) => out.push_str(&escape(&c.to_string(), false)),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_are_escaped_text_is_not() {
        assert!(matches!(text("plain é 🦀 \\ text\n\tok"), Cow::Borrowed(_)));
        assert_eq!(text("a\u{1b}[2Jb"), "a\\x1b[2Jb");
        assert_eq!(text("over\rwrite\n"), "over\\x0dwrite\n");
        assert_eq!(text("\0\u{7f}"), "\\x00\\x7f");
        assert_eq!(text("csi\u{9b}31m"), "csi\\u{9b}31m");
        assert_eq!(
            text("evil\u{202e}txt.exe\u{2066}x\u{2069}"),
            "evil\\u{202e}txt.exe\\u{2066}x\\u{2069}"
        );
        assert_eq!(line("two\nlines\tkept"), "two\\x0alines\tkept");
    }

    #[test]
    fn json_escapes_what_serde_leaves_raw() {
        let doc = serde_json::to_string(&serde_json::json!({"c": "a\u{1b}b\u{9b}c\u{7f}\u{202e}"}))
            .unwrap_or_default();
        assert!(doc.contains("\\u001b"), "{doc}");
        let safe = json(&doc);
        assert_eq!(safe, "{\"c\":\"a\\u001bb\\u009bc\\u007f\\u202e\"}");
        let back: serde_json::Value = serde_json::from_str(&safe).unwrap_or_default();
        assert_eq!(back["c"], "a\u{1b}b\u{9b}c\u{7f}\u{202e}", "same text");
    }

    #[test]
    fn xml_has_no_forbidden_characters() {
        assert_eq!(
            xml("a<b & \"c\"\u{1b}[0m\u{ffff}", false),
            "a&lt;b &amp; &quot;c&quot;\\x1b[0m\\u{ffff}"
        );
        assert_eq!(xml("l1\nl2\tx\r", false), "l1\nl2\tx\\x0d");
        assert_eq!(xml("l1\nl2\tx\r", true), "l1&#10;l2&#9;x&#13;");
    }
}
