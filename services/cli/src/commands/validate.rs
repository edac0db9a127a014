//! `cicada validate`: parse and check a scenario without running it.

use std::process::ExitCode;

use crate::cli::ValidateArgs;

pub fn validate(args: ValidateArgs) -> anyhow::Result<ExitCode> {
    let path = args.scenario.display().to_string();
    // The data files too: they must exist and hold the columns used.
    let (scenario, _) = super::read_submission(&args.scenario)?;
    println!("{path}: ok");
    print!("{}", scenario.summary());
    // What each worker needs in its environment (values are never shown).
    for env in scenario.env() {
        let here = if std::env::var_os(&env.name).is_some() {
            "set here"
        } else {
            "not set here"
        };
        println!(
            "  env {} (line {}, column {}): {here}",
            env.name, env.line, env.column
        );
    }
    Ok(ExitCode::SUCCESS)
}
