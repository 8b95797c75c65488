//! `nesa`: the Nesa wallet CLI (keys, transactions, queries). Argument parsing lives in `cli/`,
//! chain logic in the `nesa_sdk` library.

mod cli;

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let Some(args) = cli::parse_args() else {
        return ExitCode::FAILURE;
    };
    match cli::run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", cli::one_line(&error));
            ExitCode::FAILURE
        }
    }
}
