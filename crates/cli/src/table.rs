//! `toolfan tools`' table: columns as wide as their widest cell (counted in
//! chars, not bytes), descriptions on one line and cut to a readable width.

use toolfan_protocol::ToolDescription;

/// Widest description shown; longer ones are cut, ending in `…`.
const DESCRIPTION_WIDTH: usize = 60;

/// The table of `tools`: a header line, then one line per tool.
pub(crate) fn tools_table(tools: &[ToolDescription]) -> String {
    let rows: Vec<[String; 3]> = tools
        .iter()
        .map(|tool| {
            [
                one_line(tool.name.as_str()),
                cut(&one_line(&tool.description), DESCRIPTION_WIDTH),
                arg_names(&tool.parameters),
            ]
        })
        .collect();
    let header = [
        "tool".to_owned(),
        "description".to_owned(),
        "args".to_owned(),
    ];
    let name_width = width(&rows, &header, 0);
    let description_width = width(&rows, &header, 1);
    let mut out = String::new();
    for [name, description, args] in std::iter::once(&header).chain(&rows) {
        let line = format!("{name:<name_width$}  {description:<description_width$}  {args}");
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// The widest cell of column `column`, header included, in chars.
fn width(rows: &[[String; 3]], header: &[String; 3], column: usize) -> usize {
    rows.iter()
        .chain(std::iter::once(header))
        .map(|row| row[column].chars().count())
        .max()
        .unwrap_or(0)
}

/// The names of the schema's properties, comma-separated.
fn arg_names(parameters: &serde_json::Value) -> String {
    parameters["properties"]
        .as_object()
        .map(|p| p.keys().map(|k| one_line(k)).collect::<Vec<_>>().join(","))
        .unwrap_or_default()
}

/// `text` with every run of whitespace or control chars (a newline, a tab)
/// made one space, so a cell never breaks or shifts its line.
fn one_line(text: &str) -> String {
    text.split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|word| !word.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// `text` cut to at most `max` chars, at a word boundary when one is near,
/// ending in `…` when cut.
fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let kept: String = text.chars().take(max - 1).collect();
    let kept = match kept.rfind(' ') {
        Some(space) if kept[..space].chars().count() >= max * 2 / 3 => &kept[..space],
        _ => kept.as_str(),
    };
    format!("{}…", kept.trim_end_matches([' ', ',', '.', ';', ':']))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tool(name: &str, description: &str, args: &[&str]) -> ToolDescription {
        let properties: serde_json::Map<String, serde_json::Value> = args
            .iter()
            .map(|a| ((*a).to_owned(), serde_json::json!({"type": "string"})))
            .collect();
        ToolDescription {
            name: name.parse().expect("a valid tool name"),
            description: description.to_owned(),
            parameters: serde_json::json!({"type": "object", "properties": properties}),
        }
    }

    /// The char offset of each column's start on `line` (columns are
    /// separated by two spaces or more).
    fn starts(line: &str, header: &str) -> Vec<usize> {
        let header: Vec<char> = header.chars().collect();
        let mut columns = vec![0];
        for i in 1..header.len() {
            if header[i] != ' ' && header[i - 1] == ' ' {
                columns.push(i);
            }
        }
        let chars: Vec<char> = line.chars().collect();
        // Every column start of the header is preceded by two spaces on the
        // row too (a row whose last cells are empty may end before them).
        for &c in columns[1..].iter().filter(|&&c| c < chars.len()) {
            assert_eq!(chars[c - 1], ' ', "{line:?} runs into column {c}");
            assert_eq!(chars[c - 2], ' ', "{line:?} runs into column {c}");
        }
        columns
    }

    #[test]
    fn every_row_starts_its_columns_at_the_header_offsets() {
        let long = "Searches the web for pages matching a query and returns the top results, \
                    ranked by relevance, with titles, URLs and snippets.";
        let tools = [
            tool("search", long, &["query", "limit"]),
            tool("a_tool_with_a_rather_long_name", "short", &["x"]),
            tool(
                "meteo",
                "Prévisions météo à Zürich — «aujourd’hui» 東京",
                &["ville"],
            ),
            tool("multi", "first line\nsecond\tline", &["a"]),
            tool("bare", "", &[]),
        ];
        let table = tools_table(&tools);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 6, "{table}");
        let header = lines[0];
        let columns = starts(header, header);
        assert_eq!(columns.len(), 3, "{header:?}");
        for (line, tool) in lines[1..].iter().zip(&tools) {
            starts(line, header);
            let chars: Vec<char> = line.chars().collect();
            let cell = |i: usize| -> String {
                let end = columns
                    .get(i + 1)
                    .copied()
                    .unwrap_or(chars.len())
                    .min(chars.len());
                chars[columns[i].min(end)..end]
                    .iter()
                    .collect::<String>()
                    .trim()
                    .to_owned()
            };
            assert_eq!(cell(0), tool.name.as_str(), "{line:?}");
            if !tool.parameters["properties"]
                .as_object()
                .unwrap()
                .is_empty()
            {
                assert!(!cell(2).is_empty(), "{line:?}");
            }
        }
        assert!(lines[4].contains("first line second line"), "{table}");
        let search = lines[1];
        assert!(search.contains('…'), "{search:?}");
        assert!(
            search.chars().count() < header.chars().count() + 20,
            "{search:?}"
        );
    }

    #[test]
    fn cuts_at_a_word_and_never_inside_a_char() {
        assert_eq!(cut("short", 10), "short");
        assert_eq!(cut("ééééééééééééé", 5), "éééé…");
        assert_eq!(cut("one two three four five six", 16), "one two three…");
        assert_eq!(one_line(" a\n\tb  c "), "a b c");
    }
}
