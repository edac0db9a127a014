use proptest::prelude::*;

use super::*;

/// Exact proportional share `total * part / sum`, as a float for bounds.
fn share(total: u32, part: u64, sum: u64) -> f64 {
    f64::from(total) * part as f64 / sum as f64
}

#[test]
fn splits_evenly_on_equal_workers() {
    let placements = split(10, &[1], &[2, 2]);
    assert_eq!(placements[0].class_users, vec![5]);
    assert_eq!(placements[1].class_users, vec![5]);
    assert_eq!(placements[0].user_id_offset, 0);
    assert_eq!(placements[1].user_id_offset, 5);
}

#[test]
fn follows_cores() {
    let placements = split(9, &[1], &[1, 2]);
    let users: Vec<u32> = placements.iter().map(|p| p.users).collect();
    assert_eq!(users, vec![3, 6]);
}

#[test]
fn class_counts_are_largest_remainder_of_weights() {
    // 7 users, weights 60:1:14:5 (sum 80): shares 5.25, 0.0875, 1.225, 0.4375.
    // Floors 5,0,1,0 = 6; the one missing user goes to the largest remainder (0.4375).
    let placements = split(7, &[60, 1, 14, 5], &[1]);
    assert_eq!(placements[0].class_users, vec![5, 0, 1, 1]);
}

#[test]
fn every_worker_gets_the_mix() {
    // Two classes, two workers: each worker gets both classes, not one each.
    let placements = split(4, &[1, 1], &[1, 1]);
    assert_eq!(placements[0].class_users, vec![1, 1]);
    assert_eq!(placements[1].class_users, vec![1, 1]);
}

#[test]
fn fewer_users_than_workers_leaves_some_idle() {
    let placements = split(2, &[1], &[1, 1, 1]);
    let users: Vec<u32> = placements.iter().map(|p| p.users).collect();
    assert_eq!(users, vec![1, 1, 0]);
}

#[test]
fn zero_weights_and_cores_are_handled() {
    let placements = split(4, &[0, 0], &[0, 0]);
    let total: u32 = placements.iter().map(|p| p.users).sum();
    assert_eq!(total, 4);
    assert_eq!(placements[0].class_users, vec![1, 1]);
}

#[test]
fn no_workers_no_placements() {
    assert!(split(10, &[1], &[]).is_empty());
}

#[test]
fn spawn_rate_share_is_proportional() {
    assert_eq!(spawn_rate_share(10.0, 3, 6), 5.0);
    assert_eq!(spawn_rate_share(10.0, 0, 0), 0.0);
}

proptest! {
    #[test]
    fn split_invariants(
        users in 0u32..5_000,
        weights in prop::collection::vec(1u32..1_000, 1..8),
        cores in prop::collection::vec(1u32..64, 1..40),
    ) {
        let placements = split(users, &weights, &cores);
        prop_assert_eq!(placements.len(), cores.len());

        // Total exact, each worker's total within 1 of its core share.
        let total: u32 = placements.iter().map(|p| p.users).sum();
        prop_assert_eq!(total, users);
        let core_sum: u64 = cores.iter().map(|&c| u64::from(c)).sum();
        for (placement, &core) in placements.iter().zip(&cores) {
            let exact = share(users, u64::from(core), core_sum);
            prop_assert!((f64::from(placement.users) - exact).abs() < 1.0);
            let class_sum: u32 = placement.class_users.iter().sum();
            prop_assert_eq!(class_sum, placement.users);
            prop_assert_eq!(placement.class_users.len(), weights.len());
        }

        // Class totals: exactly Hamilton's apportionment of the weights.
        let weight_sum: u64 = weights.iter().map(|&w| u64::from(w)).sum();
        let expected = largest_remainder(users, &weights.iter().map(|&w| u64::from(w)).collect::<Vec<_>>());
        for (class, &weight) in weights.iter().enumerate() {
            let class_total: u32 = placements.iter().map(|p| p.class_users[class]).sum();
            prop_assert_eq!(class_total, expected[class]);
            let exact = share(users, u64::from(weight), weight_sum);
            prop_assert!((f64::from(class_total) - exact).abs() < 1.0);
        }

        // The mix: every cell is within 1 of its proportional share.
        for placement in &placements {
            for (class, &cell) in placement.class_users.iter().enumerate() {
                let exact = if users == 0 {
                    0.0
                } else {
                    f64::from(placement.users) * f64::from(expected[class]) / f64::from(users)
                };
                prop_assert!((f64::from(cell) - exact).abs() < 1.0,
                    "cell {} vs exact {}", cell, exact);
            }
        }

        // Offsets are the running sum: user ids are unique and contiguous.
        let mut offset = 0u64;
        for placement in &placements {
            prop_assert_eq!(placement.user_id_offset, offset);
            offset += u64::from(placement.users);
        }
    }

    #[test]
    fn largest_remainder_is_exact(
        total in 0u32..100_000,
        weights in prop::collection::vec(0u64..10_000, 1..20),
    ) {
        prop_assume!(weights.iter().any(|&w| w > 0));
        let counts = largest_remainder(total, &weights);
        let sum: u64 = counts.iter().map(|&c| u64::from(c)).sum();
        prop_assert_eq!(sum, u64::from(total));
        let weight_sum: u64 = weights.iter().sum();
        for (&count, &weight) in counts.iter().zip(&weights) {
            let exact = share(total, weight, weight_sum);
            prop_assert!((f64::from(count) - exact).abs() < 1.0);
        }
    }
}

#[test]
fn open_model_rate_follows_the_in_flight_bound() {
    let split = split_open(300.0, 30, &[2, 1], &[1, 2]);
    let bounds: Vec<u32> = split.iter().map(|(p, _)| p.users).collect();
    assert_eq!(bounds, vec![10, 20]);
    assert_eq!(split[0].0.class_users, vec![7, 3]);
    assert!((split[0].1 - 100.0).abs() < 1e-9);
    assert!((split[1].1 - 200.0).abs() < 1e-9);
    // Fewer in-flight slots than workers: the idle worker gets no rate.
    let split = split_open(50.0, 1, &[1], &[1, 1]);
    assert_eq!(split[0].1, 50.0);
    assert_eq!(split[1].1, 0.0);
    assert_eq!(default_max_in_flight(100_000.0), 100_000);
    assert_eq!(default_max_in_flight(0.5), 1);
    assert_eq!(default_max_in_flight(f64::NAN), 1);
}

proptest! {
    #[test]
    fn open_model_splits_are_exact(
        rate in 0.001f64..1e7,
        max_in_flight in 1u32..100_000,
        weights in proptest::collection::vec(0u32..100, 1..5),
        cores in proptest::collection::vec(0u32..64, 1..40),
    ) {
        let split = split_open(rate, max_in_flight, &weights, &cores);
        prop_assert_eq!(split.len(), cores.len());
        let bound: u64 = split.iter().map(|(p, _)| u64::from(p.users)).sum();
        prop_assert_eq!(bound, u64::from(max_in_flight));
        let total_rate: f64 = split.iter().map(|(_, r)| r).sum();
        prop_assert!((total_rate - rate).abs() <= 1e-9 * rate, "{} vs {}", total_rate, rate);
        let cores1: Vec<u64> = cores.iter().map(|&c| u64::from(c.max(1))).collect();
        let core_sum: u64 = cores1.iter().sum();
        for ((placement, worker_rate), &c) in split.iter().zip(&cores1) {
            // No worker above its share of the bound by more than one.
            prop_assert!(f64::from(placement.users) <= share(max_in_flight, c, core_sum) + 1.0);
            prop_assert!(*worker_rate >= 0.0);
            if placement.users == 0 {
                prop_assert_eq!(*worker_rate, 0.0);
            }
            // Same rate per in-flight slot on every worker.
            let expected = rate * f64::from(placement.users) / f64::from(max_in_flight);
            prop_assert!((worker_rate - expected).abs() <= 1e-9 * rate.max(1.0));
        }
    }
}

/// Fleet scale (the controller-scale benchmark's shape, more classes): the
/// greedy pass and the searches together must still round exactly.
#[test]
fn fleet_scale_split_is_exact() {
    let weights: Vec<u32> = (0..60).map(|i| [3, 1, 4, 1, 5, 9, 2, 6][i % 8]).collect();
    let cores: Vec<u32> = (0..2_000).map(|i| 1 + i % 7).collect();
    let users = 99_991;
    let placements = split(users, &weights, &cores);
    let expected = largest_remainder(
        users,
        &weights.iter().map(|&w| u64::from(w)).collect::<Vec<_>>(),
    );
    for (class, &class_total) in expected.iter().enumerate() {
        let placed: u32 = placements.iter().map(|p| p.class_users[class]).sum();
        assert_eq!(placed, class_total, "class {class}");
    }
    for placement in &placements {
        for (&cell, &class_total) in placement.class_users.iter().zip(&expected) {
            // floor or ceiling of users_w * class_total / users
            let scaled = u64::from(cell) * u64::from(users);
            let exact = u64::from(placement.users) * u64::from(class_total);
            assert!(scaled.abs_diff(exact) < u64::from(users));
        }
    }
}
