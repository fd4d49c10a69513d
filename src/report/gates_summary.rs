//! The gates part of the job summary and the terminal report. Pure.
