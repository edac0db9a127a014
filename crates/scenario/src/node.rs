//! A YAML document as a tree of nodes that each remember where they came from.
//!
//! The scenario is validated by walking this tree rather than by
//! `#[derive(Deserialize)]`, so every message can name the place, the key and
//! what is allowed there.

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

/// A YAML node with its 1-based line and column.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub line: usize,
    pub column: usize,
    pub kind: Kind,
}

#[derive(Debug, Clone)]
pub(crate) enum Kind {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

impl Kind {
    /// How the kind is named in error messages.
    pub fn describe(&self) -> &'static str {
        match self {
            Kind::Null => "null",
            Kind::Bool(_) => "a boolean",
            Kind::Int(_) => "an integer",
            Kind::Float(_) => "a number",
            Kind::Str(_) => "a string",
            Kind::Seq(_) => "a list",
            Kind::Map(_) => "a mapping",
        }
    }
}

impl Node {
    /// The node as text if it is a scalar (numbers and booleans as written
    /// canonically), e.g. a header value `1` or a form field `true`.
    pub fn scalar_text(&self) -> Option<String> {
        match &self.kind {
            Kind::Str(s) => Some(s.clone()),
            Kind::Int(i) => Some(i.to_string()),
            Kind::Float(f) => Some(f.to_string()),
            Kind::Bool(b) => Some(b.to_string()),
            Kind::Null | Kind::Seq(_) | Kind::Map(_) => None,
        }
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let spanned = Spanned::<Kind>::deserialize(deserializer)?;
        Ok(Node {
            line: usize::try_from(spanned.referenced.line()).unwrap_or(0),
            column: usize::try_from(spanned.referenced.column()).unwrap_or(0),
            kind: spanned.value,
        })
    }
}

impl<'de> Deserialize<'de> for Kind {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(KindVisitor)
    }
}

struct KindVisitor;

impl<'de> Visitor<'de> for KindVisitor {
    type Value = Kind;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_unit<E>(self) -> Result<Kind, E> {
        Ok(Kind::Null)
    }
    fn visit_none<E>(self) -> Result<Kind, E> {
        Ok(Kind::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Kind, D::Error> {
        Kind::deserialize(d)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Kind, E> {
        Ok(Kind::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Kind, E> {
        Ok(Kind::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Kind, E> {
        i64::try_from(v)
            .map(Kind::Int)
            .map_err(|_| E::custom("integer out of range"))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Kind, E> {
        Ok(Kind::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Kind, E> {
        Ok(Kind::Str(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Kind, E> {
        Ok(Kind::Str(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Kind, A::Error> {
        let mut items = Vec::new();
        while let Some(node) = seq.next_element::<Node>()? {
            items.push(node);
        }
        Ok(Kind::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Kind, A::Error> {
        let mut entries = Vec::new();
        while let Some(entry) = map.next_entry::<Node, Node>()? {
            entries.push(entry);
        }
        Ok(Kind::Map(entries))
    }
}

/// Parses YAML text into a tree; on a syntax error returns (line, column, message).
pub(crate) fn parse(yaml: &str) -> Result<Node, (usize, usize, String)> {
    let mut options = serde_saphyr::Options::default();
    // YAML 1.1 reads `n`, `y`, `no`, `on` as booleans: a form field named
    // `n` or a value `no` must stay text.
    options.strict_booleans = true;
    // A value like `007` is an id, not the number 7.
    options.leading_zero_numbers_as_strings = true;
    // Explicit bounds (the parser's defaults are looser): deep nesting
    // and alias expansion cost stack and memory before any check of ours.
    let mut budget = serde_saphyr::Budget::default();
    budget.max_depth = crate::MAX_NESTING_DEPTH;
    budget.flow_nesting_limit = crate::MAX_NESTING_DEPTH;
    budget.max_nodes = crate::MAX_YAML_NODES;
    options.budget = Some(budget);
    options.alias_limits.max_total_replayed_events = crate::MAX_YAML_NODES;
    serde_saphyr::from_str_with_options::<Node>(yaml, options).map_err(|e| {
        let (line, column) = e
            .location()
            .map(|l| {
                (
                    usize::try_from(l.line()).unwrap_or(0),
                    usize::try_from(l.column()).unwrap_or(0),
                )
            })
            .unwrap_or((0, 0));
        (line, column, message(&e))
    })
}

/// The parser's error as a message; the limits we set say which limit
/// and what it is.
fn message(error: &serde_saphyr::Error) -> String {
    use serde_saphyr::Error;
    use serde_saphyr::budget::BudgetBreach;
    match error.without_snippet() {
        Error::AliasError { error, .. } => message(error),
        Error::Budget {
            breach: BudgetBreach::Depth { .. },
            ..
        } => format!(
            "mappings and lists nest deeper than {} levels, the limit",
            crate::MAX_NESTING_DEPTH
        ),
        Error::Budget {
            breach: BudgetBreach::Nodes { .. },
            ..
        }
        | Error::AliasReplayLimitExceeded { .. } => format!(
            "more than {} nodes, the limit (an alias counts every node it repeats)",
            crate::MAX_YAML_NODES
        ),
        other => {
            let mut message = other.to_string();
            // The location is already in our prefix; don't repeat it.
            if let Some(at) = message.rfind(" at line ") {
                message.truncate(at);
            }
            message
        }
    }
}
