//! The rows users take from the scenario's data sets.
//!
//! A `sequential`, `circular` or `random` set is a [`Table`] every thread
//! reads without a lock; a `unique` set is leased from the controller in
//! blocks ([`RowSource`]), so no row is handed out twice across the fleet.
//! A block is fetched before the last one runs out, and grows while users
//! keep asking, so a fast run waits for the controller about once per
//! block, not per row. The first block is one row: a worker leases about
//! as many rows as its users wait for, so a small set is shared out
//! across the fleet instead of going whole to the first worker that asks.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use cicada_scenario::Table;
use cicada_scenario::data::Pick;
use futures::future::BoxFuture;
use parking_lot::Mutex;
use tokio::sync::Notify;

/// Rows a fetch asks for first, and at most.
const FIRST_BLOCK: u32 = 1;
const MAX_BLOCK: u32 = 4096;

/// Where the rows of a `unique` data set come from.
pub trait RowSource: Send + Sync + 'static {
    /// Up to `count` rows of data set `set`, cells row after row, and
    /// whether the set is exhausted now (no row is left to lease).
    fn take(&self, set: usize, count: u32) -> BoxFuture<'static, Result<Leased, String>>;

    /// Tells that this worker has used every row it leased of exhausted
    /// set `set`.
    fn drained(&self, set: usize) -> BoxFuture<'static, Result<(), String>>;
}

/// What one lease brought.
#[derive(Debug, Default)]
pub struct Leased {
    pub cells: Vec<String>,
    pub exhausted: bool,
}

/// The data sets of a run, indexed like `Scenario::data()`.
#[derive(Clone, Default)]
pub struct DataSets {
    sets: Vec<DataSet>,
}

#[derive(Clone)]
enum DataSet {
    Table { pick: Pick, table: Arc<Table> },
    Unique(Arc<UniqueFeed>),
}

impl std::fmt::Debug for DataSets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataSets")
            .field("sets", &self.sets.len())
            .finish()
    }
}

/// Where a user is in each data set it reads in order.
pub(crate) type Cursors = Vec<u64>;

impl DataSets {
    /// No data sets.
    pub fn none() -> DataSets {
        DataSets::default()
    }

    /// Adds the next set: a table read by `pick` (not `unique`).
    pub fn push_table(&mut self, pick: Pick, table: Table) {
        debug_assert_ne!(pick, Pick::Unique);
        self.sets.push(DataSet::Table {
            pick,
            table: Arc::new(table),
        });
    }

    /// Adds the next set: `unique`, `width` cells a row, leased from `source`
    /// by tasks spawned on `runtime`.
    pub fn push_unique(
        &mut self,
        width: usize,
        source: Arc<dyn RowSource>,
        runtime: tokio::runtime::Handle,
    ) {
        let set = self.sets.len();
        self.sets.push(DataSet::Unique(Arc::new(UniqueFeed {
            set,
            width,
            source,
            runtime,
            state: Mutex::new(FeedState {
                rows: VecDeque::new(),
                fetching: false,
                exhausted: false,
                drained: false,
                block: FIRST_BLOCK,
            }),
            ready: Notify::new(),
        })));
    }

    pub fn len(&self) -> usize {
        self.sets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sets.is_empty()
    }

    /// The cursors of a new user: `sequential` sets start at the first row,
    /// `circular` ones at row `user_id mod rows`.
    pub(crate) fn cursors(&self, user_id: u64) -> Cursors {
        self.sets
            .iter()
            .map(|set| match set {
                DataSet::Table {
                    pick: Pick::Circular,
                    table,
                } => user_id % table.rows() as u64,
                _ => 0,
            })
            .collect()
    }

    /// Takes a row of `set` and copies its cells into `vars` as `binding`
    /// says; false when the set has no row left for this user.
    pub(crate) async fn take(
        &self,
        set: usize,
        cursors: &mut Cursors,
        rng: &mut impl rand::Rng,
        vars: &mut [String],
        binding: &[(usize, usize)],
    ) -> bool {
        match &self.sets[set] {
            DataSet::Table { pick, table } => {
                let rows = table.rows() as u64;
                let row = match pick {
                    Pick::Random => rng.random_range(0..rows),
                    Pick::Circular => {
                        let row = cursors[set] % rows;
                        cursors[set] = row + 1;
                        row
                    }
                    Pick::Sequential | Pick::Unique => {
                        let row = cursors[set];
                        if row >= rows {
                            return false;
                        }
                        cursors[set] = row + 1;
                        row
                    }
                } as usize;
                for &(column, var) in binding {
                    // Into the variable's own string: no allocation once
                    // it has held a value as long.
                    vars[var].clear();
                    vars[var].push_str(table.cell(row, column));
                }
                true
            }
            DataSet::Unique(feed) => match feed.take().await {
                Some(row) => {
                    let mut row = row.into_vec();
                    for &(column, var) in binding {
                        vars[var] = std::mem::take(&mut row[column]);
                    }
                    true
                }
                None => false,
            },
        }
    }
}

/// A `unique` set's leased rows on this worker.
struct UniqueFeed {
    set: usize,
    width: usize,
    source: Arc<dyn RowSource>,
    runtime: tokio::runtime::Handle,
    state: Mutex<FeedState>,
    /// Woken when a fetch ends (rows, or the set is exhausted).
    ready: Notify,
}

struct FeedState {
    rows: VecDeque<Box<[String]>>,
    fetching: bool,
    /// The controller has no row left to lease.
    exhausted: bool,
    /// The controller was told this worker used all its rows.
    drained: bool,
    /// Rows the next fetch asks for.
    block: u32,
}

impl UniqueFeed {
    /// Tells the controller (with retries) that this worker's rows are used up.
    fn tell_drained(self: &Arc<Self>) {
        let feed = self.clone();
        self.runtime.spawn(async move {
            for attempt in 0..10u32 {
                match feed.source.drained(feed.set).await {
                    Ok(()) => return,
                    Err(error) => {
                        tracing::warn!(set = feed.set, %error, attempt, "failed to report used-up data rows");
                        tokio::time::sleep(Duration::from_millis(200) * (attempt + 1)).await;
                    }
                }
            }
        });
    }

    /// The next leased row; `None` once the set is exhausted.
    async fn take(self: &Arc<Self>) -> Option<Box<[String]>> {
        loop {
            let ready = self.ready.notified();
            tokio::pin!(ready);
            ready.as_mut().enable();
            {
                let mut state = self.state.lock();
                if let Some(row) = state.rows.pop_front() {
                    // Refill before the block runs out.
                    if state.rows.len() < (state.block / 2) as usize {
                        self.fetch(&mut state);
                    }
                    return Some(row);
                }
                if state.exhausted {
                    if !state.drained {
                        state.drained = true;
                        self.tell_drained();
                    }
                    return None;
                }
                // Users are waiting: ask for more next time.
                if !state.fetching {
                    state.block = (state.block * 2).min(MAX_BLOCK);
                }
                self.fetch(&mut state);
            }
            ready.await;
        }
    }

    fn fetch(self: &Arc<Self>, state: &mut FeedState) {
        if state.fetching || state.exhausted {
            return;
        }
        state.fetching = true;
        let count = state.block;
        let feed = self.clone();
        self.runtime.spawn(async move {
            let mut backoff = Duration::from_millis(100);
            let leased = loop {
                match feed.source.take(feed.set, count).await {
                    Ok(leased) => break leased,
                    Err(error) => {
                        // Users wait for rows meanwhile; the run's stop ends them.
                        tracing::warn!(set = feed.set, %error, "failed to lease data rows; retrying");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(2));
                    }
                }
            };
            let mut state = feed.state.lock();
            state.fetching = false;
            state.exhausted = leased.exhausted;
            // A set is only taken from when templates read a column of
            // it, so rows have at least one cell.
            let mut cells = leased.cells.into_iter();
            while cells.len() >= feed.width.max(1) {
                let row: Box<[String]> = cells.by_ref().take(feed.width).collect();
                state.rows.push_back(row);
            }
            drop(state);
            feed.ready.notify_waiters();
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cicada_scenario::Scenario;
    use rand::SeedableRng;
    use std::sync::atomic::{AtomicUsize, Ordering};

    const YAML: &str = r#"
name: d
data:
  rows: {file: rows.csv, pick: sequential}
  ring: {file: rows.csv, pick: circular}
  any: {file: rows.csv, pick: random}
  once: {file: rows.csv}
users:
  - tasks:
      - request: {path: "/{{ rows.next.id }}/{{ ring.next.id }}/{{ any.next.id }}/{{ once.next.id }}"}
"#;

    /// Leases rows of a real table, `per_call` at a time, as the controller does.
    struct TableRows {
        table: Table,
        next: AtomicUsize,
        per_call: usize,
        drained: AtomicUsize,
    }

    impl RowSource for TableRows {
        fn take(&self, _set: usize, count: u32) -> BoxFuture<'static, Result<Leased, String>> {
            let count = (count as usize).min(self.per_call);
            let first = self
                .next
                .fetch_add(count, Ordering::SeqCst)
                .min(self.table.rows());
            let end = (first + count).min(self.table.rows());
            let cells = (first..end)
                .map(|row| self.table.cell(row, 0).to_owned())
                .collect();
            let exhausted = end >= self.table.rows();
            Box::pin(async move { Ok(Leased { cells, exhausted }) })
        }

        fn drained(&self, _set: usize) -> BoxFuture<'static, Result<(), String>> {
            self.drained.fetch_add(1, Ordering::SeqCst);
            Box::pin(async { Ok(()) })
        }
    }

    fn sets(rows: usize) -> (DataSets, Arc<TableRows>) {
        let scenario = Scenario::parse("d.yaml", YAML).unwrap();
        let csv: String = std::iter::once("id\n".to_owned())
            .chain((0..rows).map(|i| format!("r{i}\n")))
            .collect();
        let table = |i: usize| {
            Table::parse(&scenario.data()[i], "d.yaml", "rows.csv", csv.as_bytes()).unwrap()
        };
        let mut sets = DataSets::none();
        for i in 0..3 {
            sets.push_table(scenario.data()[i].pick, table(i));
        }
        let source = Arc::new(TableRows {
            table: table(3),
            next: AtomicUsize::new(0),
            per_call: 2,
            drained: AtomicUsize::new(0),
        });
        sets.push_unique(1, source.clone(), tokio::runtime::Handle::current());
        (sets, source)
    }

    async fn take_all(sets: &DataSets, set: usize, user_id: u64, times: usize) -> Vec<String> {
        let mut cursors = sets.cursors(user_id);
        let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
        let mut vars = vec![String::new()];
        let mut taken = Vec::new();
        for _ in 0..times {
            if !sets
                .take(set, &mut cursors, &mut rng, &mut vars, &[(0, 0)])
                .await
            {
                break;
            }
            taken.push(vars[0].clone());
        }
        taken
    }

    #[tokio::test]
    async fn each_pick_hands_out_rows_as_documented() {
        let (sets, source) = sets(3);
        // sequential: the file once, from the top, for every user.
        assert_eq!(take_all(&sets, 0, 5, 10).await, ["r0", "r1", "r2"]);
        assert_eq!(take_all(&sets, 0, 6, 2).await, ["r0", "r1"]);
        // circular: from row user_id mod rows, wrapping.
        assert_eq!(
            take_all(&sets, 1, 4, 5).await,
            ["r1", "r2", "r0", "r1", "r2"]
        );
        // random: rows of the file, never running out.
        let any = take_all(&sets, 2, 0, 50).await;
        assert_eq!(any.len(), 50);
        assert!(
            any.iter()
                .all(|row| ["r0", "r1", "r2"].contains(&row.as_str()))
        );
        // unique: each row once across users; the end is reported once.
        let first = take_all(&sets, 3, 0, 2).await;
        let rest = take_all(&sets, 3, 1, 10).await;
        let mut all: Vec<String> = first.into_iter().chain(rest).collect();
        all.sort();
        assert_eq!(all, ["r0", "r1", "r2"]);
        assert!(take_all(&sets, 3, 2, 1).await.is_empty());
        tokio::task::yield_now().await;
        assert_eq!(source.drained.load(Ordering::SeqCst), 1);
    }
}
