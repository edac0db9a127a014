//! `--junit FILE`: the run's verdicts as JUnit XML, so CI systems (GitLab,
//! Jenkins, GitHub test reporters) show them: one test case per threshold
//! (failed when the threshold failed), one per check (failed when any
//! response failed it) and one for the run's completeness (failed when
//! requests may be missing: lost workers, evicted deltas).

use std::fmt::Write as _;

use cicada_proto::v1::RunStats;

/// The JUnit document of a finished run.
pub fn render(stats: &RunStats) -> String {
    let mut cases = String::new();
    let mut tests = 0;
    let mut failures = 0;
    let mut case = |name: &str, class: &str, failure: Option<String>| {
        tests += 1;
        let _ = write!(
            cases,
            "    <testcase name=\"{}\" classname=\"{}\" time=\"{:.3}\"",
            escape(name),
            escape(class),
            stats.duration_s
        );
        match failure {
            None => cases.push_str("/>\n"),
            Some(message) => {
                failures += 1;
                let _ = write!(
                    cases,
                    ">\n      <failure message=\"{}\" type=\"{class}\">{}</failure>\n    </testcase>\n",
                    escape(&message),
                    escape(&message)
                );
            }
        }
    };
    for t in &stats.thresholds {
        let scope = if t.endpoint.is_empty() {
            "total"
        } else {
            &t.endpoint
        };
        let failure =
            (!t.passed).then(|| format!("{scope}: {} observed {}", t.expression, t.observed_text));
        case(&format!("{scope}: {}", t.expression), "threshold", failure);
    }
    for c in &stats.checks {
        let failure = (c.failed > 0).then(|| {
            format!(
                "{} of {} responses of {} failed the check",
                c.failed,
                c.passed + c.failed,
                c.endpoint
            )
        });
        case(&format!("{}: {}", c.endpoint, c.name), "check", failure);
    }
    let failure = (stats.unrecorded_max > 0).then(|| {
        format!(
            "up to {} requests are missing from the run (lost workers: {}, evicted: {})",
            stats.unrecorded_max,
            stats.lost_workers.len(),
            stats.evicted_requests
        )
    });
    case("every request recorded", "completeness", failure);
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"cicada\" tests=\"{tests}\" failures=\"{failures}\">\n  <testsuite name=\"{}\" tests=\"{tests}\" failures=\"{failures}\" time=\"{:.3}\" id=\"{}\">\n{cases}  </testsuite>\n</testsuites>\n",
        escape(&stats.scenario_name),
        stats.duration_s,
        escape(&stats.run_id)
    )
}

/// Text for an XML attribute or element.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Control characters are not allowed in XML 1.0.
            c if c.is_control() && !matches!(c, '\n' | '\t') => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use cicada_proto::v1::{CheckStat, ThresholdResult};

    #[test]
    fn thresholds_checks_and_completeness_are_test_cases() {
        let stats = RunStats {
            run_id: "r1".into(),
            scenario_name: "shop <v2>".into(),
            duration_s: 10.0,
            thresholds: vec![
                ThresholdResult {
                    expression: "p95 < 150ms".into(),
                    observed_text: "20.5 ms".into(),
                    passed: true,
                    ..Default::default()
                },
                ThresholdResult {
                    expression: "failure_rate < 1%".into(),
                    endpoint: "POST /login".into(),
                    observed_text: "3.00%".into(),
                    passed: false,
                    ..Default::default()
                },
            ],
            checks: vec![CheckStat {
                endpoint: "GET /account".into(),
                name: "body contains \"items\"".into(),
                passed: 9,
                failed: 1,
            }],
            ..Default::default()
        };
        let xml = render(&stats);
        assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"));
        assert!(
            xml.contains("<testsuites name=\"cicada\" tests=\"4\" failures=\"2\">"),
            "{xml}"
        );
        assert!(xml.contains("<testsuite name=\"shop &lt;v2&gt;\""), "{xml}");
        assert!(
            xml.contains(
                "<testcase name=\"total: p95 &lt; 150ms\" classname=\"threshold\" time=\"10.000\"/>"
            ),
            "{xml}"
        );
        assert!(
            xml.contains("<failure message=\"POST /login: failure_rate &lt; 1% observed 3.00%\" type=\"threshold\">"),
            "{xml}"
        );
        assert!(
            xml.contains(
                "name=\"GET /account: body contains &quot;items&quot;\" classname=\"check\""
            ),
            "{xml}"
        );
        assert!(
            xml.contains("1 of 10 responses of GET /account failed the check"),
            "{xml}"
        );
        assert!(
            xml.contains("<testcase name=\"every request recorded\" classname=\"completeness\" time=\"10.000\"/>"),
            "{xml}"
        );
    }
}
