//! Response checks (`check:` on a request): assertions on what a response
//! contains, counted per check like k6's checks. A failed check makes the
//! request a failure of kind `check`; its latency is recorded all the same.

use crate::model::ResponseView;

/// One check of a request.
#[derive(Debug, Clone)]
pub struct Check {
    /// Index into `Scenario::checks()`, the key its counts travel under.
    pub index: usize,
    pub kind: CheckKind,
}

/// What a check asserts.
#[derive(Debug, Clone)]
pub enum CheckKind {
    /// The body contains this text.
    BodyContains(String),
    /// The body text matches this regex.
    BodyMatches(regex::Regex),
    /// The JSON body has this value at this pointer.
    JsonEquals {
        pointer: String,
        value: serde_json::Value,
    },
    /// The JSON body has a value at this pointer.
    JsonExists(String),
    /// The response has this header with exactly this value.
    HeaderEquals {
        name: http::HeaderName,
        value: String,
    },
}

/// A check of the scenario: the request it belongs to and its name (given,
/// or derived from what it asserts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckDef {
    /// Index into `Scenario::endpoints()`.
    pub endpoint: usize,
    pub name: String,
}

impl CheckKind {
    /// The name a check gets when the scenario gives none.
    pub fn describe(&self) -> String {
        match self {
            CheckKind::BodyContains(text) => format!("body contains {text:?}"),
            CheckKind::BodyMatches(regex) => format!("body matches {:?}", regex.as_str()),
            CheckKind::JsonEquals { pointer, value } => format!("{pointer} == {value}"),
            CheckKind::JsonExists(pointer) => format!("{pointer} exists"),
            CheckKind::HeaderEquals { name, value } => format!("header {name} == {value:?}"),
        }
    }

    /// Whether this kind reads the body (so the worker keeps it).
    pub fn reads_body(&self) -> bool {
        !matches!(self, CheckKind::HeaderEquals { .. })
    }

    /// `Ok` when the response passes, else why not.
    pub fn evaluate(&self, response: &ResponseView<'_>) -> Result<(), String> {
        match self {
            CheckKind::BodyContains(text) => {
                let found = memchr_find(response.body, text.as_bytes());
                found
                    .then_some(())
                    .ok_or_else(|| "not in the body".to_owned())
            }
            CheckKind::BodyMatches(regex) => regex
                .is_match(&String::from_utf8_lossy(response.body))
                .then_some(())
                .ok_or_else(|| "no match in the body".to_owned()),
            CheckKind::JsonEquals { pointer, value } => match json_at(response, pointer)? {
                Some(found) if json_equal(&found, value) => Ok(()),
                Some(found) => Err(format!("found {found}")),
                None => Err("not found".to_owned()),
            },
            CheckKind::JsonExists(pointer) => json_at(response, pointer)?
                .map(|_| ())
                .ok_or_else(|| "not found".to_owned()),
            CheckKind::HeaderEquals { name, value } => match response.header(name) {
                Some(found) if found == value => Ok(()),
                Some(found) => Err(format!("found {found:?}")),
                None => Err("no such header".to_owned()),
            },
        }
    }
}

fn memchr_find(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

fn json_at(
    response: &ResponseView<'_>,
    pointer: &str,
) -> Result<Option<serde_json::Value>, String> {
    let mut value: serde_json::Value = serde_json::from_slice(response.body)
        .map_err(|e| format!("response body is not JSON: {e}"))?;
    Ok(value.pointer_mut(pointer).map(serde_json::Value::take))
}

/// JSON equality with numbers compared by value (`3` equals `3.0`).
fn json_equal(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    match (a, b) {
        (serde_json::Value::Number(x), serde_json::Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view<'a>(body: &'a [u8], headers: &'a http::HeaderMap) -> ResponseView<'a> {
        ResponseView { body, headers }
    }

    #[test]
    fn checks_pass_and_fail_with_a_reason() {
        let mut headers = http::HeaderMap::new();
        headers.insert("content-type", "application/json".parse().unwrap());
        let body = br#"{"user":"alice","items":3,"tags":[]}"#;
        let response = view(body, &headers);
        let pass = |kind: CheckKind| kind.evaluate(&response);
        assert_eq!(pass(CheckKind::BodyContains("alice".into())), Ok(()));
        assert_eq!(
            pass(CheckKind::BodyContains("bob".into())),
            Err("not in the body".into())
        );
        let regex = regex::Regex::new(r#""items":\d+"#).unwrap();
        assert_eq!(pass(CheckKind::BodyMatches(regex)), Ok(()));
        let equals = |pointer: &str, value: serde_json::Value| CheckKind::JsonEquals {
            pointer: pointer.into(),
            value,
        };
        assert_eq!(pass(equals("/user", "alice".into())), Ok(()));
        assert_eq!(pass(equals("/items", 3.0.into())), Ok(()));
        assert_eq!(pass(equals("/items", 4.into())), Err("found 3".to_owned()));
        assert_eq!(pass(equals("/nope", 4.into())), Err("not found".into()));
        assert_eq!(pass(CheckKind::JsonExists("/tags".into())), Ok(()));
        let name = http::HeaderName::from_static("content-type");
        let header = |value: &str| CheckKind::HeaderEquals {
            name: name.clone(),
            value: value.into(),
        };
        assert_eq!(pass(header("application/json")), Ok(()));
        assert_eq!(
            pass(header("text/plain")),
            Err("found \"application/json\"".into())
        );
        let not_json = view(b"ok", &headers);
        let error = CheckKind::JsonExists("/a".into())
            .evaluate(&not_json)
            .unwrap_err();
        assert!(error.starts_with("response body is not JSON"), "{error}");
    }
}
