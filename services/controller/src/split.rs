//! Placing a run's users on workers: a pure function, property tested.
//!
//! Three roundings, all exact in integers:
//! 1. users per class: largest remainder of the class weights over the total
//!    (Locust semantics, so the weights hold globally),
//! 2. users per worker: largest remainder of the worker cores over the total,
//! 3. users per (worker, class): a controlled rounding of the proportional
//!    matrix `worker_users * class_users / users`, where every cell is the
//!    floor or the ceiling of its exact share and both the row sums (per
//!    worker) and the column sums (per class) are exact. Every worker thus
//!    gets the class mix, not one class each.
//!
//! Step 3 is a small bipartite flow: start from the floors, then hand the
//! missing units of each worker to classes that still miss units, through
//! cells with a fractional share (greedily first, to the class missing the
//! most, then by augmenting paths for whatever the greedy pass left). Such a rounding always exists (the
//! fractional parts themselves are a feasible fractional flow, and max flow
//! has an integral optimum), and augmenting paths find it.

use std::collections::VecDeque;

/// One worker's share of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// Users per user class, indexed like the scenario's classes.
    pub class_users: Vec<u32>,
    /// Sum of `class_users`.
    pub users: u32,
    /// Global index of this worker's first user.
    pub user_id_offset: u64,
}

/// Splits `users` over workers with `worker_cores` and classes with
/// `class_weights`. Returns one placement per worker, in input order (a
/// worker may get zero users when there are fewer users than workers).
///
/// Zero cores count as one core; when every weight is zero the classes are
/// weighted equally.
pub fn split(users: u32, class_weights: &[u32], worker_cores: &[u32]) -> Vec<Placement> {
    if worker_cores.is_empty() {
        return Vec::new();
    }
    let weights = normalized(class_weights, 0);
    let cores = normalized(worker_cores, 1);
    let class_totals = largest_remainder(users, &weights);
    let worker_totals = largest_remainder(users, &cores);
    let matrix = controlled_rounding(users, &worker_totals, &class_totals);

    let mut offset = 0u64;
    matrix
        .into_iter()
        .zip(worker_totals)
        .map(|(class_users, users)| {
            let placement = Placement {
                class_users,
                users,
                user_id_offset: offset,
            };
            offset += u64::from(users);
            placement
        })
        .collect()
}

/// The open model's split: `max_in_flight` placed like users (largest
/// remainder by cores, class mix by weights: the pool of virtual users each
/// worker runs its iterations on) and `rate` in proportion to each worker's
/// in-flight bound, so every worker has the same rate per virtual user.
/// Returns one (placement, rate) per worker in input order; a worker with no
/// in-flight share gets rate 0.
pub fn split_open(
    rate: f64,
    max_in_flight: u32,
    class_weights: &[u32],
    worker_cores: &[u32],
) -> Vec<(Placement, f64)> {
    let placements = split(max_in_flight, class_weights, worker_cores);
    let users: Vec<u32> = placements.iter().map(|p| p.users).collect();
    placements
        .into_iter()
        .zip(rate_shares(rate, &users))
        .collect()
}

/// `rate` split in proportion to `weights` (all zero: nothing). The last
/// worker with a non-zero weight takes what the others leave, so the shares
/// add up to `rate` up to one rounding.
pub fn rate_shares(rate: f64, weights: &[u32]) -> Vec<f64> {
    let total: u64 = weights.iter().map(|&w| u64::from(w)).sum();
    let mut shares = vec![0.0; weights.len()];
    let Some(last) = weights.iter().rposition(|&w| w > 0) else {
        return shares;
    };
    let mut given = 0.0;
    for (i, &weight) in weights.iter().enumerate().take(last) {
        shares[i] = rate * f64::from(weight) / total as f64;
        given += shares[i];
    }
    shares[last] = (rate - given).max(0.0);
    shares
}

/// The default in-flight bound of an open-model run: one second's worth of
/// iterations (`ceil(rate)`), at least 1.
pub fn default_max_in_flight(rate: f64) -> u32 {
    if !rate.is_finite() || rate <= 0.0 {
        return 1;
    }
    rate.ceil().clamp(1.0, f64::from(u32::MAX)) as u32
}

/// The share of a run-wide rate (spawn rate, connection rate) of a worker
/// with `worker_users` of `users`.
pub fn spawn_rate_share(spawn_rate: f64, worker_users: u32, users: u32) -> f64 {
    if users == 0 {
        return 0.0;
    }
    spawn_rate * f64::from(worker_users) / f64::from(users)
}

/// Weights as u64, with zeros replaced by `zero_as` (or all ones when every
/// weight would be zero, so the total is never zero).
fn normalized(weights: &[u32], zero_as: u64) -> Vec<u64> {
    let mapped: Vec<u64> = weights
        .iter()
        .map(|&w| if w == 0 { zero_as } else { u64::from(w) })
        .collect();
    if mapped.iter().all(|&w| w == 0) {
        vec![1; weights.len()]
    } else {
        mapped
    }
}

/// Hamilton's method: floors of `total * w / sum`, then one more to the
/// largest remainders (ties to the lower index) until the total is exact.
fn largest_remainder(total: u32, weights: &[u64]) -> Vec<u32> {
    if weights.is_empty() {
        return Vec::new();
    }
    let sum: u64 = weights.iter().sum();
    let total64 = u64::from(total);
    let mut counts: Vec<u32> = Vec::with_capacity(weights.len());
    let mut remainders: Vec<(u64, usize)> = Vec::with_capacity(weights.len());
    for (index, &weight) in weights.iter().enumerate() {
        let numerator = u128::from(total64) * u128::from(weight);
        let floor = numerator / u128::from(sum);
        let remainder = numerator % u128::from(sum);
        // floor <= total, so it fits in u32; the remainder < sum fits in u64.
        counts.push(floor as u32);
        remainders.push((remainder as u64, index));
    }
    let assigned: u64 = counts.iter().map(|&c| u64::from(c)).sum();
    let missing = (total64 - assigned) as usize;
    remainders.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    for &(_, index) in remainders.iter().take(missing) {
        counts[index] += 1;
    }
    counts
}

/// Rounds the matrix `rows[r] * cols[c] / total` to integers with exact row
/// and column sums, every cell the floor or ceiling of its exact value.
fn controlled_rounding(total: u32, rows: &[u32], cols: &[u32]) -> Vec<Vec<u32>> {
    let mut cells = vec![vec![0u32; cols.len()]; rows.len()];
    if total == 0 || cols.is_empty() {
        return cells;
    }
    let total = u64::from(total);
    // fractional[r][c]: the cell may take one more unit.
    let mut fractional = vec![vec![false; cols.len()]; rows.len()];
    let mut row_missing: Vec<u32> = rows.to_vec();
    let mut col_missing: Vec<u32> = cols.to_vec();
    for (r, &row) in rows.iter().enumerate() {
        for (c, &col) in cols.iter().enumerate() {
            let numerator = u64::from(row) * u64::from(col);
            let floor = (numerator / total) as u32;
            cells[r][c] = floor;
            fractional[r][c] = numerator % total != 0;
            row_missing[r] -= floor;
            col_missing[c] -= floor;
        }
    }
    let mut raised = vec![vec![false; cols.len()]; rows.len()];
    // Direct raises first (paths of one cell), each unit to the column that
    // misses the most units so that early rows do not use up some columns
    // and leave later rows nothing but searches. With 2,000 workers this
    // places every unit directly; finding each by a search that costs
    // O(rows) to set up made the split quadratic (60 classes: 2 s, blocking
    // the runtime). Augmenting from any partial rounding is still exact:
    // the searches below complete whatever is left.
    for (r, missing) in row_missing.iter_mut().enumerate() {
        while *missing > 0 {
            let best = (0..cols.len())
                .filter(|&c| fractional[r][c] && !raised[r][c] && col_missing[c] > 0)
                .max_by_key(|&c| (col_missing[c], std::cmp::Reverse(c)));
            let Some(c) = best else { break };
            raised[r][c] = true;
            *missing -= 1;
            col_missing[c] -= 1;
        }
    }
    // Augment one unit at a time from a row that misses units to a column
    // that misses units. Paths alternate row -> column through a cell that
    // can take one more unit and is not raised yet, and column -> row back
    // through a raised cell (moving that unit elsewhere), as in bipartite
    // matching.
    for (start, missing) in row_missing.iter_mut().enumerate() {
        while *missing > 0 {
            let Some((path, end)) = augmenting_path(start, &fractional, &raised, &col_missing)
            else {
                // Cannot happen for consistent inputs (see the module docs);
                // leave the unit unplaced rather than loop forever.
                break;
            };
            for (r, c, raise) in path {
                raised[r][c] = raise;
            }
            *missing -= 1;
            col_missing[end] -= 1;
        }
    }
    for (r, row) in raised.iter().enumerate() {
        for (c, &up) in row.iter().enumerate() {
            if up {
                cells[r][c] += 1;
            }
        }
    }
    cells
}

/// A step of an augmenting path: set `raised[row][col]` to the flag.
type Step = (usize, usize, bool);

/// Breadth-first search for an augmenting path from row `start` to a column
/// that still misses units. Returns the cell flips and the end column.
fn augmenting_path(
    start: usize,
    fractional: &[Vec<bool>],
    raised: &[Vec<bool>],
    col_missing: &[u32],
) -> Option<(Vec<Step>, usize)> {
    let n_rows = fractional.len();
    let n_cols = col_missing.len();
    // How each column / row was reached: the row before it / the column before it.
    let mut col_from: Vec<Option<usize>> = vec![None; n_cols];
    let mut row_from: Vec<Option<usize>> = vec![None; n_rows];
    let mut row_seen = vec![false; n_rows];
    row_seen[start] = true;
    let mut queue = VecDeque::from([start]);
    while let Some(r) = queue.pop_front() {
        for c in 0..n_cols {
            if col_from[c].is_some() || !fractional[r][c] || raised[r][c] {
                continue;
            }
            col_from[c] = Some(r);
            if col_missing[c] > 0 {
                return Some((trace(c, &col_from, &row_from), c));
            }
            for (next, row) in raised.iter().enumerate() {
                if row[c] && !row_seen[next] {
                    row_seen[next] = true;
                    row_from[next] = Some(c);
                    queue.push_back(next);
                }
            }
        }
    }
    None
}

/// Walks an augmenting path back from its end column.
fn trace(end: usize, col_from: &[Option<usize>], row_from: &[Option<usize>]) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut c = end;
    loop {
        let r = col_from[c].expect("every reached column has a predecessor row");
        steps.push((r, c, true));
        match row_from[r] {
            Some(previous) => {
                steps.push((r, previous, false));
                c = previous;
            }
            None => return steps,
        }
    }
}

#[cfg(test)]
mod tests;
