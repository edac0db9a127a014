//! The engine's OS threads: each runs a current-thread tokio runtime with a
//! `LocalSet` holding its users and their connections.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use http::HeaderValue;
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::{JoinSet, LocalSet};

use super::EngineConfig;
use super::pacer::ConnectPacer;
use super::plan::Plan;
use super::stats::ThreadStats;
use super::target::Target;
use super::user;

/// What the engine tells a thread.
pub(crate) enum Command {
    /// Start a user of this class with this global index.
    Spawn { class: usize, user_id: u64 },
    /// One user of this class stops after its current task (scaling down).
    Retire { class: usize },
    /// Users stop after their current request; the thread ends when all have.
    Stop,
    /// Drop every user now; requests in flight count as cancelled.
    Abort,
    /// Open model: follow this arrival schedule from now on.
    SetSchedule(super::arrival::Schedule),
}

pub(crate) struct ThreadSetup {
    pub stats: Arc<ThreadStats>,
    pub data: super::DataSets,
    pub plan: Arc<Plan>,
    pub target: Arc<Target>,
    pub config: EngineConfig,
    pub pacer: Arc<ConnectPacer>,
    pub commands: mpsc::UnboundedReceiver<Command>,
    /// Counts finished threads; bumped even if the thread panics.
    pub finished: Arc<watch::Sender<usize>>,
}

/// What every user on a thread shares.
pub(crate) struct ThreadCtx {
    pub stats: Arc<ThreadStats>,
    /// The run's data sets.
    pub data: super::DataSets,
    pub plan: Arc<Plan>,
    pub target: Arc<Target>,
    pub config: EngineConfig,
    /// The worker's limit of new connections per second.
    pub pacer: Arc<ConnectPacer>,
    /// This thread's own copy of the `Host` header value (see `Plan`).
    pub authority: HeaderValue,
    pub stopping: Cell<bool>,
    /// Wakes users that are waiting between tasks when the run stops.
    pub stop: Notify,
    /// Retirements asked for per class and not yet taken by a user.
    pub retire: Vec<Cell<u32>>,
    /// Wakes users waiting between tasks when a retirement is asked for.
    pub retire_wake: Notify,
    /// Users' own client certificates (`tls:` of a class), one connector
    /// per distinct certificate and key.
    pub client_certs: RefCell<HashMap<(String, String), UserTls>>,
}

/// A user's own TLS connector, or why its certificate cannot be used.
pub(crate) type UserTls = Rc<Result<tokio_rustls::TlsConnector, String>>;

impl ThreadCtx {
    /// The connector presenting this client certificate and key (PEM),
    /// shared by every user of the thread with the same pair.
    pub fn client_cert(&self, cert_pem: String, key_pem: String) -> UserTls {
        let mut certs = self.client_certs.borrow_mut();
        let key = (cert_pem, key_pem);
        if let Some(tls) = certs.get(&key) {
            return tls.clone();
        }
        let tls = Rc::new(self.target.user_connector(&key.0, &key.1));
        certs.insert(key, tls.clone());
        tls
    }

    /// Takes one pending retirement of `class`; true when this user must stop.
    pub fn take_retirement(&self, class: usize) -> bool {
        let pending = &self.retire[class];
        match pending.get() {
            0 => false,
            n => {
                pending.set(n - 1);
                true
            }
        }
    }
}

struct FinishedGuard(Arc<watch::Sender<usize>>);

impl Drop for FinishedGuard {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n += 1);
    }
}

/// Starts thread `index`: closed-model users, or with `open` the arrival
/// executor of the open model.
pub(crate) fn spawn(
    index: usize,
    setup: ThreadSetup,
    open: Option<super::arrival::ThreadArrivals>,
) -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name(format!("cicada-users-{index}"))
        .spawn(move || {
            let _finished = FinishedGuard(setup.finished.clone());
            let local = LocalSet::new();
            match open {
                None => local.block_on(&runtime, run(setup)),
                Some(open) => local.block_on(&runtime, super::arrival::run(setup, open)),
            }
            // Dropping the LocalSet drops the connection drivers.
            drop(local);
        })?;
    Ok(())
}

/// The context every user of the thread shares, and the command receiver.
pub(crate) fn context(setup: ThreadSetup) -> (Rc<ThreadCtx>, mpsc::UnboundedReceiver<Command>) {
    let ThreadSetup {
        stats,
        data,
        plan,
        target,
        config,
        pacer,
        commands,
        finished: _,
    } = setup;
    let class_count = plan.classes.len();
    let authority = HeaderValue::from_bytes(target.authority.as_bytes())
        .unwrap_or_else(|_| target.authority.clone());
    let ctx = Rc::new(ThreadCtx {
        stats,
        data,
        plan,
        authority,
        target,
        config,
        pacer,
        stopping: Cell::new(false),
        stop: Notify::new(),
        retire: (0..class_count).map(|_| Cell::new(0)).collect(),
        retire_wake: Notify::new(),
        client_certs: RefCell::new(HashMap::new()),
    });
    (ctx, commands)
}

async fn run(setup: ThreadSetup) {
    let (ctx, mut commands) = context(setup);
    let stats = ctx.stats.clone();
    let mut users = JoinSet::new();
    loop {
        tokio::select! {
            command = commands.recv() => match command {
                Some(Command::Spawn { class, user_id }) => {
                    // A spawn racing with stop is dropped: the user never started.
                    if !ctx.stopping.get() {
                        users.spawn_local(user::run(ctx.clone(), class, user_id));
                        stats.add_active_users(1);
                    }
                }
                Some(Command::Retire { class }) => {
                    if let Some(pending) = ctx.retire.get(class) {
                        pending.set(pending.get() + 1);
                        ctx.retire_wake.notify_waiters();
                    }
                }
                Some(Command::Stop) => {
                    ctx.stopping.set(true);
                    ctx.stop.notify_waiters();
                }
                Some(Command::Abort) | None => break,
                Some(Command::SetSchedule(_)) => {}
            },
            Some(_) = users.join_next(), if !users.is_empty() => stats.add_active_users(-1),
        }
        if ctx.stopping.get() && users.is_empty() {
            break;
        }
    }
    // Aborting drops each user's future; its in-flight guard records the
    // request as cancelled before `join_next` reports the task done.
    users.abort_all();
    while users.join_next().await.is_some() {
        stats.add_active_users(-1);
    }
}
