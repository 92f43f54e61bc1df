//! The `yoco` command line. With no command it runs the main job: today, the correctness check
//! of every primitive on every device this machine has, then the machine's ceilings.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use yoco::cli::{self, check::Scale, DeviceChoice};

#[derive(Parser)]
#[command(name = "yoco", version, about = "YOCO primitives and models: checks, ceilings, and (soon) the YOCO vs Transformer comparison")]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
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
    },
    /// Measure the ceilings: CPU FMA rate and copy bandwidth; GPU copy bandwidth and cuBLAS bf16 GEMM rate.
    Ceilings {
        #[arg(long, value_enum, default_value = "all")]
        device: DeviceChoice,
    },
}

fn run(args: Args) -> yoco_core::Result<bool> {
    println!("{}", yoco::build_info());
    match args.command {
        Some(Command::Check { device, large, verbose }) => {
            let scale = if large { Scale::Large } else { Scale::Small };
            Ok(cli::check::run(&device.open()?, scale, verbose)? == 0)
        }
        Some(Command::Ceilings { device }) => cli::ceilings::run(&device.open()?).map(|_| true),
        None => {
            let devices = DeviceChoice::All.open()?;
            let passed = cli::check::run(&devices, Scale::Small, false)? == 0;
            cli::ceilings::run(&devices)?;
            Ok(passed)
        }
    }
}

fn main() -> ExitCode {
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
