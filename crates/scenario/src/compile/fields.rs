//! A YAML mapping checked against the keys allowed in its place.

use crate::ScenarioError;
use crate::node::{Kind, Node};

use super::Compiler;

/// The entries of a mapping whose keys are all allowed.
pub(crate) struct Fields<'n> {
    node: &'n Node,
    what: &'static str,
    entries: Vec<(&'n str, &'n Node)>,
}

impl<'n> Fields<'n> {
    /// Checks that `node` is a mapping whose keys are all in `allowed`.
    pub fn new(
        compiler: &Compiler<'_>,
        node: &'n Node,
        what: &'static str,
        allowed: &[&str],
    ) -> Result<Fields<'n>, ScenarioError> {
        let Kind::Map(map) = &node.kind else {
            return Err(compiler.error(
                node,
                format!(
                    "{what} must be a mapping with keys: {}; found {}",
                    allowed.join(", "),
                    node.kind.describe()
                ),
            ));
        };
        let mut entries = Vec::with_capacity(map.len());
        for (key, value) in map {
            let name = match &key.kind {
                Kind::Str(name) => name.as_str(),
                _ => {
                    return Err(compiler.error(
                        key,
                        format!(
                            "keys in {what} must be strings; allowed: {}",
                            allowed.join(", ")
                        ),
                    ));
                }
            };
            if !allowed.contains(&name) {
                return Err(compiler.error(
                    key,
                    format!(
                        "unknown key {name:?} in {what}; allowed: {}",
                        allowed.join(", ")
                    ),
                ));
            }
            entries.push((name, value));
        }
        Ok(Fields {
            node,
            what,
            entries,
        })
    }

    pub fn get(&self, key: &str) -> Option<&'n Node> {
        self.entries
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| *v)
    }

    pub fn required(&self, compiler: &Compiler<'_>, key: &str) -> Result<&'n Node, ScenarioError> {
        self.get(key).ok_or_else(|| {
            compiler.error(self.node, format!("missing key {key:?} in {}", self.what))
        })
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }
}
