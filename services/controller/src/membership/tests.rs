use proptest::prelude::*;

use super::*;

fn start(users: u32, weights: &[u32], workers: &[(&str, u32)]) -> Membership {
    let cores: Vec<u32> = workers.iter().map(|(_, c)| *c).collect();
    let placements = split::split(users, weights, &cores);
    Membership::new(
        weights.to_vec(),
        users,
        10.0,
        workers
            .iter()
            .zip(&placements)
            .map(|((id, cores), p)| (*id, *cores, p)),
    )
}

/// Users per class summed over the members.
fn class_totals(m: &Membership) -> Vec<u32> {
    let mut totals = vec![0; m.weights.len()];
    for member in m.members.values() {
        for (total, users) in totals.iter_mut().zip(&member.class_users) {
            *total += users;
        }
    }
    totals
}

#[test]
fn a_joining_worker_gets_its_share_at_once() {
    let mut m = start(12, &[1], &[("a", 1), ("b", 1)]);
    let changes = m.join("c", 1);
    let by_id: Vec<(&str, u32, bool)> = changes
        .iter()
        .map(|c| (c.worker_id.as_str(), c.class_users[0], c.joined))
        .collect();
    assert_eq!(by_id, [("a", 4, false), ("b", 4, false), ("c", 4, true)]);
    // a and b retire 2 each, c starts 4: 8 moves at 10 users/s in total.
    let rates: Vec<f64> = changes.iter().map(|c| c.spawn_rate).collect();
    assert_eq!(rates, [2.5, 2.5, 5.0]);
    // Fresh ids: the start used 0..12.
    assert!(changes.iter().all(|c| c.user_id_offset >= 12));
}

#[test]
fn a_leaving_worker_is_replaced_by_the_others() {
    let mut m = start(9, &[2, 1], &[("a", 1), ("b", 1), ("c", 1)]);
    let changes = m.leave("b");
    assert_eq!(changes.len(), 2);
    assert_eq!(class_totals(&m), [6, 3]);
    assert!(m.leave("b").is_empty(), "leaving twice changes nothing");
    assert_eq!(m.len(), 2);
}

#[test]
fn a_returning_worker_gets_its_share_again() {
    let mut m = start(4, &[1], &[("a", 1), ("b", 1)]);
    let changes = m.join("a", 1);
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].worker_id, "a");
    assert_eq!(changes[0].class_users, [2]);
    assert!(changes[0].joined);
}

#[test]
fn scaling_changes_every_share_and_the_rate() {
    let mut m = start(4, &[1], &[("a", 1), ("b", 1)]);
    let changes = m.scale(10, Some(6.0));
    assert_eq!(changes.len(), 2);
    assert_eq!(m.users(), 10);
    assert_eq!(class_totals(&m), [10]);
    let total_rate: f64 = changes.iter().map(|c| c.spawn_rate).sum();
    assert!((total_rate - 6.0).abs() < 1e-9);
    assert!(m.scale(10, None).is_empty(), "no change, no message");
}

#[derive(Debug, Clone)]
enum Op {
    Join(u8, u32),
    Leave(u8),
    Scale(u32),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..8, 1u32..5).prop_map(|(w, c)| Op::Join(w, c)),
        (0u8..8).prop_map(Op::Leave),
        (0u32..500).prop_map(Op::Scale),
    ]
}

proptest! {
    /// Whatever joins, leaves and scales happen, the members hold exactly
    /// the run's users with the class split of a fresh placement, and user
    /// id ranges handed out never overlap.
    #[test]
    fn shares_stay_exact(
        users in 0u32..500,
        weights in prop::collection::vec(0u32..10, 1..4),
        ops in prop::collection::vec(op(), 0..20),
    ) {
        let mut m = start(users, &weights, &[("w0", 1), ("w1", 2)]);
        let first_free = u64::from(users);
        let mut ranges: Vec<(u64, u64)> = Vec::new();
        for op in ops {
            let changes = match op {
                Op::Join(w, cores) => m.join(&format!("w{w}"), cores),
                Op::Leave(w) => m.leave(&format!("w{w}")),
                Op::Scale(users) => m.scale(users, None),
            };
            for change in &changes {
                let count: u32 = change.class_users.iter().sum();
                let range = (change.user_id_offset, change.user_id_offset + u64::from(count));
                prop_assert!(range.0 >= first_free, "ids of the start are not reused");
                for other in &ranges {
                    prop_assert!(range.1 <= other.0 || range.0 >= other.1 || range.0 == range.1);
                }
                ranges.push(range);
                prop_assert!(change.spawn_rate >= 0.0);
            }
            if !m.is_empty() {
                let cores: Vec<u32> = m.members.values().map(|member| member.cores).collect();
                let fresh: Vec<Vec<u32>> = split::split(m.users(), &weights, &cores)
                    .into_iter()
                    .map(|p| p.class_users)
                    .collect();
                let now: Vec<Vec<u32>> = m.members.values().map(|member| member.class_users.clone()).collect();
                prop_assert_eq!(now, fresh);
            }
        }
    }
}

#[test]
fn the_open_model_moves_rates_with_the_members() {
    let mut m = start(10, &[1], &[("a", 1), ("b", 1)]).open_model(100.0);
    assert!(m.is_open());
    let changes = m.scale_rate(300.0);
    let rates: Vec<(&str, f64)> = changes
        .iter()
        .map(|c| (c.worker_id.as_str(), c.rate))
        .collect();
    assert_eq!(rates, [("a", 150.0), ("b", 150.0)]);
    // b leaves: a takes the whole rate (and the whole in-flight bound).
    let changes = m.leave("b");
    assert_eq!(changes.len(), 1);
    assert_eq!((changes[0].rate, changes[0].class_users[0]), (300.0, 10));
    assert!(m.scale_rate(300.0).is_empty(), "no change, no message");
}
