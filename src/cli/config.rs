//! `yoco config`: the presets, as JSON a user can start from, with their parameter counts.

use yoco_core::Result;

use crate::model::{preset, presets, ModelConfig};

fn summary(c: &ModelConfig) -> String {
    let p = c.parameter_count();
    format!("{:<24} {:>8.3} B non-embedding, {:>8.3} B in all", c.name, p.non_embedding as f64 / 1e9, p.total() as f64 / 1e9)
}

pub fn run(name: Option<&str>, list: bool) -> Result<()> {
    if list || name.is_none() {
        for c in presets() {
            println!("{}", summary(&c));
            println!("{}", summary(&c.transformer_twin()));
        }
        return Ok(());
    }
    let c = preset(name.expect("checked above"))?;
    println!("{}", c.to_json());
    eprintln!("{}", summary(&c));
    Ok(())
}
