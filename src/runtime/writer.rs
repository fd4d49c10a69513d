//! The thin I/O side of the runtime: appends to the `GITHUB_OUTPUT` and `GITHUB_STEP_SUMMARY` files
//! and prints workflow commands through a [`Console`].
//!
//! Outside Actions (no files, `in_actions == false`) outputs are only recorded, the summary goes to a
//! file only if one is given, masks are not printed, and annotations print as plain text.
//!
//! The one rule for the console: the action's own workflow commands (annotations, masks, groups)
//! are built here from escaped parts; every other line is untrusted text and goes out
//! [`fence`]d, in or out of Actions (a terminal run inside a `run:` step is read by the runner
//! too). Nothing else in the crate writes to stdout; stderr gets [`defuse`]d text only.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use super::commands::{Annotation, Level, add_mask, end_group, format_annotation, group};
use super::masks::mask_values;
use super::output::{OutputKey, format_output};
use super::summary::{STEP_SUMMARY_LIMIT, fit_summary};
use super::untrusted::{defuse, fence};
use crate::inputs::{GithubContext, RawInputs};

/// Failures writing the run's outputs, summary or console.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("write output `{name}`: its value contains the heredoc delimiter")]
    DelimiterInValue { name: String },
    #[error("write output `{name}`: the name is empty or contains `=`, `<` or a line break")]
    OutputName { name: String },
    #[error("write output `{name}`: action.yml declares no such output")]
    UndeclaredOutput { name: String },
    #[error("append to the {what} file `{path}`")]
    File {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("write to the console")]
    Console(#[source] std::io::Error),
}

/// Where workflow commands and plain lines go. Workflow commands must reach the runner on stdout.
pub trait Console {
    /// Writes one line (a newline is added).
    fn line(&mut self, text: &str) -> std::io::Result<()>;
}

/// The process's stdout.
#[derive(Debug, Default)]
pub struct StdoutConsole;

impl Console for StdoutConsole {
    fn line(&mut self, text: &str) -> std::io::Result<()> {
        let mut out = std::io::stdout().lock();
        out.write_all(text.as_bytes())?;
        out.write_all(b"\n")?;
        out.flush()
    }
}

/// Collects lines in memory (tests, and callers that want to render elsewhere).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BufferConsole {
    pub lines: Vec<String>,
}

impl Console for BufferConsole {
    fn line(&mut self, text: &str) -> std::io::Result<()> {
        self.lines.push(text.to_owned());
        Ok(())
    }
}

impl<C: Console + ?Sized> Console for &mut C {
    fn line(&mut self, text: &str) -> std::io::Result<()> {
        (**self).line(text)
    }
}

/// The run's connection to the runner: outputs, summary, annotations, masks, groups.
#[derive(Debug)]
pub struct Runtime<C: Console> {
    console: C,
    in_actions: bool,
    output_path: Option<PathBuf>,
    summary_path: Option<PathBuf>,
    summary_limit: u64,
    outputs: Vec<(OutputKey, String)>,
    summary_omitted: usize,
}

impl<C: Console> Runtime<C> {
    /// A runtime writing to the given files. `in_actions` selects workflow commands over plain text.
    pub fn new(
        console: C,
        in_actions: bool,
        output_path: Option<PathBuf>,
        summary_path: Option<PathBuf>,
    ) -> Self {
        Self {
            console,
            in_actions,
            output_path,
            summary_path,
            summary_limit: STEP_SUMMARY_LIMIT,
            outputs: Vec::new(),
            summary_omitted: 0,
        }
    }

    /// A runtime for this run's context (`GITHUB_ACTIONS`, `GITHUB_OUTPUT`, `GITHUB_STEP_SUMMARY`).
    pub fn from_context(console: C, ctx: &GithubContext) -> Self {
        Self::new(
            console,
            ctx.in_actions,
            ctx.output_path.clone(),
            ctx.step_summary_path.clone(),
        )
    }

    /// Lowers the summary size limit (tests).
    pub fn with_summary_limit(mut self, limit: u64) -> Self {
        self.summary_limit = limit;
        self
    }

    /// Registers every secret input with the runner's masker. Call first — right after reading
    /// the raw inputs and before validating them, so not even an error message can show a secret.
    /// Returns how many values were registered.
    pub fn mask_secrets(&mut self, raw: &RawInputs) -> Result<usize, Error> {
        if !self.in_actions {
            return Ok(0);
        }
        let values = mask_values(raw.sensitive_values());
        for v in &values {
            self.console.line(&add_mask(v)).map_err(Error::Console)?;
        }
        Ok(values.len())
    }

    /// Registers one more value to mask (e.g. a token minted during the run).
    pub fn mask(&mut self, value: &str) -> Result<(), Error> {
        if self.in_actions && !value.trim().is_empty() {
            self.console
                .line(&add_mask(value))
                .map_err(Error::Console)?;
        }
        Ok(())
    }

    /// Sets an output: appended to `GITHUB_OUTPUT` when there is one, always recorded.
    pub fn set_output(&mut self, key: OutputKey, value: &str) -> Result<(), Error> {
        let entry = format_output(key.as_str(), value)?;
        if let Some(path) = &self.output_path {
            append(path, "GITHUB_OUTPUT", entry.as_bytes())?;
        }
        self.outputs.push((key, value.to_owned()));
        Ok(())
    }

    /// Sets an output by name; a name `action.yml` does not declare is refused (it would be
    /// invisible to workflows).
    pub fn set_output_named(&mut self, name: &str, value: &str) -> Result<(), Error> {
        let key = OutputKey::from_name(name).ok_or_else(|| Error::UndeclaredOutput {
            name: name.to_owned(),
        })?;
        self.set_output(key, value)
    }

    /// Outputs set so far, in order (the last value of a key is the one GitHub keeps).
    pub fn outputs(&self) -> &[(OutputKey, String)] {
        &self.outputs
    }

    /// Appends Markdown to the step summary, cutting (with a note) to stay under the limit.
    /// Returns the number of bytes of `markdown` that were left out.
    pub fn append_summary(&mut self, markdown: &str) -> Result<usize, Error> {
        let Some(path) = &self.summary_path else {
            return Ok(0);
        };
        let existing = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        let chunk = fit_summary(existing, markdown, self.summary_limit);
        if !chunk.text.is_empty() {
            append(path, "GITHUB_STEP_SUMMARY", chunk.text.as_bytes())?;
        }
        if chunk.omitted_bytes > 0 {
            self.summary_omitted += chunk.omitted_bytes;
            tracing::warn!(
                omitted_bytes = chunk.omitted_bytes,
                total_omitted = self.summary_omitted,
                "step summary cut to stay under GitHub's size limit"
            );
        }
        Ok(chunk.omitted_bytes)
    }

    /// Prints an annotation: a workflow command in Actions (every part escaped, so it is one line
    /// and one command), `level: file:line: title: message` as untrusted text outside.
    pub fn annotate(&mut self, a: &Annotation) -> Result<(), Error> {
        if self.in_actions {
            self.console
                .line(&format_annotation(a))
                .map_err(Error::Console)
        } else {
            self.line(&plain_annotation(a))
        }
    }

    /// Starts a foldable log group (a plain heading, as untrusted text, outside Actions).
    pub fn group_start(&mut self, title: &str) -> Result<(), Error> {
        if self.in_actions {
            self.console.line(&group(title)).map_err(Error::Console)
        } else {
            self.line(&format!("── {title}"))
        }
    }

    /// Ends the current log group.
    pub fn group_end(&mut self) -> Result<(), Error> {
        if self.in_actions {
            self.console.line(&end_group()).map_err(Error::Console)?;
        }
        Ok(())
    }

    /// Prints untrusted text (one or more lines), [`fence`]d when a line of it could be read as a
    /// workflow command.
    pub fn line(&mut self, text: &str) -> Result<(), Error> {
        self.console.line(&fence(text)).map_err(Error::Console)
    }

    /// The console (tests read a [`BufferConsole`] back).
    pub fn console(&self) -> &C {
        &self.console
    }

    /// Gives the console back.
    pub fn into_console(self) -> C {
        self.console
    }
}

/// Writes untrusted text to stderr as one block, [`defuse`]d. Best effort: a closed stderr has
/// nobody left to tell.
pub fn eprint_untrusted(text: &str) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(defuse(text).as_bytes());
    let _ = err.write_all(b"\n");
}

fn plain_annotation(a: &Annotation) -> String {
    let level = match a.level {
        Level::Error => "error",
        Level::Warning => "warning",
        Level::Notice => "notice",
    };
    let mut out = format!("{level}: ");
    if let Some(f) = &a.file {
        out.push_str(f);
        if let Some(l) = a.line {
            out.push_str(&format!(":{l}"));
            if let Some(c) = a.col {
                out.push_str(&format!(":{c}"));
            }
        }
        out.push_str(": ");
    }
    if let Some(t) = &a.title {
        out.push_str(t);
        out.push_str(": ");
    }
    out.push_str(&a.message);
    out
}

fn append(path: &Path, what: &'static str, bytes: &[u8]) -> Result<(), Error> {
    let err = |source| Error::File {
        what,
        path: path.to_path_buf(),
        source,
    };
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(err)?;
    f.write_all(bytes).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inputs::RawInputs;

    fn rt(dir: &Path, in_actions: bool) -> Runtime<BufferConsole> {
        Runtime::new(
            BufferConsole::default(),
            in_actions,
            Some(dir.join("out")),
            Some(dir.join("sum")),
        )
    }

    /// Outputs are appended to GITHUB_OUTPUT in the runner's format; multi-line ones as heredocs.
    #[test]
    fn outputs_to_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = rt(dir.path(), true);
        r.set_output(OutputKey::Decision, "allow").unwrap();
        r.set_output(OutputKey::Report, "{\n  \"a\": 1\n}").unwrap();
        let text = std::fs::read_to_string(dir.path().join("out")).unwrap();
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some("decision=allow"));
        let head = lines.next().unwrap();
        let delim = head.strip_prefix("report<<ghadelimiter_").unwrap();
        assert_eq!(
            lines.collect::<Vec<_>>(),
            ["{", "  \"a\": 1", "}", &format!("ghadelimiter_{delim}")]
        );
        assert_eq!(r.outputs().len(), 2);
        let err = r.set_output_named("colour", "blue").unwrap_err();
        assert_eq!(
            err.to_string(),
            "write output `colour`: action.yml declares no such output"
        );
        r.set_output_named("active-color", "blue").unwrap();
        assert_eq!(
            r.outputs().last(),
            Some(&(OutputKey::ActiveColor, "blue".to_owned()))
        );
    }

    /// The summary file never exceeds the limit across appends, and the cut is reported.
    #[test]
    fn summary_stays_under_limit() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = rt(dir.path(), true).with_summary_limit(4096);
        assert_eq!(r.append_summary("# Plan\n").unwrap(), 0);
        let big = "| row | value |\n".repeat(1000);
        let omitted = r.append_summary(&big).unwrap();
        assert!(omitted > 0);
        // What still fits after the cut is written; what does not is dropped whole and counted.
        assert_eq!(r.append_summary("ok\n").unwrap(), 0);
        assert_eq!(r.append_summary(&"x".repeat(200)).unwrap(), 200);
        let text = std::fs::read_to_string(dir.path().join("sum")).unwrap();
        assert!(text.len() <= 4096, "{}", text.len());
        assert!(text.starts_with("# Plan\n| row | value |\n"));
        assert!(text.contains(&format!("{omitted} bytes of this summary were cut")));
    }

    /// In Actions every secret input is masked before anything else; outside nothing is printed.
    #[test]
    fn masks_in_actions_only() {
        let inputs = RawInputs::from_vars([
            ("INPUT_GITHUB-TOKEN", "ghs_0123456789"),
            ("INPUT_SENTRY-DSN", "https://k@s/1"),
        ])
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut r = rt(dir.path(), true);
        assert_eq!(r.mask_secrets(&inputs).unwrap(), 2);
        // Longest first, so a longer secret is replaced before a shorter one inside it.
        assert_eq!(
            r.console().lines,
            ["::add-mask::ghs_0123456789", "::add-mask::https://k@s/1"]
        );
        let mut local = rt(dir.path(), false);
        assert_eq!(local.mask_secrets(&inputs).unwrap(), 0);
        assert!(local.console().lines.is_empty());
    }

    /// Annotations and groups are workflow commands in Actions and readable text outside.
    #[test]
    fn annotations_and_groups() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = Annotation::new(Level::Error, "line too long");
        a.file = Some("app.py".to_owned());
        a.line = Some(3);
        a.col = Some(80);
        a.title = Some("E501".to_owned());
        let mut r = rt(dir.path(), true);
        r.group_start("lint").unwrap();
        r.annotate(&a).unwrap();
        r.group_end().unwrap();
        assert_eq!(
            r.console().lines,
            [
                "::group::lint",
                "::error file=app.py,line=3,col=80,title=E501::line too long",
                "::endgroup::"
            ]
        );
        let mut local = rt(dir.path(), false);
        local.annotate(&a).unwrap();
        assert_eq!(
            local.console().lines,
            ["error: app.py:3:80: E501: line too long"]
        );
    }

    /// Untrusted text through `line`, a plain annotation or a heading outside Actions executes
    /// nothing but its fence; the action's own annotation in Actions is exactly one command.
    #[test]
    fn untrusted_text_is_fenced() {
        use crate::runtime::runner_commands;
        let dir = tempfile::tempdir().unwrap();
        let hostile = "ok\n::error title=INJECTED::x\r##[set-output name=a]b";
        let mut a = Annotation::new(Level::Warning, hostile);
        a.file = Some("::error title=fake::evil.py".to_owned());
        a.title = Some("flake8 E1 (low)".to_owned());
        let mut local = rt(dir.path(), false);
        local.line(hostile).unwrap();
        local.annotate(&a).unwrap();
        local.group_start(hostile).unwrap();
        for text in &local.console().lines {
            let names: Vec<String> = runner_commands(text).into_iter().map(|c| c.name).collect();
            assert_eq!(names.len(), 2, "{text}");
            assert_eq!(names[0], "stop-commands");
            assert!(text.contains(hostile), "verbatim: {text}");
        }
        let mut actions = rt(dir.path(), true);
        actions.annotate(&a).unwrap();
        let cmds = runner_commands(&actions.console().lines.join("\n"));
        assert_eq!(cmds.len(), 1);
        assert_eq!(cmds[0].name, "warning");
        assert!(
            cmds[0].properties.ends_with("title=flake8 E1 (low)"),
            "{cmds:?}"
        );
    }

    /// A file that cannot be written is an error naming the file.
    #[test]
    fn unwritable_output_file() {
        let mut r = Runtime::new(
            BufferConsole::default(),
            true,
            Some(PathBuf::from("/nonexistent/dir/out")),
            None,
        );
        let err = r.set_output(OutputKey::Tier, "basic").unwrap_err();
        assert_eq!(
            err.to_string(),
            "append to the GITHUB_OUTPUT file `/nonexistent/dir/out`"
        );
    }
}
