//! The UI's files, embedded in the binary: no CDN, no internet at run time.

use super::reply::{self, Reply, WebError};

pub(crate) const INDEX_HTML: &str = include_str!("../../web/assets/index.html");
pub(crate) const APP_CSS: &str = include_str!("../../web/assets/app.css");
pub(crate) const APP_JS: &str = include_str!("../../web/assets/app.js");
pub(crate) const CHARTS_JS: &str = include_str!("../../web/assets/charts.js");
pub(crate) const REPORT_HTML: &str = include_str!("../../web/assets/report.html");

pub(crate) fn index() -> Reply {
    reply::typed("text/html; charset=utf-8", INDEX_HTML)
}

/// `/assets/NAME`.
pub(crate) fn asset(name: &str) -> Result<Reply, WebError> {
    let (content_type, text) = match name {
        "index.html" => ("text/html; charset=utf-8", INDEX_HTML),
        "app.css" => ("text/css; charset=utf-8", APP_CSS),
        "app.js" => ("text/javascript; charset=utf-8", APP_JS),
        "charts.js" => ("text/javascript; charset=utf-8", CHARTS_JS),
        _ => {
            return Err(WebError::NotFound(format!(
                "no asset {name:?} (there are index.html, app.css, app.js, charts.js)"
            )));
        }
    };
    Ok(reply::typed(content_type, text))
}
