//! Check-run payloads: titles, summaries, annotations in batches of 50, truncation. Pure.
