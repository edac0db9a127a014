//! `stages:`: the load shape, a list of targets ramped to linearly.

use crate::ScenarioError;
use crate::model::{Stage, StageTarget};
use crate::node::{Kind, Node};

use super::Compiler;
use super::fields::Fields;

const STAGE_KEYS: &[&str] = &["duration", "users", "rate"];

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
        let stages: Vec<Stage> = items
            .iter()
            .map(|item| self.stage(item))
            .collect::<Result<_, _>>()?;
        let users = |stage: &Stage| matches!(stage.target, StageTarget::Users(_));
        if let Some(mixed) = stages
            .iter()
            .position(|stage| users(stage) != users(&stages[0]))
        {
            return Err(self.error(
                &items[mixed],
                "all stages must ramp the same thing: users (closed model) or rate (open model)",
            ));
        }
        Ok(stages)
    }

    fn stage(&self, node: &Node) -> Result<Stage, ScenarioError> {
        let fields = Fields::new(self, node, "stage", STAGE_KEYS)?;
        let duration_node = fields.required(self, "duration")?;
        let duration = self.duration(duration_node)?;
        if duration.is_zero() {
            return Err(self.error(duration_node, "a stage's duration must be more than 0"));
        }
        let target = match (fields.get("users"), fields.get("rate")) {
            (Some(users), None) => StageTarget::Users(self.stage_users(users)?),
            (None, Some(rate)) => StageTarget::Rate(self.stage_rate(rate)?),
            _ => {
                return Err(self.error(
                    node,
                    "a stage needs exactly one of \"users\" (e.g. {duration: 2m, users: 100}) or \"rate\" (e.g. {duration: 2m, rate: 500/s})",
                ));
            }
        };
        Ok(Stage { duration, target })
    }

    fn stage_rate(&self, node: &Node) -> Result<f64, ScenarioError> {
        // A stage may ramp down to nothing.
        if matches!(node.kind, Kind::Int(0))
            || matches!(&node.kind, Kind::Str(s) if s.trim() == "0")
        {
            return Ok(0.0);
        }
        self.rate(node)
    }

    fn stage_users(&self, users_node: &Node) -> Result<u32, ScenarioError> {
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
        Ok(users)
    }
}
