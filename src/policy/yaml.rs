//! A YAML document as a tree of nodes that remember where they stand in the file.
//!
//! Owns: turning text into `Node`s (with anchors and aliases resolved, duplicate keys refused).
//! Must not touch: what any key means — that is `decode`'s job. serde stops at the first problem;
//! walking our own spanned tree lets the loader report every problem at once, the way cargo-deny
//! does over `toml-span`.

use crate::budget::{Budget, BudgetError, POLICY};
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
    /// The text may be valid YAML: it went over its [`Budget`].
    pub over_budget: bool,
}

fn pos_of(span: &Span) -> Pos {
    Pos {
        line: span.start.line(),
        col: span.start.col() + 1,
    }
}

fn budget_error(e: BudgetError, pos: Pos) -> SyntaxError {
    SyntaxError {
        pos,
        message: e.to_string(),
        over_budget: true,
    }
}

fn scan_error(e: &ScanError) -> SyntaxError {
    SyntaxError {
        pos: Pos {
            line: e.marker().line(),
            col: e.marker().col() + 1,
        },
        message: e.info().to_string(),
        over_budget: false,
    }
}

/// Parses one YAML document into a tree within the [`POLICY`] budget. An empty document is
/// `None`.
pub fn parse(text: &str) -> Result<Option<Node>, SyntaxError> {
    parse_within(text, &POLICY)
}

/// Parses one YAML document into a tree, refusing it as soon as it goes over `budget`: its size
/// before anything is scanned, its nesting at the collection that goes too deep, its node count
/// (every alias counted as the nodes it stands for) at the node that goes over — so an alias bomb
/// is refused before it is expanded.
pub fn parse_within(text: &str, budget: &Budget) -> Result<Option<Node>, SyntaxError> {
    Ok(build(text, budget, true)?.pop())
}

/// Every document of a YAML stream (a kubeconfig may be several), within one `budget` for the
/// whole stream; empty documents are left out.
pub fn parse_stream(text: &str, budget: &Budget) -> Result<Vec<Node>, SyntaxError> {
    build(text, budget, false)
}

fn build(text: &str, budget: &Budget, single: bool) -> Result<Vec<Node>, SyntaxError> {
    budget
        .check_size(text.len() as u64)
        .map_err(|e| budget_error(e, Pos { line: 1, col: 1 }))?;
    let mut parser = Parser::new_from_str(text);
    let mut builder = Builder {
        stack: Vec::new(),
        anchors: HashMap::new(),
        root: None,
        nodes: 0,
        budget,
    };
    let mut documents = Vec::new();
    let mut started = 0usize;
    while let Some(item) = parser.next_event() {
        let (event, span) = item.map_err(|e| scan_error(&e))?;
        match event {
            Event::DocumentStart(_) => {
                started += 1;
                if single && started > 1 {
                    return Err(SyntaxError {
                        pos: pos_of(&span),
                        message: format!(
                            "found a second YAML document; the {} is one document",
                            budget.what
                        ),
                        over_budget: false,
                    });
                }
            }
            Event::DocumentEnd => {
                // Anchors are scoped to their document.
                builder.anchors.clear();
                documents.extend(builder.root.take());
            }
            Event::StreamEnd => break,
            other => builder.event(other, &span)?,
        }
    }
    documents.extend(builder.root.take());
    Ok(documents)
}

/// An open collection: its items so far, where it starts, its anchor, and the node count when it
/// opened (so its own size is known when it closes).
enum Frame {
    Seq(Vec<Node>, Pos, usize, usize),
    Map(Vec<(Node, Node)>, Option<Node>, Pos, usize, usize),
}

struct Builder<'b> {
    stack: Vec<Frame>,
    /// Anchored nodes with their size in nodes.
    anchors: HashMap<usize, (Node, usize)>,
    root: Option<Node>,
    /// Nodes built so far, aliases expanded.
    nodes: usize,
    budget: &'b Budget,
}

impl Builder<'_> {
    /// Counts `n` more nodes, refusing the document past the node budget.
    fn count(&mut self, n: usize, pos: Pos) -> Result<(), SyntaxError> {
        self.nodes = self.nodes.saturating_add(n);
        self.budget
            .check_nodes(self.nodes)
            .map_err(|e| budget_error(e, pos))
    }

    /// Opens a collection, refusing it past the depth budget.
    fn open(&mut self, frame: Frame, pos: Pos) -> Result<(), SyntaxError> {
        self.budget
            .check_depth(self.stack.len() + 1)
            .map_err(|e| budget_error(e, pos))?;
        self.count(1, pos)?;
        self.stack.push(frame);
        Ok(())
    }

    fn event(&mut self, event: Event<'_>, span: &Span) -> Result<(), SyntaxError> {
        let pos = pos_of(span);
        match event {
            Event::Scalar(value, style, anchor, _tag) => {
                self.count(1, pos)?;
                let node = Node {
                    kind: NodeKind::Scalar {
                        value: value.into_owned(),
                        plain: matches!(style, ScalarStyle::Plain),
                    },
                    pos,
                };
                self.complete(node, anchor, 1)
            }
            Event::SequenceStart(anchor, _) => {
                let frame = Frame::Seq(Vec::new(), pos, anchor, self.nodes);
                self.open(frame, pos)
            }
            Event::MappingStart(anchor, _) => {
                let frame = Frame::Map(Vec::new(), None, pos, anchor, self.nodes);
                self.open(frame, pos)
            }
            Event::SequenceEnd => match self.stack.pop() {
                Some(Frame::Seq(items, start, anchor, opened)) => self.complete(
                    Node {
                        kind: NodeKind::Seq(items),
                        pos: start,
                    },
                    anchor,
                    self.nodes - opened,
                ),
                _ => Err(SyntaxError {
                    pos,
                    message: "unbalanced sequence end".into(),
                    over_budget: false,
                }),
            },
            Event::MappingEnd => match self.stack.pop() {
                Some(Frame::Map(entries, _, start, anchor, opened)) => self.complete(
                    Node {
                        kind: NodeKind::Map(entries),
                        pos: start,
                    },
                    anchor,
                    self.nodes - opened,
                ),
                _ => Err(SyntaxError {
                    pos,
                    message: "unbalanced mapping end".into(),
                    over_budget: false,
                }),
            },
            Event::Alias(id) => {
                let Some((anchored, size)) = self.anchors.get(&id) else {
                    return Err(SyntaxError {
                        pos,
                        message: "alias refers to an unknown anchor".into(),
                        over_budget: false,
                    });
                };
                // Counted before the copy is made: the budget bounds what is ever built.
                let total = self.nodes.saturating_add(*size);
                self.budget
                    .check_nodes(total)
                    .map_err(|e| budget_error(e, pos))?;
                let (mut node, size) = (anchored.clone(), *size);
                self.nodes = total;
                node.pos = pos;
                self.complete(node, 0, size)
            }
            Event::Nothing
            | Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart(_)
            | Event::DocumentEnd => Ok(()),
        }
    }

    /// Adds a finished node of `size` nodes to its parent (or makes it the root).
    fn complete(&mut self, node: Node, anchor: usize, size: usize) -> Result<(), SyntaxError> {
        if anchor > 0 {
            self.anchors.insert(anchor, (node.clone(), size));
        }
        match self.stack.last_mut() {
            None => {
                self.root = Some(node);
                Ok(())
            }
            Some(Frame::Seq(items, ..)) => {
                items.push(node);
                Ok(())
            }
            Some(Frame::Map(entries, pending, ..)) => match pending.take() {
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
                            over_budget: false,
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

/// A YAML node as JSON: plain scalars become null, booleans and numbers where they read as such.
pub fn to_json(n: &Node) -> serde_json::Value {
    use serde_json::Value;
    match &n.kind {
        NodeKind::Scalar { .. } if n.is_null() => Value::Null,
        NodeKind::Scalar { value, plain } => {
            if *plain {
                if let Some(b) = parse_bool(value) {
                    return Value::Bool(b);
                }
                if let Ok(i) = value.parse::<i64>() {
                    return Value::from(i);
                }
                if let Ok(f) = value.parse::<f64>()
                    && let Some(num) = serde_json::Number::from_f64(f)
                {
                    return Value::Number(num);
                }
            }
            Value::String(value.clone())
        }
        NodeKind::Seq(items) => Value::Array(items.iter().map(to_json).collect()),
        NodeKind::Map(entries) => Value::Object(
            entries
                .iter()
                .map(|(k, v)| (k.scalar().unwrap_or_default().to_string(), to_json(v)))
                .collect(),
        ),
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

    /// `levels` levels of nine aliases each to the level below: 9^levels nodes once expanded.
    pub(crate) fn alias_bomb(levels: usize) -> String {
        let mut bomb = String::from("a0: &a0 [x]\n");
        for i in 1..=levels {
            let p = i - 1;
            let refs = vec![format!("*a{p}"); 9].join(", ");
            bomb.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
        }
        bomb
    }

    /// An alias bomb is refused at the alias that goes over the node budget, before the copy is
    /// made; a few aliases within it still resolve.
    #[test]
    fn alias_bomb_is_refused_while_building() {
        let err = parse(&alias_bomb(30)).err();
        let err = err.map(|e| (e.pos.line, e.message));
        assert_eq!(
            err,
            Some((
                6,
                "accept policy file of more than 100000 nodes with aliases expanded (the node budget)"
                    .to_string()
            ))
        );
        assert!(parse(&alias_bomb(3)).is_ok());
    }

    /// Nesting past the depth budget is refused at the collection that goes too deep — a
    /// megabyte of brackets too, without recursion.
    #[test]
    fn depth_budget() {
        let nested = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(parse(&nested(POLICY.max_depth)).is_ok());
        let err = parse(&nested(POLICY.max_depth + 1))
            .err()
            .map(|e| e.message);
        assert_eq!(
            err.as_deref(),
            Some("accept policy file nested deeper than 64 levels (the depth budget)")
        );
        assert!(parse(&"[".repeat(POLICY.max_bytes as usize)).is_err());
    }

    /// Text over the size budget is refused before it is scanned.
    #[test]
    fn size_budget() {
        let big = format!("a: '{}'\n", "x".repeat(POLICY.max_bytes as usize));
        let err = parse(&big).err().map(|e| e.message);
        assert!(
            err.as_deref()
                .is_some_and(|m| m.contains("the size budget is 1048576 bytes")),
            "{err:?}"
        );
    }

    /// A stream of several documents parses to each of them (anchors stay in their document);
    /// the single-document parse refuses the second.
    #[test]
    fn streams_of_documents() -> Result<(), SyntaxError> {
        let docs = parse_stream("a: &x 1\nb: *x\n---\nc: 2\n", &POLICY)?;
        assert_eq!(docs.len(), 2);
        assert!(parse_stream("a: &x 1\n---\nb: *x\n", &POLICY).is_err());
        assert!(parse("a: 1\n---\nb: 2\n").is_err());
        Ok(())
    }
}
