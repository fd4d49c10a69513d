//! The job summary: keeping it under GitHub's size limit, and putting untrusted text into its
//! Markdown without breaking the structure around it. Pure.
//!
//! GitHub refuses a step summary over 1 MiB (and shows none of it). Each append is fitted into what
//! is left: cut at a line end (else a UTF-8 boundary) with a note saying how much was cut.
//!
//! Text from outside (branch names, paths, tool messages, image references) goes in through
//! [`md_text`] (a table cell, list item or heading: one line, no `|` column break, no HTML) or
//! [`md_code`] (the same as a code span, whatever backticks it holds).

use super::untrusted::LINE_BREAKS;

/// GitHub's limit on one step's summary file, in bytes.
pub const STEP_SUMMARY_LIMIT: u64 = 1024 * 1024;

/// Room kept for the note, so a cut can always say so.
const NOTE_RESERVE: u64 = 256;

/// What to append, and how much of the requested text was left out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SummaryChunk {
    pub text: String,
    pub omitted_bytes: usize,
}

/// Untrusted text for one Markdown line or table cell: line breaks become spaces, `|` is escaped,
/// `<` cannot open HTML.
pub fn md_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '|' => out.push_str("\\|"),
            '<' => out.push_str("&lt;"),
            c if LINE_BREAKS.contains(&c) => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// Untrusted text as one inline code span safe in a table cell: fenced with one backtick more
/// than its longest backtick run, padded when it starts or ends with a backtick, `|` escaped.
pub fn md_code(s: &str) -> String {
    let one_line: String = s
        .chars()
        .map(|c| if LINE_BREAKS.contains(&c) { ' ' } else { c })
        .collect();
    let mut longest = 0;
    let mut run = 0;
    for c in one_line.chars() {
        run = if c == '`' { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    let fence = "`".repeat(longest + 1);
    let pad = if one_line.starts_with('`') || one_line.ends_with('`') {
        " "
    } else {
        ""
    };
    format!("{fence}{pad}{}{pad}{fence}", one_line.replace('|', "\\|"))
}

/// Fits `chunk` after `existing` bytes so the file stays within `limit`.
pub fn fit_summary(existing: u64, chunk: &str, limit: u64) -> SummaryChunk {
    let len = chunk.len() as u64;
    if existing.saturating_add(len) <= limit {
        return SummaryChunk {
            text: chunk.to_owned(),
            omitted_bytes: 0,
        };
    }
    let budget = limit.saturating_sub(existing.saturating_add(NOTE_RESERVE));
    let keep = usize::try_from(budget)
        .unwrap_or(usize::MAX)
        .min(chunk.len());
    let mut cut = keep;
    while !chunk.is_char_boundary(cut) {
        cut -= 1;
    }
    // Prefer ending on a whole line unless that throws away most of what fits.
    if let Some(nl) = chunk[..cut].rfind('\n')
        && nl + 1 >= cut / 2
    {
        cut = nl + 1;
    }
    let omitted = chunk.len() - cut;
    let note = format!(
        "\n\n> **Note:** {omitted} bytes of this summary were cut to stay under GitHub's 1 MiB step-summary limit; the full report is in the `report` output and the check runs.\n"
    );
    let mut text = chunk[..cut].to_owned();
    if existing + (text.len() + note.len()) as u64 <= limit {
        text.push_str(&note);
        SummaryChunk {
            text,
            omitted_bytes: omitted,
        }
    } else {
        // Already at the limit (an earlier cut wrote its note): drop the whole chunk.
        SummaryChunk {
            text: String::new(),
            omitted_bytes: chunk.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Untrusted text cannot add a column, a row or HTML to a table.
    #[test]
    fn md_text_stays_in_its_cell() {
        assert_eq!(md_text("a|b\nc\r\nd<script>"), "a\\|b c  d&lt;script>");
        assert_eq!(md_code("x"), "`x`");
        assert_eq!(md_code("a`b|c\nd"), "``a`b\\|c d``");
        assert_eq!(md_code("`x``"), "``` `x`` ```");
    }

    /// Text that fits is written unchanged.
    #[test]
    fn fits_unchanged() {
        assert_eq!(
            fit_summary(10, "abc", 100),
            SummaryChunk {
                text: "abc".to_owned(),
                omitted_bytes: 0
            }
        );
        assert_eq!(fit_summary(97, "abc", 100).omitted_bytes, 0);
    }

    /// Oversized text is cut at a line end, with a note that counts the cut bytes, within the limit.
    #[test]
    fn cut_at_line_with_note() {
        let line = "| gate | result |\n";
        let chunk = line.repeat(100_000);
        let out = fit_summary(1000, &chunk, STEP_SUMMARY_LIMIT);
        assert!(1000 + out.text.len() as u64 <= STEP_SUMMARY_LIMIT);
        assert!(out.omitted_bytes > 0);
        assert!(out.text.contains(&format!(
            "{} bytes of this summary were cut",
            out.omitted_bytes
        )));
        let kept = out.text.split("\n\n> **Note:**").next().unwrap();
        assert!(kept.ends_with(line));
        assert_eq!(kept.len() + out.omitted_bytes, chunk.len());
    }

    /// A cut never splits a multi-byte character.
    #[test]
    fn cut_on_utf8_boundary() {
        let chunk = "é".repeat(2000); // no newlines, 2 bytes each
        let out = fit_summary(0, &chunk, 1001 + NOTE_RESERVE);
        let kept = out.text.split("\n\n> **Note:**").next().unwrap();
        assert_eq!(kept.len(), 1000);
        assert_eq!(out.omitted_bytes, 3000);
    }

    /// Once the file is full, further chunks are dropped entirely and counted.
    #[test]
    fn full_file_drops_chunk() {
        let out = fit_summary(
            STEP_SUMMARY_LIMIT - 10,
            "more text than ten bytes",
            STEP_SUMMARY_LIMIT,
        );
        assert_eq!(
            out,
            SummaryChunk {
                text: String::new(),
                omitted_bytes: 24
            }
        );
    }
}
