//! `data:` and the templates that read it.
//!
//! A data reference becomes a user variable with a dotted name no
//! `variables:` entry can have: `devices.deviceid` (filled from the row the
//! user takes when it starts) or `devices.next.deviceid` (filled from the
//! row its task or `on_start` takes when it begins). Templates then
//! compile them like any variable, and the worker only copies cells into
//! variables before rendering.

use crate::ScenarioError;
use crate::data::{DataBinding, DataDef, DataFormat, Exhausted, Pick};
use crate::node::{Kind, Node};

use super::Compiler;
use super::fields::Fields;

const DATA_KEYS: &[&str] = &["file", "pick", "exhausted", "format"];

/// One `{{ SET.COLUMN }}` or `{{ SET.next.COLUMN }}` in a template.
pub(super) struct DataRef {
    set: usize,
    column: String,
    next: bool,
    line: usize,
    col: usize,
}

impl DataRef {
    fn var_name(&self, sets: &[DataDef]) -> String {
        let set = &sets[self.set].name;
        if self.next {
            format!("{set}.next.{}", self.column)
        } else {
            format!("{set}.{}", self.column)
        }
    }
}

impl Compiler<'_> {
    /// The `data:` mapping: `NAME: {file, pick, exhausted, format}`.
    pub(super) fn data_sets(&self, node: &Node) -> Result<Vec<DataDef>, ScenarioError> {
        let Kind::Map(entries) = &node.kind else {
            return Err(self.wrong_type(
                node,
                "data",
                "a mapping of NAME: {file: FILE, pick: unique|sequential|random|circular}",
            ));
        };
        let mut sets: Vec<DataDef> = Vec::with_capacity(entries.len());
        for (key, value) in entries {
            let name = self.identifier(key, "data set name")?;
            let f = Fields::new(self, value, "data set", DATA_KEYS)?;
            let file_node = f.required(self, "file")?;
            let file = self.string(file_node, "file")?;
            if file.trim().is_empty() {
                return Err(self.error(file_node, "\"file\" is empty"));
            }
            let pick = match f.get("pick") {
                Some(n) => {
                    let text = self.string(n, "pick")?;
                    Pick::parse(&text).ok_or_else(|| {
                        self.error(
                            n,
                            format!("unknown pick {text:?}; allowed: {}", Pick::NAMES),
                        )
                    })?
                }
                None => Pick::Unique,
            };
            let exhausted = match f.get("exhausted") {
                Some(n) => {
                    if pick != Pick::Unique {
                        return Err(self.error(
                            n,
                            "only a \"pick: unique\" data set runs out for the whole run; \"exhausted\" applies to it alone",
                        ));
                    }
                    match self.string(n, "exhausted")?.as_str() {
                        "stop" => Exhausted::Stop,
                        "fail" => Exhausted::Fail,
                        other => {
                            return Err(self.error(
                                n,
                                format!("unknown exhausted {other:?}; allowed: stop (the run ends), fail (the run ends and fails)"),
                            ));
                        }
                    }
                }
                None => Exhausted::Stop,
            };
            let format = match f.get("format") {
                Some(n) => match self.string(n, "format")?.as_str() {
                    "csv" => DataFormat::Csv,
                    "jsonl" => DataFormat::JsonLines,
                    other => {
                        return Err(
                            self.error(n, format!("unknown format {other:?}; allowed: csv, jsonl"))
                        );
                    }
                },
                None => DataFormat::from_file_name(&file),
            };
            if sets.iter().any(|s| s.name == name) {
                return Err(self.error(key, format!("duplicate data set name {name:?}")));
            }
            sets.push(DataDef {
                name,
                file,
                pick,
                exhausted,
                format,
                columns: Vec::new(),
                uses: Vec::new(),
            });
        }
        Ok(sets)
    }

    /// Every data reference in the templates below `node`.
    pub(super) fn data_refs(&self, node: &Node, out: &mut Vec<DataRef>) {
        if self.data.is_empty() {
            return;
        }
        match &node.kind {
            Kind::Str(text) => {
                for expr in template_exprs(text) {
                    let Some((set_name, rest)) = expr.split_once('.') else {
                        continue;
                    };
                    let Some(set) = self.data.iter().position(|s| s.name == set_name) else {
                        continue;
                    };
                    let (column, next) = match rest.strip_prefix("next.") {
                        Some(column) => (column, true),
                        None => (rest, false),
                    };
                    if column.is_empty() || column == "next" {
                        // Left to the template compiler's message.
                        continue;
                    }
                    out.push(DataRef {
                        set,
                        column: column.to_owned(),
                        next,
                        line: node.line,
                        col: node.column,
                    });
                }
            }
            Kind::Seq(items) => items.iter().for_each(|item| self.data_refs(item, out)),
            Kind::Map(entries) => entries
                .iter()
                .for_each(|(_, value)| self.data_refs(value, out)),
            _ => {}
        }
    }

    /// Adds the variables of `refs` (`next` ones or the others) to
    /// `var_names`, recording each column's first use; returns, in order,
    /// `(set, column, var)` of the new variables.
    pub(super) fn data_vars(
        &mut self,
        refs: &[DataRef],
        next: bool,
        var_names: &mut Vec<String>,
    ) -> Vec<(usize, usize, usize)> {
        let mut added = Vec::new();
        for r in refs.iter().filter(|r| r.next == next) {
            let name = r.var_name(&self.data);
            if var_names.contains(&name) {
                continue;
            }
            let set = &mut self.data[r.set];
            let column = match set.columns.iter().position(|c| *c == r.column) {
                Some(column) => column,
                None => {
                    set.columns.push(r.column.clone());
                    set.uses.push((r.line, r.col));
                    set.columns.len() - 1
                }
            };
            var_names.push(name);
            added.push((r.set, column, var_names.len() - 1));
        }
        added
    }

    /// The `next` rows the steps below `node` read, as bindings of the
    /// class's `next` variables.
    pub(super) fn next_bindings(
        &self,
        node: &Node,
        next_vars: &[(usize, usize, usize)],
    ) -> Vec<DataBinding> {
        let mut refs = Vec::new();
        self.data_refs(node, &mut refs);
        let used: Vec<(usize, usize, usize)> = next_vars
            .iter()
            .copied()
            .filter(|&(set, column, _)| {
                refs.iter()
                    .any(|r| r.next && r.set == set && r.column == self.data[set].columns[column])
            })
            .collect();
        bindings(&used)
    }

    /// Refuses a `next` reference where no iteration takes a row.
    pub(super) fn no_next_refs(&self, node: &Node, place: &str) -> Result<(), ScenarioError> {
        let mut refs = Vec::new();
        self.data_refs(node, &mut refs);
        match refs.iter().find(|r| r.next) {
            Some(r) => Err(ScenarioError {
                source_name: self.source_name.to_owned(),
                line: r.line,
                column: r.col,
                message: format!(
                    "{{{{ {0}.next.{1} }}}} takes a row per task, but {place} is set once per user: use {{{{ {0}.{1} }}}} (the row the user took when it started)",
                    self.data[r.set].name, r.column
                ),
            }),
            None => Ok(()),
        }
    }
}

/// Groups `(set, column, var)` by set, in order of first appearance.
pub(super) fn bindings(vars: &[(usize, usize, usize)]) -> Vec<DataBinding> {
    let mut out: Vec<DataBinding> = Vec::new();
    for &(set, column, var) in vars {
        match out.iter_mut().find(|b| b.set == set) {
            Some(binding) => binding.vars.push((column, var)),
            None => out.push(DataBinding {
                set,
                vars: vec![(column, var)],
            }),
        }
    }
    out
}

/// The trimmed expressions of the `{{ ... }}` placeholders in `text`.
fn template_exprs(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        let open = rest.find("{{")?;
        let after = &rest[open + 2..];
        let close = after.find("}}")?;
        rest = &after[close + 2..];
        Some(after[..close].trim())
    })
}
