//! JSON lines: one object per event, shaped for Cloud Logging's structured
//! logs (<https://cloud.google.com/logging/docs/structured-logging>).
//!
//! Span fields are stored by [`JsonFields`] as a JSON object text in the
//! span's extensions when the span is created (and merged on
//! `Span::record`); [`JsonFormat`] merges those of every span in the event's
//! scope, outermost first, then the event's own fields on top. The keys
//! `timestamp`, `severity`, `message`, `target` and `span` are reserved: a
//! field of that name is written as `fields.NAME` instead.

use std::fmt;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// Keys this format writes itself.
const RESERVED: [&str; 5] = ["timestamp", "severity", "message", "target", "span"];

/// Formats span fields as a JSON object (what [`JsonFormat`] reads back).
#[derive(Clone, Copy, Debug, Default)]
pub struct JsonFields;

/// Formats each event as one JSON object on one line.
#[derive(Clone, Copy, Debug, Default)]
pub struct JsonFormat;

/// Collects fields into a JSON map: numbers and booleans stay JSON numbers
/// and booleans, everything else (`%display`, `?debug`) becomes a string.
struct Collect<'a>(&'a mut Map<String, Value>);

impl Collect<'_> {
    fn put(&mut self, field: &Field, value: Value) {
        self.0.insert(field.name().to_owned(), value);
    }
}

impl Visit for Collect<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        // NaN and infinities are not JSON numbers.
        let value = serde_json::Number::from_f64(value)
            .map_or_else(|| Value::String(value.to_string()), Value::Number);
        self.put(field, value);
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, value.into());
    }
    fn record_i128(&mut self, field: &Field, value: i128) {
        self.put(field, value.to_string().into());
    }
    fn record_u128(&mut self, field: &Field, value: u128) {
        self.put(field, value.to_string().into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, value.into());
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value.into());
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, value.to_string().into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, format!("{value:?}").into());
    }
}

impl<'writer> FormatFields<'writer> for JsonFields {
    fn format_fields<R: RecordFields>(
        &self,
        mut writer: Writer<'writer>,
        fields: R,
    ) -> fmt::Result {
        let mut map = Map::new();
        fields.record(&mut Collect(&mut map));
        write!(writer, "{}", Value::Object(map))
    }

    fn add_fields(
        &self,
        current: &'writer mut FormattedFields<Self>,
        fields: &tracing::span::Record<'_>,
    ) -> fmt::Result {
        let mut map = parse_object(&current.fields);
        fields.record(&mut Collect(&mut map));
        current.fields = Value::Object(map).to_string();
        Ok(())
    }
}

/// The object stored by [`JsonFields`] (empty when there is none).
fn parse_object(text: &str) -> Map<String, Value> {
    match serde_json::from_str(text) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    }
}

/// Cloud Logging's `LogSeverity` names.
fn severity(level: &Level) -> &'static str {
    match *level {
        Level::ERROR => "ERROR",
        Level::WARN => "WARNING",
        Level::INFO => "INFO",
        Level::DEBUG | Level::TRACE => "DEBUG",
    }
}

/// Puts `fields` into `line`; a reserved key goes to `fields.NAME`.
fn merge(line: &mut Map<String, Value>, fields: Map<String, Value>) {
    for (key, value) in fields {
        if RESERVED.contains(&key.as_str()) {
            line.insert(format!("fields.{key}"), value);
        } else {
            line.insert(key, value);
        }
    }
}

impl<S> FormatEvent<S, JsonFields> for JsonFormat
where
    S: Subscriber + for<'lookup> LookupSpan<'lookup>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, JsonFields>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let metadata = event.metadata();
        let mut line = Map::new();
        line.insert(
            "timestamp".into(),
            humantime::format_rfc3339_micros(std::time::SystemTime::now())
                .to_string()
                .into(),
        );
        line.insert("severity".into(), severity(metadata.level()).into());
        let mut fields = Map::new();
        event.record(&mut Collect(&mut fields));
        let message = fields.remove("message").unwrap_or_default();
        line.insert(
            "message".into(),
            match message {
                Value::Null => Value::String(String::new()),
                other => other,
            },
        );
        line.insert("target".into(), metadata.target().into());
        if let Some(scope) = ctx.event_scope() {
            let mut innermost = None;
            for span in scope.from_root() {
                if let Some(stored) = span.extensions().get::<FormattedFields<JsonFields>>() {
                    merge(&mut line, parse_object(&stored.fields));
                }
                innermost = Some(span.name());
            }
            if let Some(name) = innermost {
                line.insert("span".into(), name.into());
            }
        }
        merge(&mut line, fields);
        writeln!(writer, "{}", Value::Object(line))
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::fmt::MakeWriter;

    use super::*;

    /// Lines written by a subscriber, kept for the test to read.
    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl Write for Lines {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Lines {
        type Writer = Lines;
        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    /// Runs `body` under a JSON subscriber (level DEBUG) and parses every
    /// line it wrote.
    fn capture(body: impl FnOnce()) -> Vec<Map<String, Value>> {
        let lines = Lines::default();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(Level::DEBUG)
            .with_writer(lines.clone())
            .fmt_fields(JsonFields)
            .event_format(JsonFormat)
            .finish();
        tracing::subscriber::with_default(subscriber, body);
        let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|line| match serde_json::from_str(line) {
                Ok(Value::Object(map)) => map,
                other => panic!("not a JSON object: {line:?} ({other:?})"),
            })
            .collect()
    }

    #[test]
    fn an_event_is_one_object_with_the_cloud_logging_fields() {
        let lines = capture(|| {
            tracing::warn!(deltas = 3_u64, ratio = 0.5, ok = true, who = %"w-1", "queue \"full\"\nagain");
        });
        assert_eq!(lines.len(), 1);
        let line = &lines[0];
        assert_eq!(line["severity"], "WARNING");
        assert_eq!(line["message"], "queue \"full\"\nagain");
        assert_eq!(line["target"], module_path!());
        assert_eq!(line["deltas"], 3);
        assert_eq!(line["ratio"], 0.5);
        assert_eq!(line["ok"], true);
        assert_eq!(line["who"], "w-1");
        let timestamp = line["timestamp"].as_str().unwrap();
        humantime::parse_rfc3339(timestamp).expect("an RFC 3339 timestamp");
        assert!(!line.contains_key("span"), "no span outside any");
    }

    #[test]
    fn levels_map_to_cloud_logging_severities() {
        let lines = capture(|| {
            tracing::error!("e");
            tracing::warn!("w");
            tracing::info!("i");
            tracing::debug!("d");
        });
        let severities: Vec<&str> = lines
            .iter()
            .map(|line| line["severity"].as_str().unwrap())
            .collect();
        assert_eq!(severities, ["ERROR", "WARNING", "INFO", "DEBUG"]);
    }

    #[test]
    fn span_fields_show_on_every_line_inside_the_span() {
        let lines = capture(|| {
            let run =
                tracing::info_span!("run", run_id = "0190-abc", worker = tracing::field::Empty);
            let _run = run.enter();
            tracing::info!("started");
            run.record("worker", "w-2");
            let push = tracing::debug_span!("push", deltas = 4_u64);
            push.in_scope(|| tracing::debug!(seq = 9_u64, "applied"));
            tracing::info!(run_id = "overridden", "own field wins");
        });
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0]["run_id"], "0190-abc");
        assert_eq!(lines[0]["span"], "run");
        assert!(!lines[0].contains_key("worker"), "not recorded yet");
        assert_eq!(lines[1]["run_id"], "0190-abc");
        assert_eq!(lines[1]["worker"], "w-2", "recorded later on the span");
        assert_eq!(lines[1]["deltas"], 4);
        assert_eq!(lines[1]["seq"], 9);
        assert_eq!(lines[1]["span"], "push", "the innermost span");
        assert_eq!(lines[2]["run_id"], "overridden");
    }

    #[test]
    fn reserved_names_do_not_overwrite_the_line() {
        let lines = capture(|| {
            let span = tracing::info_span!("s", severity = "bogus");
            span.in_scope(|| tracing::info!(target = "mine", "m"));
        });
        assert_eq!(lines[0]["severity"], "INFO");
        assert_eq!(lines[0]["fields.severity"], "bogus");
        assert_eq!(lines[0]["fields.target"], "mine");
        assert_eq!(lines[0]["target"], module_path!());
    }

    #[test]
    fn an_event_without_a_message_has_an_empty_one() {
        let lines = capture(|| tracing::info!(value = f64::NAN));
        assert_eq!(lines[0]["message"], "");
        assert_eq!(lines[0]["value"], "NaN");
    }
}
