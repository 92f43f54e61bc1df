//! The `yoco` command line. With no command it runs the main job: `yoco compare` with its
//! defaults — YOCO against its Transformer twin on this machine, written to reports/.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use yoco::cli::{self, check::Scale, DeviceChoice};

#[derive(Parser)]
#[command(name = "yoco", version, about = "YOCO primitives and models: the YOCO vs Transformer comparison, checks against the f64 references, generation, ceilings")]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Compare YOCO with its Transformer twin (memory, prefill latency, throughput) and write
    /// the report with plots: the main job.
    Compare(yoco::harness::compare::CompareArgs),
    /// Check every primitive against the f64 reference on fresh random inputs.
    Check {
        #[arg(long, value_enum, default_value = "all")]
        device: DeviceChoice,
        /// Also check at shapes that fill a GPU (slow on a CPU: the reference is f64 loops).
        #[arg(long)]
        large: bool,
        /// Print every case, not only failures.
        #[arg(long, short)]
        verbose: bool,
        /// Only the group this names, or else the groups whose names begin with it (repeatable;
        /// `--only swiglu` runs "swiglu", `--only swi` also "swiglu large" with --large). With
        /// YOCO_TEST_SEED, replays one group of a failed run in seconds.
        #[arg(long, value_name = "GROUP")]
        only: Vec<String>,
    },
    /// Generate tokens from token ids with YOCO or its Transformer twin.
    Generate(cli::generate::GenerateArgs),
    /// Print a preset as a JSON config (a starting point for your own) with its parameter count,
    /// or list the presets.
    Config {
        /// The preset to print.
        name: Option<String>,
        /// List every preset with its parameter count.
        #[arg(long, conflicts_with = "name")]
        list: bool,
    },
    /// Measure the ceilings: CPU FMA rate (and bf16 pair rate where AVX512-BF16 is there) and bandwidth (copy, the same copy with streamed stores, update in place, read, two buffers read and a third written); GPU copy bandwidth and cuBLAS bf16 GEMM rate.
    Ceilings {
        #[arg(long, value_enum, default_value = "all")]
        device: DeviceChoice,
    },
}

fn run(args: Args) -> yoco_core::Result<bool> {
    yoco_core::simd::Isa::check_request()?;
    // On stderr: stdout carries what a command produces (`yoco config` prints JSON to save).
    eprintln!("{}", yoco::build_info());
    match args.command {
        Some(Command::Compare(args)) => yoco::harness::compare::run(&args).map(|r| print_headline(&r)),
        Some(Command::Check { device, large, verbose, only }) => {
            let scale = if large { Scale::Large } else { Scale::Small };
            Ok(cli::check::run(&device.open()?, scale, verbose, &only)? == 0)
        }
        Some(Command::Generate(args)) => cli::generate::run(&args).map(|_| true),
        Some(Command::Config { name, list }) => cli::config::run(name.as_deref(), list).map(|_| true),
        Some(Command::Ceilings { device }) => cli::ceilings::run(&device.open()?).map(|_| true),
        // The main job: the comparison with its defaults.
        None => match Args::parse_from(["yoco", "compare"]).command {
            Some(Command::Compare(args)) => yoco::harness::compare::run(&args).map(|r| print_headline(&r)),
            _ => unreachable!("`yoco compare` parses to the compare command"),
        },
    }
}

/// The comparison's ratios at each length, on the terminal.
fn print_headline(report: &yoco::harness::report::Report) -> bool {
    for y in report.measurements.iter().filter(|m| m.yoco) {
        if let Some(t) = report.measurements.iter().find(|t| !t.yoco && t.length == y.length) {
            println!(
                "{:>7} tokens: memory {:.2}x, prefill {:.2}x (Transformer / YOCO)",
                y.length,
                t.memory.total as f64 / y.memory.total as f64,
                t.prefill_seconds / y.prefill_seconds
            );
        }
    }
    true
}

fn main() -> ExitCode {
    // Output piped into `head` and closed early should end the program quietly, as it does for
    // every other command-line tool, not make `println!` panic on a broken pipe.
    #[cfg(unix)]
    // SAFETY: restores the default disposition of SIGPIPE before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    // Every CPU operation then runs on this thread and the pool's others, without handing its
    // work to them and sleeping (yoco_core::threads: a third of a small model's decode step).
    yoco_core::threads::make_this_thread_a_worker();
    match run(Args::parse()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("yoco: some checks failed");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("yoco: {e}");
            ExitCode::FAILURE
        }
    }
}
