//! Workflow commands (`::error …::`, `::add-mask::`, `::group::`) with GitHub's escaping. Pure.
//!
//! Escaping follows `@actions/core` (`command.ts`): data escapes `%`, `\r`, `\n`; property values
//! additionally escape `:` and `,`, which would otherwise end the value.

use std::fmt::Write as _;

/// Escapes a command's message (data) part.
pub fn escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Escapes a command property's value.
pub fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

/// Annotation severity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    Error,
    Warning,
    Notice,
}

impl Level {
    /// The workflow command's name.
    pub fn command(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warning => "warning",
            Level::Notice => "notice",
        }
    }
}

/// One annotation, as a workflow command can carry it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Annotation {
    pub level: Level,
    pub message: String,
    /// Path relative to the repository root.
    pub file: Option<String>,
    pub line: Option<u32>,
    pub col: Option<u32>,
    pub end_line: Option<u32>,
    pub end_column: Option<u32>,
    pub title: Option<String>,
}

impl Annotation {
    /// An annotation with only a level and a message.
    pub fn new(level: Level, message: impl Into<String>) -> Self {
        Self {
            level,
            message: message.into(),
            file: None,
            line: None,
            col: None,
            end_line: None,
            end_column: None,
            title: None,
        }
    }
}

/// `::error file=…,line=…,col=…,endLine=…,endColumn=…,title=…::message` (properties only when set).
pub fn format_annotation(a: &Annotation) -> String {
    let mut props: Vec<(&str, String)> = Vec::new();
    if let Some(f) = &a.file {
        props.push(("file", f.clone()));
    }
    for (key, value) in [
        ("line", a.line),
        ("col", a.col),
        ("endLine", a.end_line),
        ("endColumn", a.end_column),
    ] {
        if let Some(v) = value {
            props.push((key, v.to_string()));
        }
    }
    if let Some(t) = &a.title {
        props.push(("title", t.clone()));
    }
    format_command(a.level.command(), &props, &a.message)
}

/// `::add-mask::value`. A multi-line value is masked whole (the runner un-escapes `%0A`); see
/// [`super::mask_values`] for masking each line as well.
pub fn add_mask(value: &str) -> String {
    format_command("add-mask", &[], value)
}

/// `::group::title` — starts a foldable section of the log.
pub fn group(title: &str) -> String {
    format_command("group", &[], title)
}

/// `::endgroup::`.
pub fn end_group() -> String {
    format_command("endgroup", &[], "")
}

fn format_command(name: &str, props: &[(&str, String)], message: &str) -> String {
    let mut out = format!("::{name}");
    for (i, (key, value)) in props.iter().enumerate() {
        out.push(if i == 0 { ' ' } else { ',' });
        // Writing to a String cannot fail.
        let _ = write!(out, "{key}={}", escape_property(value));
    }
    out.push_str("::");
    out.push_str(&escape_data(message));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Data escaping matches @actions/core: `%` first, then CR and LF; `:` and `,` untouched.
    #[test]
    fn data_escaping() {
        assert_eq!(
            escape_data("50% done\r\nnext: a,b"),
            "50%25 done%0D%0Anext: a,b"
        );
        assert_eq!(escape_data("%0A"), "%250A");
    }

    /// Property escaping additionally escapes `:` and `,`.
    #[test]
    fn property_escaping() {
        assert_eq!(escape_property("a:b,c%\n"), "a%3Ab%2Cc%25%0A");
    }

    /// A full annotation renders every property in order with escaped values.
    #[test]
    fn annotation_with_all_properties() {
        let a = Annotation {
            level: Level::Error,
            message: "line one\nline two: 100%".to_owned(),
            file: Some("src/app,v2.py".to_owned()),
            line: Some(3),
            col: Some(7),
            end_line: Some(4),
            end_column: Some(1),
            title: Some("flake8: E501".to_owned()),
        };
        assert_eq!(
            format_annotation(&a),
            "::error file=src/app%2Cv2.py,line=3,col=7,endLine=4,endColumn=1,title=flake8%3A E501::line one%0Aline two: 100%25"
        );
    }

    /// Warning and notice without properties have no space before `::`.
    #[test]
    fn annotation_without_properties() {
        assert_eq!(
            format_annotation(&Annotation::new(Level::Warning, "w")),
            "::warning::w"
        );
        assert_eq!(
            format_annotation(&Annotation::new(Level::Notice, "n")),
            "::notice::n"
        );
    }

    /// Masks and groups are single lines whatever their content.
    #[test]
    fn mask_and_group() {
        assert_eq!(add_mask("a\nb%"), "::add-mask::a%0Ab%25");
        assert_eq!(group("gates: lint"), "::group::gates: lint");
        assert_eq!(end_group(), "::endgroup::");
    }
}
