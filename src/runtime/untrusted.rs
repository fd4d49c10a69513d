//! Untrusted text on a workflow-command channel. Pure.
//!
//! The runner reads every line of a step's stdout *and* stderr as a possible workflow command: a
//! line whose start (after leading whitespace) is `::name …::data`, or a line containing the legacy
//! `##[name …]data` anywhere. Text this action did not write itself (tool output, paths, finding
//! messages, test names, branch names, PR titles, label names, error chains with a tool's stderr)
//! must never produce such a line. Two ways, one detector:
//!
//! - [`fence`] (stdout): the text is printed verbatim between `::stop-commands::<token>` and
//!   `::<token>::` with a fresh random token absent from the text. The runner ignores every command
//!   in between, so the text reads as it was.
//! - [`defuse`] (stderr, logs): lines that would be read as commands get a `| ` prefix and their `[`
//!   written `%5B`. No runner state is involved, so a log line written from another thread while a
//!   stdout block is fenced cannot swallow one of the action's own annotations, nor the reverse.
//!
//! [`runner_commands`] models how the runner reads a log; the writer re-checks fenced output with
//! it, and tests assert with it what the runner would execute.

use rand::Rng as _;
use std::borrow::Cow;

/// The command that pauses command processing until `::<token>::`.
pub const STOP_COMMANDS: &str = "stop-commands";

/// Prefix [`defuse`] puts in front of a line the runner would read as a command.
pub const DEFUSE_PREFIX: &str = "| ";

/// Characters .NET's culture-sensitive `StartsWith`/`IndexOf` may skip: control characters and
/// default-ignorable format characters (soft hyphen, zero-width spaces and joiners, bidi controls,
/// variation selectors, BOM, tags). Leading whitespace is trimmed separately, as `TrimStart` does.
fn ignorable(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{AD}' | '\u{34F}' | '\u{61C}' | '\u{115F}'..='\u{1160}' | '\u{17B4}'..='\u{17B5}'
            | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}'
            | '\u{FFA0}' | '\u{FFF0}'..='\u{FFF8}' | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{1D173}'..='\u{1D17A}' | '\u{E0000}'..='\u{E0FFF}')
}

/// Where a runner could see a line end: `\n`, `\r` (its line reader breaks on a lone CR) and, to be
/// safe, the other Unicode line breaks.
pub const LINE_BREAKS: [char; 7] = [
    '\n', '\r', '\u{0B}', '\u{0C}', '\u{85}', '\u{2028}', '\u{2029}',
];

/// Splits text into the lines a runner could see (at every [`LINE_BREAKS`] character).
pub fn runner_lines(text: &str) -> impl Iterator<Item = &str> {
    text.split(LINE_BREAKS)
}

/// The line with every [`ignorable`] character removed: what a culture-sensitive comparison sees.
fn visible(line: &str) -> String {
    line.chars().filter(|&c| !ignorable(c)).collect()
}

/// True when the runner could read this one line as a workflow command (conservative: any name,
/// registered or not, and characters .NET may ignore are ignored here too).
pub fn is_command_line(line: &str) -> bool {
    let v = visible(line);
    v.trim_start().starts_with("::") || v.contains("##[")
}

/// True when some line of `text` could be read as a workflow command.
pub fn has_command_line(text: &str) -> bool {
    runner_lines(text).any(is_command_line)
}

/// A fresh stop token: 128 random bits in hex.
pub fn random_token() -> String {
    format!("{:032x}", rand::rng().random::<u128>())
}

/// `text` made safe for stdout: unchanged when no line could be a command, else wrapped in
/// `::stop-commands::<token>` … `::<token>::` with a token that does not occur in it.
pub fn fence(text: &str) -> Cow<'_, str> {
    fence_with(text, random_token)
}

/// [`fence`] with the token source given (tests pass one that collides first).
pub fn fence_with(text: &str, mut token: impl FnMut() -> String) -> Cow<'_, str> {
    if !has_command_line(text) {
        return Cow::Borrowed(text);
    }
    let lower = visible(text).to_lowercase();
    // 128 random bits collide only with a text built to contain them; a few draws settle it, and
    // should every draw collide the text is defused instead.
    for _ in 0..4 {
        let t = token();
        let usable = t.len() >= 16
            && t.chars().all(|c| c.is_ascii_alphanumeric())
            && !lower.contains(&t.to_lowercase());
        if usable {
            let out = format!("::{STOP_COMMANDS}::{t}\n{text}\n::{t}::");
            if runner_commands(&out).len() == 2 {
                return Cow::Owned(out);
            }
        }
    }
    defuse(text)
}

/// `text` made safe for stderr and logs: every line that could be read as a command is prefixed
/// with [`DEFUSE_PREFIX`] and has its `[` written `%5B`; other lines and the line breaks stay.
pub fn defuse(text: &str) -> Cow<'_, str> {
    if !has_command_line(text) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    let mut rest = text;
    loop {
        let end = rest.find(LINE_BREAKS).unwrap_or(rest.len());
        let (line, tail) = rest.split_at(end);
        if is_command_line(line) {
            out.push_str(DEFUSE_PREFIX);
            out.push_str(&line.replace('[', "%5B"));
        } else {
            out.push_str(line);
        }
        let Some(brk) = tail.chars().next() else {
            break;
        };
        out.push(brk);
        rest = &tail[brk.len_utf8()..];
    }
    Cow::Owned(out)
}

/// JSON text that reads the same to a JSON parser and as nothing to the runner: unchanged when no
/// line could be a command, else with `[`, `:` and every [`ignorable`] character inside strings
/// written as `\uXXXX` escapes, so no `##[` and no `::` remain (outside strings JSON has neither).
/// Printed this way `--json` output stays parseable where fencing would have added lines.
pub fn json_for_log(json: &str) -> Cow<'_, str> {
    if !has_command_line(json) {
        return Cow::Borrowed(json);
    }
    let mut out = String::with_capacity(json.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in json.chars() {
        if in_string && !escaped && (c == '[' || c == ':' || ignorable(c)) {
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{u:04x}"));
            }
            continue;
        }
        out.push(c);
        if in_string {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
        }
    }
    Cow::Owned(out)
}

/// One command as the runner would execute it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunnerCommand {
    /// Command name as written (`error`, `stop-commands`, a resume token, …).
    pub name: String,
    /// The raw `key=value,…` part (escaped as written).
    pub properties: String,
    /// The raw data part (escaped as written).
    pub data: String,
}

/// Every command a runner would execute reading `log` (stdout and stderr alike), in order,
/// including the `stop-commands` and resume lines themselves. A model of `ActionCommandManager`:
/// conservative in that every name counts as registered.
pub fn runner_commands(log: &str) -> Vec<RunnerCommand> {
    let mut out = Vec::new();
    let mut stop_token: Option<String> = None;
    for line in runner_lines(log) {
        let Some(cmd) = parse_line(line) else {
            continue;
        };
        match &stop_token {
            Some(t) => {
                if cmd.name.eq_ignore_ascii_case(t) {
                    stop_token = None;
                    out.push(cmd);
                }
            }
            None => {
                if cmd.name.eq_ignore_ascii_case(STOP_COMMANDS) && !cmd.data.is_empty() {
                    stop_token = Some(cmd.data.clone());
                }
                out.push(cmd);
            }
        }
    }
    out
}

fn parse_line(line: &str) -> Option<RunnerCommand> {
    let v = visible(line);
    if let Some(body) = v.trim_start().strip_prefix("::")
        && let Some(end) = body.find("::")
    {
        let (info, data) = (&body[..end], &body[end + 2..]);
        let (name, props) = info.split_once(' ').unwrap_or((info, ""));
        if !name.is_empty() {
            return Some(RunnerCommand {
                name: name.to_owned(),
                properties: props.trim().to_owned(),
                data: data.to_owned(),
            });
        }
    }
    let start = v.find("##[")? + 3;
    let close = v[start..].find(']')? + start;
    let (name, props) = v[start..close]
        .split_once(' ')
        .unwrap_or((&v[start..close], ""));
    (!name.is_empty()).then(|| RunnerCommand {
        name: name.to_owned(),
        properties: props.to_owned(),
        data: v[close + 1..].to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The attack from the issue: a SARIF uri and message that would print two real commands.
    const HOSTILE: &str = "::error title=fake::evil.py\n::warning title=INJECTED::owned";

    /// The model sees what the runner sees, including the variants a plain `starts_with` misses.
    #[test]
    fn model_reads_commands_like_the_runner() {
        let names = |log: &str| -> Vec<String> {
            runner_commands(log).into_iter().map(|c| c.name).collect()
        };
        assert_eq!(names(HOSTILE), ["error", "warning"]);
        assert_eq!(names("  \t::set-output name=x::1"), ["set-output"]);
        assert_eq!(names("a\r::error::lone CR breaks a line"), ["error"]);
        assert_eq!(names(":\u{AD}:error::soft hyphen"), ["error"]);
        assert_eq!(names("\u{200B}::error::zero width"), ["error"]);
        assert_eq!(names("text ##[error]legacy anywhere"), ["error"]);
        assert_eq!(
            names("plain\nfm_deploy::app: no\n::1 - - no second"),
            Vec::<String>::new()
        );
        assert_eq!(
            names("::stop-commands::t0\n::error::ignored\n::T0::\n::warning::seen"),
            ["stop-commands", "T0", "warning"]
        );
    }

    /// Fenced hostile text executes nothing but the fence itself and keeps its text verbatim.
    #[test]
    fn fence_wraps_only_when_needed() {
        assert!(matches!(fence("gates: lint passed"), Cow::Borrowed(_)));
        let out = fence(HOSTILE);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 4);
        let token = lines[0].strip_prefix("::stop-commands::").unwrap();
        assert_eq!(lines[3], format!("::{token}::"));
        assert_eq!(&lines[1..3], HOSTILE.lines().collect::<Vec<_>>());
        assert_eq!(runner_commands(&out).len(), 2);
    }

    /// A token that occurs in the text (any case) is never used; with no usable token the text is
    /// defused instead.
    #[test]
    fn fence_never_uses_a_token_in_the_text() {
        let text = "::error::x\n::ABCDEF0123456789ABCDEF0123456789::";
        let mut draws = vec!["abcdef0123456789abcdef0123456789", "ffff0000ffff0000"].into_iter();
        let out = fence_with(text, || draws.next().unwrap_or_default().to_owned());
        assert!(
            out.starts_with("::stop-commands::ffff0000ffff0000\n"),
            "{out}"
        );
        let out = fence_with(text, || "abcdef0123456789abcdef0123456789".to_owned());
        assert_eq!(out, "| ::error::x\n| ::ABCDEF0123456789ABCDEF0123456789::");
        assert!(runner_commands(&out).is_empty());
    }

    /// Defusing keeps harmless lines and every line break, and changes only command-like lines.
    #[test]
    fn defuse_marks_only_command_lines() {
        assert!(matches!(
            defuse("error: failed\n  caused by: x"),
            Cow::Borrowed(_)
        ));
        assert_eq!(
            defuse("failed to run\r\n  ::error::x\nok ##[warning]y"),
            "failed to run\r\n|   ::error::x\n| ok ##%5Bwarning]y"
        );
    }

    fn hostile_text() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            Just("::".to_owned()),
            Just("##[".to_owned()),
            Just("]".to_owned()),
            Just("\n".to_owned()),
            Just("\r".to_owned()),
            Just(" ".to_owned()),
            Just("\u{AD}".to_owned()),
            Just("\u{200B}".to_owned()),
            Just("stop-commands".to_owned()),
            Just("error title=x".to_owned()),
            "[a-zA-Z0-9%,=:]{0,6}",
            any::<char>().prop_map(String::from),
        ];
        prop::collection::vec(piece, 0..24).prop_map(|v| v.concat())
    }

    proptest! {
        /// JSON made safe for the log parses to the same value and holds no command line.
        #[test]
        fn json_stays_json(text in hostile_text(), pretty in any::<bool>()) {
            let value = serde_json::json!({"branch": text, "list": [text.clone(), "::a::b"]});
            let json = if pretty {
                serde_json::to_string_pretty(&value).unwrap()
            } else {
                serde_json::to_string(&value).unwrap()
            };
            let safe = json_for_log(&json);
            prop_assert!(!has_command_line(&safe), "{safe}");
            prop_assert_eq!(serde_json::from_str::<serde_json::Value>(&safe).unwrap(), value);
        }

        /// Whatever the text, fenced it executes only the fence, defused nothing at all.
        #[test]
        fn nothing_hostile_survives(text in hostile_text()) {
            let fenced = fence(&text);
            let cmds = runner_commands(&fenced);
            if has_command_line(&text) {
                prop_assert!(cmds.len() == 2 || cmds.is_empty(), "{fenced:?}: {cmds:?}");
            } else {
                prop_assert!(cmds.is_empty());
                prop_assert_eq!(fenced.as_ref(), text.as_str());
            }
            prop_assert!(runner_commands(&defuse(&text)).is_empty());
        }
    }
}
