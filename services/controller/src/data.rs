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
    /// The next row to hand out.
    next: Mutex<usize>,
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
                    next: Mutex::new(0),
                }));
            } else {
                data.unique.push(None);
                data.shipped.push(file.clone());
            }
        }
        Ok(data)
    }

    /// Hands out up to `count` rows of `unique` set `set`; the second value
    /// is set by the call that hands out the last row (or finds none).
    pub fn take(
        &self,
        set: usize,
        count: u32,
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
        let count = count.clamp(1, MAX_TAKE) as usize;
        let rows = unique.table.rows();
        let mut next = unique.next.lock();
        let first = *next;
        let end = first.saturating_add(count).min(rows);
        *next = end.max(first);
        let was_left = first < rows;
        drop(next);
        let width = unique.table.width();
        let mut cells = Vec::with_capacity((end.saturating_sub(first)) * width);
        for row in first..end {
            for column in 0..width {
                cells.push(unique.table.cell(row, column).to_owned());
            }
        }
        let exhausted = end >= rows;
        // Told once: by the call that takes the last row.
        let exhaustion = (exhausted && was_left).then(|| Exhaustion {
            set: unique.name.clone(),
            rows,
            fail: unique.exhausted == Exhausted::Fail,
        });
        let response = TakeRowsResponse {
            first_row: first as u64,
            cells,
            exhausted,
        };
        Ok((response, exhaustion))
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
    fn unique_rows_are_handed_out_once_and_the_end_is_told_once() {
        let scenario = Scenario::parse("d.yaml", YAML).unwrap();
        let data = RunData::load(
            &scenario,
            "d.yaml",
            &[
                file("devices", "deviceid\nd0\nd1\nd2\n"),
                file("names", "{\"name\": \"a\"}\n"),
            ],
        )
        .unwrap();
        assert_eq!(data.shipped.len(), 1);
        assert_eq!(data.shipped[0].name, "names");
        let (first, end) = data.take(0, 2).unwrap();
        assert_eq!((first.first_row, first.cells.as_slice()), (0, &["d0".to_owned(), "d1".to_owned()][..]));
        assert!(!first.exhausted && end.is_none());
        let (second, end) = data.take(0, 2).unwrap();
        assert_eq!(second.cells, ["d2"]);
        assert!(second.exhausted);
        assert_eq!(
            end,
            Some(Exhaustion {
                set: "devices".into(),
                rows: 3,
                fail: true
            })
        );
        let (third, end) = data.take(0, 2).unwrap();
        assert!(third.cells.is_empty() && third.exhausted && end.is_none());
        // Only unique sets are leased.
        assert!(data.take(1, 1).is_err());
        assert!(data.take(7, 1).is_err());
    }

    #[test]
    fn files_must_match_the_scenario() {
        let scenario = Scenario::parse("d.yaml", YAML).unwrap();
        let error = RunData::load(&scenario, "d.yaml", &[file("devices", "deviceid\nd0\n")])
            .unwrap_err()
            .to_string();
        assert!(error.contains("its file names.jsonl was not sent"), "{error}");
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
        assert!(error.contains("which the scenario does not define"), "{error}");
    }
}
