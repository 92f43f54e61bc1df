//! The `yoco` command's files: `generate`'s weights and every step's logits for another
//! implementation, written where asked and never over an existing file unless --force; and what
//! `compare` refuses before it measures.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use yoco::model::{preset, Weights};
use yoco_core::{DType, Device};

fn yoco(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_yoco")).args(args).output().expect("the yoco binary runs")
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("yoco-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn path_arg(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Runs `yoco` with `args`, which it must refuse with a message containing `why`.
fn refused(args: &[&str], why: &str) {
    let out = yoco(args);
    assert!(!out.status.success(), "{args:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(why), "{args:?}: {stderr}");
}

/// The token lines `yoco generate` printed, one list per sequence.
fn printed_tokens(out: &Output) -> Vec<Vec<u32>> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("sequence ").and_then(|l| l.split_once(": ")))
        .map(|(_, ids)| ids.split(',').map(|t| t.parse().unwrap()).collect())
        .collect()
}

#[test]
fn generate_writes_the_weights_it_used_and_every_steps_logits() {
    let dir = scratch("files");
    let (weights, logits) = (dir.join("w.safetensors"), dir.join("l.safetensors"));
    let args = ["generate", "--prompt", "1,2,3;4,5,6", "--new-tokens", "3", "--seed", "7", "--save-weights", path_arg(&weights), "--save-logits", path_arg(&logits)];
    let out = yoco(&args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // The weights are the seed's, and load back as the model's.
    let config = preset("tiny-yoco").unwrap();
    let cpu = Device::cpu();
    let saved = Weights::load(&config, &weights, DType::F32, &cpu).unwrap();
    let drawn = Weights::init(&config, 7, DType::F32, &cpu).unwrap();
    for name in ["embed", "self.0.gret.wq", "cross.wk", "lm_head"] {
        assert_eq!(saved.get(name).unwrap().to_f64_vec().unwrap(), drawn.get(name).unwrap().to_f64_vec().unwrap(), "{name}");
    }

    // logits [steps, batch, vocab] and tokens [batch, steps], the tokens those printed and each
    // the argmax of its step's logits (greedy).
    let bytes = std::fs::read(&logits).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let l = file.tensor("logits").unwrap();
    assert_eq!((l.dtype(), l.shape()), (safetensors::Dtype::F32, &[3, 2, config.vocab_size][..]));
    let t = file.tensor("tokens").unwrap();
    assert_eq!((t.dtype(), t.shape()), (safetensors::Dtype::U32, &[2, 3][..]));
    let values: Vec<f32> = l.data().chunks(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
    let ids: Vec<u32> = t.data().chunks(4).map(|b| u32::from_le_bytes(b.try_into().unwrap())).collect();
    let printed = printed_tokens(&out);
    assert_eq!(printed.concat(), ids);
    for step in 0..3 {
        for seq in 0..2 {
            let row = &values[(step * 2 + seq) * config.vocab_size..][..config.vocab_size];
            let best = row.iter().enumerate().fold(0, |best, (i, v)| if *v > row[best] { i } else { best });
            assert_eq!(best as u32, ids[seq * 3 + step], "step {step}, sequence {seq}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn generate_never_replaces_a_file_unless_forced() {
    let dir = scratch("refuse");
    let (weights, logits) = (dir.join("w.safetensors"), dir.join("l.safetensors"));
    std::fs::write(&logits, b"a user's file").unwrap();
    let out = yoco(&["generate", "--prompt", "1,2", "--new-tokens", "2", "--save-weights", path_arg(&weights), "--save-logits", path_arg(&logits)]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("exists; pass --force"), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read(&logits).unwrap(), b"a user's file", "the existing file is untouched");
    assert!(!weights.exists(), "nothing is written when one output is refused");

    let out = yoco(&["generate", "--prompt", "1,2", "--new-tokens", "2", "--save-weights", path_arg(&logits), "--save-logits", path_arg(&logits), "--force"]);
    assert!(!out.status.success(), "one file cannot be both outputs");
    assert!(String::from_utf8_lossy(&out.stderr).contains("also --save-weights"));

    let out = yoco(&["generate", "--prompt", "1,2", "--new-tokens", "2", "--save-logits", path_arg(&logits), "--force"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_ne!(std::fs::read(&logits).unwrap(), b"a user's file", "--force replaces it");
    let _ = std::fs::remove_dir_all(&dir);
}

/// One file under two spellings, or two names (a hard link), is one file: the logits would
/// replace the weights written moments before. A prompt the model refuses, or a folder that does
/// not exist, is found before anything is written.
#[test]
fn generate_refuses_one_file_however_named_and_writes_nothing_for_a_refused_run() {
    let dir = scratch("same");
    let weights = dir.join("w.safetensors");
    let respelled = dir.join(".").join("w.safetensors");
    fn both<'a>(weights: &'a Path, logits: &'a Path) -> [&'a str; 10] {
        ["generate", "--prompt", "1,2", "--new-tokens", "2", "--save-weights", path_arg(weights), "--save-logits", path_arg(logits), "--force"]
    }
    refused(&both(&weights, &respelled), "also --save-weights");
    assert!(!weights.exists(), "nothing written");

    std::fs::write(&weights, b"a user's file").unwrap();
    let link = dir.join("link.safetensors");
    std::fs::hard_link(&weights, &link).unwrap();
    refused(&both(&weights, &link), "also --save-weights");
    assert_eq!(std::fs::read(&weights).unwrap(), b"a user's file");

    let fresh = dir.join("fresh.safetensors");
    refused(&["generate", "--prompt", "1,5000", "--save-weights", path_arg(&fresh)], "outside the vocabulary");
    assert!(!fresh.exists(), "the weights are not written for a prompt the model refuses");
    // Nor for a run refused for its other arguments, and a user's file is kept even with --force
    // (these were refused only after the weights had been written).
    for (flag, why) in [("--temperature=-1", "temperature"), ("--new-tokens=0", "new_tokens"), ("--span=0", "span"), ("--new-tokens=131071", "max_seq_len")] {
        refused(&["generate", "--prompt", "1,2", flag, "--save-weights", path_arg(&fresh)], why);
        assert!(!fresh.exists(), "{flag}: the weights are not written for a run the model refuses");
        refused(&["generate", "--prompt", "1,2", flag, "--save-weights", path_arg(&weights), "--force"], why);
        assert_eq!(std::fs::read(&weights).unwrap(), b"a user's file", "{flag}");
    }
    refused(&["generate", "--prompt", "1,2", "--save-logits", path_arg(&dir.join("no-such-folder").join("l.safetensors"))], "does not exist");
    let _ = std::fs::remove_dir_all(&dir);
}

/// --force replaces an earlier output, never a file the run reads: saving the weights over the
/// --weights file they were read from (in the run's dtype: f32 weights replaced by their bf16
/// rounding) or the logits over it, or either over the --config-file, had replaced the user's
/// input for good.
#[test]
fn generate_never_replaces_its_own_input_even_forced() {
    let dir = scratch("input");
    let (weights, config) = (dir.join("w.safetensors"), dir.join("c.json"));
    let out = yoco(&["generate", "--prompt", "1,2", "--new-tokens", "2", "--seed", "3", "--save-weights", path_arg(&weights)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let saved = std::fs::read(&weights).unwrap();
    let respelled = dir.join(".").join("w.safetensors");
    for output in ["--save-weights", "--save-logits"] {
        for target in [&weights, &respelled] {
            let out = yoco(&["generate", "--prompt", "1,2", "--new-tokens", "2", "--weights", path_arg(&weights), "--dtype", "bf16", output, path_arg(target), "--force"]);
            assert!(!out.status.success(), "{output} {target:?}");
            assert!(String::from_utf8_lossy(&out.stderr).contains("the --weights file this run reads"), "{}", String::from_utf8_lossy(&out.stderr));
            assert_eq!(std::fs::read(&weights).unwrap(), saved, "{output}: the input is untouched");
        }
    }
    let out = yoco(&["config", "tiny-yoco"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    std::fs::write(&config, &out.stdout).unwrap();
    let out = yoco(&["generate", "--prompt", "1,2", "--new-tokens", "2", "--config-file", path_arg(&config), "--save-logits", path_arg(&config), "--force"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("the --config-file file this run reads"), "{}", String::from_utf8_lossy(&out.stderr));
    let _ = std::fs::remove_dir_all(&dir);
}

/// `yoco compare` refuses, before measuring anything, what its report could not hold honestly or
/// at all: one generated token (no decode step to time: the report had shown a decode time of
/// zero), a length listed twice (it had been merged away without a word), and a folder by a
/// report file's name (found after the measuring, it had left the report half replaced).
#[test]
fn compare_refuses_before_measuring() {
    let dir = scratch("compare");
    let out = yoco(&["compare", "--lengths", "600", "--generate", "1", "--out", path_arg(&dir)]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 2 generated tokens"), "{}", String::from_utf8_lossy(&out.stderr));
    let out = yoco(&["compare", "--lengths", "600,1200,600", "--generate", "4", "--out", path_arg(&dir)]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("600 is listed twice"), "{}", String::from_utf8_lossy(&out.stderr));
    std::fs::create_dir(dir.join("summary.md")).unwrap();
    let out = yoco(&["compare", "--lengths", "600", "--generate", "4", "--out", path_arg(&dir), "--force"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a file"), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1, "nothing written beside it");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A `YOCO_CPU_ISA` the kernels do not know is refused, not run as the widest set silently.
#[test]
fn an_unknown_instruction_set_request_is_refused() {
    let out = Command::new(env!("CARGO_BIN_EXE_yoco")).args(["config", "--list"]).env("YOCO_CPU_ISA", "AVX2").output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("'AVX2': expected avx2 or scalar"), "{}", String::from_utf8_lossy(&out.stderr));
}

/// A prompt read from a file (one sequence a line, or `;` as on the command line; `-` for
/// standard input) generates what the same prompt given with --prompt does; a file that cannot
/// be read, a prompt given both ways or a ragged batch is refused with a message that says so.
#[test]
fn generate_reads_a_prompt_file() {
    let dir = scratch("prompt-file");
    let from_flag = yoco(&["generate", "--prompt", "1,2,3;4,5,6", "--new-tokens", "3", "--seed", "5"]);
    assert!(from_flag.status.success(), "{}", String::from_utf8_lossy(&from_flag.stderr));
    let want = printed_tokens(&from_flag);
    assert_eq!(want.len(), 2);

    let lines = dir.join("prompt.txt");
    std::fs::write(&lines, "1, 2, 3\n\n4,5,6\n").unwrap();
    let semicolons = dir.join("prompt-semicolons.txt");
    std::fs::write(&semicolons, "1,2,3;4,5,6").unwrap();
    for file in [&lines, &semicolons] {
        let out = yoco(&["generate", "--prompt-file", path_arg(file), "--new-tokens", "3", "--seed", "5"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(printed_tokens(&out), want, "{}", file.display());
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_yoco"))
        .args(["generate", "--prompt-file", "-", "--new-tokens", "3", "--seed", "5"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(b"1,2,3\n4,5,6\n").unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(printed_tokens(&out), want, "standard input");

    let missing = dir.join("no-such-prompt.txt");
    refused(&["generate", "--prompt-file", path_arg(&missing)], "no-such-prompt.txt");
    refused(&["generate", "--prompt", "1,2", "--prompt-file", path_arg(&lines)], "cannot be used with");
    refused(&["generate"], "--prompt");
    let ragged = dir.join("ragged.txt");
    std::fs::write(&ragged, "1,2,3\n4,5\n").unwrap();
    refused(&["generate", "--prompt-file", path_arg(&ragged)], "sequence 0 has 3 tokens, sequence 1 2");
    let blank = dir.join("blank.txt");
    std::fs::write(&blank, "\n  \n").unwrap();
    refused(&["generate", "--prompt-file", path_arg(&blank)], "holds no token ids");
    let _ = std::fs::remove_dir_all(&dir);
}
