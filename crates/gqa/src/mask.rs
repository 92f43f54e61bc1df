//! Which keys a query sees: the one definition every path (reference, CPU tiles, CUDA launch
//! geometry, FLOP counts of the benches) takes its key ranges from.

/// The attention mask. Causal masks are aligned **bottom-right** (SPEC.md): with `q_len` queries
/// over `kv_len` keys, query `i` is the token at position `i + (kv_len − q_len)` of the key
/// sequence, so one decode query sees the whole cache and a chunk after a cached prefix sees the
/// prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mask {
    /// Every query sees every key.
    None,
    /// Query `i` sees key `j` iff `j <= i + (kv_len − q_len)`.
    Causal,
    /// Causal, and only the last `W` keys including itself:
    /// `i + (kv_len − q_len) − W < j <= i + (kv_len − q_len)` (flash-attention's
    /// `window_size = (W − 1, 0)`). `W` must be at least 1.
    Window(usize),
}

impl Mask {
    /// The keys query `i` sees, as the half-open range `[lo, hi)`. Attention checks that
    /// `kv_len >= q_len` for the causal masks (lib.rs), so there every range holds at least one
    /// key; with fewer keys than queries, the first queries' ranges are empty.
    pub fn key_range(self, i: usize, q_len: usize, kv_len: usize) -> (usize, usize) {
        let hi = (i + kv_len + 1).saturating_sub(q_len);
        match self {
            Mask::None => (0, kv_len),
            Mask::Causal => (0, hi),
            Mask::Window(w) => (hi.saturating_sub(w), hi),
        }
    }

    /// Whether query `i` sees key `j`.
    pub fn visible(self, i: usize, j: usize, q_len: usize, kv_len: usize) -> bool {
        let (lo, hi) = self.key_range(i, q_len, kv_len);
        lo <= j && j < hi
    }

    /// How many (query, key) pairs are visible: the work a kernel that skips masked tiles must
    /// do at least, which the benches count FLOPs by.
    pub fn visible_pairs(self, q_len: usize, kv_len: usize) -> u64 {
        (0..q_len)
            .map(|i| {
                let (lo, hi) = self.key_range(i, q_len, kv_len);
                (hi - lo) as u64
            })
            .sum()
    }

    /// Short name for labels: `none`, `causal`, `window=W`.
    pub fn label(self) -> String {
        match self {
            Mask::None => "none".into(),
            Mask::Causal => "causal".into(),
            Mask::Window(w) => format!("window={w}"),
        }
    }

    /// Whether this mask is causal (the window masks are).
    pub fn is_causal(self) -> bool {
        !matches!(self, Mask::None)
    }
}

#[cfg(test)]
mod tests {
    use super::Mask;

    #[test]
    fn bottom_right_alignment_and_window_edges() {
        // 2 queries over 5 keys: query 0 is key position 3, query 1 is 4.
        assert_eq!(Mask::Causal.key_range(0, 2, 5), (0, 4));
        assert_eq!(Mask::Causal.key_range(1, 2, 5), (0, 5));
        // Window 2: exactly two keys including itself.
        assert_eq!(Mask::Window(2).key_range(1, 2, 5), (3, 5));
        assert_eq!(Mask::Window(1).key_range(0, 2, 5), (3, 4));
        // A window wider than the prefix is plain causal.
        assert_eq!(Mask::Window(9).key_range(0, 2, 5), (0, 4));
        assert_eq!(Mask::Causal.visible_pairs(4, 4), 10);
        assert_eq!(Mask::Window(2).visible_pairs(4, 4), 7);
        assert_eq!(Mask::None.visible_pairs(3, 5), 15);
    }
}
