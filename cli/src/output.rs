//! What commands print: aligned tables for people (the default) and JSON for
//! scripts (`-o json`, one document on stdout). Messages for people go to
//! stderr, so stdout stays parseable.
//!
//! Text for people passes through [`escape`]: names, emails and the errors
//! agents report come from the control plane (and through it from agents), and
//! a control character in them (ESC, CR, BEL, …) would otherwise reach the
//! terminal and could rewrite what it shows. Every human printer goes through
//! it: [`Table`] escapes every cell, [`note`] (stderr: messages, errors,
//! warnings) and [`say`] (stdout: `whoami`) every line. JSON output is never
//! escaped: it is the document, exact (serde_json writes control characters
//! as `\u001b` escapes anyway).

use std::borrow::Cow;

use serde_json::Value;

/// Whether `c` must not reach a terminal raw: the C0 and C1 control
/// characters, DEL, and Unicode's bidirectional formatting characters (which
/// reorder what follows them on screen).
fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `text` with every control character shown as a Rust-style escape: `\n`,
/// `\r`, `\t`, and `\u{1b}` (hex code point) for the rest. Everything else,
/// backslashes included, is kept as it is.
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_unsafe) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if is_unsafe(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// A multi-line message for people: every line through [`escape`], the line
/// breaks kept.
pub fn escape_lines(text: &str) -> String {
    text.split('\n').map(escape).collect::<Vec<_>>().join("\n")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns for people.
    #[default]
    Table,
    /// One JSON document on stdout.
    Json,
}

/// A table: headers and rows of cells, printed with aligned columns.
pub struct Table {
    headers: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: &[&'static str]) -> Table {
        Table { headers: headers.to_vec(), rows: Vec::new() }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The table as text, columns separated by at least three spaces; empty
    /// cells show as `-`, control characters as escapes ([`escape`]).
    pub fn render(&self) -> String {
        let cell = |row: &[String], i: usize| {
            escape(row.get(i).filter(|c| !c.is_empty()).map_or("-", String::as_str)).into_owned()
        };
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, w) in widths.iter_mut().enumerate() {
                *w = (*w).max(cell(row, i).chars().count());
            }
        }
        let mut out = String::new();
        let mut line = |cells: Vec<String>| {
            let last = cells.len().saturating_sub(1);
            let mut text = String::new();
            for (i, c) in cells.iter().enumerate() {
                text.push_str(c);
                if i < last {
                    text.push_str(&" ".repeat(widths[i] - c.chars().count() + 3));
                }
            }
            out.push_str(text.trim_end());
            out.push('\n');
        };
        line(self.headers.iter().map(|h| (*h).to_owned()).collect());
        for row in &self.rows {
            line((0..self.headers.len()).map(|i| cell(row, i)).collect());
        }
        out
    }

    pub fn print(&self) {
        print!("{}", self.render());
    }
}

/// A message for people on stderr, every line through [`escape`].
pub fn note(text: &str) {
    eprintln!("{}", escape_lines(text));
}

/// A line of human output on stdout, through [`escape`].
pub fn say(text: &str) {
    println!("{}", escape_lines(text));
}

/// Print a JSON document on stdout.
pub fn print_json(value: &Value) {
    println!("{}", serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligns_columns_and_marks_empty_cells() {
        let mut t = Table::new(&["NAME", "ID"]);
        t.row(vec!["prod".into(), "c_1".into()]);
        t.row(vec!["a-longer-name".into(), String::new()]);
        assert_eq!(t.render(), "NAME            ID\nprod            c_1\na-longer-name   -\n");
    }

    #[test]
    fn escapes_control_characters_and_nothing_else() {
        assert!(matches!(escape("plain text, ünïcode \\ backslash"), Cow::Borrowed(_)));
        assert_eq!(
            escape("a\u{1b}[31mred\rb\nc\td\u{7}\u{7f}\u{9b}e\u{202e}f"),
            "a\\u{1b}[31mred\\rb\\nc\\td\\u{7}\\u{7f}\\u{9b}e\\u{202e}f"
        );
        assert_eq!(escape_lines("first\u{1b}\nsecond\r"), "first\\u{1b}\nsecond\\r");
        let mut t = Table::new(&["ERROR"]);
        t.row(vec!["boom\u{1b}[2J\r\nx".into()]);
        let text = t.render();
        assert!(!text.chars().any(|c| c.is_control() && c != '\n'), "{text:?}");
        assert_eq!(text, "ERROR\nboom\\u{1b}[2J\\r\\nx\n");
    }
}
