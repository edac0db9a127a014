//! JSON bodies whose strings are templates.

use rand::Rng;

use super::{RenderContext, Template};

/// A JSON value whose strings are templates. A string that is a single
/// integer expression (`"{{ now_ms }}"`, `"{{ seq }}"`, ...) renders as a
/// JSON number.
#[derive(Debug, Clone, PartialEq)]
pub enum JsonTemplate {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Template),
    Array(Vec<JsonTemplate>),
    Object(Vec<(String, JsonTemplate)>),
}

impl JsonTemplate {
    /// With every `{{ env.NAME }}` replaced ([`Template::with_env`]).
    pub fn with_env(&self, env: &super::EnvValues) -> JsonTemplate {
        match self {
            JsonTemplate::Str(t) => JsonTemplate::Str(t.with_env(env)),
            JsonTemplate::Array(items) => {
                JsonTemplate::Array(items.iter().map(|i| i.with_env(env)).collect())
            }
            JsonTemplate::Object(fields) => JsonTemplate::Object(
                fields
                    .iter()
                    .map(|(k, v)| (k.clone(), v.with_env(env)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    /// Calls `f` with every template inside.
    pub fn for_each_template<'a>(&'a self, f: &mut impl FnMut(&'a Template)) {
        match self {
            JsonTemplate::Str(t) => f(t),
            JsonTemplate::Array(items) => items.iter().for_each(|i| i.for_each_template(f)),
            JsonTemplate::Object(fields) => fields.iter().for_each(|(_, v)| v.for_each_template(f)),
            _ => {}
        }
    }

    /// Whether it renders the same every time.
    pub fn is_static(&self) -> bool {
        match self {
            JsonTemplate::Null
            | JsonTemplate::Bool(_)
            | JsonTemplate::Int(_)
            | JsonTemplate::Float(_) => true,
            JsonTemplate::Str(t) => t.as_static().is_some(),
            JsonTemplate::Array(items) => items.iter().all(JsonTemplate::is_static),
            JsonTemplate::Object(fields) => fields.iter().all(|(_, v)| v.is_static()),
        }
    }

    /// Appends the JSON text to `out`.
    pub fn render_into<R: Rng + ?Sized>(&self, ctx: &mut RenderContext<'_, R>, out: &mut String) {
        use std::fmt::Write as _;
        match self {
            JsonTemplate::Null => out.push_str("null"),
            JsonTemplate::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            JsonTemplate::Int(i) => {
                let _ = write!(out, "{i}");
            }
            JsonTemplate::Float(f) => {
                let _ = write!(out, "{f}");
            }
            JsonTemplate::Str(t) if t.is_integer() => t.render_into(ctx, out),
            JsonTemplate::Str(t) => {
                if let Some(text) = t.as_static() {
                    write_json_string(out, text);
                } else {
                    let mut text = String::new();
                    t.render_into(ctx, &mut text);
                    write_json_string(out, &text);
                }
            }
            JsonTemplate::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.render_into(ctx, out);
                }
                out.push(']');
            }
            JsonTemplate::Object(fields) => {
                out.push('{');
                for (i, (key, value)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_json_string(out, key);
                    out.push(':');
                    value.render_into(ctx, out);
                }
                out.push('}');
            }
        }
    }
}

fn write_json_string(out: &mut String, text: &str) {
    use std::fmt::Write as _;
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}
