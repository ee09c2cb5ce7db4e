//! `josefk`, the command line of the josefk Kafka client: produce, consume, copy exactly once,
//! inspect and manage topics, groups and offsets, and measure throughput. It uses only josefk's
//! public API (producer, consumer, admin, configs, records, errors).
//!
//! Files: `args.rs` the grammar (and so `--help`), `props.rs` Java properties (`-F`, `-X`),
//! `exit.rs` exit codes, `output.rs` stdout and stderr without panics, `produce.rs`, `consume.rs` (+ `format.rs` for output), `inspect.rs`
//! (metadata, topics, configs, groups, offsets), `copy.rs`, `perf.rs`, `progress.rs` (stderr
//! progress), `verifiable/` (Kafka's system-test tools: verifiable producer and consumer,
//! transactional message copier).

mod args;
mod consume;
mod copy;
mod exit;
mod format;
mod inspect;
mod output;
mod perf;
mod produce;
mod progress;
mod props;
mod verifiable;

use std::process::ExitCode;

use clap::Parser;

use args::{Cli, Command, PerfCommand};
use exit::{CliError, CliResult};
use props::Properties;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // clap prints help and version on stdout (exit 0) and usage errors on stderr (exit 2).
            let _ = e.print();
            return ExitCode::from(e.exit_code().clamp(0, 255) as u8);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("josefk: cannot start the async runtime: {e}");
            return ExitCode::from(exit::RUNTIME);
        }
    };
    let result = runtime.block_on(run(cli));
    // Tasks still waiting on the network must not hold the exit up.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::from(exit::OK),
        Err(e) if e.code == exit::INTERRUPTED || e.code == exit::OUTPUT_CLOSED => e.exit_code(),
        Err(e) => {
            eprintln!("josefk: error: {e}");
            e.exit_code()
        }
    }
}

async fn run(cli: Cli) -> CliResult {
    let props = Properties::from_common(&cli.common)?;
    let quiet = cli.common.quiet;
    match cli.command {
        Command::Produce(a) => produce::run(a, props, quiet).await,
        Command::Consume(a) => consume::run(a, props, quiet).await,
        Command::Metadata => inspect::metadata(&props).await,
        Command::Topics(c) => inspect::topics(c, &props, quiet).await,
        Command::Configs(c) => inspect::configs(c, &props, quiet).await,
        Command::Groups(c) => inspect::groups(c, &props, quiet).await,
        Command::Offsets(c) => inspect::offsets(c, &props).await,
        Command::Copy(a) => copy::run(a, props, quiet).await,
        Command::Perf(PerfCommand::Produce(a)) => perf::produce(a, props, quiet).await,
        Command::Perf(PerfCommand::Consume(a)) => perf::consume(a, props, quiet).await,
        Command::VerifiableProducer(a) => verifiable::producer::run(a, props).await,
        Command::VerifiableConsumer(a) => verifiable::consumer::run(a, props).await,
        Command::TransactionalMessageCopier(a) => verifiable::copier::run(a, props).await,
    }
    .map_err(|e: CliError| e)
}
