//! Parsing ptxas's `-v` report: registers and spills per kernel.

use std::fmt;

/// What ptxas reported for one kernel.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KernelResources {
    pub kernel: String,
    pub registers: u32,
    pub stack_bytes: u32,
    pub spill_store_bytes: u32,
    pub spill_load_bytes: u32,
    pub shared_bytes: u32,
}

impl KernelResources {
    pub fn spills(&self) -> bool {
        self.spill_store_bytes > 0 || self.spill_load_bytes > 0
    }
}

impl fmt::Display for KernelResources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} registers, {} B stack, {} B spill stores, {} B spill loads, {} B smem",
            self.kernel, self.registers, self.stack_bytes, self.spill_store_bytes, self.spill_load_bytes, self.shared_bytes
        )
    }
}

/// The number just before `unit` in `line` ("12 bytes spill stores" → 12 for "bytes spill stores").
fn number_before(line: &str, unit: &str) -> Option<u32> {
    let head = &line[..line.find(unit)?];
    head.split(|c: char| !c.is_ascii_digit()).rfind(|s| !s.is_empty())?.parse().ok()
}

/// One entry per kernel that ptxas described, in report order.
pub fn parse(report: &str) -> Vec<KernelResources> {
    let mut out: Vec<KernelResources> = Vec::new();
    for line in report.lines() {
        if let Some(rest) = line.split("Function properties for ").nth(1) {
            out.push(KernelResources { kernel: rest.trim().to_string(), ..Default::default() });
        } else if let Some(cur) = out.last_mut() {
            if line.contains("spill stores") {
                cur.stack_bytes = number_before(line, "bytes stack frame").unwrap_or(0);
                cur.spill_store_bytes = number_before(line, "bytes spill stores").unwrap_or(0);
                cur.spill_load_bytes = number_before(line, "bytes spill loads").unwrap_or(0);
            } else if line.contains("Used") && line.contains("registers") {
                cur.registers = number_before(line, " registers").unwrap_or(0);
                cur.shared_bytes = number_before(line, " bytes smem").unwrap_or(0);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_report() {
        let report = "ptxas info    : 0 bytes gmem\n\
            ptxas info    : Compiling entry function 'rmsnorm_f32' for 'sm_90a'\n\
            ptxas info    : Function properties for rmsnorm_f32\n\
            \x20   8 bytes stack frame, 4 bytes spill stores, 12 bytes spill loads\n\
            ptxas info    : Used 40 registers, used 1 barriers, 128 bytes smem, 400 bytes cmem[0]\n";
        let r = parse(report);
        assert_eq!(r.len(), 1);
        assert_eq!(
            r[0],
            KernelResources { kernel: "rmsnorm_f32".into(), registers: 40, stack_bytes: 8, spill_store_bytes: 4, spill_load_bytes: 12, shared_bytes: 128 }
        );
        assert!(r[0].spills());
    }
}
