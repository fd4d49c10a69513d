//! Runtime plumbing shared by all commands: the `GITHUB_OUTPUT` file, the job summary, workflow
//! commands (annotations, masks, groups) and logging.
//!
//! Pure formatting lives in `commands`, `output`, `summary`, `masks` and `untrusted` (how text that
//! came from outside reaches the log without becoming a workflow command); `writer` is the only part
//! that touches files and stdout, through the [`Console`] port so tests capture what is printed.
//! Decides nothing: callers say what to write.

mod commands;
mod masks;
mod output;
mod summary;
mod telemetry;
mod untrusted;
mod writer;

pub use commands::{
    Annotation, Level, add_mask, end_group, escape_data, escape_property, format_annotation, group,
};
pub use masks::{MIN_LINE_MASK, mask_values};
pub use output::{
    DELIMITER_PREFIX, OutputKey, format_output, format_output_with_delimiter, random_delimiter,
};
pub use summary::{STEP_SUMMARY_LIMIT, SummaryChunk, fit_summary, md_code, md_text};
pub use telemetry::{init_tracing, log_filter};
pub use untrusted::{
    DEFUSE_PREFIX, LINE_BREAKS, RunnerCommand, STOP_COMMANDS, defuse, fence, has_command_line,
    is_command_line, json_for_log, runner_commands, runner_lines,
};
pub use writer::{BufferConsole, Console, Error, Runtime, StdoutConsole, eprint_untrusted};
