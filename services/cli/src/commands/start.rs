//! `cicada start`: a run on a deployed controller.

use std::process::ExitCode;

use crate::cli::StartArgs;
use crate::session;

pub async fn start(args: StartArgs) -> anyhow::Result<ExitCode> {
    let yaml = super::read_scenario(&args.load)?;
    let mut client = session::connect(&args.controller.controller).await?;
    let (run_id, workers) =
        session::start(&mut client, session::start_request(&args.load, yaml)).await?;
    if args.detach {
        println!("{run_id}");
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!("run {run_id} started on {workers} workers");
    let progress = session::follow(&mut client, &run_id).await?;
    super::finish(&progress, &args.load)
}
