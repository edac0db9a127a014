//! Handing out shares of a live run: joins, leaves, scaling and the load
//! shape, applied to the run's [`Membership`] and sent to the workers as
//! `StartWork` (a worker new to the run) or `ChangeWork`.

use std::time::Duration;

use cicada_proto::v1::controller_message::Msg;
use cicada_proto::v1::{ChangeWork, ControllerMessage, StartWork};

use crate::Shared;
use crate::lifecycle::{SHAPE_TICK, Tracker};
use crate::membership::{Assignment, Membership};
use crate::runs::{Run, RunEvent};
use crate::shape::{Kind, Shape};

/// What a run needs to hand out shares while it runs.
pub(crate) struct Placing {
    pub membership: Membership,
    /// The `StartWork` every worker got, for workers that join later (their
    /// share and user ids are filled in per worker).
    pub template: StartWork,
}

/// Moves a shaped run toward the target its shape gives one tick ahead.
pub(crate) fn follow_shape(
    shape: &Shape,
    elapsed: Duration,
    membership: &mut Membership,
) -> Vec<Assignment> {
    let ahead = elapsed + SHAPE_TICK;
    match shape.kind {
        Kind::Users => {
            let users = shape.users_at(ahead);
            let moved = users.abs_diff(membership.users());
            if moved == 0 {
                return Vec::new();
            }
            let rate = f64::from(moved) / SHAPE_TICK.as_secs_f64();
            membership.scale(users, Some(rate))
        }
        Kind::Rate => {
            let rate = shape.at(ahead);
            if (rate - membership.rate()).abs() < 1e-9 {
                return Vec::new();
            }
            membership.scale_rate(rate)
        }
    }
}

/// Applies a running run's event to its workers and shares; returns the
/// shares to send.
pub(crate) fn place(
    shared: &Shared,
    run: &Run,
    tracker: &mut Tracker,
    membership: &mut Membership,
    event: RunEvent,
) -> Vec<Assignment> {
    match event {
        RunEvent::Joined { worker_id, cores } => {
            if !shared.registry.claim(&worker_id, &run.id) {
                return Vec::new();
            }
            if !tracker.add(&worker_id) {
                shared.registry.release(&run.id, [worker_id.as_str()]);
                return Vec::new();
            }
            // Weighed in the unit of the members' weights (start.rs).
            let weight = shared.registry.placement_weights(&[(&worker_id, cores)])[0];
            tracing::info!(run_id = %run.id, worker_id = %worker_id, cores, weight, "worker joins the run");
            membership.join(&worker_id, weight)
        }
        RunEvent::Scale { users, spawn_rate } => {
            tracing::info!(run_id = %run.id, users, "scaling the run");
            membership.scale(users, spawn_rate)
        }
        RunEvent::ScaleRate { rate } => {
            tracing::info!(run_id = %run.id, rate, "changing the run's rate");
            membership.scale_rate(rate)
        }
        RunEvent::Done { ref worker_id, .. } | RunEvent::Gone { ref worker_id, .. } => {
            let worker_id = worker_id.clone();
            tracker.apply(event, membership.share_users(&worker_id));
            if membership.contains(&worker_id) {
                tracing::info!(run_id = %run.id, worker_id = %worker_id, "worker left the run; re-placing its users");
            }
            membership.leave(&worker_id)
        }
        RunEvent::Stop | RunEvent::DataExhausted(_) => Vec::new(),
    }
}

/// Sends each changed share: `StartWork` to a worker new to the run (then
/// `ChangeWork` too, which moves a worker that was already running it),
/// `ChangeWork` to the others. A worker that cannot be reached is about to
/// be reported gone, and its share re-placed then.
pub(crate) fn send_changes(
    shared: &Shared,
    run: &Run,
    template: &StartWork,
    open: bool,
    changes: Vec<Assignment>,
) {
    for change in changes {
        let Some(tx) = shared.registry.sender(&change.worker_id) else {
            continue;
        };
        let mut messages = Vec::with_capacity(2);
        // The open model's pool of virtual users is its in-flight bound.
        let max_in_flight = if open {
            change.class_users.iter().sum()
        } else {
            0
        };
        if change.joined {
            messages.push(Msg::StartWork(StartWork {
                class_users: change.class_users.clone(),
                spawn_rate: change.spawn_rate,
                user_id_offset: change.user_id_offset,
                rate: change.rate,
                max_in_flight,
                connection_rate: change.connection_rate,
                ..template.clone()
            }));
        }
        messages.push(Msg::ChangeWork(ChangeWork {
            run_id: run.id.clone(),
            class_users: change.class_users,
            spawn_rate: change.spawn_rate,
            user_id_offset: change.user_id_offset,
            rate: change.rate,
            max_in_flight,
            connection_rate: change.connection_rate,
        }));
        for msg in messages {
            if tx
                .try_send(Ok(ControllerMessage { msg: Some(msg) }))
                .is_err()
            {
                tracing::warn!(run_id = %run.id, worker_id = %change.worker_id, "failed to send a new share");
                break;
            }
        }
    }
}
