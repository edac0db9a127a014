//! Load shapes: a list of stages whose targets are ramped to linearly, one
//! after the other (k6's `stages`, Locust's `LoadTestShape`): users in the
//! closed model, a rate in the open model.

use std::time::Duration;

/// What a shape ramps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Users,
    /// Iterations per second (the open model).
    Rate,
}

/// One stage: reach `target` at the end of `duration`, linearly from the
/// previous stage's target (0 before the first stage).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stage {
    pub duration: Duration,
    pub target: f64,
}

/// A run's shape.
#[derive(Debug, Clone, PartialEq)]
pub struct Shape {
    pub kind: Kind,
    pub stages: Vec<Stage>,
}

impl Shape {
    /// The target `elapsed` into the run; after the last stage, the last target.
    pub fn at(&self, elapsed: Duration) -> f64 {
        let mut from = 0.0;
        let mut start = Duration::ZERO;
        for stage in &self.stages {
            let end = start + stage.duration;
            if elapsed < end {
                let done = (elapsed - start).as_secs_f64() / stage.duration.as_secs_f64();
                return from + (stage.target - from) * done;
            }
            from = stage.target;
            start = end;
        }
        from
    }

    /// The users the shape asks for `elapsed` into the run.
    pub fn users_at(&self, elapsed: Duration) -> u32 {
        self.at(elapsed).round().clamp(0.0, f64::from(u32::MAX)) as u32
    }

    /// The highest target of any stage.
    pub fn peak(&self) -> f64 {
        self.stages
            .iter()
            .map(|stage| stage.target)
            .fold(0.0, f64::max)
    }

    /// How long the whole shape lasts.
    pub fn duration(&self) -> Duration {
        self.stages.iter().map(|stage| stage.duration).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(kind: Kind, stages: &[(u64, f64)]) -> Shape {
        Shape {
            kind,
            stages: stages
                .iter()
                .map(|&(secs, target)| Stage {
                    duration: Duration::from_secs(secs),
                    target,
                })
                .collect(),
        }
    }

    #[test]
    fn ramps_linearly_between_targets() {
        let s = shape(Kind::Users, &[(10, 100.0), (10, 100.0), (5, 0.0)]);
        let at = |ms: u64| s.users_at(Duration::from_millis(ms));
        assert_eq!(at(0), 0);
        assert_eq!(at(2_500), 25);
        assert_eq!(at(10_000), 100);
        assert_eq!(at(15_000), 100);
        assert_eq!(at(22_500), 50);
        assert_eq!(at(25_000), 0);
        assert_eq!(at(99_000), 0);
        assert_eq!(s.duration(), Duration::from_secs(25));
        assert_eq!(s.peak(), 100.0);
        assert_eq!(shape(Kind::Users, &[]).users_at(Duration::from_secs(1)), 0);
    }

    #[test]
    fn rates_ramp_without_rounding() {
        let s = shape(Kind::Rate, &[(4, 10.0)]);
        assert_eq!(s.at(Duration::from_secs(1)), 2.5);
    }

    #[test]
    fn targets_are_never_overshot() {
        let s = shape(Kind::Users, &[(3, 7.0), (7, 2.0)]);
        for ms in (0..12_000).step_by(37) {
            let users = s.users_at(Duration::from_millis(ms));
            assert!(users <= 7, "{ms} ms: {users}");
        }
    }
}
