//! The run report: `report.json` and the self-contained HTML page (the UI's
//! CSS and JS inlined, the report JSON embedded), the same file
//! `cicada run --html FILE` writes.

use serde::Serialize;

use super::Web;
use super::assets::{APP_CSS, APP_JS, CHARTS_JS, REPORT_HTML};
use super::live::LiveRun;
use super::reply::{self, Reply, WebError};

/// `Report` in docs/WEB.md: the stored run (with its per-second series)
/// and its final statistics.
#[derive(Serialize, Debug)]
pub struct Report {
    /// `None` when the run's history could not be read.
    pub run: Option<cicada_history::RunDetail>,
    pub stats: LiveRun,
}

/// Makes `json` safe inside a `<script>` element: no `</script>`, no
/// `<!--`, no line separators that end a JavaScript string.
fn script_safe(json: &str) -> String {
    json.replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

/// The self-contained HTML report: no request leaves the page.
pub fn render_html(report: &Report) -> Result<String, serde_json::Error> {
    let json = script_safe(&serde_json::to_string(report)?);
    let js = format!("{CHARTS_JS}\n{APP_JS}");
    Ok(fill(
        REPORT_HTML,
        &[
            ("{{CICADA_CSS}}", APP_CSS),
            ("{{CICADA_JS}}", &js),
            ("{{CICADA_REPORT_JSON}}", &json),
        ],
    ))
}

/// Reads the report JSON back out of a page [`render_html`] wrote (tests,
/// and tools that collect reports): `None` when `html` is not such a page.
pub fn embedded_json(html: &str) -> Option<serde_json::Value> {
    const MARKER: &str = "{{CICADA_REPORT_JSON}}";
    let marker = REPORT_HTML.find(MARKER)?;
    // The template's text right around the marker, inside its element.
    let before = &REPORT_HTML[REPORT_HTML[..marker].rfind('>')? + 1..marker];
    let after_start = marker + MARKER.len();
    let after = &REPORT_HTML[after_start..after_start + REPORT_HTML[after_start..].find('<')?];
    let start = html.find(before)? + before.len();
    let end = start + html[start..].find(&format!("{after}</script>"))?;
    serde_json::from_str(&html[start..end]).ok()
}

/// Replaces the markers of `template` in one pass over the template only:
/// marker-like text inside an inserted value is left alone.
fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(
        template.len() + values.iter().map(|(_, value)| value.len()).sum::<usize>(),
    );
    let mut rest = template;
    loop {
        let next = values
            .iter()
            .filter_map(|(marker, value)| rest.find(marker).map(|at| (at, *marker, *value)))
            .min_by_key(|(at, _, _)| *at);
        match next {
            Some((at, marker, value)) => {
                out.push_str(&rest[..at]);
                out.push_str(value);
                rest = &rest[at + marker.len()..];
            }
            None => {
                out.push_str(rest);
                return out;
            }
        }
    }
}

/// Builds the report of a run: its final (or current) statistics and its
/// stored detail.
pub(crate) async fn build(web: &Web, run_id: &str) -> Result<Report, WebError> {
    let stats = super::live::snapshot(web, run_id).await?;
    let run = match super::history::show(web, run_id, cicada_history::Window::default()).await {
        Ok(detail) => Some(detail),
        Err(WebError::NotFound(_)) => None,
        Err(error) => return Err(error),
    };
    Ok(Report { run, stats })
}

pub(crate) async fn json(web: &Web, run_id: &str) -> Result<Reply, WebError> {
    let report = build(web, run_id).await?;
    let mut reply = reply::json(&report);
    let named = reply::download("application/json", run_id, "report.json", "");
    if let Some(value) = named.headers().get(hyper::header::CONTENT_DISPOSITION) {
        reply
            .headers_mut()
            .insert(hyper::header::CONTENT_DISPOSITION, value.clone());
    }
    Ok(reply)
}

pub(crate) async fn html(web: &Web, run_id: &str) -> Result<Reply, WebError> {
    let report = build(web, run_id).await?;
    let html = render_html(&report)
        .map_err(|error| WebError::Internal(format!("failed to encode the report: {error}")))?;
    Ok(reply::download(
        "text/html; charset=utf-8",
        run_id,
        "report.html",
        html,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_markers_of_the_template_only() {
        assert_eq!(
            fill("a{{X}}b{{Y}}c{{X}}", &[("{{X}}", "{{Y}}"), ("{{Y}}", "y")]),
            "a{{Y}}byc{{Y}}"
        );
    }

    #[test]
    fn json_cannot_close_the_script() {
        assert_eq!(
            script_safe(r#"{"m":"</script><!-- & x"}"#),
            r#"{"m":"\u003c/script\u003e\u003c!-- \u0026 x"}"#
        );
    }
}
