//! Shapes: a list of dimensions, row-major.

use std::fmt;

/// The dimensions of a tensor, outermost first. Tensors are dense and row-major.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Shape(Vec<usize>);

impl Shape {
    pub fn new(dims: impl Into<Vec<usize>>) -> Self {
        Shape(dims.into())
    }

    pub fn dims(&self) -> &[usize] {
        &self.0
    }

    pub fn rank(&self) -> usize {
        self.0.len()
    }

    /// Number of elements (1 for a scalar of rank 0). Only for shapes of tensors that exist
    /// (their count was checked when they were made); [`checked_numel`](Self::checked_numel)
    /// for any other.
    pub fn numel(&self) -> usize {
        self.checked_numel().expect("the element count of an existing tensor's shape fits a usize")
    }

    /// Number of elements, or `None` where the product of the dimensions overflows `usize`. A
    /// shape with a dimension of 0 holds none, whatever the others (`[usize::MAX, 2, 0]` as well
    /// as `[0, usize::MAX, 2]`).
    pub fn checked_numel(&self) -> Option<usize> {
        if self.0.contains(&0) {
            return Some(0);
        }
        self.0.iter().try_fold(1usize, |n, &d| n.checked_mul(d))
    }

    /// The innermost dimension (1 for rank 0): the row width of a row-wise op.
    pub fn last_dim(&self) -> usize {
        self.0.last().copied().unwrap_or(1)
    }

    /// The product of all dimensions but the last: the number of rows of a row-wise op.
    /// Saturates at `usize::MAX`: only a shape of no elements (a last dim of 0) has more rows.
    pub fn rows(&self) -> usize {
        match self.0.split_last() {
            Some((_, outer)) => outer.iter().fold(1, |rows: usize, &d| rows.saturating_mul(d)),
            None => 1,
        }
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[")?;
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            write!(f, "{d}")?;
        }
        write!(f, "]")
    }
}

impl fmt::Debug for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl From<Vec<usize>> for Shape {
    fn from(v: Vec<usize>) -> Self {
        Shape(v)
    }
}

impl From<&[usize]> for Shape {
    fn from(v: &[usize]) -> Self {
        Shape(v.to_vec())
    }
}

impl<const N: usize> From<[usize; N]> for Shape {
    fn from(v: [usize; N]) -> Self {
        Shape(v.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A zero dimension anywhere makes no elements, even past an overflowing product; an
    /// overflowing product of non-zero dimensions is none.
    #[test]
    fn checked_numel_sees_a_zero_anywhere() {
        for dims in [vec![usize::MAX, 2, 0], vec![0, usize::MAX, 2], vec![3, 0]] {
            assert_eq!(Shape::from(dims.clone()).checked_numel(), Some(0), "{dims:?}");
        }
        assert_eq!(Shape::from(vec![usize::MAX, 2]).checked_numel(), None);
        assert_eq!(Shape::from(vec![2, 3, 4]).checked_numel(), Some(24));
        assert_eq!(Shape::from(Vec::<usize>::new()).checked_numel(), Some(1));
    }

    /// Rows are counted without overflow: a zero among them makes none, and the one shape whose
    /// rows pass a usize (no elements, by a last dim of 0) saturates.
    #[test]
    fn rows_never_overflow() {
        assert_eq!(Shape::from(vec![usize::MAX, 2, 0, 4]).rows(), 0);
        assert_eq!(Shape::from(vec![usize::MAX, 2, 0]).rows(), usize::MAX);
        assert_eq!(Shape::from(vec![2, 3, 4]).rows(), 6);
    }
}
