//! Who runs a live run and with how many users: the pure part of
//! rebalancing.
//!
//! A run's users are always placed as [`split::split`] places them over the
//! current members (sorted by worker id), so a worker that joins gets its
//! share at once and a worker that leaves has its share re-placed on the
//! others. Every change yields the workers whose share changed, each with a
//! spawn rate such that all of them reach their new share together at the
//! run's spawn rate, and a fresh range of user ids.

use std::collections::BTreeMap;

use crate::split::{self, Placement};

/// One worker's new share.
#[derive(Debug, Clone, PartialEq)]
pub struct Assignment {
    pub worker_id: String,
    /// Users per class, indexed like the scenario's classes.
    pub class_users: Vec<u32>,
    /// Users per second this worker starts or retires at.
    pub spawn_rate: f64,
    /// First id of the users this change starts on that worker.
    pub user_id_offset: u64,
    /// True when the worker was not running the run before this change.
    pub joined: bool,
    /// Open model: iterations per second of this worker (0 in the closed model).
    pub rate: f64,
    /// New connections per second this worker may open (its users' share
    /// of the scenario's `connection: {rate}`; 0 = no limit).
    pub connection_rate: f64,
}

#[derive(Debug, Clone, PartialEq)]
struct Member {
    cores: u32,
    class_users: Vec<u32>,
    rate: f64,
}

/// The members of a run and their shares.
#[derive(Debug, Clone, PartialEq)]
pub struct Membership {
    weights: Vec<u32>,
    users: u32,
    spawn_rate: f64,
    members: BTreeMap<String, Member>,
    /// Every user id below this one has been handed out.
    next_user_id: u64,
    /// Open model: the run's total rate, split like the in-flight bound
    /// (`users`); 0 in the closed model.
    rate: f64,
    /// The open model: shares are rates over a fixed pool of users.
    open: bool,
    /// New connections per second across the run (0 = no limit), split in
    /// proportion to users.
    connection_rate: f64,
}

impl Membership {
    /// The membership right after the start: `placed` as `split::split` made it.
    pub fn new<'a>(
        weights: Vec<u32>,
        users: u32,
        spawn_rate: f64,
        placed: impl IntoIterator<Item = (&'a str, u32, &'a Placement)>,
    ) -> Self {
        let mut next_user_id = 0;
        let members = placed
            .into_iter()
            .map(|(worker_id, cores, placement)| {
                next_user_id =
                    next_user_id.max(placement.user_id_offset + u64::from(placement.users));
                let member = Member {
                    cores,
                    class_users: placement.class_users.clone(),
                    rate: 0.0,
                };
                (worker_id.to_owned(), member)
            })
            .collect();
        Self {
            weights,
            users,
            spawn_rate,
            members,
            next_user_id,
            rate: 0.0,
            open: false,
            connection_rate: 0.0,
        }
    }

    /// A limit of new connections per second across the run (0 = none).
    pub fn with_connection_rate(mut self, rate: f64) -> Self {
        self.connection_rate = rate;
        self
    }

    /// A worker's share of the connection rate for `users` of the run's.
    fn connection_share(&self, users: u32) -> f64 {
        split::spawn_rate_share(self.connection_rate, users, self.users)
    }

    /// The open model: `rate` iterations per second in all, each member's
    /// share in proportion to its share of the in-flight bound.
    pub fn open_model(mut self, rate: f64) -> Self {
        self.open = true;
        self.rate = rate;
        let users: Vec<u32> = self
            .members
            .values()
            .map(|m| m.class_users.iter().sum())
            .collect();
        for (member, share) in self
            .members
            .values_mut()
            .zip(split::rate_shares(rate, &users))
        {
            member.rate = share;
        }
        self
    }

    /// The open model's total rate (0 in the closed model).
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// True for the open model (rate shares), false for the closed one.
    pub fn is_open(&self) -> bool {
        self.open
    }

    /// Open model: a new total rate.
    pub fn scale_rate(&mut self, rate: f64) -> Vec<Assignment> {
        self.rate = rate;
        self.rebalance()
    }

    /// Total users the run aims at.
    pub fn users(&self) -> u32 {
        self.users
    }

    /// Number of workers in the run.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// True when no worker is left.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The members' ids, sorted.
    pub fn worker_ids(&self) -> Vec<String> {
        self.members.keys().cloned().collect()
    }

    /// Users placed on `worker_id` now (0 when it is not in the run).
    pub fn share_users(&self, worker_id: &str) -> u32 {
        self.members
            .get(worker_id)
            .map_or(0, |member| member.class_users.iter().sum())
    }

    /// True when `worker_id` is in the run.
    pub fn contains(&self, worker_id: &str) -> bool {
        self.members.contains_key(worker_id)
    }

    /// Adds a worker (or takes a returning one back) and rebalances.
    pub fn join(&mut self, worker_id: &str, cores: u32) -> Vec<Assignment> {
        if self.members.contains_key(worker_id) {
            // Already in: it gets its share again (it may have restarted).
            let mut changes = self.rebalance();
            if !changes.iter().any(|change| change.worker_id == worker_id) {
                let member = &self.members[worker_id];
                let (class_users, rate) = (member.class_users.clone(), member.rate);
                let users = class_users.iter().sum();
                changes.push(Assignment {
                    worker_id: worker_id.to_owned(),
                    user_id_offset: self.take_ids(users),
                    class_users,
                    spawn_rate: self.spawn_rate,
                    joined: true,
                    rate,
                    connection_rate: self.connection_share(users),
                });
            }
            return changes;
        }
        let classes = self.weights.len();
        self.members.insert(
            worker_id.to_owned(),
            Member {
                cores,
                class_users: vec![0; classes],
                rate: 0.0,
            },
        );
        let mut changes = self.rebalance();
        for change in &mut changes {
            change.joined |= change.worker_id == worker_id;
        }
        changes
    }

    /// Removes a worker and re-places its users on the others.
    pub fn leave(&mut self, worker_id: &str) -> Vec<Assignment> {
        if self.members.remove(worker_id).is_none() {
            return Vec::new();
        }
        self.rebalance()
    }

    /// Changes the total users (and the rate to move at, when given).
    pub fn scale(&mut self, users: u32, spawn_rate: Option<f64>) -> Vec<Assignment> {
        self.users = users;
        if let Some(rate) = spawn_rate.filter(|rate| rate.is_finite() && *rate > 0.0) {
            self.spawn_rate = rate;
        }
        self.rebalance()
    }

    /// Places the users over the current members; returns the changed shares.
    fn rebalance(&mut self) -> Vec<Assignment> {
        if self.members.is_empty() {
            return Vec::new();
        }
        let cores: Vec<u32> = self.members.values().map(|member| member.cores).collect();
        let placements = split::split(self.users, &self.weights, &cores);
        let users: Vec<u32> = placements.iter().map(|p| p.users).collect();
        let rates = split::rate_shares(self.rate, &users);
        let moves: Vec<(String, Vec<u32>, u32, f64)> = self
            .members
            .iter()
            .zip(placements.into_iter().zip(rates))
            .filter(|((_, member), (placement, rate))| {
                member.class_users != placement.class_users || member.rate != *rate
            })
            .map(|((id, member), (placement, rate))| {
                let old: u32 = member.class_users.iter().sum();
                (
                    id.clone(),
                    placement.class_users,
                    old.abs_diff(placement.users),
                    rate,
                )
            })
            .collect();
        let moved: u32 = moves.iter().map(|(_, _, delta, _)| delta).sum();
        let mut changes = Vec::with_capacity(moves.len());
        for (worker_id, class_users, delta, rate) in moves {
            let users: u32 = class_users.iter().sum();
            let spawn_rate = if moved == 0 {
                self.spawn_rate
            } else {
                self.spawn_rate * f64::from(delta) / f64::from(moved)
            };
            let user_id_offset = self.take_ids(users);
            if let Some(member) = self.members.get_mut(&worker_id) {
                member.class_users.clone_from(&class_users);
                member.rate = rate;
            }
            changes.push(Assignment {
                worker_id,
                class_users,
                spawn_rate,
                user_id_offset,
                joined: false,
                rate,
                connection_rate: self.connection_share(users),
            });
        }
        changes
    }

    /// A fresh range of `count` user ids.
    fn take_ids(&mut self, count: u32) -> u64 {
        let first = self.next_user_id;
        self.next_user_id += u64::from(count);
        first
    }
}

#[cfg(test)]
mod tests;
