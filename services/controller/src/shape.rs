//! Load shapes: a list of stages whose targets are ramped to linearly, one
//! after the other (k6's `stages`, Locust's `LoadTestShape`).

use std::time::Duration;

/// One stage: reach `users` at the end of `duration`, linearly from the
/// previous stage's target (0 before the first stage).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stage {
    pub duration: Duration,
    pub users: u32,
}

/// The users a shape asks for `elapsed` into the run; after the last stage,
/// the last target.
pub fn users_at(stages: &[Stage], elapsed: Duration) -> u32 {
    let mut from = 0u32;
    let mut start = Duration::ZERO;
    for stage in stages {
        let end = start + stage.duration;
        if elapsed < end {
            let done = (elapsed - start).as_secs_f64() / stage.duration.as_secs_f64();
            let users = f64::from(from) + (f64::from(stage.users) - f64::from(from)) * done;
            return users.round() as u32;
        }
        from = stage.users;
        start = end;
    }
    from
}

/// How long the whole shape lasts.
pub fn total_duration(stages: &[Stage]) -> Duration {
    stages.iter().map(|stage| stage.duration).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stage(secs: u64, users: u32) -> Stage {
        Stage {
            duration: Duration::from_secs(secs),
            users,
        }
    }

    #[test]
    fn ramps_linearly_between_targets() {
        let stages = [stage(10, 100), stage(10, 100), stage(5, 0)];
        let at = |ms: u64| users_at(&stages, Duration::from_millis(ms));
        assert_eq!(at(0), 0);
        assert_eq!(at(2_500), 25);
        assert_eq!(at(10_000), 100);
        assert_eq!(at(15_000), 100);
        assert_eq!(at(22_500), 50);
        assert_eq!(at(25_000), 0);
        assert_eq!(at(99_000), 0);
        assert_eq!(total_duration(&stages), Duration::from_secs(25));
        assert_eq!(users_at(&[], Duration::from_secs(1)), 0);
    }

    #[test]
    fn targets_are_never_overshot() {
        let stages = [stage(3, 7), stage(7, 2)];
        for ms in (0..12_000).step_by(37) {
            let users = users_at(&stages, Duration::from_millis(ms));
            assert!(users <= 7, "{ms} ms: {users}");
        }
    }
}
