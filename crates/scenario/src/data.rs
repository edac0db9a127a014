//! Test data files (`data:`): rows of a CSV or JSON-lines file that
//! templates read, `{{ devices.deviceid }}` (the row the user took when it
//! started) or `{{ devices.next.deviceid }}` (a row taken per iteration).
//!
//! The scenario names the files; whoever submits the run reads them
//! (paths are relative to the scenario file) and they travel with the
//! scenario. [`Table::parse`] checks a file completely and keeps only the
//! columns the scenario uses, in the order [`DataDef::columns`] lists them,
//! so a template's column is a plain index.

use crate::ScenarioError;

/// Largest data file accepted, in bytes, each and all of a run's together:
/// the files travel in the run's gRPC messages and every worker keeps the
/// non-`unique` ones in memory.
pub const MAX_DATA_BYTES: usize = 64 << 20;

/// How rows are handed to the users that read a data set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pick {
    /// Each row to at most one take across every worker of the run (the
    /// controller leases row ranges); what happens when they run out is
    /// [`Exhausted`].
    Unique,
    /// Each user reads the rows in file order from the first, once; a user
    /// that has read the last row stops.
    Sequential,
    /// A uniformly random row per take.
    Random,
    /// Each user reads the rows in file order, starting at row
    /// `user_id mod rows` and wrapping around.
    Circular,
}

impl Pick {
    pub const NAMES: &'static str = "unique, sequential, random, circular";

    pub fn parse(text: &str) -> Option<Pick> {
        match text {
            "unique" => Some(Pick::Unique),
            "sequential" => Some(Pick::Sequential),
            "random" => Some(Pick::Random),
            "circular" => Some(Pick::Circular),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Pick::Unique => "unique",
            Pick::Sequential => "sequential",
            Pick::Random => "random",
            Pick::Circular => "circular",
        }
    }
}

/// What a run does when a `unique` data set has no row left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exhausted {
    /// The run stops, as if its time were up; its numbers stand.
    Stop,
    /// The run stops and fails.
    Fail,
}

impl Exhausted {
    pub fn name(self) -> &'static str {
        match self {
            Exhausted::Stop => "stop",
            Exhausted::Fail => "fail",
        }
    }
}

/// How a data file is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataFormat {
    /// RFC 4180 CSV with a header row naming the columns.
    Csv,
    /// One JSON object per line; its keys are the columns.
    JsonLines,
}

impl DataFormat {
    pub fn name(self) -> &'static str {
        match self {
            DataFormat::Csv => "csv",
            DataFormat::JsonLines => "jsonl",
        }
    }

    /// The format a file name implies: `.jsonl`/`.ndjson` are JSON lines,
    /// everything else CSV.
    pub fn from_file_name(file: &str) -> DataFormat {
        let lower = file.to_ascii_lowercase();
        if lower.ends_with(".jsonl") || lower.ends_with(".ndjson") {
            DataFormat::JsonLines
        } else {
            DataFormat::Csv
        }
    }
}

/// One entry of `data:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataDef {
    /// The name templates use (`devices` in `{{ devices.deviceid }}`).
    pub name: String,
    /// The file as written, relative to the scenario file.
    pub file: String,
    pub pick: Pick,
    pub exhausted: Exhausted,
    pub format: DataFormat,
    /// The columns the scenario's templates read, in order of first use.
    pub columns: Vec<String>,
    /// Where each column is first used (line, column in the scenario).
    pub(crate) uses: Vec<(usize, usize)>,
}

/// Rows of one data set copied into user variables: `(column, var)` pairs,
/// `column` indexing [`DataDef::columns`], `var` the user class's variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataBinding {
    /// Index into `Scenario::data()`.
    pub set: usize,
    pub vars: Vec<(usize, usize)>,
}

/// A data file, checked and cut down to the columns a scenario uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    width: usize,
    rows: usize,
    /// Every kept cell, row after row.
    text: String,
    /// End of each cell in `text`.
    ends: Vec<u32>,
}

impl Table {
    /// Parses `bytes`, the file of `def` as read from `path` (named in
    /// errors as `path:line: ...`); `scenario` names the scenario file for
    /// errors about a column it uses that the file lacks.
    pub fn parse(
        def: &DataDef,
        scenario: &str,
        path: &str,
        bytes: &[u8],
    ) -> Result<Table, ScenarioError> {
        let file_error = |line: u64, message: String| ScenarioError {
            source_name: path.to_owned(),
            line: usize::try_from(line).unwrap_or(usize::MAX),
            column: 0,
            message,
        };
        if bytes.len() > MAX_DATA_BYTES {
            return Err(file_error(
                0,
                format!(
                    "data file of {} bytes is over the limit of {} MiB; keep what the run needs, or generate values with templates ({{{{ user_id }}}}, {{{{ seq }}}})",
                    bytes.len(),
                    MAX_DATA_BYTES >> 20
                ),
            ));
        }
        let missing = |header: &[String]| -> Result<Vec<usize>, ScenarioError> {
            def.columns
                .iter()
                .zip(&def.uses)
                .map(|(column, &(line, col))| {
                    header.iter().position(|h| h == column).ok_or_else(|| ScenarioError {
                        source_name: scenario.to_owned(),
                        line,
                        column: col,
                        message: format!(
                            "data set {:?} has no column {column:?}; the columns of {path} are: {}",
                            def.name,
                            header.join(", ")
                        ),
                    })
                })
                .collect()
        };
        let mut table = Table {
            width: def.columns.len(),
            rows: 0,
            text: String::new(),
            ends: Vec::new(),
        };
        match def.format {
            DataFormat::Csv => {
                let mut reader = csv::ReaderBuilder::new().from_reader(bytes);
                let header: Vec<String> = reader
                    .headers()
                    .map_err(|e| file_error(csv_line(&e), format!("invalid CSV header: {e}")))?
                    .iter()
                    .map(str::to_owned)
                    .collect();
                if header.iter().all(String::is_empty) {
                    return Err(file_error(
                        1,
                        "the first line must be a header row naming the columns".to_owned(),
                    ));
                }
                if let Some(dup) = header
                    .iter()
                    .enumerate()
                    .find(|(i, h)| header[..*i].contains(h))
                {
                    return Err(file_error(1, format!("column {:?} appears twice", dup.1)));
                }
                let keep = missing(&header)?;
                let mut record = csv::StringRecord::new();
                loop {
                    match reader.read_record(&mut record) {
                        Ok(true) => {}
                        Ok(false) => break,
                        Err(e) => return Err(file_error(csv_line(&e), csv_message(&e))),
                    }
                    for &index in &keep {
                        table.push_cell(&record[index]);
                    }
                    table.rows += 1;
                }
            }
            DataFormat::JsonLines => {
                let text = std::str::from_utf8(bytes).map_err(|e| {
                    let line = bytes[..e.valid_up_to()]
                        .iter()
                        .filter(|&&b| b == b'\n')
                        .count();
                    file_error(line as u64 + 1, "invalid UTF-8".to_owned())
                })?;
                for (index, line) in text.lines().enumerate() {
                    let number = index as u64 + 1;
                    if line.trim().is_empty() {
                        continue;
                    }
                    let object: serde_json::Map<String, serde_json::Value> =
                        serde_json::from_str(line).map_err(|e| {
                            file_error(number, format!("expected one JSON object per line: {e}"))
                        })?;
                    for column in &def.columns {
                        match object.get(column) {
                            Some(serde_json::Value::String(s)) => table.push_cell(s),
                            Some(serde_json::Value::Null) | None => {
                                let keys: Vec<&str> = object.keys().map(String::as_str).collect();
                                return Err(file_error(
                                    number,
                                    format!(
                                        "no value for column {column:?} of data set {:?}; this line has: {}",
                                        def.name,
                                        keys.join(", ")
                                    ),
                                ));
                            }
                            Some(other) => table.push_cell(&other.to_string()),
                        }
                    }
                    table.rows += 1;
                }
            }
        }
        if table.rows == 0 {
            return Err(file_error(
                1,
                format!("data set {:?} has no rows", def.name),
            ));
        }
        Ok(table)
    }

    fn push_cell(&mut self, cell: &str) {
        self.text.push_str(cell);
        // Below MAX_DATA_BYTES, so it fits.
        self.ends.push(self.text.len() as u32);
    }

    /// Number of rows (at least 1).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Cells per row: the scenario's columns.
    pub fn width(&self) -> usize {
        self.width
    }

    /// The cell of `row` in `column` (indexes into [`DataDef::columns`]).
    pub fn cell(&self, row: usize, column: usize) -> &str {
        let index = row * self.width + column;
        let start = if index == 0 {
            0
        } else {
            self.ends[index - 1] as usize
        };
        &self.text[start..self.ends[index] as usize]
    }
}

fn csv_line(error: &csv::Error) -> u64 {
    error.position().map_or(0, csv::Position::line)
}

fn csv_message(error: &csv::Error) -> String {
    match error.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => format!(
            "this row has {len} fields, the header {expected_len}; quote a field that holds a comma"
        ),
        csv::ErrorKind::Utf8 { .. } => "invalid UTF-8".to_owned(),
        _ => format!("invalid CSV: {error}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(columns: &[&str], format: DataFormat) -> DataDef {
        DataDef {
            name: "devices".into(),
            file: "devices.csv".into(),
            pick: Pick::Unique,
            exhausted: Exhausted::Stop,
            format,
            columns: columns.iter().map(|c| (*c).to_owned()).collect(),
            uses: (0..columns.len()).map(|i| (7, 10 + i)).collect(),
        }
    }

    fn parse(columns: &[&str], format: DataFormat, text: &str) -> Result<Table, ScenarioError> {
        Table::parse(
            &def(columns, format),
            "s.yaml",
            "devices.csv",
            text.as_bytes(),
        )
    }

    #[test]
    fn csv_keeps_the_used_columns_in_their_order() {
        let table = parse(
            &["key", "deviceid"],
            DataFormat::Csv,
            "deviceid,zone,key\nd1,eu,k1\n\"d,2\",us,\"k \"\"2\"\"\"\n",
        )
        .unwrap();
        assert_eq!((table.rows(), table.width()), (2, 2));
        assert_eq!((table.cell(0, 0), table.cell(0, 1)), ("k1", "d1"));
        assert_eq!((table.cell(1, 0), table.cell(1, 1)), ("k \"2\"", "d,2"));
    }

    #[test]
    fn json_lines_take_strings_raw_and_other_values_as_json() {
        let table = parse(
            &["id", "n"],
            DataFormat::JsonLines,
            "{\"id\": \"a\", \"n\": 1}\n\n{\"id\": \"b\", \"n\": [2]}\n",
        )
        .unwrap();
        assert_eq!(table.rows(), 2);
        assert_eq!((table.cell(0, 0), table.cell(0, 1)), ("a", "1"));
        assert_eq!((table.cell(1, 0), table.cell(1, 1)), ("b", "[2]"));
    }

    #[test]
    fn errors_name_the_file_line_and_what_is_wrong() {
        let error = parse(&["deviceid"], DataFormat::Csv, "deviceid,key\nd1,k1\nd2\n").unwrap_err();
        assert_eq!(
            error.to_string(),
            "devices.csv:3:0: this row has 1 fields, the header 2; quote a field that holds a comma"
        );
        let error = parse(&["serial"], DataFormat::Csv, "deviceid,key\nd1,k1\n").unwrap_err();
        assert_eq!(
            error.to_string(),
            "s.yaml:7:10: data set \"devices\" has no column \"serial\"; the columns of devices.csv are: deviceid, key"
        );
        let error = parse(&["deviceid"], DataFormat::Csv, "deviceid\n").unwrap_err();
        assert!(error.to_string().contains("has no rows"), "{error}");
        let error = parse(&["id"], DataFormat::Csv, "id,id\n1,2\n").unwrap_err();
        assert!(error.to_string().contains("appears twice"), "{error}");
        let error = parse(&["id"], DataFormat::JsonLines, "{\"id\": 1}\n[1]\n").unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("devices.csv:2:0: expected one JSON object per line"),
            "{error}"
        );
        let error = parse(&["id"], DataFormat::JsonLines, "{\"id\": 1}\n{\"x\": 2}\n").unwrap_err();
        assert_eq!(
            error.to_string(),
            "devices.csv:2:0: no value for column \"id\" of data set \"devices\"; this line has: x"
        );
        let big = vec![b'a'; MAX_DATA_BYTES + 1];
        let error = Table::parse(&def(&["a"], DataFormat::Csv), "s", "big.csv", &big).unwrap_err();
        assert!(
            error.to_string().contains("over the limit of 64 MiB"),
            "{error}"
        );
    }

    #[test]
    fn formats_follow_the_file_name() {
        assert_eq!(
            DataFormat::from_file_name("a/devices.JSONL"),
            DataFormat::JsonLines
        );
        assert_eq!(
            DataFormat::from_file_name("x.ndjson"),
            DataFormat::JsonLines
        );
        assert_eq!(DataFormat::from_file_name("devices.csv"), DataFormat::Csv);
        assert_eq!(DataFormat::from_file_name("devices.txt"), DataFormat::Csv);
    }
}
