//! `stages:`: the load shape, a list of targets ramped to linearly.

use crate::ScenarioError;
use crate::model::Stage;
use crate::node::{Kind, Node};

use super::Compiler;
use super::fields::Fields;

const STAGE_KEYS: &[&str] = &["duration", "users"];

impl Compiler<'_> {
    pub(super) fn stages(&self, node: &Node) -> Result<Vec<Stage>, ScenarioError> {
        let Kind::Seq(items) = &node.kind else {
            return Err(self.wrong_type(
                node,
                "stages",
                "a list of stages like {duration: 2m, users: 100}",
            ));
        };
        if items.is_empty() {
            return Err(self.error(
                node,
                "\"stages\" is empty; leave it out or give at least one {duration: 2m, users: 100}",
            ));
        }
        items.iter().map(|item| self.stage(item)).collect()
    }

    fn stage(&self, node: &Node) -> Result<Stage, ScenarioError> {
        let fields = Fields::new(self, node, "stage", STAGE_KEYS)?;
        let duration_node = fields.required(self, "duration")?;
        let duration = self.duration(duration_node)?;
        if duration.is_zero() {
            return Err(self.error(duration_node, "a stage's duration must be more than 0"));
        }
        let users_node = fields.required(self, "users")?;
        let users = match users_node.kind {
            Kind::Int(n) if n >= 0 => u32::try_from(n).map_err(|_| {
                self.error(
                    users_node,
                    format!("users {n} is too large; allowed: 0 to {}", u32::MAX),
                )
            })?,
            Kind::Int(n) => {
                return Err(self.error(
                    users_node,
                    format!("users {n} is negative; allowed: an integer >= 0"),
                ));
            }
            _ => return Err(self.wrong_type(users_node, "users", "an integer >= 0")),
        };
        Ok(Stage { duration, users })
    }
}
