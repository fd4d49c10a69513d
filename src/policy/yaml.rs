//! A YAML document as a tree of nodes that remember where they stand in the file.
//!
//! Owns: turning text into `Node`s (with anchors and aliases resolved, duplicate keys refused).
//! Must not touch: what any key means — that is `decode`'s job. serde stops at the first problem;
//! walking our own spanned tree lets the loader report every problem at once, the way cargo-deny
//! does over `toml-span`.

use saphyr_parser::{Event, Parser, ScalarStyle, ScanError, Span};
use std::collections::HashMap;

/// 1-based line and column of a node's first character.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub enum NodeKind {
    /// A scalar, with whether it was written plain (unquoted): only plain scalars can be
    /// null, booleans or numbers.
    Scalar {
        value: String,
        plain: bool,
    },
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub kind: NodeKind,
    pub pos: Pos,
}

impl Node {
    /// True for `~`, `null`, an empty plain scalar.
    pub fn is_null(&self) -> bool {
        matches!(&self.kind, NodeKind::Scalar { value, plain: true }
            if value.is_empty() || value == "~" || value.eq_ignore_ascii_case("null"))
    }

    /// The scalar text, or `None` for collections.
    pub fn scalar(&self) -> Option<&str> {
        match &self.kind {
            NodeKind::Scalar { value, .. } => Some(value),
            NodeKind::Seq(_) | NodeKind::Map(_) => None,
        }
    }

    /// A short name for the node's type, for "expected X, found Y" messages.
    pub fn type_name(&self) -> &'static str {
        match &self.kind {
            NodeKind::Scalar { .. } if self.is_null() => "null",
            NodeKind::Scalar { value, plain: true } if parse_bool(value).is_some() => "a boolean",
            NodeKind::Scalar { value, plain: true } if value.parse::<f64>().is_ok() => "a number",
            NodeKind::Scalar { .. } => "a string",
            NodeKind::Seq(_) => "a list",
            NodeKind::Map(_) => "a mapping",
        }
    }
}

/// YAML 1.2 core-schema booleans (plus the 1.1 spellings people still write).
pub fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "true" | "True" | "TRUE" | "yes" | "Yes" | "on" | "On" => Some(true),
        "false" | "False" | "FALSE" | "no" | "No" | "off" | "Off" => Some(false),
        _ => None,
    }
}

/// Why a document could not become a tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub pos: Pos,
    pub message: String,
}

fn pos_of(span: &Span) -> Pos {
    Pos {
        line: span.start.line(),
        col: span.start.col() + 1,
    }
}

fn scan_error(e: &ScanError) -> SyntaxError {
    SyntaxError {
        pos: Pos {
            line: e.marker().line(),
            col: e.marker().col() + 1,
        },
        message: e.info().to_string(),
    }
}

/// Parses one YAML document into a tree. An empty document is `None`.
pub fn parse(text: &str) -> Result<Option<Node>, SyntaxError> {
    let mut parser = Parser::new_from_str(text);
    let mut builder = Builder::default();
    let mut documents = 0usize;
    while let Some(item) = parser.next_event() {
        let (event, span) = item.map_err(|e| scan_error(&e))?;
        match event {
            Event::DocumentStart(_) => {
                documents += 1;
                if documents > 1 {
                    return Err(SyntaxError {
                        pos: pos_of(&span),
                        message: "found a second YAML document; the policy is one document".into(),
                    });
                }
            }
            Event::StreamEnd => break,
            other => builder.event(other, &span)?,
        }
    }
    Ok(builder.root)
}

enum Frame {
    Seq(Vec<Node>, Pos, usize),
    Map(Vec<(Node, Node)>, Option<Node>, Pos, usize),
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    anchors: HashMap<usize, Node>,
    root: Option<Node>,
}

impl Builder {
    fn event(&mut self, event: Event<'_>, span: &Span) -> Result<(), SyntaxError> {
        let pos = pos_of(span);
        match event {
            Event::Scalar(value, style, anchor, _tag) => {
                let node = Node {
                    kind: NodeKind::Scalar {
                        value: value.into_owned(),
                        plain: matches!(style, ScalarStyle::Plain),
                    },
                    pos,
                };
                self.complete(node, anchor)
            }
            Event::SequenceStart(anchor, _) => {
                self.stack.push(Frame::Seq(Vec::new(), pos, anchor));
                Ok(())
            }
            Event::MappingStart(anchor, _) => {
                self.stack.push(Frame::Map(Vec::new(), None, pos, anchor));
                Ok(())
            }
            Event::SequenceEnd => match self.stack.pop() {
                Some(Frame::Seq(items, start, anchor)) => self.complete(
                    Node {
                        kind: NodeKind::Seq(items),
                        pos: start,
                    },
                    anchor,
                ),
                _ => Err(SyntaxError {
                    pos,
                    message: "unbalanced sequence end".into(),
                }),
            },
            Event::MappingEnd => match self.stack.pop() {
                Some(Frame::Map(entries, _, start, anchor)) => self.complete(
                    Node {
                        kind: NodeKind::Map(entries),
                        pos: start,
                    },
                    anchor,
                ),
                _ => Err(SyntaxError {
                    pos,
                    message: "unbalanced mapping end".into(),
                }),
            },
            Event::Alias(id) => match self.anchors.get(&id) {
                Some(node) => {
                    let mut node = node.clone();
                    node.pos = pos;
                    self.complete(node, 0)
                }
                None => Err(SyntaxError {
                    pos,
                    message: "alias refers to an unknown anchor".into(),
                }),
            },
            Event::Nothing
            | Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart(_)
            | Event::DocumentEnd => Ok(()),
        }
    }

    fn complete(&mut self, node: Node, anchor: usize) -> Result<(), SyntaxError> {
        if anchor > 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            None => {
                self.root = Some(node);
                Ok(())
            }
            Some(Frame::Seq(items, _, _)) => {
                items.push(node);
                Ok(())
            }
            Some(Frame::Map(entries, pending, _, _)) => match pending.take() {
                None => {
                    if let Some(key) = node.scalar()
                        && let Some((first, _)) =
                            entries.iter().find(|(k, _)| k.scalar() == Some(key))
                    {
                        return Err(SyntaxError {
                            pos: node.pos,
                            message: format!(
                                "duplicate key `{key}` (first at line {})",
                                first.pos.line
                            ),
                        });
                    }
                    *pending = Some(node);
                    Ok(())
                }
                Some(key) => {
                    entries.push((key, node));
                    Ok(())
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Positions are 1-based and point at the value, so messages name the right column.
    #[test]
    fn positions_are_one_based() -> Result<(), SyntaxError> {
        let root = parse("a: 1\nb:\n  - x\n")?;
        let Some(Node {
            kind: NodeKind::Map(entries),
            ..
        }) = root
        else {
            panic!("expected a map");
        };
        assert_eq!(entries[0].1.pos, Pos { line: 1, col: 4 });
        assert_eq!(entries[1].0.pos, Pos { line: 2, col: 1 });
        let NodeKind::Seq(items) = &entries[1].1.kind else {
            panic!("expected a seq");
        };
        assert_eq!(items[0].pos, Pos { line: 3, col: 5 });
        Ok(())
    }

    /// Duplicate keys are refused instead of silently keeping one value.
    #[test]
    fn duplicate_keys_are_errors() {
        let err = parse("a: 1\na: 2\n").err();
        assert_eq!(
            err.map(|e| (e.pos.line, e.message)),
            Some((2, "duplicate key `a` (first at line 1)".to_string()))
        );
    }

    /// Anchors and aliases resolve to copies of the anchored node.
    #[test]
    fn aliases_resolve() -> Result<(), SyntaxError> {
        let root = parse("a: &x [1, 2]\nb: *x\n")?;
        let Some(Node {
            kind: NodeKind::Map(entries),
            ..
        }) = root
        else {
            panic!("expected a map");
        };
        assert_eq!(entries[0].1.kind, entries[1].1.kind);
        Ok(())
    }

    /// Quoted scalars are never null or booleans.
    #[test]
    fn quoted_scalars_are_strings() -> Result<(), SyntaxError> {
        let root = parse("a: 'null'\nb: null\nc: \"true\"\n")?;
        let Some(Node {
            kind: NodeKind::Map(entries),
            ..
        }) = root
        else {
            panic!("expected a map");
        };
        assert!(!entries[0].1.is_null());
        assert!(entries[1].1.is_null());
        assert_eq!(entries[2].1.type_name(), "a string");
        Ok(())
    }
}
