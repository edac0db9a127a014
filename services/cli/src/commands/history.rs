//! `cicada runs ...`, `cicada compare`, `cicada trend`: thin over
//! `cicada_history` (locally or through a collector) plus output formats.

use std::process::ExitCode;

use cicada_history::{Comparison, RunDetail, RunInfo, Trend, Window};
use cicada_store::RunFilter;

use crate::cli::{CompareArgs, Format, RunsCommand, TrendArgs, WindowArgs};
use crate::history_source::Source;

/// Exit code of `cicada compare` when B regressed beyond the tolerance.
pub const EXIT_REGRESSION: u8 = 3;

fn window(args: &WindowArgs) -> anyhow::Result<Window> {
    Ok(
        Window::new(args.from.map(|d| d.as_secs()), args.to.map(|d| d.as_secs()))
            .map_err(|error| super::UsageError(error.to_string()))?,
    )
}

fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

fn labels(run: &RunInfo) -> String {
    run.labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

pub async fn runs(command: RunsCommand) -> anyhow::Result<ExitCode> {
    match command {
        RunsCommand::List(args) => {
            let source = Source::open(&args.source).await?;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64);
            let filter = RunFilter {
                limit: args.limit,
                scenario_name: args.scenario,
                status: args
                    .status
                    .map(|s| s.parse())
                    .transpose()
                    .map_err(anyhow::Error::msg)?,
                label: args.label,
                started_after_ms: args.since.map(|d| now - d.as_millis() as i64),
                started_before_ms: args.before,
            };
            let runs = source.list(&filter).await?;
            match args.format {
                Format::Json => print_json(&runs)?,
                Format::Csv => {
                    println!("id,scenario,status,started_at_ms,ended_at_ms,labels");
                    for r in &runs {
                        println!(
                            "{},{},{},{},{},{}",
                            r.id,
                            csv_field(&r.scenario_name),
                            r.status,
                            r.started_at_ms,
                            r.ended_at_ms.map(|e| e.to_string()).unwrap_or_default(),
                            csv_field(&labels(r))
                        );
                    }
                }
                Format::Table => {
                    println!(
                        "{:<36} {:<20} {:<9} {:>8}  labels",
                        "run", "scenario", "status", "secs"
                    );
                    for r in &runs {
                        let secs = r
                            .ended_at_ms
                            .map(|e| format!("{:.0}", (e - r.started_at_ms) as f64 / 1000.0));
                        println!(
                            "{:<36} {:<20} {:<9} {:>8}  {}",
                            r.id,
                            r.scenario_name,
                            r.status,
                            secs.unwrap_or_else(|| "-".to_owned()),
                            labels(r)
                        );
                    }
                }
            }
            if runs.len() == filter.limit as usize
                && let Some(last) = runs.last()
            {
                eprintln!("more runs may follow: add --before {}", last.started_at_ms);
            }
            Ok(ExitCode::SUCCESS)
        }
        RunsCommand::Show(args) => {
            let source = Source::open(&args.source).await?;
            let detail = source.show(&args.run_id, window(&args.window)?).await?;
            match args.format {
                Format::Json => print_json(&detail)?,
                Format::Csv => print_series_csv(&detail),
                Format::Table => print_detail(&detail),
            }
            Ok(ExitCode::SUCCESS)
        }
        RunsCommand::Label(args) => {
            let source = Source::open(&args.source).await?;
            let run = match (&args.label, &args.remove) {
                (Some((key, value)), _) => source.set_label(&args.run_id, key, value).await?,
                (None, Some(key)) => source.remove_label(&args.run_id, key).await?,
                (None, None) => {
                    return Err(
                        super::UsageError("give key=value or --remove KEY".to_owned()).into(),
                    );
                }
            };
            eprintln!("run {}: {}", run.id, labels(&run));
            Ok(ExitCode::SUCCESS)
        }
        RunsCommand::Delete(args) => {
            let source = Source::open(&args.source).await?;
            source.delete(&args.run_id).await?;
            eprintln!("deleted run {}", args.run_id);
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn print_detail(d: &RunDetail) {
    let r = &d.run;
    println!("run       {}", r.id);
    println!("scenario  {}  ({})", r.scenario_name, r.host);
    println!(
        "status    {}{}",
        r.status,
        r.error
            .as_ref()
            .map(|e| format!(": {e}"))
            .unwrap_or_default()
    );
    println!("labels    {}", labels(r));
    println!("config    {}", d.config_json);
    println!(
        "window    {}s..{}  ({:.1} s)",
        d.window.from_s,
        d.window.to_s.map_or("end".to_owned(), |t| format!("{t}s")),
        d.duration_s
    );
    for t in &d.thresholds {
        let verdict = match t.passed {
            Some(true) => "passed",
            Some(false) => "FAILED",
            None => "-",
        };
        println!(
            "threshold {}{}  {verdict}",
            t.endpoint
                .as_ref()
                .map(|e| format!("{e}: "))
                .unwrap_or_default(),
            t.expression
        );
    }
    println!();
    println!(
        "{:<32} {:>10} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "endpoint", "requests", "fail%", "rps", "p50", "p95", "p99", "p99.9", "max"
    );
    let row = |name: &str, m: &cicada_history::Metrics| {
        println!(
            "{:<32} {:>10} {:>8.2} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1}",
            name,
            m.requests,
            m.failure_rate * 100.0,
            m.rps,
            m.p50_ms,
            m.p95_ms,
            m.p99_ms,
            m.p999_ms,
            m.max_ms
        );
    };
    for e in &d.endpoints {
        row(&e.endpoint, &e.metrics);
    }
    row(cicada_history::TOTAL_NAME, &d.total);
    println!();
    println!(
        "{:>6} {:>10} {:>9} {:>9} {:>9} {:>9} {:>7}",
        "t(s)", "requests", "failures", "p50", "p95", "p99", "users"
    );
    for p in &d.series {
        println!(
            "{:>6} {:>10} {:>9} {:>9.1} {:>9.1} {:>9.1} {:>7}",
            p.t_s, p.requests, p.failures, p.p50_ms, p.p95_ms, p.p99_ms, p.users
        );
    }
    println!("\nscenario:\n{}", d.scenario_yaml);
}

fn print_series_csv(d: &RunDetail) {
    println!("t_s,requests,failures,p50_ms,p95_ms,p99_ms,users");
    for p in &d.series {
        println!(
            "{},{},{},{},{},{},{}",
            p.t_s, p.requests, p.failures, p.p50_ms, p.p95_ms, p.p99_ms, p.users
        );
    }
}

pub async fn compare(args: CompareArgs) -> anyhow::Result<ExitCode> {
    let source = Source::open(&args.source).await?;
    let window = window(&args.window)?;
    let (a, b) = match &args.run_b {
        Some(b) => (args.run_a.clone(), b.clone()),
        None => (source.baseline(&args.run_a).await?, args.run_a.clone()),
    };
    let comparison = source.compare(&a, &b, window, args.tolerance).await?;
    match args.format {
        Format::Json => print_json(&comparison)?,
        Format::Csv => print_comparison_csv(&comparison),
        Format::Table => print_comparison(&comparison),
    }
    if comparison.regression {
        eprintln!(
            "run {} regressed against {} beyond {}% (exit code {EXIT_REGRESSION})",
            comparison.b.id,
            comparison.a.id,
            comparison.tolerance.0 * 100.0
        );
        return Ok(ExitCode::from(EXIT_REGRESSION));
    }
    Ok(ExitCode::SUCCESS)
}

fn print_comparison(c: &Comparison) {
    println!("A {}  ({}, {})", c.a.id, c.a.scenario_name, labels(&c.a));
    println!("B {}  ({}, {})", c.b.id, c.b.scenario_name, labels(&c.b));
    for e in c.endpoints.iter().chain(std::iter::once(&c.total)) {
        println!(
            "\n{}{}",
            e.endpoint,
            if e.regression { "  REGRESSION" } else { "" }
        );
        println!(
            "  {:<13} {:>12} {:>12} {:>12} {:>9}",
            "metric", "A", "B", "delta", "rel"
        );
        for m in &e.metrics {
            let relative = m
                .relative
                .map_or("-".to_owned(), |r| format!("{:+.1}%", r * 100.0));
            println!(
                "  {:<13} {:>12.3} {:>12.3} {:>+12.3} {:>9}{}",
                m.metric.name(),
                m.a,
                m.b,
                m.delta,
                relative,
                if m.regression { "  !" } else { "" }
            );
        }
    }
    for name in &c.only_in_a {
        println!("only in A: {name}");
    }
    for name in &c.only_in_b {
        println!("only in B: {name}");
    }
}

fn print_comparison_csv(c: &Comparison) {
    println!("endpoint,metric,a,b,delta,relative,regression");
    for e in c.endpoints.iter().chain(std::iter::once(&c.total)) {
        for m in &e.metrics {
            println!(
                "{},{},{},{},{},{},{}",
                csv_field(&e.endpoint),
                m.metric.name(),
                m.a,
                m.b,
                m.delta,
                m.relative.map(|r| r.to_string()).unwrap_or_default(),
                m.regression
            );
        }
    }
}

pub async fn trend(args: TrendArgs) -> anyhow::Result<ExitCode> {
    let source = Source::open(&args.source).await?;
    let trend = source
        .trend(
            &args.scenario,
            args.metric,
            args.endpoint.as_deref(),
            args.last,
        )
        .await?;
    match args.format {
        Format::Json => print_json(&trend)?,
        Format::Csv => print_trend(&trend, true),
        Format::Table => print_trend(&trend, false),
    }
    Ok(ExitCode::SUCCESS)
}

fn print_trend(t: &Trend, csv: bool) {
    if csv {
        println!("run_id,started_at_ms,{}", t.metric.name());
    } else {
        println!("{} {} of {}", t.scenario, t.metric.name(), t.endpoint);
        println!(
            "{:<36} {:>15} {:>12}",
            "run",
            "started_at_ms",
            t.metric.name()
        );
    }
    for p in &t.points {
        let value = p.value.map(|v| v.to_string()).unwrap_or_default();
        if csv {
            println!("{},{},{value}", p.run_id, p.started_at_ms);
        } else {
            println!(
                "{:<36} {:>15} {:>12}",
                p.run_id,
                p.started_at_ms,
                p.value.map_or("-".to_owned(), |v| format!("{v:.3}"))
            );
        }
    }
}
