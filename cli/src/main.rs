//! `josefk`, the command line of the josefk Kafka client: produce, consume, copy exactly once,
//! inspect and manage topics, groups and offsets, and measure throughput. It uses only josefk's
//! public API (producer, consumer, admin, configs, records, errors).
//!
//! Files: `args.rs` the grammar (and so `--help`), `props.rs` Java properties (`-F`, `-X`),
//! `exit.rs` exit codes, `output.rs` stdout and stderr without panics, `stop.rs` SIGINT and
//! SIGTERM, `produce.rs`, `consume.rs` (+ `format.rs` for output), `inspect.rs` (metadata,
//! topics, configs, groups, offsets), `copy.rs`, `perf.rs`, `progress.rs` (stderr progress),
//! `verifiable/` (Kafka's system-test tools: verifiable producer and consumer, transactional
//! message copier).

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
mod stop;
mod verifiable;

use std::process::ExitCode;

use clap::Parser;

use args::{Cli, Command, PerfCommand};
use exit::CliResult;
use output::diagln;
use props::Properties;
use stop::Stop;

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
            diagln!("josefk: cannot start the async runtime: {e}");
            return ExitCode::from(exit::RUNTIME);
        }
    };
    let result = runtime.block_on(async {
        // Before any work, so no signal is lost (see stop.rs).
        let stop = Stop::install();
        run(cli, stop).await
    });
    // Tasks still waiting on the network must not hold the exit up.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::from(exit::OK),
        // The command stopped as asked (a signal) or because stdout's reader left: nothing to say.
        Err(e) if [exit::INTERRUPTED, exit::TERMINATED, exit::OUTPUT_CLOSED].contains(&e.code) => {
            e.exit_code()
        }
        Err(e) => {
            diagln!("josefk: error: {e}");
            e.exit_code()
        }
    }
}

async fn run(cli: Cli, stop: Stop) -> CliResult {
    let props = Properties::from_common(&cli.common)?;
    let quiet = cli.common.quiet;
    let s = stop.clone();
    match cli.command {
        // These stop cleanly on a signal themselves once set up; before that a signal ends them.
        Command::Produce(a) => set_up_or_stop(&s, produce::run(a, props, quiet, stop)).await,
        Command::Consume(a) => set_up_or_stop(&s, consume::run(a, props, quiet, stop)).await,
        Command::Copy(a) => set_up_or_stop(&s, copy::run(a, props, quiet, stop)).await,
        Command::Perf(PerfCommand::Produce(a)) => {
            set_up_or_stop(&s, perf::produce(a, props, quiet, stop)).await
        }
        Command::Perf(PerfCommand::Consume(a)) => {
            set_up_or_stop(&s, perf::consume(a, props, quiet, stop)).await
        }
        Command::VerifiableProducer(a) => {
            set_up_or_stop(&s, verifiable::producer::run(a, props, stop)).await
        }
        Command::VerifiableConsumer(a) => {
            set_up_or_stop(&s, verifiable::consumer::run(a, props, stop)).await
        }
        Command::TransactionalMessageCopier(a) => {
            set_up_or_stop(&s, verifiable::copier::run(a, props, stop)).await
        }
        // These hold nothing to close: a signal ends them where they are.
        Command::Metadata => until_stopped(&s, inspect::metadata(&props)).await,
        Command::Topics(c) => until_stopped(&s, inspect::topics(c, &props, quiet)).await,
        Command::Configs(c) => until_stopped(&s, inspect::configs(c, &props, quiet)).await,
        Command::Groups(c) => until_stopped(&s, inspect::groups(c, &props, quiet)).await,
        Command::Offsets(c) => until_stopped(&s, inspect::offsets(c, &props)).await,
    }
}

/// `work`, or the signal's error if one comes while `work` is still setting up.
async fn set_up_or_stop(
    stop: &Stop,
    work: impl std::future::Future<Output = CliResult>,
) -> CliResult {
    tokio::select! {
        result = work => result,
        signal = stop.during_set_up() => Err(signal.error()),
    }
}

/// `work`, or the signal's error if one comes first.
async fn until_stopped(
    stop: &Stop,
    work: impl std::future::Future<Output = CliResult>,
) -> CliResult {
    tokio::select! {
        result = work => result,
        signal = stop.wait() => Err(signal.error()),
    }
}
