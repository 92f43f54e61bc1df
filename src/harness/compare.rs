//! `yoco compare`: YOCO against its Transformer twin over a list of context lengths, measured
//! on this machine, written as a report with plots; plus the KV-per-token table of the scaling
//! series and the projection to the paper's scale.

use std::path::PathBuf;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use yoco_core::{DType, Device, Error, Result};

use super::calibrate::calibrate;
use super::measure::{batch_for_budget, measure_all, RunPlan, LARGEST_BATCH_SOUGHT};
use super::projection::project;
use super::report::{bytes, check_names_free_for_files, check_replaceable, KvRow, Protocol, Report};
use crate::cli::generate::parse_dtype;
use crate::model::memory::{kv_bytes_per_token, predict};
use crate::model::{preset, presets, AnyModel, Backend, Ops, Weights};

/// The comparison's settings (the command line's flags).
#[derive(Clone, Debug, clap::Args)]
pub struct CompareArgs {
    /// The YOCO preset (its Transformer twin is derived from it).
    #[arg(long, default_value = "tiny-yoco")]
    pub config: String,
    /// fast or reference.
    #[arg(long, value_enum, default_value = "fast")]
    pub backend: Backend,
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Storage dtype: f32, bf16 or f16 (default: f32 on the CPU, bf16 on CUDA).
    #[arg(long)]
    pub dtype: Option<String>,
    /// Context lengths (prompt + generated), comma-separated. Each must exceed --generate.
    #[arg(long, value_delimiter = ',', default_values_t = [2048usize, 4096, 8192, 16384, 32768, 65536])]
    pub lengths: Vec<usize>,
    /// Tokens generated after each prompt: the paper's protocol generates the last 1,024 tokens
    /// of each length, so that the throughput weighs decoding as the paper's does.
    #[arg(long, default_value_t = super::paper::GENERATED_TOKENS)]
    pub generate: usize,
    /// Memory budget for the throughput runs, e.g. 512MiB, 1.5GiB, 80GB: a whole number of
    /// bytes (units B, KiB, MiB, GiB, KB, MB, GB).
    #[arg(long, default_value = "512MiB")]
    pub budget: String,
    /// Largest batch tried for throughput.
    #[arg(long, default_value_t = 16)]
    pub max_batch: usize,
    /// Repetitions of the batch-1 run (the median latency is reported), the two models' runs
    /// interleaved.
    #[arg(long, default_value_t = 2)]
    pub repetitions: usize,
    /// Prefill span (tokens per sequence per step).
    #[arg(long, default_value_t = 2048)]
    pub span: usize,
    /// Output folder: its report files are replaced, nothing else in it is touched.
    #[arg(long, default_value = "reports")]
    pub out: PathBuf,
    /// Seed of the weights and prompts.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// A run under a minute: lengths 512..2048, 8 generated tokens, one repetition (so it
    /// refuses those flags rather than overriding them), and batches of at most 4 (a smaller
    /// --max-batch is kept).
    #[arg(long, conflicts_with_all = ["lengths", "generate", "repetitions"])]
    pub quick: bool,
    /// Replace report files in --out even where they are not an earlier yoco report's.
    #[arg(long)]
    pub force: bool,
    /// Seconds the whole run may take: a length whose predicted time would end past it is
    /// skipped, with the lengths after it, and the report says so. The prediction scales the
    /// previous length's time by the lengths' ratio to the power the last two lengths showed
    /// (between 1 and 2; 2 after the first length), with a quarter more for safety. The report is
    /// rewritten after every length, so a run stopped from outside keeps the lengths it finished.
    /// The first length always runs (nothing predicts it): a run that ends past the deadline says
    /// so in the report's notes.
    #[arg(long)]
    pub deadline: Option<f64>,
}

/// Parses "512MiB", "4GiB", "1.5GiB", "80GB", "1000000": a decimal number, exactly (no binary
/// floating point), times its unit, which must come to a whole number of bytes from 1 B to
/// 1 EiB ("1.5" or "0.3KiB" is refused, not rounded).
pub fn parse_bytes(text: &str) -> Result<usize> {
    let refuse = |reason: String| Error::invalid("--budget", "budget", format!("'{text}': {reason}"));
    let t = text.trim();
    let split = t.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let scale: u128 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        other => return Err(refuse(format!("unknown unit '{other}': use B, KiB, MiB, GiB, KB, MB or GB"))),
    };
    // The number as digits / 10^decimals: at most 30 digits keeps digits · scale inside a u128.
    let (whole, fraction) = number.trim().split_once('.').unwrap_or((number.trim(), ""));
    let digits = format!("{whole}{fraction}");
    if digits.is_empty() || digits.len() > 30 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(refuse("expected a size such as 512MiB, 1.5GiB or 80GB".into()));
    }
    let numerator = digits.parse::<u128>().expect("1 to 30 ASCII digits") * scale;
    let denominator = 10u128.pow(fraction.len() as u32);
    if !numerator.is_multiple_of(denominator) {
        return Err(refuse("not a whole number of bytes".into()));
    }
    let bytes = numerator / denominator;
    if !(1..=1 << 60).contains(&bytes) {
        return Err(refuse("expected a size from 1 B to 1 EiB".into()));
    }
    Ok(bytes as usize)
}

/// What ran the comparison: the host CPU, and for CUDA the card and its driver first.
fn machine(device: &Device) -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string()))
        .unwrap_or_else(|| "unknown CPU".into());
    let host = format!("{cpu}, {} cores", std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
    match device {
        Device::Cpu(_) => host,
        #[cfg(feature = "cuda")]
        Device::Cuda(d) => {
            let driver = d.driver_version().map(|(major, minor)| format!("CUDA driver {major}.{minor}")).unwrap_or_else(|| "CUDA driver version unknown".into());
            format!("{} ({driver}), host {host}", d.name())
        }
    }
}

fn progress(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}").expect("a valid template"));
    bar.set_message(what.to_string());
    bar
}

/// The predicted seconds of measuring `n` tokens, from the (length, seconds) measured so far
/// (`None` before the first): the last time scaled by the length ratio to the power the last two
/// showed, kept between 1 (linear, YOCO and decode) and 2 (quadratic, attention prefill), and 2
/// with one point only; then a quarter more.
fn predict_seconds(history: &[(usize, f64)], n: usize) -> Option<f64> {
    let &(last_n, last_seconds) = history.last()?;
    let exponent = match history {
        [.., (n0, t0), (n1, t1)] if *t0 > 0.0 && n1 > n0 => ((t1 / t0).ln() / (*n1 as f64 / *n0 as f64).ln()).clamp(1.0, 2.0),
        _ => 2.0,
    };
    Some(1.25 * last_seconds * (n as f64 / last_n as f64).powf(exponent))
}

/// Runs the comparison and writes the report; returns the report.
pub fn run(args: &CompareArgs) -> Result<Report> {
    let mut args = args.clone();
    // Checked before --quick lowers it, so that a value out of range is refused either way.
    if args.max_batch == 0 || args.max_batch > LARGEST_BATCH_SOUGHT {
        return Err(Error::invalid("--max-batch", "max_batch", format!("{}: expected 1..={LARGEST_BATCH_SOUGHT} sequences", args.max_batch)));
    }
    if args.quick {
        args.lengths = vec![512, 1024, 2048];
        args.generate = 8;
        args.repetitions = 1;
        args.max_batch = args.max_batch.min(4);
    }
    let yoco_config = preset(&args.config)?;
    if !yoco_config.is_yoco() {
        return Err(Error::invalid("--config", "config", format!("{} is not a YOCO config (its twin is derived from it)", yoco_config.name)));
    }
    let transformer_config = yoco_config.transformer_twin();
    let device = Device::parse(&args.device)?;
    let dtype = match &args.dtype {
        Some(name) => parse_dtype(name)?,
        None if device.is_cpu() => DType::F32,
        None => DType::BF16,
    };
    // Before the calibration, which takes a while.
    args.backend.check(dtype, &device)?;
    let budget = parse_bytes(&args.budget)?;
    // Shortest first: the deadline's prediction scales each length from the one before it.
    args.lengths.sort_unstable();
    // A length listed twice is a slip (a typo for another length, most likely), not a request to
    // measure it twice: said, not merged away.
    if let Some(twice) = args.lengths.windows(2).find(|pair| pair[0] == pair[1]) {
        return Err(Error::invalid("--lengths", "length", format!("{} is listed twice: expected distinct lengths (--repetitions repeats each)", twice[0])));
    }
    if let Some(deadline) = args.deadline {
        if !(deadline > 0.0 && deadline.is_finite()) {
            return Err(Error::invalid("--deadline", "deadline", format!("{deadline}: expected a positive number of seconds")));
        }
    }
    if args.generate < 2 {
        // The first token comes from the prefill: one alone leaves no decode step to time, and
        // the report would show a decode time of zero that nothing measured.
        return Err(Error::invalid("--generate", "generate", format!("{}: expected at least 2 generated tokens (the first is the prefill's; a decode step is timed from the second)", args.generate)));
    }
    if args.repetitions == 0 {
        return Err(Error::invalid("--repetitions", "repetitions", "0: expected at least one timed run per length"));
    }
    if args.span == 0 {
        return Err(Error::invalid("--span", "span", "0: expected a positive number of tokens per prefill step"));
    }
    for &n in &args.lengths {
        if n <= args.generate || n > yoco_config.max_seq_len {
            return Err(Error::invalid("--lengths", "length", format!("{n}: expected more than the {} generated tokens and at most max_seq_len = {}", args.generate, yoco_config.max_seq_len)));
        }
    }
    // Fail before measuring anything if the report cannot be written.
    if args.out.exists() && !args.out.is_dir() {
        return Err(Error::invalid("--out", "out", format!("{}: expected a folder (or a path to create one at), found a file", args.out.display())));
    }
    std::fs::create_dir_all(&args.out).map_err(|e| Error::invalid("--out", "out", format!("{}: {e}", args.out.display())))?;
    let (probe, _) = crate::scratch::create_fresh_file(&args.out, ".write-test").map_err(|e| Error::invalid("--out", "out", format!("{} is not writable: {e}", args.out.display())))?;
    let _ = std::fs::remove_file(&probe);
    check_names_free_for_files(&args.out)?;
    if !args.force {
        check_replaceable(&args.out)?;
    }

    let started = Instant::now();
    eprintln!("compare: calibrating {device}'s ceilings and kernel rates ...");
    let calibration = calibrate(&device, dtype)?;
    let plan = RunPlan { generated: args.generate, span: args.span, repetitions: args.repetitions, budget_bytes: budget, max_batch: args.max_batch, elem: dtype.size_in_bytes(), seed: args.seed, retention_chunk_states: !device.is_cpu(), ffn_intermediates: yoco_swiglu::ffn_intermediates(dtype, &device) };
    let ops = Ops::new(args.backend);
    let mut models = Vec::new();
    for config in [&transformer_config, &yoco_config] {
        // Each model on its own device scope, so that its accounting is its own.
        let scope = Device::parse(&args.device)?;
        let model = AnyModel::build(config, Weights::init(config, args.seed, dtype, &scope)?, ops, &scope)?;
        for &n in &args.lengths {
            if batch_for_budget(&model, n, &plan)?.is_none() {
                let need = predict(config, &plan.workload(1, n))?.total();
                eprintln!("compare: {} at {n} tokens needs {} at batch 1, more than the {} budget: no throughput run there", config.name, bytes(need), bytes(budget));
            }
        }
        models.push(model);
    }
    let mut kv_per_token: Vec<KvRow> = presets()
        .into_iter()
        .filter(|c| c.name.starts_with("yoco-"))
        .map(|c| KvRow { config: c.name.clone(), parameters: c.parameter_count().total(), transformer_bytes: kv_bytes_per_token(&c.transformer_twin(), 2), yoco_bytes: kv_bytes_per_token(&c, 2) })
        .collect();
    // By size, so the table reads in order and the plot's lines run left to right.
    kv_per_token.sort_by_key(|k| k.parameters);
    let efficiencies = calibration.efficiencies();
    let projection_generated = super::paper::GENERATED_TOKENS;
    let projection = project(&[32 << 10, 64 << 10, 128 << 10, 256 << 10, 512 << 10, 1 << 20], projection_generated, &efficiencies)?;
    // Which of the kernels' alternatives ran, where the device has them (kept through every
    // rewrite of the notes below).
    let device_notes = if device.is_cpu() { Vec::new() } else { kernel_choices()? };
    let mut report = Report {
        protocol: Protocol {
            date: format!("{} s since the Unix epoch", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)),
            machine: machine(&device),
            build: crate::build_info(),
            backend: format!("{:?}", args.backend).to_lowercase(),
            device: device.to_string(),
            dtype: dtype.name().into(),
            yoco_config: yoco_config.name.clone(),
            transformer_config: transformer_config.name.clone(),
            lengths: Vec::new(),
            generated_tokens: args.generate,
            prefill_span: args.span,
            repetitions: args.repetitions,
            memory_budget_bytes: budget,
            max_batch: args.max_batch,
            notes: device_notes.clone(),
        },
        calibration,
        measurements: Vec::new(),
        kv_per_token,
        projection_efficiencies: efficiencies,
        projection_generated,
        projection,
    };
    let notes = |skipped: &[usize], elapsed: f64| {
        let mut notes = device_notes.clone();
        notes.extend([
            "memory is the accounting's peak (every tensor the models allocate, by category) for batch 1 over prefill and decode; 'predicted' is the analytic model, category by category (each equal to the accounting's peak in that category; its total is their sum, an upper bound of the peak, since YOCO's replacement retention state and its largest activations are not live at once); 'resident Δ' is the peak memory in use during the run minus before it, from outside the accounting: the process's resident memory (CPU), or the device allocator's pool, which every yoco allocation goes through (CUDA); it excludes the weights (allocated before) and includes untracked scratch and allocator slack".to_string(),
            "prefill latency is the time to the first generated token (prefill with early exit for YOCO, sampling included)".into(),
            "throughput = batch × generated tokens / (prefill + decode seconds) at the largest batch whose predicted peak fits the budget, up to --max-batch; where the cap binds, the table says how many would have fit".into(),
            format!("whole run: {elapsed:.0} s"),
        ]);
        if !skipped.is_empty() {
            let list = skipped.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(", ");
            notes.push(format!("lengths {list} not measured: their predicted time would have run past the {:.0} s deadline", args.deadline.unwrap_or(0.0)));
        }
        if let Some(deadline) = args.deadline.filter(|&d| elapsed > d) {
            notes.push(format!(
                "⚠ the run took {elapsed:.0} s, past the {deadline:.0} s deadline: the first length runs whatever its time (nothing before it predicts that), the calibration before it counts, and a prediction can fall short"
            ));
        }
        notes
    };

    // Length by length, both models at each, so that a run cut short keeps whole pairs.
    let bar = progress(args.lengths.len() as u64, "lengths");
    let mut history: Vec<(usize, f64)> = Vec::new();
    let mut skipped = Vec::new();
    for &n in &args.lengths {
        if let (Some(deadline), Some(predicted)) = (args.deadline, predict_seconds(&history, n)) {
            let left = deadline - started.elapsed().as_secs_f64();
            if !skipped.is_empty() || predicted > left {
                eprintln!("compare: {n} tokens skipped: predicted {predicted:.0} s, {left:.0} s left before the deadline");
                skipped.push(n);
                bar.inc(1);
                continue;
            }
        }
        let length_started = Instant::now();
        bar.set_message(format!("both models at {n} tokens"));
        let measured = measure_all(&models, n, &plan)?;
        if let Some(c) = measured.first().and_then(|m| m.contention).filter(|c| c.is_contended()) {
            bar.suspend(|| eprintln!("compare: ⚠ other work took {:.0}% of the CPUs while the models ran at {n} tokens: their times read high (flagged in the report)", 100.0 * c.elsewhere()));
        }
        report.measurements.extend(measured);
        history.push((n, length_started.elapsed().as_secs_f64()));
        report.protocol.lengths.push(n);
        report.protocol.notes = notes(&skipped, started.elapsed().as_secs_f64());
        report.write(&args.out)?;
        bar.inc(1);
    }
    bar.finish_with_message("done");
    report.protocol.notes = notes(&skipped, started.elapsed().as_secs_f64());
    let written = report.write(&args.out)?;
    eprintln!("compare: wrote {} files to {} in {:.0} s", written.len(), args.out.display(), started.elapsed().as_secs_f64());
    Ok(report)
}

/// The CUDA kernels' run-time choices this process made, one note each: gated retention's prefill
/// schedule and (in a CUDA build) the prefill attention's program shape.
fn kernel_choices() -> Result<Vec<String>> {
    let schedule = yoco_gated_retention::ChunkSchedule::from_env()?;
    #[allow(unused_mut)]
    let mut notes = vec![format!("gated retention's CUDA prefill ran its {} schedule ({} picks it)", schedule.name(), yoco_gated_retention::ChunkSchedule::ENV)];
    #[cfg(feature = "cuda")]
    notes.push(format!("the attention's CUDA prefill ran its {} program shape at head dims 64 and 128 (YOCO_ATTN_PREFILL picks it: default, wide, tall or wgmma)", yoco_gqa::cuda_prefill_shape()?));
    Ok(notes)
}

#[cfg(test)]
mod tests {
    use super::{parse_bytes, predict_seconds};

    #[test]
    fn budgets_parse_or_are_refused_never_rounded_away() {
        assert_eq!(parse_bytes("512MiB").unwrap(), 512 << 20);
        assert_eq!(parse_bytes("80GB").unwrap(), 80_000_000_000);
        assert_eq!(parse_bytes("1B").unwrap(), 1);
        assert_eq!(parse_bytes(" 1.5GiB ").unwrap(), 3 << 29);
        assert_eq!(parse_bytes("0.3GB").unwrap(), 300_000_000);
        assert_eq!(parse_bytes("1.25 KiB").unwrap(), 1280);
        assert_eq!(parse_bytes("1073741824GiB").unwrap(), 1 << 60);
        for bad in ["0.5B", "1.5", "0.3KiB", "0", "-1GiB", "1e9", "1.2.3GB", ".", "99999999999999999999GiB", "1073741825GiB", "NaNMiB", "12XB", "MiB"] {
            assert!(parse_bytes(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_prediction_follows_the_growth_the_lengths_showed() {
        assert_eq!(predict_seconds(&[], 1024), None);
        // One point: quadratic.
        assert!((predict_seconds(&[(1000, 2.0)], 2000).unwrap() - 1.25 * 8.0).abs() < 1e-9);
        // Linear growth so far: linear.
        assert!((predict_seconds(&[(1000, 2.0), (2000, 4.0)], 4000).unwrap() - 1.25 * 8.0).abs() < 1e-9);
        // Faster than quadratic: capped at quadratic; slower than linear: floored at linear.
        assert!((predict_seconds(&[(1000, 1.0), (2000, 10.0)], 4000).unwrap() - 1.25 * 40.0).abs() < 1e-9);
        assert!((predict_seconds(&[(1000, 3.0), (2000, 3.0)], 4000).unwrap() - 1.25 * 6.0).abs() < 1e-9);
    }
}
