//! Exact checks of a placement as the workers received it: every user placed
//! once, class weights honoured, every worker within one user of its share.

use serde::Serialize;

/// What one worker received in `StartWork`.
#[derive(Debug, Clone)]
pub struct Received {
    pub cores: u32,
    pub class_users: Vec<u32>,
}

/// The verdict on a placement.
#[derive(Debug, Clone, Serialize)]
pub struct SplitCheck {
    pub users_requested: u32,
    /// Sum of the users in every `StartWork`.
    pub users_placed: u64,
    pub class_users: Vec<u64>,
    /// Largest-remainder split of the users by class weight.
    pub class_users_expected: Vec<u64>,
    /// Workers whose users are neither the floor nor the ceiling of their
    /// exact share `users * cores / total cores`.
    pub workers_off_share: usize,
    /// (worker, class) cells that are neither the floor nor the ceiling of
    /// `worker users * class users / users`.
    pub cells_off_share: usize,
    pub min_users_per_core: f64,
    pub max_users_per_core: f64,
    /// max - min users per core; at most 1 when every worker has one core.
    pub spread_users_per_core: f64,
    pub ok: bool,
}

/// Checks `received` against a run of `users` over classes with `weights`.
pub fn check(users: u32, weights: &[u32], received: &[Received]) -> SplitCheck {
    let total = u64::from(users);
    let total_cores: u64 = received.iter().map(|r| u64::from(r.cores.max(1))).sum();
    let mut class_users = vec![0u64; weights.len()];
    let mut users_placed = 0u64;
    let mut workers_off_share = 0;
    let mut per_core: Vec<f64> = Vec::with_capacity(received.len());
    for worker in received {
        let cores = u64::from(worker.cores.max(1));
        let mine: u64 = worker.class_users.iter().map(|&u| u64::from(u)).sum();
        users_placed += mine;
        for (sum, &u) in class_users.iter_mut().zip(&worker.class_users) {
            *sum += u64::from(u);
        }
        // floor or ceiling of total * cores / total_cores  <=>  |mine * C - total * cores| < C
        if (mine * total_cores).abs_diff(total * cores) >= total_cores {
            workers_off_share += 1;
        }
        per_core.push(mine as f64 / cores as f64);
    }
    let class_users_expected = largest_remainder(total, weights);
    let mut cells_off_share = 0;
    for worker in received {
        let mine: u64 = worker.class_users.iter().map(|&u| u64::from(u)).sum();
        for (&cell, &class_total) in worker.class_users.iter().zip(&class_users_expected) {
            if total > 0 && (u64::from(cell) * total).abs_diff(mine * class_total) >= total {
                cells_off_share += 1;
            }
        }
    }
    let min = per_core.iter().copied().fold(f64::INFINITY, f64::min);
    let max = per_core.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let (min, max) = if per_core.is_empty() {
        (0.0, 0.0)
    } else {
        (min, max)
    };
    let ok = users_placed == total
        && class_users == class_users_expected
        && workers_off_share == 0
        && cells_off_share == 0;
    SplitCheck {
        users_requested: users,
        users_placed,
        class_users,
        class_users_expected,
        workers_off_share,
        cells_off_share,
        min_users_per_core: min,
        max_users_per_core: max,
        spread_users_per_core: max - min,
        ok,
    }
}

/// Hamilton's method (the controller's class split): floors, then one more
/// to the largest remainders, ties to the lower index.
fn largest_remainder(total: u64, weights: &[u32]) -> Vec<u64> {
    let sum: u64 = weights.iter().map(|&w| u64::from(w)).sum();
    if sum == 0 {
        return vec![0; weights.len()];
    }
    let mut counts: Vec<u64> = weights
        .iter()
        .map(|&w| total * u64::from(w) / sum)
        .collect();
    let mut order: Vec<(u64, usize)> = weights
        .iter()
        .enumerate()
        .map(|(i, &w)| (total * u64::from(w) % sum, i))
        .collect();
    order.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let missing = total - counts.iter().sum::<u64>();
    for &(_, i) in order.iter().take(missing as usize) {
        counts[i] += 1;
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn worker(cores: u32, class_users: &[u32]) -> Received {
        Received {
            cores,
            class_users: class_users.to_vec(),
        }
    }

    #[test]
    fn accepts_an_exact_split() {
        // 10 users, weights 3:1 -> 8 + 2 (7.5 rounds up first), over 1+1+2 cores.
        let received = [worker(1, &[2, 1]), worker(1, &[2, 0]), worker(2, &[4, 1])];
        let verdict = check(10, &[3, 1], &received);
        assert_eq!(verdict.class_users_expected, vec![8, 2]);
        assert!(verdict.ok, "{verdict:?}");
        // 3, 2 and 2.5 users per core.
        assert_eq!(verdict.spread_users_per_core, 1.0);
    }

    #[test]
    fn rejects_a_lost_user_and_an_unfair_share() {
        let lost = check(10, &[1], &[worker(1, &[5]), worker(1, &[4])]);
        assert_eq!(lost.users_placed, 9);
        assert!(!lost.ok);
        let unfair = check(10, &[1], &[worker(1, &[7]), worker(1, &[3])]);
        assert_eq!(unfair.workers_off_share, 2);
        assert!(!unfair.ok);
    }
}
