//! Keeping the job summary under GitHub's size limit. Pure.
//!
//! GitHub refuses a step summary over 1 MiB (and shows none of it). Each append is fitted into what
//! is left: cut at a line end (else a UTF-8 boundary) with a note saying how much was cut.

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
