//! Writing a comparison: results.json (everything, with the protocol), results.csv (one row per
//! measurement), summary.md (the ratio tables beside the paper's), and the plots.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;
use yoco_core::bench::percent_of_ceiling;
use yoco_core::contention::{Contention, CONTENDED};
use yoco_core::{Error, Result};

use super::calibrate::Calibration;
use super::measure::Measurement;
use super::paper;
use super::plot::{human, write_bars, write_lines, LineChart, Series, StackedBars};
use super::projection::{Efficiencies, ProjectedPoint};

/// How the numbers were produced: printed in every report.
#[derive(Clone, Debug, Serialize)]
pub struct Protocol {
    pub date: String,
    pub machine: String,
    pub build: String,
    pub backend: String,
    pub device: String,
    pub dtype: String,
    pub yoco_config: String,
    pub transformer_config: String,
    pub lengths: Vec<usize>,
    pub generated_tokens: usize,
    pub prefill_span: usize,
    pub repetitions: usize,
    pub memory_budget_bytes: usize,
    pub max_batch: usize,
    pub notes: Vec<String>,
}

/// KV cache bytes per token for one model size.
#[derive(Clone, Debug, Serialize)]
pub struct KvRow {
    pub config: String,
    pub parameters: usize,
    pub transformer_bytes: usize,
    pub yoco_bytes: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub protocol: Protocol,
    pub calibration: Calibration,
    pub measurements: Vec<Measurement>,
    pub kv_per_token: Vec<KvRow>,
    pub projection_efficiencies: Efficiencies,
    /// Tokens generated in the projected throughput runs (the paper's 1,024).
    pub projection_generated: usize,
    pub projection: Vec<ProjectedPoint>,
}

/// Every file [`Report::write`] writes, and no other.
pub const FILE_NAMES: [&str; 17] = [
    "results.json",
    "results.csv",
    "summary.md",
    "memory.png",
    "memory.svg",
    "phases.png",
    "phases.svg",
    "prefill.png",
    "prefill.svg",
    "throughput.png",
    "throughput.svg",
    "kv_per_token.png",
    "kv_per_token.svg",
    "ratios.png",
    "ratios.svg",
    "projection.png",
    "projection.svg",
];

/// Refuses a folder where writing a report would replace files yoco did not write: a folder
/// holding any of [`FILE_NAMES`] must hold a report's results.json (an object with its
/// `protocol` and `measurements`), which marks the folder as an earlier report to replace.
/// Checked before anything is measured; `yoco compare --force` skips it.
pub fn check_replaceable(dir: &Path) -> Result<()> {
    let present: Vec<&str> = FILE_NAMES.iter().copied().filter(|name| dir.join(name).exists()).collect();
    if present.is_empty() {
        return Ok(());
    }
    let earlier_report = std::fs::read_to_string(dir.join("results.json"))
        .ok()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .is_some_and(|json| json.get("protocol").is_some_and(|p| p.get("yoco_config").is_some()) && json.get("measurements").is_some());
    if earlier_report {
        return Ok(());
    }
    Err(Error::invalid(
        "report",
        "output",
        format!("{} holds {} but no report of yoco's (results.json): pass --force to replace them, or choose another --out", dir.display(), present.join(", ")),
    ))
}

/// That none of the report's file names in `dir` is taken by something other than a file (a
/// folder named `summary.md`): a report's file cannot be moved over it, and a run would find that
/// out only after measuring. Checked before anything is measured, with or without --force, and
/// again before the first file is moved into place.
pub fn check_names_free_for_files(dir: &Path) -> Result<()> {
    for name in FILE_NAMES {
        let path = dir.join(name);
        if std::fs::symlink_metadata(&path).is_ok_and(|m| !m.is_file()) {
            return Err(io(&path, "is not a file (a folder?): a report's file cannot replace it; move it away or choose another --out"));
        }
    }
    Ok(())
}

/// The files written into `staging` moved into `dir`, after checking that each is one of the
/// report's and that `dir` has no folder by its name; returns where they went, sorted.
fn move_into_place(staging: &Path, dir: &Path) -> Result<Vec<PathBuf>> {
    let mut staged = Vec::new();
    for entry in std::fs::read_dir(staging).map_err(|e| io(staging, e))? {
        staged.push(entry.map_err(|e| io(staging, e))?.path());
    }
    // check_replaceable knows the report's files by FILE_NAMES: a new one must join it.
    // Checked for every file before the first is moved, so nothing is half-replaced.
    if let Some(unknown) = staged.iter().find(|from| !FILE_NAMES.iter().any(|known| from.file_name().is_some_and(|name| name == *known))) {
        return Err(io(unknown, "a report file missing from report::FILE_NAMES"));
    }
    check_names_free_for_files(dir)?;
    let mut written = Vec::new();
    for from in staged {
        let to = dir.join(from.file_name().expect("a file in the staging folder"));
        std::fs::rename(&from, &to).map_err(|e| io(&to, e))?;
        written.push(to);
    }
    written.sort();
    Ok(written)
}

fn io(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::invalid("report", "output", format!("{}: {e}", path.display()))
}

impl Report {
    fn pairs(&self) -> Vec<(&Measurement, &Measurement)> {
        let yoco: Vec<&Measurement> = self.measurements.iter().filter(|m| m.yoco).collect();
        yoco.into_iter().filter_map(|y| self.measurements.iter().find(|t| !t.yoco && t.length == y.length).map(|t| (y, t))).collect()
    }

    /// Writes every file into `dir`, first into a hidden staging folder beside them, then moved
    /// into place once all are written and every name is known free for a file, so that a
    /// failure to write leaves no half-written report behind (a move refused after those checks,
    /// by the file system, would still leave the moved files new and the rest old). Only the
    /// report's own files ([`FILE_NAMES`]) are replaced; nothing else in `dir` is touched, and
    /// the staging folder is removed whatever happens. Callers check the folder with
    /// [`check_names_free_for_files`] and [`check_replaceable`] first.
    pub fn write(&self, dir: &Path) -> Result<Vec<PathBuf>> {
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        let (staging, ()) = crate::scratch::create_fresh(dir, ".partial", |path| std::fs::create_dir(path)).map_err(|e| io(dir, e))?;
        let result = self.write_all(&staging).and_then(|()| move_into_place(&staging, dir));
        let _ = std::fs::remove_dir_all(&staging);
        result
    }

    fn write_all(&self, dir: &Path) -> Result<()> {
        let json = serde_json::to_string_pretty(self).map_err(|e| io(dir, e))?;
        std::fs::write(dir.join("results.json"), json).map_err(|e| io(dir, e))?;
        self.write_csv(&dir.join("results.csv"))?;
        std::fs::write(dir.join("summary.md"), self.summary()).map_err(|e| io(dir, e))?;
        self.write_plots(dir)
    }

    fn write_csv(&self, path: &Path) -> Result<()> {
        let mut w = csv::Writer::from_path(path).map_err(|e| io(path, e))?;
        w.write_record([
            "model", "length", "prompt", "generated", "weights_bytes", "kv_cache_bytes", "recurrent_state_bytes", "activations_bytes", "total_peak_bytes",
            "predicted_total_bytes", "resident_bytes", "prefill_seconds", "decode_seconds_per_token", "throughput_batch", "throughput_batch_that_fits", "throughput_tokens_per_second",
            "cpu_share_taken_elsewhere",
        ])
        .map_err(|e| io(path, e))?;
        for m in &self.measurements {
            let t = m.throughput.as_ref();
            w.write_record([
                m.model.clone(),
                m.length.to_string(),
                m.prompt.to_string(),
                m.generated.to_string(),
                m.memory.weights.to_string(),
                m.memory.kv_cache.to_string(),
                m.memory.recurrent_state.to_string(),
                m.memory.activations.to_string(),
                m.memory.total.to_string(),
                m.predicted.total.to_string(),
                m.resident_bytes.map(|r| r.to_string()).unwrap_or_default(),
                format!("{:.6}", m.prefill_seconds),
                format!("{:.6}", m.decode_seconds_per_token),
                t.map(|t| t.batch.to_string()).unwrap_or_default(),
                t.map(|t| t.fits.to_string()).unwrap_or_default(),
                t.map(|t| format!("{:.3}", t.tokens_per_second)).unwrap_or_default(),
                m.contention.map(|c| format!("{:.4}", c.elsewhere())).unwrap_or_default(),
            ])
            .map_err(|e| io(path, e))?;
        }
        w.flush().map_err(|e| io(path, e))
    }

    fn summary(&self) -> String {
        let p = &self.protocol;
        let c = &self.calibration;
        let mut s = String::new();
        let _ = writeln!(s, "# YOCO vs Transformer — measured on {}\n", p.machine);
        let _ = writeln!(s, "Protocol: {} vs {}, backend `{}` on `{}`, {} storage, lengths {} (prompt = length − {} generated tokens), prefill span {}, {} repetition(s) (median; the two models' batch-1 runs interleaved, the order turned each repetition), throughput at the largest batch (≤ {}) whose predicted peak fits {} of memory. {}. {}.\n",
            p.yoco_config, p.transformer_config, p.backend, p.device, p.dtype,
            p.lengths.iter().map(|l| human(*l as f64)).collect::<Vec<_>>().join(", "), p.generated_tokens, p.prefill_span, p.repetitions,
            p.max_batch, bytes(p.memory_budget_bytes), p.build, p.date);
        // A CPU's ceilings are measured beside the kernels' calls (`bench::Ceiling`), a GPU's once.
        let threads = if c.threads > 0 { format!(", {} threads, beside the kernels' calls", c.threads) } else { String::new() };
        let of_compute = |rate: f64| percent_of_ceiling(rate, c.compute_gflops);
        let _ = writeln!(s, "Ceilings measured in this run on {}{threads}: {} {:.0} GFLOP/s, {} {:.1} GB/s. Kernel rates ({}): GEMM {:.0} GFLOP/s ({}), causal attention {:.0} GFLOP/s ({}), gated retention {:.0} GFLOP/s ({}), RMSNorm {:.1} GB/s ({}).\n",
            c.device, c.compute_ceiling, c.compute_gflops, c.copy_ceiling, c.copy_gbs, c.shapes, c.gemm_gflops, of_compute(c.gemm_gflops), c.attention_gflops, of_compute(c.attention_gflops),
            c.retention_gflops, of_compute(c.retention_gflops), c.rmsnorm_gbs, percent_of_ceiling(c.rmsnorm_gbs, c.copy_gbs));
        if let Some(c) = c.contention.filter(|c| c.is_contended()) {
            let _ = writeln!(s, "⚠ Other work took {:.0}% of the CPUs while calibrating (other processes {:.0}%, the hypervisor {:.0}%): these rates, and the projection fed with them, read low.\n",
                100.0 * c.elsewhere(), 100.0 * c.others, 100.0 * c.steal);
        }
        for note in &p.notes {
            let _ = writeln!(s, "- {note}");
        }
        let _ = writeln!(s, "\n## Measured (Transformer / YOCO)\n");
        let _ = writeln!(s, "| length | memory T | memory Y | memory ratio | prefill T | prefill Y | prefill ratio | tokens/s T (batch) | tokens/s Y (batch) | throughput ratio Y/T |");
        let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|");
        for (y, t) in self.pairs() {
            let tp = |m: &Measurement| {
                m.throughput
                    .as_ref()
                    .map(|x| if x.fits > x.batch { format!("{:.1} ({}; {} fit)", x.tokens_per_second, x.batch, x.fits) } else { format!("{:.1} ({})", x.tokens_per_second, x.batch) })
                    .unwrap_or_else(|| "—".into())
            };
            let tr = match (&y.throughput, &t.throughput) {
                (Some(a), Some(b)) => format!("{:.2}×", a.tokens_per_second / b.tokens_per_second),
                _ => "—".into(),
            };
            let mark = if [y, t].iter().any(|m| m.contention.is_some_and(|c| c.is_contended())) { " ⚠" } else { "" };
            let _ = writeln!(s, "| {}{mark} | {} | {} | {:.2}× | {:.3} s | {:.3} s | {:.2}× | {} | {} | {} |",
                human(y.length as f64), bytes(t.memory.total), bytes(y.memory.total), t.memory.total as f64 / y.memory.total as f64,
                t.prefill_seconds, y.prefill_seconds, t.prefill_seconds / y.prefill_seconds, tp(t), tp(y), tr);
        }
        for line in [self.prefill_share_line(), self.contention_line()].into_iter().flatten() {
            let _ = writeln!(s, "\n{line}");
        }
        let _ = writeln!(s, "\nThe paper (YOCO-3B vs Transformer-3B, H100-80GB), by length:\n");
        let _ = writeln!(s, "| length | memory ratio | prefill ratio | throughput ratio Y/T |");
        let _ = writeln!(s, "|---|---|---|---|");
        for r in paper::RATIOS {
            let _ = writeln!(s, "| {} | {:.2}× | {:.2}× | {} |", human(r.length as f64), r.memory, r.prefill, r.throughput.map(|v| format!("{v:.2}×")).unwrap_or_else(|| "—".into()));
        }
        let _ = writeln!(s, "\n## Memory breakdown, accounting vs analytic model vs resident memory (batch 1)\n");
        let _ = writeln!(s, "| model | length | weights | K/V cache | state | activations | peak | predicted | resident Δ |");
        let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|");
        for m in &self.measurements {
            let _ = writeln!(s, "| {} | {} | {} | {} | {} | {} | {} | {} | {} |", m.model, human(m.length as f64), bytes(m.memory.weights), bytes(m.memory.kv_cache),
                bytes(m.memory.recurrent_state), bytes(m.memory.activations), bytes(m.memory.total), bytes(m.predicted.total),
                m.resident_bytes.map(|r| bytes(r as usize)).unwrap_or_else(|| "—".into()));
        }
        self.write_phases(&mut s);
        let _ = writeln!(s, "\n## KV cache per token (analytic, bf16)\n");
        let _ = writeln!(s, "| config | parameters | Transformer | YOCO | ratio |");
        let _ = writeln!(s, "|---|---|---|---|---|");
        for k in &self.kv_per_token {
            let _ = writeln!(s, "| {} | {} | {} | {} | {:.0}× |", k.config, human(k.parameters as f64), bytes(k.transformer_bytes), bytes(k.yoco_bytes), k.transformer_bytes as f64 / k.yoco_bytes as f64);
        }
        let _ = writeln!(s, "\nThe paper: {}.", paper::KV_PER_TOKEN_RATIOS.iter().map(|(m, r)| format!("{r:.0}× at {m}")).collect::<Vec<_>>().join(", "));
        let e = &self.projection_efficiencies;
        let _ = writeln!(s, "\n## Projection (not a measurement): YOCO-3B vs Transformer-3B on an H100-80GB\n");
        let _ = writeln!(s, "Memory from the analytic model (bf16, batch 1); prefill and throughput from a roofline at the H100's nominal peaks (989 TFLOP/s bf16, 3.35 TB/s) scaled by {}: GEMM {:.0}%, attention {:.0}%, retention {:.0}%, bandwidth {:.0}%. Throughput at the largest batch that fits 80 GB, {} tokens generated.\n",
            e.source, 100.0 * e.gemm, 100.0 * e.attention, 100.0 * e.retention, 100.0 * e.bandwidth, self.projection_generated);
        let _ = writeln!(s, "| length | memory T | memory Y | ratio (paper) | prefill T | prefill Y | ratio (paper) | tokens/s T (batch) | tokens/s Y (batch) | ratio Y/T (paper) |");
        let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|");
        for pt in &self.projection {
            let pap = paper::RATIOS.iter().find(|r| r.length == pt.length);
            let fmt = |v: Option<f64>| v.map(|v| format!("{v:.2}×")).unwrap_or_else(|| "—".into());
            let tr = if pt.transformer_tokens_per_second > 0.0 { format!("{:.2}×", pt.yoco_tokens_per_second / pt.transformer_tokens_per_second) } else { "T does not fit".into() };
            let _ = writeln!(s, "| {} | {}{} | {} | {:.2}× ({}) | {:.1} s | {:.1} s | {:.2}× ({}) | {:.1} ({}) | {:.1} ({}) | {} ({}) |",
                human(pt.length as f64), bytes(pt.transformer_bytes), if pt.transformer_fits { "" } else { " (> 80 GB)" }, bytes(pt.yoco_bytes),
                pt.transformer_bytes as f64 / pt.yoco_bytes as f64, fmt(pap.map(|r| r.memory)),
                pt.transformer_prefill_seconds, pt.yoco_prefill_seconds, pt.transformer_prefill_seconds / pt.yoco_prefill_seconds, fmt(pap.map(|r| r.prefill)),
                pt.transformer_tokens_per_second, pt.transformer_batch, pt.yoco_tokens_per_second, pt.yoco_batch, tr, fmt(pap.and_then(|r| r.throughput)));
        }
        let _ = writeln!(s, "\nPlots: memory.png, phases.png, prefill.png, throughput.png, kv_per_token.png, ratios.png, projection.png (each also as SVG).");
        s
    }

    /// Under the measured table: the share of the throughput runs that prefill took at the
    /// longest length, so that the throughput ratios are read for what they weigh; and where the
    /// runs generate other than the paper's 1,024 tokens, that they weigh prefill differently.
    fn prefill_share_line(&self) -> Option<String> {
        let generated = self.protocol.generated_tokens;
        let (y, t) = *self.pairs().last()?;
        let share = |m: &Measurement| m.throughput.as_ref().map(|x| format!("{:.0}%", 100.0 * x.prefill_seconds / (x.prefill_seconds + x.decode_seconds))).unwrap_or_else(|| "—".into());
        let (length, t_share, y_share) = (human(y.length as f64), share(t), share(y));
        Some(if generated == paper::GENERATED_TOKENS {
            format!("As in the paper, each throughput run prefills the prompt and generates {generated} tokens per sequence; at {length}, prefill takes {t_share} of the Transformer's run and {y_share} of YOCO's, the decode steps the rest.")
        } else {
            format!(
                "These runs generate {generated} tokens per sequence where the paper generated {}: prefill takes {} share of each throughput run here (at {length}, {t_share} of the Transformer's and {y_share} of YOCO's), so these throughput ratios weigh prefill {} than the paper's do. `--generate {}` runs the paper's protocol.",
                paper::GENERATED_TOKENS,
                if generated < paper::GENERATED_TOKENS { "a larger" } else { "a smaller" },
                if generated < paper::GENERATED_TOKENS { "more" } else { "less" },
                paper::GENERATED_TOKENS
            )
        })
    }

    /// Under the measured table: which measurements ran while other work took more than
    /// [`CONTENDED`] of the CPUs, or that none did and the most any saw.
    fn contention_line(&self) -> Option<String> {
        let seen: Vec<(&Measurement, Contention)> = self.measurements.iter().filter_map(|m| m.contention.map(|c| (m, c))).collect();
        if seen.is_empty() {
            return None;
        }
        let percent = |c: &Contention| format!("{:.0}% (other processes {:.0}%, the hypervisor {:.0}%)", 100.0 * c.elsewhere(), 100.0 * c.others, 100.0 * c.steal);
        let contended: Vec<String> = seen.iter().filter(|(_, c)| c.is_contended()).map(|(m, c)| format!("{} at {}: {}", m.model, human(m.length as f64), percent(c))).collect();
        Some(if contended.is_empty() {
            let most = seen.iter().map(|(_, c)| c.elsewhere()).fold(0.0, f64::max);
            format!("CPU time taken by other work during each measurement (from /proc/stat): at most {:.1}% of the CPUs; no measurement is flagged (the flag is over {:.0}%).", 100.0 * most, 100.0 * CONTENDED)
        } else {
            format!("⚠ Measured while other work took more than {:.0}% of the CPUs (from /proc/stat), so their times read high and the ratios they enter are not clean: {}.", 100.0 * CONTENDED, contended.join("; "))
        })
    }

    /// The operations of the profiled runs, those with the most time over all runs first.
    fn profiled_ops(&self) -> Vec<String> {
        let mut totals: Vec<(String, f64)> = Vec::new();
        for m in &self.measurements {
            for t in m.phases.prefill.iter().chain(&m.phases.decode) {
                match totals.iter_mut().find(|(op, _)| *op == t.op) {
                    Some(entry) => entry.1 += t.seconds,
                    None => totals.push((t.op.clone(), t.seconds)),
                }
            }
        }
        totals.sort_by(|a, b| b.1.total_cmp(&a.1));
        totals.into_iter().map(|(op, _)| op).collect()
    }

    /// The per-operation shares of every profiled run, prefill and decode.
    fn write_phases(&self, s: &mut String) {
        let ops = self.profiled_ops();
        let _ = writeln!(s, "\n## Where the time goes (a profiled run of its own, batch 1)\n");
        let _ = writeln!(s, "Each operation waited for before and after itself, so the profiled wall time runs longer than the timings above; read the shares. 'other' is the wall time outside every operation (cache writes, reshapes, host work). Decode: the first steps after the first token.\n");
        let _ = writeln!(s, "| model | length | phase | wall (profiled) | {} | other |", ops.join(" | "));
        let _ = writeln!(s, "|---|---|---|---|{}---|", "---|".repeat(ops.len()));
        for m in &self.measurements {
            let p = &m.phases;
            for (phase, wall, times) in [("prefill", p.prefill_seconds, &p.prefill), ("decode", p.decode_seconds, &p.decode)] {
                if wall <= 0.0 {
                    continue;
                }
                let share = |seconds: f64| format!("{:.1}%", 100.0 * seconds / wall);
                let cells: Vec<String> = ops.iter().map(|op| times.iter().find(|t| &t.op == op).map_or("—".into(), |t| share(t.seconds))).collect();
                let other = (wall - times.iter().map(|t| t.seconds).sum::<f64>()).max(0.0);
                let label = if phase == "decode" { format!("decode ({} steps)", p.decode_steps) } else { phase.to_string() };
                let _ = writeln!(s, "| {} | {} | {label} | {:.3} s | {} | {} |", m.model, human(m.length as f64), wall, cells.join(" | "), share(other));
            }
        }
    }

    fn write_plots(&self, dir: &Path) -> Result<()> {
        let pairs = self.pairs();
        let series = |name: &str, yoco: bool, f: &dyn Fn(&Measurement) -> Option<f64>| Series {
            name: name.to_string(),
            points: self.measurements.iter().filter(|m| m.yoco == yoco).filter_map(|m| f(m).map(|v| (m.length as f64, v))).collect(),
            reference: false,
            color: usize::from(yoco),
        };
        let (yname, tname) = (self.protocol.yoco_config.clone(), self.protocol.transformer_config.clone());
        let parts = vec!["weights".to_string(), "K/V cache".into(), "recurrent state".into(), "activations".into()];
        let gib = |v: usize| v as f64 / (1u64 << 20) as f64;
        write_bars(dir, "memory", &StackedBars {
            title: format!("Peak memory by category, batch 1 (left {tname}, right {yname})"),
            y_label: "MiB".into(),
            x_labels: pairs.iter().map(|(y, _)| human(y.length as f64)).collect(),
            groups: vec![
                (tname.clone(), pairs.iter().map(|(_, t)| t.memory.parts().iter().map(|&v| gib(v)).collect()).collect()),
                (yname.clone(), pairs.iter().map(|(y, _)| y.memory.parts().iter().map(|&v| gib(v)).collect()).collect()),
            ],
            parts,
        })?;
        // The eight operations with the most time drawn apart (the palette's colours stay
        // distinct); the rest, and the time outside every operation, as one part.
        let ops: Vec<String> = self.profiled_ops().into_iter().take(8).collect();
        let prefill_shares = |m: &Measurement| -> Vec<f64> {
            let wall = m.phases.prefill_seconds.max(f64::MIN_POSITIVE);
            let mut shares: Vec<f64> = ops.iter().map(|op| m.phases.prefill.iter().find(|t| &t.op == op).map_or(0.0, |t| 100.0 * t.seconds / wall)).collect();
            shares.push((100.0 - shares.iter().sum::<f64>()).max(0.0));
            shares
        };
        write_bars(dir, "phases", &StackedBars {
            title: format!("Prefill time by operation, profiled, batch 1 (left {tname}, right {yname})"),
            y_label: "% of prefill".into(),
            x_labels: pairs.iter().map(|(y, _)| human(y.length as f64)).collect(),
            groups: vec![
                (tname.clone(), pairs.iter().map(|(_, t)| prefill_shares(t)).collect()),
                (yname.clone(), pairs.iter().map(|(y, _)| prefill_shares(y)).collect()),
            ],
            parts: ops.iter().cloned().chain(["the rest".to_string()]).collect(),
        })?;
        write_lines(dir, "prefill", &LineChart {
            title: "Prefill latency (time to first token), batch 1".into(),
            x_label: "context length (tokens)".into(),
            y_label: "seconds".into(),
            log_x: true,
            log_y: true,
            series: vec![series(&tname, false, &|m| Some(m.prefill_seconds)), series(&yname, true, &|m| Some(m.prefill_seconds))],
        })?;
        write_lines(dir, "throughput", &LineChart {
            title: format!("Throughput at the largest batch fitting {}", bytes(self.protocol.memory_budget_bytes)),
            x_label: "context length (tokens)".into(),
            y_label: "generated tokens / s".into(),
            log_x: true,
            log_y: true,
            series: vec![
                series(&tname, false, &|m| m.throughput.as_ref().map(|t| t.tokens_per_second)),
                series(&yname, true, &|m| m.throughput.as_ref().map(|t| t.tokens_per_second)),
            ],
        })?;
        write_lines(dir, "kv_per_token", &LineChart {
            title: "KV cache per token (bf16) by model size".into(),
            x_label: "parameters".into(),
            y_label: "bytes per token".into(),
            log_x: true,
            log_y: true,
            // The scaling series (MHA) as lines; YOCO-3B (GQA 24/8) as its own points.
            series: {
                let (gqa, mha): (Vec<&KvRow>, Vec<&KvRow>) = self.kv_per_token.iter().partition(|k| k.config == "yoco-3b");
                let line = |name: &str, rows: &[&KvRow], color: usize, f: fn(&KvRow) -> usize| Series {
                    name: name.to_string(),
                    points: rows.iter().map(|k| (k.parameters as f64, f(k) as f64)).collect(),
                    reference: false,
                    color,
                };
                vec![
                    line("Transformer, scaling series (MHA)", &mha, 0, |k| k.transformer_bytes),
                    line("YOCO, scaling series", &mha, 1, |k| k.yoco_bytes),
                    line("Transformer-3B (GQA 24/8)", &gqa, 2, |k| k.transformer_bytes),
                    line("YOCO-3B", &gqa, 3, |k| k.yoco_bytes),
                ]
            },
        })?;
        let ratio = |name: &str, color: usize, f: &dyn Fn(&Measurement, &Measurement) -> Option<f64>| Series {
            name: name.to_string(),
            points: pairs.iter().filter_map(|(y, t)| f(y, t).map(|v| (y.length as f64, v))).collect(),
            reference: false,
            color,
        };
        let paper_series = |name: &str, color: usize, f: &dyn Fn(&paper::PaperRatios) -> Option<f64>| Series {
            name: name.to_string(),
            points: paper::RATIOS.iter().filter_map(|r| f(r).map(|v| (r.length as f64, v))).collect(),
            reference: true,
            color,
        };
        write_lines(dir, "ratios", &LineChart {
            title: "Transformer / YOCO: measured here (solid) and the paper's 3B on H100 (dashed)".into(),
            x_label: "context length (tokens)".into(),
            y_label: "ratio".into(),
            log_x: true,
            log_y: true,
            series: vec![
                ratio("memory (measured)", 0, &|y, t| Some(t.memory.total as f64 / y.memory.total as f64)),
                ratio("prefill latency (measured)", 1, &|y, t| Some(t.prefill_seconds / y.prefill_seconds)),
                ratio("throughput Y/T (measured)", 2, &|y, t| Some(y.throughput.as_ref()?.tokens_per_second / t.throughput.as_ref()?.tokens_per_second)),
                paper_series("memory (paper)", 0, &|r| Some(r.memory)),
                paper_series("prefill latency (paper)", 1, &|r| Some(r.prefill)),
                paper_series("throughput Y/T (paper)", 2, &|r| r.throughput),
            ],
        })?;
        let proj = |name: &str, color: usize, f: &dyn Fn(&ProjectedPoint) -> Option<f64>| Series {
            name: name.to_string(),
            points: self.projection.iter().filter_map(|p| f(p).map(|v| (p.length as f64, v))).collect(),
            reference: false,
            color,
        };
        write_lines(dir, "projection", &LineChart {
            title: "PROJECTION of YOCO-3B vs Transformer-3B on H100-80GB (solid) vs the paper (dashed)".into(),
            x_label: "context length (tokens)".into(),
            y_label: "Transformer / YOCO".into(),
            log_x: true,
            log_y: true,
            series: vec![
                proj("memory (projected)", 0, &|p| Some(p.transformer_bytes as f64 / p.yoco_bytes as f64)),
                proj("prefill latency (projected)", 1, &|p| Some(p.transformer_prefill_seconds / p.yoco_prefill_seconds)),
                proj("throughput Y/T (projected)", 2, &|p| (p.transformer_tokens_per_second > 0.0).then(|| p.yoco_tokens_per_second / p.transformer_tokens_per_second)),
                paper_series("memory (paper)", 0, &|r| Some(r.memory)),
                paper_series("prefill latency (paper)", 1, &|r| Some(r.prefill)),
                paper_series("throughput Y/T (paper)", 2, &|r| r.throughput),
            ],
        })
    }
}

/// 1536 → "1.5 KiB" style.
pub fn bytes(v: usize) -> String {
    let v = v as f64;
    let (scaled, unit) = if v >= (1u64 << 30) as f64 {
        (v / (1u64 << 30) as f64, "GiB")
    } else if v >= (1u64 << 20) as f64 {
        (v / (1u64 << 20) as f64, "MiB")
    } else if v >= 1024.0 {
        (v / 1024.0, "KiB")
    } else {
        (v, "B")
    };
    format!("{scaled:.1} {unit}")
}

#[cfg(test)]
mod tests {
    use super::{check_names_free_for_files, check_replaceable, move_into_place};

    fn folder(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("yoco-report-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_report_replaces_only_an_earlier_report() {
        // Empty, or holding only files of other names: nothing would be replaced.
        let dir = folder("empty");
        assert!(check_replaceable(&dir).is_ok());
        std::fs::write(dir.join("notes.md"), "mine").unwrap();
        assert!(check_replaceable(&dir).is_ok());
        // A summary.md of the user's own, with no report beside it: refused, naming the file.
        std::fs::write(dir.join("summary.md"), "# my notes").unwrap();
        let message = check_replaceable(&dir).unwrap_err().to_string();
        assert!(message.contains("summary.md") && message.contains("--force"), "{message}");
        // A results.json that is not a report's: still refused.
        std::fs::write(dir.join("results.json"), r#"{"protocol": 1}"#).unwrap();
        assert!(check_replaceable(&dir).is_err());
        // An earlier report's results.json marks the folder as a report to replace.
        std::fs::write(dir.join("results.json"), r#"{"protocol": {"yoco_config": "tiny-yoco"}, "measurements": []}"#).unwrap();
        assert!(check_replaceable(&dir).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A folder by a report file's name is refused before measuring (--force or not) and again
    /// before the first file moves: the run had replaced some files, failed on that one, and
    /// left the rest old.
    #[test]
    fn a_folder_by_a_report_files_name_stops_the_report_before_any_file_moves() {
        let dir = folder("folder-name");
        std::fs::write(dir.join("results.json"), "old").unwrap();
        std::fs::create_dir(dir.join("summary.md")).unwrap();
        let message = check_names_free_for_files(&dir).unwrap_err().to_string();
        assert!(message.contains("summary.md") && message.contains("not a file"), "{message}");
        let staging = dir.join(".partial-test");
        std::fs::create_dir(&staging).unwrap();
        for name in ["results.json", "summary.md"] {
            std::fs::write(staging.join(name), "new").unwrap();
        }
        assert!(move_into_place(&staging, &dir).is_err());
        assert_eq!(std::fs::read_to_string(dir.join("results.json")).unwrap(), "old", "nothing moved");
        std::fs::remove_dir(dir.join("summary.md")).unwrap();
        let written = move_into_place(&staging, &dir).unwrap();
        assert_eq!(written, [dir.join("results.json"), dir.join("summary.md")]);
        assert_eq!(std::fs::read_to_string(dir.join("results.json")).unwrap(), "new");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
