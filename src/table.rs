//! Plain-text tables as kubectl prints them: a header, columns padded to their widest cell,
//! two spaces between columns, no trailing blanks.

/// Renders `header` and `rows` (each as long as the header) as lines ending in `\n`.
pub fn render(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|cell| cell.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| -> String {
        let mut text = String::new();
        for (cell, width) in cells.zip(&widths) {
            text.push_str(cell);
            let pad = width.saturating_sub(cell.chars().count()) + 2;
            text.extend(std::iter::repeat_n(' ', pad));
        }
        let mut text = text.trim_end().to_owned();
        text.push('\n');
        text
    };
    let mut out = line(&mut header.iter().copied());
    for row in rows {
        out.push_str(&line(&mut row.iter().map(String::as_str)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_line_up_by_characters() {
        let text = render(
            &["NAME", "LAST-8"],
            &[
                vec!["a".into(), "…x".into()],
                vec!["longer-name".into(), String::new()],
            ],
        );
        assert_eq!(text, "NAME         LAST-8\na            …x\nlonger-name\n");
    }
}
