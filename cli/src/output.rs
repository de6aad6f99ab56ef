//! What commands print: aligned tables for people (the default) and JSON for
//! scripts (`-o json`, one document on stdout). Messages for people go to
//! stderr, so stdout stays parseable.

use serde_json::Value;

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
        Table {
            headers: headers.to_vec(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The table as text, columns separated by at least three spaces; empty
    /// cells show as `-`.
    pub fn render(&self) -> String {
        let cell = |row: &[String], i: usize| {
            row.get(i)
                .filter(|c| !c.is_empty())
                .map_or("-", String::as_str)
                .replace('\n', " ")
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

/// Print a JSON document on stdout.
pub fn print_json(value: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
    );
}

/// Unix seconds as RFC 3339 (UTC).
pub fn rfc3339(secs: u64) -> String {
    i64::try_from(secs)
        .ok()
        .and_then(|s| chrono::DateTime::from_timestamp(s, 0))
        .map_or_else(
            || secs.to_string(),
            |t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligns_columns_and_marks_empty_cells() {
        let mut t = Table::new(&["NAME", "ID"]);
        t.row(vec!["prod".into(), "c_1".into()]);
        t.row(vec!["a-longer-name".into(), String::new()]);
        assert_eq!(
            t.render(),
            "NAME            ID\nprod            c_1\na-longer-name   -\n"
        );
    }

    #[test]
    fn formats_timestamps() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
    }
}
