//! `cicada start`: a run on a deployed controller.

use std::process::ExitCode;

use crate::cli::StartArgs;
use crate::session;

pub async fn start(args: StartArgs) -> anyhow::Result<ExitCode> {
    let submission = super::read_scenario(&args.load)?;
    let mut client = args.controller.connect().await?;
    let mut request = session::start_request(&args.load, submission);
    if let Some(expected) = args.expect_workers {
        eprintln!(
            "waiting for {expected} workers (at most {})",
            humantime::format_duration(args.expect_workers_timeout)
        );
        request.expect_workers = expected;
        request.expect_workers_timeout_ms = args.expect_workers_timeout.as_millis() as u64;
    }
    let (run_id, workers) = session::start(&mut client, request).await?;
    if args.detach {
        println!("{run_id}");
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!("run {run_id} started on {workers} workers");
    let progress = session::follow(&mut client, &run_id).await?;
    super::finish(&progress, &args.load)
}
