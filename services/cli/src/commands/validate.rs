//! `cicada validate`: parse and check a scenario without running it.

use std::process::ExitCode;

use anyhow::Context;

use crate::cli::ValidateArgs;

pub fn validate(args: ValidateArgs) -> anyhow::Result<ExitCode> {
    let path = args.scenario.display().to_string();
    let yaml = std::fs::read_to_string(&args.scenario)
        .with_context(|| format!("failed to read scenario file {path}"))?;
    let scenario = cicada_scenario::Scenario::parse(&path, &yaml)?;
    println!("{path}: ok");
    print!("{}", scenario.summary());
    Ok(ExitCode::SUCCESS)
}
