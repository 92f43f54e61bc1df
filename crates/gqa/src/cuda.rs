//! Launchers of `kernels/attention.cu` (feature `cuda`). Placeholder until the kernels land.

use yoco_core::{Error, Result, Tensor};

use crate::Problem;

pub(crate) fn attention(_q: &Tensor, _k: &Tensor, _v: &Tensor, _p: &Problem, _out: &mut Tensor) -> Result<()> {
    Err(Error::Unsupported { op: "attention (cuda)", what: "not yet implemented".into() })
}
