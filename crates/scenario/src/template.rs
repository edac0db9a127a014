//! Request templates: `{{ expr }}` placeholders compiled once into segments,
//! so rendering on the hot path is a walk over a short list.
//!
//! Expressions: `uuid`, `now_ms`, `now_rfc3339`, `random_int(MIN, MAX)`,
//! `seq`, `user_id`, `cookie.NAME`, `env.NAME` (the worker's environment,
//! substituted once when the worker prepares the scenario:
//! [`Template::with_env`]) and the names of the user class's variables.

mod json;

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use rand::Rng;

pub use json::JsonTemplate;

/// Names that templates resolve themselves; variables may not use them.
pub const BUILTINS: &[&str] = &[
    "uuid",
    "now_ms",
    "now_rfc3339",
    "random_int",
    "seq",
    "user_id",
    "cookie",
    "env",
];

/// The values of the environment variables a scenario reads
/// (`{{ env.NAME }}`), by name.
pub type EnvValues = std::collections::BTreeMap<String, String>;

/// A compiled template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    source: String,
    segments: Vec<Segment>,
}

/// One piece of a compiled template.
#[derive(Debug, Clone, PartialEq)]
pub enum Segment {
    /// Text copied as is.
    Literal(String),
    /// A random (v4) UUID, lowercase and hyphenated.
    Uuid,
    /// The current time in unix milliseconds.
    NowMs,
    /// The current time in RFC 3339 (UTC, milliseconds).
    NowRfc3339,
    /// A uniformly random integer in `min..=max`.
    RandomInt { min: i64, max: i64 },
    /// The user's request sequence number (0 for its first request).
    Seq,
    /// The user's global index across all workers.
    UserId,
    /// The user variable with this index (`UserClass::var_names`).
    Var(usize),
    /// The value of the user's cookie of this name (empty when it has none).
    Cookie(String),
    /// The worker's environment variable of this name; replaced by its
    /// value before rendering ([`Template::with_env`]), empty if it was not.
    Env(String),
}

/// Where `{{ cookie.NAME }}` reads from: a virtual user's cookie jar.
pub trait Cookies {
    /// The value of the unexpired cookie `name`, if the jar has one.
    fn cookie(&self, name: &str) -> Option<&str>;
}

/// What a template is rendered against: one virtual user's state.
pub struct RenderContext<'a, R: ?Sized> {
    /// The user's variables, indexed like `UserClass::var_names`.
    pub vars: &'a [String],
    pub seq: u64,
    pub user_id: u64,
    pub rng: &'a mut R,
    /// The user's cookie jar (`None`: cookies off, every cookie is empty).
    pub cookies: Option<&'a dyn Cookies>,
}

/// Why a template did not compile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TemplateError(pub String);

impl Template {
    /// Compiles `source`; names other than built-ins resolve against `var_names`.
    pub fn compile(source: &str, var_names: &[String]) -> Result<Template, TemplateError> {
        let mut segments = Vec::new();
        let mut rest = source;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                segments.push(Segment::Literal(rest[..open].to_owned()));
            }
            let after = &rest[open + 2..];
            let close = after.find("}}").ok_or_else(|| {
                TemplateError(format!("unclosed \"{{{{\" in template {source:?}"))
            })?;
            segments.push(compile_expr(after[..close].trim(), var_names)?);
            rest = &after[close + 2..];
        }
        if !rest.is_empty() {
            segments.push(Segment::Literal(rest.to_owned()));
        }
        Ok(Template {
            source: source.to_owned(),
            segments,
        })
    }

    /// A template that is just this text.
    pub fn literal(text: &str) -> Template {
        let segments = if text.is_empty() {
            Vec::new()
        } else {
            vec![Segment::Literal(text.to_owned())]
        };
        Template {
            source: text.to_owned(),
            segments,
        }
    }

    /// The text as written in the scenario.
    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// The `env.NAME` names the template reads.
    pub fn env_names(&self) -> impl Iterator<Item = &str> {
        self.segments.iter().filter_map(|s| match s {
            Segment::Env(name) => Some(name.as_str()),
            _ => None,
        })
    }

    /// The template with every `{{ env.NAME }}` replaced by its value in
    /// `env` (the source text keeps the name: messages never show the
    /// value), adjacent text merged so a template of text and env values
    /// alone is static.
    pub fn with_env(&self, env: &EnvValues) -> Template {
        if self.env_names().next().is_none() {
            return self.clone();
        }
        let mut segments: Vec<Segment> = Vec::with_capacity(self.segments.len());
        for segment in &self.segments {
            let segment = match segment {
                Segment::Env(name) => Segment::Literal(env.get(name).cloned().unwrap_or_default()),
                other => other.clone(),
            };
            match (segments.last_mut(), segment) {
                (Some(Segment::Literal(text)), Segment::Literal(more)) => text.push_str(&more),
                (_, Segment::Literal(text)) if text.is_empty() => {}
                (_, segment) => segments.push(segment),
            }
        }
        Template {
            source: self.source.clone(),
            segments,
        }
    }

    /// The rendered text if the template has no expressions.
    pub fn as_static(&self) -> Option<&str> {
        match self.segments.as_slice() {
            [] => Some(""),
            [Segment::Literal(text)] => Some(text),
            _ => None,
        }
    }

    /// Whether the template is one expression that always renders as an
    /// integer (so a JSON body writes it as a number, not a string).
    pub fn is_integer(&self) -> bool {
        matches!(
            self.segments.as_slice(),
            [Segment::NowMs | Segment::RandomInt { .. } | Segment::Seq | Segment::UserId]
        )
    }

    /// Appends the rendered text to `out`.
    pub fn render_into<R: Rng + ?Sized>(&self, ctx: &mut RenderContext<'_, R>, out: &mut String) {
        for segment in &self.segments {
            match segment {
                Segment::Literal(text) => out.push_str(text),
                Segment::Uuid => {
                    let uuid = uuid::Builder::from_random_bytes(ctx.rng.random()).into_uuid();
                    let mut buf = uuid::Uuid::encode_buffer();
                    out.push_str(uuid.hyphenated().encode_lower(&mut buf));
                }
                Segment::NowMs => {
                    let ms = SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .map(|d| d.as_millis())
                        .unwrap_or(0);
                    let _ = write!(out, "{ms}");
                }
                Segment::NowRfc3339 => {
                    let _ = write!(
                        out,
                        "{}",
                        humantime::format_rfc3339_millis(SystemTime::now())
                    );
                }
                Segment::RandomInt { min, max } => {
                    let _ = write!(out, "{}", ctx.rng.random_range(*min..=*max));
                }
                Segment::Seq => {
                    let _ = write!(out, "{}", ctx.seq);
                }
                Segment::UserId => {
                    let _ = write!(out, "{}", ctx.user_id);
                }
                Segment::Var(index) => {
                    if let Some(value) = ctx.vars.get(*index) {
                        out.push_str(value);
                    }
                }
                Segment::Cookie(name) => {
                    if let Some(value) = ctx.cookies.and_then(|jar| jar.cookie(name)) {
                        out.push_str(value);
                    }
                }
                // Substituted before rendering (`with_env`).
                Segment::Env(_) => {}
            }
        }
    }

    /// Renders into a new string.
    pub fn render<R: Rng + ?Sized>(&self, ctx: &mut RenderContext<'_, R>) -> String {
        let mut out = String::new();
        self.render_into(ctx, &mut out);
        out
    }
}

fn compile_expr(expr: &str, var_names: &[String]) -> Result<Segment, TemplateError> {
    match expr {
        "uuid" => return Ok(Segment::Uuid),
        "now_ms" => return Ok(Segment::NowMs),
        "now_rfc3339" => return Ok(Segment::NowRfc3339),
        "seq" => return Ok(Segment::Seq),
        "user_id" => return Ok(Segment::UserId),
        _ => {}
    }
    if let Some(args) = expr.strip_prefix("random_int") {
        return compile_random_int(expr, args.trim());
    }
    if let Some(name) = expr.strip_prefix("cookie.") {
        let valid = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if !valid {
            return Err(TemplateError(format!(
                "invalid cookie name in {expr:?}; expected cookie.NAME with NAME made of letters, digits and !#$%&'*+-.^_`|~"
            )));
        }
        return Ok(Segment::Cookie(name.to_owned()));
    }
    if let Some(name) = expr.strip_prefix("env.") {
        let mut bytes = name.bytes();
        let valid = bytes
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
            && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !valid {
            return Err(TemplateError(format!(
                "invalid environment variable name in {expr:?}; expected env.NAME with NAME made of letters, digits and _ (not starting with a digit)"
            )));
        }
        return Ok(Segment::Env(name.to_owned()));
    }
    if let Some(index) = var_names.iter().position(|name| name == expr) {
        return Ok(Segment::Var(index));
    }
    let defined = if var_names.is_empty() {
        "none".to_owned()
    } else {
        var_names.join(", ")
    };
    Err(TemplateError(format!(
        "unknown name {expr:?} in template; built-ins: uuid, now_ms, now_rfc3339, \
         random_int(MIN, MAX), seq, user_id, cookie.NAME, env.NAME; variables: {defined}"
    )))
}

fn compile_random_int(expr: &str, args: &str) -> Result<Segment, TemplateError> {
    let bad = || {
        TemplateError(format!(
            "invalid {expr:?} in template; expected random_int(MIN, MAX) with integers MIN <= MAX"
        ))
    };
    let inner = args
        .strip_prefix('(')
        .and_then(|a| a.strip_suffix(')'))
        .ok_or_else(bad)?;
    let (min, max) = inner.split_once(',').ok_or_else(bad)?;
    let min: i64 = min.trim().parse().map_err(|_| bad())?;
    let max: i64 = max.trim().parse().map_err(|_| bad())?;
    if min > max {
        return Err(bad());
    }
    Ok(Segment::RandomInt { min, max })
}

/// Appends `text` encoded as `application/x-www-form-urlencoded` (also
/// right for query string names and values).
pub fn form_urlencode_into(out: &mut String, text: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &byte in text.as_bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                out.push(byte as char);
            }
            b' ' => out.push('+'),
            _ => {
                out.push('%');
                out.push(HEX[usize::from(byte >> 4)] as char);
                out.push(HEX[usize::from(byte & 15)] as char);
            }
        }
    }
}

#[cfg(test)]
mod tests;
