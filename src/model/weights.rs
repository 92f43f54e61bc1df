//! Model weights: the list of every tensor a config needs (name, shape, initialisation), seeded
//! random initialisation following the official YOCO scheme, and safetensors load/save.
//!
//! Tensor names (all linear weights `[out, in]`, as PyTorch stores them):
//!
//! | name | shape | model |
//! |---|---|---|
//! | `embed` | `[vocab, d]` | both |
//! | `self.{l}.mixer_norm`, `self.{l}.ffn_norm` | `[d]` | YOCO, l < L/2 |
//! | `self.{l}.gret.{wq,wk,wv,wg}` | `[d, d]` | YOCO with gated retention |
//! | `self.{l}.gret.wgamma` | `[heads, d]` | YOCO with gated retention |
//! | `self.{l}.gret.wo` | `[d, d]` | YOCO with gated retention |
//! | `self.{l}.swa.{wq,wk,wv,wo}` | `[H·D, d]`, `[Hkv·D, d]` ×2, `[d, H·D]` | YOCO with SWA |
//! | `self.{l}.ffn.{w1,w3,w2}` | `[F, d]`, `[F, d]`, `[d, F]` | YOCO |
//! | `cross.kv_norm` | `[d]` | YOCO |
//! | `cross.{wk,wv}` | `[Hkv·D, d]` | YOCO (the shared K̂/V̂ projections) |
//! | `cross.{l}.attn_norm`, `cross.{l}.ffn_norm` | `[d]` | YOCO, l < L/2 |
//! | `cross.{l}.{wq,wo}` | `[H·D, d]`, `[d, H·D]` | YOCO |
//! | `cross.{l}.ffn.{w1,w3,w2}` | as above | YOCO |
//! | `layers.{l}.{attn_norm,ffn_norm}` | `[d]` | Transformer |
//! | `layers.{l}.attn.{wq,wk,wv,wo}` | as SWA | Transformer |
//! | `layers.{l}.ffn.{w1,w3,w2}` | as above | Transformer |
//! | `final_norm` | `[d]` | both |
//! | `lm_head` | `[vocab, d]` | both (untied) |

use std::collections::BTreeMap;
use std::path::Path;

use yoco_core::half::{bf16, f16};
use yoco_core::rng::par_fill;
use yoco_core::{DType, Device, Error, MemoryCategory, Result, Tensor};

use super::config::{Architecture, ModelConfig, SelfDecoder};

/// How a tensor is initialised.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    /// All ones (norm weights).
    Ones,
    /// N(0, std²) (embeddings: std = d^-½).
    Normal { std: f64 },
    /// Xavier-uniform with `gain`: U(±gain·√(6 / (fan_in + fan_out))) (gRet projections).
    XavierUniform { gain: f64 },
    /// Kaiming-uniform with a = √5, PyTorch's `nn.Linear` default: U(±1/√fan_in).
    KaimingUniform,
}

/// One tensor of a model: its name, shape and initialisation.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorSpec {
    pub name: String,
    pub dims: Vec<usize>,
    pub init: Init,
}

fn spec(name: String, dims: &[usize], init: Init) -> TensorSpec {
    TensorSpec { name, dims: dims.to_vec(), init }
}

fn ffn_specs(out: &mut Vec<TensorSpec>, prefix: &str, c: &ModelConfig) {
    let (d, f) = (c.d_model, c.ffn_dim);
    out.push(spec(format!("{prefix}.ffn.w1"), &[f, d], Init::KaimingUniform));
    out.push(spec(format!("{prefix}.ffn.w3"), &[f, d], Init::KaimingUniform));
    out.push(spec(format!("{prefix}.ffn.w2"), &[d, f], Init::KaimingUniform));
}

fn attention_specs(out: &mut Vec<TensorSpec>, prefix: &str, c: &ModelConfig) {
    let (d, q, kv) = (c.d_model, c.n_heads * c.head_dim, c.n_kv_heads * c.head_dim);
    out.push(spec(format!("{prefix}.wq"), &[q, d], Init::KaimingUniform));
    out.push(spec(format!("{prefix}.wk"), &[kv, d], Init::KaimingUniform));
    out.push(spec(format!("{prefix}.wv"), &[kv, d], Init::KaimingUniform));
    out.push(spec(format!("{prefix}.wo"), &[d, q], Init::KaimingUniform));
}

/// Every tensor `config` needs, in a fixed order.
pub fn tensor_specs(c: &ModelConfig) -> Vec<TensorSpec> {
    let d = c.d_model;
    let mut out = vec![spec("embed".into(), &[c.vocab_size, d], Init::Normal { std: (d as f64).powf(-0.5) })];
    match c.architecture {
        Architecture::Transformer {} => {
            for l in 0..c.n_layers {
                out.push(spec(format!("layers.{l}.attn_norm"), &[d], Init::Ones));
                attention_specs(&mut out, &format!("layers.{l}.attn"), c);
                out.push(spec(format!("layers.{l}.ffn_norm"), &[d], Init::Ones));
                ffn_specs(&mut out, &format!("layers.{l}"), c);
            }
        }
        Architecture::Yoco { self_decoder } => {
            let half = c.n_layers / 2;
            for l in 0..half {
                out.push(spec(format!("self.{l}.mixer_norm"), &[d], Init::Ones));
                match self_decoder {
                    SelfDecoder::GatedRetention { heads, .. } => {
                        // The official scheme: small gains keep the retention's outputs O(1) at init.
                        let small = Init::XavierUniform { gain: 2f64.powf(-2.5) };
                        for w in ["wq", "wk", "wv", "wg"] {
                            out.push(spec(format!("self.{l}.gret.{w}"), &[d, d], small));
                        }
                        out.push(spec(format!("self.{l}.gret.wgamma"), &[heads, d], small));
                        out.push(spec(format!("self.{l}.gret.wo"), &[d, d], Init::XavierUniform { gain: 0.5 }));
                    }
                    SelfDecoder::SlidingWindow { .. } => attention_specs(&mut out, &format!("self.{l}.swa"), c),
                }
                out.push(spec(format!("self.{l}.ffn_norm"), &[d], Init::Ones));
                ffn_specs(&mut out, &format!("self.{l}"), c);
            }
            let kv = c.n_kv_heads * c.head_dim;
            out.push(spec("cross.kv_norm".into(), &[d], Init::Ones));
            out.push(spec("cross.wk".into(), &[kv, d], Init::KaimingUniform));
            out.push(spec("cross.wv".into(), &[kv, d], Init::KaimingUniform));
            for l in 0..half {
                let q = c.n_heads * c.head_dim;
                out.push(spec(format!("cross.{l}.attn_norm"), &[d], Init::Ones));
                out.push(spec(format!("cross.{l}.wq"), &[q, d], Init::KaimingUniform));
                out.push(spec(format!("cross.{l}.wo"), &[d, q], Init::KaimingUniform));
                out.push(spec(format!("cross.{l}.ffn_norm"), &[d], Init::Ones));
                ffn_specs(&mut out, &format!("cross.{l}"), c);
            }
        }
    }
    out.push(spec("final_norm".into(), &[d], Init::Ones));
    out.push(spec("lm_head".into(), &[c.vocab_size, d], Init::KaimingUniform));
    out
}

/// Draws one tensor's values, in parallel blocks (`rng::par_fill`): generators seeded from the
/// model seed, the tensor's name and the block index, so that a tensor's values do not depend on
/// which others exist, their order, or the thread count.
fn draw(spec: &TensorSpec, seed: u64) -> Result<Vec<f64>> {
    let n: usize = spec.dims.iter().product();
    let name_hash = spec.name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x1000_0000_01b3));
    let (fan_out, fan_in) = match spec.dims[..] {
        [out, inp] => (out as f64, inp as f64),
        _ => (1.0, 1.0),
    };
    let mut values = host_values("Weights::init", &spec.name, n)?;
    values.resize(n, 0.0);
    let seed = seed ^ name_hash;
    match spec.init {
        Init::Ones => values.fill(1.0),
        Init::Normal { std } => par_fill(&mut values, seed, |rng| std * rng.normal()),
        Init::XavierUniform { gain } => {
            let bound = gain * (6.0 / (fan_in + fan_out)).sqrt();
            par_fill(&mut values, seed, |rng| rng.uniform_in(-bound, bound));
        }
        Init::KaimingUniform => {
            let bound = 1.0 / fan_in.sqrt();
            par_fill(&mut values, seed, |rng| rng.uniform_in(-bound, bound));
        }
    }
    Ok(values)
}

/// An empty buffer with room for tensor `name`'s `n` values in f64, or the typed error a refused
/// allocation deserves: a config within `validate`'s limits can still ask for more memory than
/// there is, and `vec!` would abort the process there.
fn host_values(op: &'static str, name: &str, n: usize) -> Result<Vec<f64>> {
    let mut values = Vec::new();
    values.try_reserve_exact(n).map_err(|_| Error::OutOfMemory {
        op,
        what: format!("the values of '{name}' ({n} of them, in f64)"),
        reason: format!("the allocator refused {} bytes", n.saturating_mul(std::mem::size_of::<f64>())),
    })?;
    Ok(values)
}

/// Writes `tensors` (name, dtype, dims, little-endian bytes) and `metadata` to a safetensors
/// file at `path`, refusing an existing file unless `overwrite` ([`write_whole`]); errors name
/// `op`.
pub(crate) fn write_safetensors<'a>(
    op: &'static str,
    path: &Path,
    tensors: impl IntoIterator<Item = (&'a str, safetensors::Dtype, Vec<usize>, &'a [u8])>,
    metadata: Option<std::collections::HashMap<String, String>>,
    overwrite: bool,
) -> Result<()> {
    let views = tensors
        .into_iter()
        .map(|(name, dtype, dims, bytes)| safetensors::tensor::TensorView::new(dtype, dims, bytes).map(|v| (name, v)))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::invalid(op, "tensor", e.to_string()))?;
    write_whole(op, path, overwrite, |partial| safetensors::serialize_to_file(views, metadata, partial).map_err(|e| e.to_string()))
}

/// A file at `path` that `write` makes whole or not at all: `write` fills a file beside it (in
/// the same folder, so that it can be moved there in one step), which then takes `path`'s name
/// only if no file has it — decided at that moment, so that a file made since an earlier check
/// (during a long generation) is not replaced — or, with `overwrite`, in place of the one there.
/// A write that fails leaves any earlier file as it was, and no partial one. The file gets the
/// permissions of any new file here (the process's umask applied), whatever file `write` made:
/// safetensors writes through a temporary file of its own, which is private (mode 600).
pub(crate) fn write_whole(op: &'static str, path: &Path, overwrite: bool, write: impl FnOnce(&Path) -> std::result::Result<(), String>) -> Result<()> {
    let failed = |reason: String| Error::invalid(op, "path", format!("{}: {reason}", path.display()));
    let name = path.file_name().ok_or_else(|| failed("not a file name".into()))?;
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    // Made first, under a free name, which also tells a new file's permissions; `write` may
    // replace it with a file of its own.
    let (partial, file) = crate::scratch::create_fresh_file(dir, &format!(".{}.partial", name.to_string_lossy())).map_err(|e| failed(e.to_string()))?;
    let permissions = file.metadata().map(|m| m.permissions()).map_err(|e| failed(e.to_string()))?;
    drop(file);
    let placed = write(&partial).and_then(|()| std::fs::set_permissions(&partial, permissions).map_err(|e| e.to_string())).and_then(|()| {
        if overwrite {
            return std::fs::rename(&partial, path).map_err(|e| e.to_string());
        }
        // A hard link is made only where no file has the name (POSIX `link`): the check and the
        // naming in one step. A file system without hard links gets the check, then the move.
        match std::fs::hard_link(&partial, path) {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err("exists; replacing it was not asked for (--force)".to_string()),
            Err(_) if !path.exists() => std::fs::rename(&partial, path).map_err(|e| e.to_string()),
            linked => linked.map_err(|e| e.to_string()),
        }
    });
    // The partial file: renamed away, or linked (the file's other name), or left by a failure.
    let _ = std::fs::remove_file(&partial);
    placed.map_err(failed)
}

/// Errors unless every one of `values` (the tensor `what`) is finite in `dtype`: a NaN, an
/// infinity or a value past the dtype's largest would surface only as non-finite logits, naming
/// neither the tensor nor the cause.
fn expect_representable(op: &'static str, what: &str, values: &[f64], dtype: DType) -> Result<()> {
    match values.iter().enumerate().find(|(_, v)| !dtype.round(**v).is_finite()) {
        Some((i, v)) => {
            let held = if v.is_finite() { format!("{v}, past {}'s largest value", dtype.name()) } else { format!("{v}") };
            Err(Error::invalid(op, "tensor", format!("{what} holds {held} (element {i})")))
        }
        None => Ok(()),
    }
}

/// A model's tensors by name, on one device, in one dtype, charged as weights.
#[derive(Debug)]
pub struct Weights {
    tensors: BTreeMap<String, Tensor>,
    dtype: DType,
}

impl Weights {
    /// Seeded random initialisation of every tensor `config` needs.
    pub fn init(config: &ModelConfig, seed: u64, dtype: DType, device: &Device) -> Result<Weights> {
        let mut tensors = BTreeMap::new();
        for s in tensor_specs(config) {
            let t = Tensor::from_f64(&draw(&s, seed)?, s.dims.clone(), dtype, device, MemoryCategory::Weights)?;
            tensors.insert(s.name, t);
        }
        Ok(Weights { tensors, dtype })
    }

    /// A copy of every tensor in `dtype` on `device` (the same values, rounded once more if the
    /// dtype is narrower); refuses a value the narrower dtype cannot hold, naming its tensor.
    pub fn converted(&self, dtype: DType, device: &Device) -> Result<Weights> {
        let mut tensors = BTreeMap::new();
        for (name, t) in &self.tensors {
            let values = t.to_f64_vec()?;
            expect_representable("Weights::converted", &format!("'{name}'"), &values, dtype)?;
            tensors.insert(name.clone(), Tensor::from_f64(&values, t.dims().to_vec(), dtype, device, MemoryCategory::Weights)?);
        }
        Ok(Weights { tensors, dtype })
    }

    /// The tensor `name`, or an error naming it.
    pub fn get(&self, name: &str) -> Result<&Tensor> {
        self.tensors.get(name).ok_or_else(|| Error::invalid("Weights::get", "name", format!("no tensor '{name}'")))
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Total parameters held.
    pub fn parameter_count(&self) -> usize {
        self.tensors.values().map(Tensor::numel).sum()
    }

    /// Writes a safetensors file, whole or not at all. Refuses to replace an existing file unless
    /// `overwrite`.
    pub fn save(&self, path: &Path, overwrite: bool) -> Result<()> {
        const OP: &str = "Weights::save";
        let mut blobs = Vec::with_capacity(self.tensors.len());
        for (name, t) in &self.tensors {
            let bytes: Vec<u8> = match t.dtype() {
                DType::F32 => t.to_vec::<f32>()?.iter().flat_map(|v| v.to_le_bytes()).collect(),
                DType::BF16 => t.to_vec::<bf16>()?.iter().flat_map(|v| v.to_le_bytes()).collect(),
                DType::F16 => t.to_vec::<f16>()?.iter().flat_map(|v| v.to_le_bytes()).collect(),
            };
            blobs.push((name.clone(), t.dims().to_vec(), bytes));
        }
        let st_dtype = match self.dtype {
            DType::F32 => safetensors::Dtype::F32,
            DType::BF16 => safetensors::Dtype::BF16,
            DType::F16 => safetensors::Dtype::F16,
        };
        write_safetensors(OP, path, blobs.iter().map(|(name, dims, bytes)| (name.as_str(), st_dtype, dims.clone(), &bytes[..])), None, overwrite)
    }

    /// Reads a safetensors file and checks it holds exactly the tensors `config` needs with the
    /// right shapes (missing, extra or mis-shaped tensors are errors naming them), converting to
    /// `dtype` on `device`.
    pub fn load(config: &ModelConfig, path: &Path, dtype: DType, device: &Device) -> Result<Weights> {
        const OP: &str = "Weights::load";
        let bytes = std::fs::read(path).map_err(|e| Error::invalid(OP, "path", format!("{}: {e}", path.display())))?;
        let file = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| Error::invalid(OP, "file", format!("{}: {e}", path.display())))?;
        let specs = tensor_specs(config);
        let expected: std::collections::BTreeSet<&str> = specs.iter().map(|s| s.name.as_str()).collect();
        // Sorted, so that the culprit named is the same on every run.
        let mut names = file.names();
        names.sort();
        if let Some(extra) = names.into_iter().find(|n| !expected.contains(&n[..])) {
            return Err(Error::invalid(OP, "tensor", format!("'{extra}' in {} is not a tensor of {}", path.display(), config.name)));
        }
        let mut tensors = BTreeMap::new();
        for s in specs {
            let view = file.tensor(&s.name).map_err(|_| Error::invalid(OP, "tensor", format!("'{}' is missing from {}", s.name, path.display())))?;
            if view.shape() != s.dims.as_slice() {
                return Err(Error::ShapeMismatch { op: OP, what: "tensor", expected: format!("'{}' {:?}", s.name, s.dims), got: format!("{:?}", view.shape()) });
            }
            let data = view.data();
            let mut values = host_values(OP, &s.name, s.dims.iter().product())?;
            match view.dtype() {
                safetensors::Dtype::F32 => values.extend(data.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64)),
                safetensors::Dtype::BF16 => values.extend(data.chunks_exact(2).map(|b| bf16::from_le_bytes([b[0], b[1]]).to_f64())),
                safetensors::Dtype::F16 => values.extend(data.chunks_exact(2).map(|b| f16::from_le_bytes([b[0], b[1]]).to_f64())),
                other => return Err(Error::invalid(OP, "tensor", format!("'{}' is {other:?}: expected F32, BF16 or F16", s.name))),
            }
            expect_representable(OP, &format!("'{}' in {}", s.name, path.display()), &values, dtype)?;
            tensors.insert(s.name, Tensor::from_f64(&values, s.dims, dtype, device, MemoryCategory::Weights)?);
        }
        Ok(Weights { tensors, dtype })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::config::{preset, presets};

    #[test]
    fn specs_count_the_same_parameters_as_the_config() {
        for c in presets() {
            for cfg in [c.clone(), c.transformer_twin()] {
                let from_specs: usize = tensor_specs(&cfg).iter().map(|s| s.dims.iter().product::<usize>()).sum();
                assert_eq!(from_specs, cfg.parameter_count().total(), "{}", cfg.name);
            }
        }
    }

    #[test]
    fn init_follows_the_scheme() {
        let c = preset("tiny-yoco").unwrap();
        let w = Weights::init(&c, 7, DType::F32, &Device::cpu()).unwrap();
        let wq = w.get("self.0.gret.wq").unwrap().to_f64_vec().unwrap();
        let bound = 2f64.powf(-2.5) * (6.0 / 512.0f64).sqrt();
        assert!(wq.iter().all(|v| v.abs() <= bound));
        assert!(wq.iter().any(|v| v.abs() > 0.9 * bound));
        let embed = w.get("embed").unwrap().to_f64_vec().unwrap();
        let std = (embed.iter().map(|v| v * v).sum::<f64>() / embed.len() as f64).sqrt();
        assert!((std - 256f64.powf(-0.5)).abs() < 0.01 * 256f64.powf(-0.5) * 10.0, "{std}");
        assert!(w.get("final_norm").unwrap().to_f64_vec().unwrap().iter().all(|&v| v == 1.0));
        // Same seed, same weights; the accounting sees them.
        let again = Weights::init(&c, 7, DType::F32, &Device::cpu()).unwrap();
        assert_eq!(again.get("cross.wk").unwrap().to_f64_vec().unwrap(), w.get("cross.wk").unwrap().to_f64_vec().unwrap());
    }

    /// A file that appears after any earlier check (another program's, during a long run) is
    /// not replaced unless asked, nor is an earlier file by a write that fails; neither leaves a
    /// partial file.
    #[test]
    fn write_whole_refuses_a_file_made_meanwhile_and_keeps_it_on_failure() {
        let dir = std::env::temp_dir().join(format!("yoco-write-whole-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("out.bin");
        let write = |bytes: &'static [u8]| move |partial: &Path| std::fs::write(partial, bytes).map_err(|e| e.to_string());
        write_whole("test", &path, false, write(b"first")).unwrap();
        let err = write_whole("test", &path, false, write(b"second")).unwrap_err().to_string();
        assert!(err.contains("exists"), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), b"first");
        let err = write_whole("test", &path, true, |_| Err("the disk is full".into())).unwrap_err().to_string();
        assert!(err.contains("the disk is full"), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), b"first", "a failed write leaves the file as it was");
        write_whole("test", &path, true, write(b"second")).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second", "replaced when asked");
        let names: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["out.bin"], "no partial file is left");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn save_and_load_round_trip_and_refuse_bad_files() {
        let dir = std::env::temp_dir().join(format!("yoco-weights-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("tiny.safetensors");
        let _ = std::fs::remove_file(&path);
        let c = preset("tiny-yoco").unwrap();
        let cpu = Device::cpu();
        let w = Weights::init(&c, 1, DType::BF16, &cpu).unwrap();
        w.save(&path, false).unwrap();
        assert!(w.save(&path, false).is_err(), "an existing file is not overwritten silently");
        // Readable as any new file is (safetensors' own temporary file is private, mode 600).
        let fresh = dir.join("fresh");
        std::fs::write(&fresh, b"").unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions(), std::fs::metadata(&fresh).unwrap().permissions());
        let back = Weights::load(&c, &path, DType::BF16, &cpu).unwrap();
        assert_eq!(back.get("self.1.gret.wo").unwrap().to_f64_vec().unwrap(), w.get("self.1.gret.wo").unwrap().to_f64_vec().unwrap());
        // The Transformer twin's names are not YOCO's: the first one missing is named.
        let err = Weights::load(&c.transformer_twin(), &path, DType::F32, &cpu).unwrap_err().to_string();
        assert!(err.contains("'cross.0.attn_norm'") && err.contains("is not a tensor of tiny-transformer"), "{err}");
        let mut wider = c.clone();
        wider.ffn_dim = 768;
        let err = Weights::load(&wider, &path, DType::F32, &cpu).unwrap_err().to_string();
        assert!(err.contains("ffn.w1") && err.contains("768"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A value the run's dtype cannot hold, or a NaN, is named with its tensor at load: it had
    /// surfaced as "a logit is NaN or infinite" at the first step.
    #[test]
    fn load_names_the_tensor_holding_a_value_the_dtype_cannot_hold() {
        let dir = std::env::temp_dir().join(format!("yoco-weights-range-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (c, cpu) = (preset("tiny-yoco").unwrap(), Device::cpu());
        for (value, fits_f32) in [(70_000.0, true), (f64::NAN, false)] {
            let mut w = Weights::init(&c, 1, DType::F32, &cpu).unwrap();
            let norm = w.get("final_norm").unwrap();
            let mut values = norm.to_f64_vec().unwrap();
            values[3] = value;
            let altered = Tensor::from_f64(&values, norm.dims().to_vec(), DType::F32, &cpu, MemoryCategory::Weights).unwrap();
            w.tensors.insert("final_norm".into(), altered);
            let path = dir.join(format!("altered-{fits_f32}.safetensors"));
            w.save(&path, true).unwrap();
            assert_eq!(Weights::load(&c, &path, DType::F32, &cpu).is_ok(), fits_f32, "{value} in f32");
            let err = Weights::load(&c, &path, DType::F16, &cpu).unwrap_err().to_string();
            assert!(err.contains("'final_norm'") && err.contains("element 3"), "{err}");
            // The same refusal converting weights already held (it had rounded to infinity).
            let err = w.converted(DType::F16, &cpu).unwrap_err().to_string();
            assert!(err.contains("'final_norm'") && err.contains("element 3"), "{err}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
