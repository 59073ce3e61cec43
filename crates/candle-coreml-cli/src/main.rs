//! `candle-coreml`: inspect, run and benchmark Core ML models; chat with
//! ANEMLL LLM bundles or serve them over an OpenAI-compatible API.

mod bench;
mod chat;
mod inspect;
mod run;
mod serve;

use clap::{Parser, Subcommand, ValueEnum};

/// Inspect and run Apple Core ML models (.mlpackage, .mlmodel, .mlmodelc) with candle.
#[derive(Parser)]
#[command(name = "candle-coreml", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Describe a model: format, functions, inputs, outputs, states, metadata, ops.
    Inspect(inspect::Args),
    /// Run a model on .npy inputs and write every output as .npy.
    Run(run::Args),
    /// Chat with an ANEMLL LLM bundle (interactive, or once with --prompt).
    Chat(chat::Args),
    /// Serve an ANEMLL LLM bundle over an OpenAI-compatible HTTP API.
    Serve(serve::Args),
    /// Benchmark a model or an ANEMLL bundle: load time, latency, peak memory,
    /// prefill and decode speed; or the memory bandwidth (--bandwidth).
    Bench(bench::Args),
}

/// Backend choice on the command line.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum BackendArg {
    /// Native on Apple platforms, portable elsewhere.
    Auto,
    /// Apple Core ML.
    Native,
    /// candle-based MIL evaluator.
    Portable,
}

impl From<BackendArg> for candle_coreml::Backend {
    fn from(b: BackendArg) -> Self {
        match b {
            BackendArg::Auto => candle_coreml::Backend::Auto,
            BackendArg::Native => candle_coreml::Backend::Native,
            BackendArg::Portable => candle_coreml::Backend::Portable,
        }
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Inspect(a) => inspect::main(a),
        Command::Run(a) => run::main(a),
        Command::Chat(a) => chat::main(a),
        Command::Serve(a) => serve::main(a),
        Command::Bench(a) => bench::main(a),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
