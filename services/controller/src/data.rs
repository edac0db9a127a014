//! A run's data files: checked at `StartRun` against the scenario, the
//! whole-file ones shipped to every worker in `StartWork`, the `unique`
//! ones kept here and leased to workers in blocks (`TakeRows`), so no row
//! is handed out twice across the fleet.

use cicada_proto::v1::{DataFile, TakeRowsResponse};
use cicada_scenario::data::{Exhausted, MAX_DATA_BYTES, Pick};
use cicada_scenario::{Scenario, Table};
use parking_lot::Mutex;

use crate::ControllerError;

/// Most rows one `TakeRows` call hands out.
pub const MAX_TAKE: u32 = 65_536;

/// The data of a run being started.
#[derive(Debug, Default)]
pub struct RunData {
    /// Indexed like `Scenario::data()`; `Some` for `unique` sets.
    unique: Vec<Option<UniqueSet>>,
    /// The files of the other sets, shipped to the workers.
    pub shipped: Vec<DataFile>,
}

#[derive(Debug)]
struct UniqueSet {
    name: String,
    table: Table,
    exhausted: Exhausted,
    lease: Mutex<Lease>,
}

#[derive(Debug, Default)]
struct Lease {
    /// The next row to hand out.
    next: usize,
    /// Workers that leased rows and have not said they used them all.
    holders: std::collections::BTreeSet<String>,
    /// The run has been told the set ran out.
    told: bool,
}

/// The end of a `unique` set, told to the run's life cycle once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exhaustion {
    pub set: String,
    pub rows: usize,
    pub fail: bool,
}

impl Exhaustion {
    /// How the run's end is explained.
    pub fn reason(&self) -> String {
        format!(
            "data set {:?} ran out: all {} rows were used",
            self.set, self.rows
        )
    }
}

impl RunData {
    /// Checks `files` against the scenario's `data:` section: one file per
    /// set, within the size limit, with every column the templates read.
    pub fn load(
        scenario: &Scenario,
        scenario_path: &str,
        files: &[DataFile],
    ) -> Result<RunData, ControllerError> {
        let invalid = |message: String| ControllerError::InvalidArgument(message);
        if let Some(extra) = files
            .iter()
            .find(|file| !scenario.data().iter().any(|set| set.name == file.name))
        {
            return Err(invalid(format!(
                "data file {:?} was sent for data set {:?}, which the scenario does not define",
                extra.path, extra.name
            )));
        }
        let total: usize = files.iter().map(|file| file.content.len()).sum();
        if total > MAX_DATA_BYTES {
            return Err(invalid(format!(
                "the run's data files hold {total} bytes, over the limit of {} MiB for all of them",
                MAX_DATA_BYTES >> 20
            )));
        }
        let mut data = RunData::default();
        for set in scenario.data() {
            let file = files
                .iter()
                .find(|file| file.name == set.name)
                .ok_or_else(|| {
                    invalid(format!(
                        "data set {:?}: its file {} was not sent with the scenario (the CLI reads it next to the scenario file)",
                        set.name, set.file
                    ))
                })?;
            let path = if file.path.is_empty() {
                set.file.as_str()
            } else {
                file.path.as_str()
            };
            let table = Table::parse(set, scenario_path, path, &file.content)?;
            if set.pick == Pick::Unique {
                data.unique.push(Some(UniqueSet {
                    name: set.name.clone(),
                    table,
                    exhausted: set.exhausted,
                    lease: Mutex::new(Lease::default()),
                }));
            } else {
                data.unique.push(None);
                data.shipped.push(file.clone());
            }
        }
        Ok(data)
    }

    /// Hands out up to `count` rows of `unique` set `set` to `worker`, or
    /// takes note that `worker` has used all it leased (`drained`). The
    /// second value is set once per set: when it is exhausted and every
    /// worker that leased rows has used them (or left, see [`Self::leave`]).
    pub fn take(
        &self,
        set: usize,
        count: u32,
        worker: &str,
        drained: bool,
    ) -> Result<(TakeRowsResponse, Option<Exhaustion>), ControllerError> {
        let unique = self
            .unique
            .get(set)
            .and_then(Option::as_ref)
            .ok_or_else(|| {
                ControllerError::InvalidArgument(format!(
                    "data set {set} of this run is not a \"pick: unique\" set"
                ))
            })?;
        let rows = unique.table.rows();
        let mut lease = unique.lease.lock();
        let first = lease.next;
        let end = if drained {
            lease.holders.remove(worker);
            first
        } else {
            let end = first
                .saturating_add(count.clamp(1, MAX_TAKE) as usize)
                .min(rows);
            if end > first {
                lease.holders.insert(worker.to_owned());
            }
            end
        };
        lease.next = end;
        let exhaustion = unique.told_if_done(&mut lease);
        drop(lease);
        let width = unique.table.width();
        let mut cells = Vec::with_capacity((end - first) * width);
        for row in first..end {
            for column in 0..width {
                cells.push(unique.table.cell(row, column).to_owned());
            }
        }
        let response = TakeRowsResponse {
            first_row: first as u64,
            cells,
            exhausted: end >= rows,
        };
        Ok((response, exhaustion))
    }

    /// `worker` left the run: its leased rows will not be used.
    pub fn leave(&self, worker: &str) -> Vec<Exhaustion> {
        self.unique
            .iter()
            .flatten()
            .filter_map(|unique| {
                let mut lease = unique.lease.lock();
                lease.holders.remove(worker);
                unique.told_if_done(&mut lease)
            })
            .collect()
    }
}

impl UniqueSet {
    fn told_if_done(&self, lease: &mut Lease) -> Option<Exhaustion> {
        let done = lease.next >= self.table.rows() && lease.holders.is_empty() && !lease.told;
        lease.told |= done;
        done.then(|| Exhaustion {
            set: self.name.clone(),
            rows: self.table.rows(),
            fail: self.exhausted == Exhausted::Fail,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const YAML: &str = r#"
name: d
data:
  devices: {file: devices.csv, exhausted: fail}
  names: {file: names.jsonl, pick: random}
users:
  - variables: {id: "{{ devices.deviceid }}"}
    tasks:
      - request: {path: "/{{ names.next.name }}"}
"#;

    fn file(name: &str, content: &str) -> DataFile {
        DataFile {
            name: name.into(),
            path: format!("data/{name}"),
            content: content.as_bytes().to_vec().into(),
        }
    }

    #[test]
    fn unique_rows_are_handed_out_once_and_the_end_is_told_once_all_are_used() {
        let scenario = Scenario::parse("d.yaml", YAML).unwrap();
        let data = RunData::load(
            &scenario,
            "d.yaml",
            &[
                file("devices", "deviceid\nd0\nd1\nd2\nd3\n"),
                file("names", "{\"name\": \"a\"}\n"),
            ],
        )
        .unwrap();
        assert_eq!(data.shipped.len(), 1);
        assert_eq!(data.shipped[0].name, "names");
        let (first, end) = data.take(0, 2, "w1", false).unwrap();
        assert_eq!(first.first_row, 0);
        assert_eq!(first.cells, ["d0", "d1"]);
        assert!(!first.exhausted && end.is_none());
        let (second, end) = data.take(0, 1, "w2", false).unwrap();
        assert_eq!(
            (second.first_row, second.cells.as_slice()),
            (2, &["d2".to_owned()][..])
        );
        assert!(end.is_none());
        let (third, end) = data.take(0, 5, "w3", false).unwrap();
        assert_eq!(third.cells, ["d3"]);
        assert!(third.exhausted);
        assert!(end.is_none(), "w1, w2, w3 still hold rows");
        let (none, end) = data.take(0, 5, "w1", false).unwrap();
        assert!(none.cells.is_empty() && none.exhausted && end.is_none());
        assert!(data.take(0, 0, "w1", true).unwrap().1.is_none());
        assert!(data.leave("w2").is_empty(), "w3 still holds a row");
        let (_, end) = data.take(0, 0, "w3", true).unwrap();
        assert_eq!(
            end,
            Some(Exhaustion {
                set: "devices".into(),
                rows: 4,
                fail: true
            })
        );
        // Told once.
        assert!(data.take(0, 0, "w3", true).unwrap().1.is_none());
        assert!(data.leave("w1").is_empty());
        // Only unique sets are leased.
        assert!(data.take(1, 1, "w1", false).is_err());
        assert!(data.take(7, 1, "w1", false).is_err());
    }

    #[test]
    fn files_must_match_the_scenario() {
        let scenario = Scenario::parse("d.yaml", YAML).unwrap();
        let error = RunData::load(&scenario, "d.yaml", &[file("devices", "deviceid\nd0\n")])
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("its file names.jsonl was not sent"),
            "{error}"
        );
        let error = RunData::load(
            &scenario,
            "d.yaml",
            &[
                file("devices", "serial\nd0\n"),
                file("names", "{\"name\": \"a\"}\n"),
            ],
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("d.yaml:7:"), "{error}");
        assert!(error.contains("no column \"deviceid\""), "{error}");
        let error = RunData::load(&scenario, "d.yaml", &[file("other", "x\n1\n")])
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("which the scenario does not define"),
            "{error}"
        );
    }
}
