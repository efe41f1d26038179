//! Per-rank compute speed: what stragglers do to a step. Faults decide the factors; the
//! engine applies them to every compute op of a rank. Holds no timing logic beyond the
//! multiplication.

use crate::units::Nanos;

/// Per-rank compute slowdown (1.0 = healthy). Stragglers set entries above 1.
#[derive(Debug, Clone, Default)]
pub struct RankSpeeds {
    slowdown: Vec<f32>,
}

impl RankSpeeds {
    pub fn uniform() -> Self {
        RankSpeeds {
            slowdown: Vec::new(),
        }
    }

    pub fn set(&mut self, world: u32, rank: u32, factor: f32) {
        if self.slowdown.is_empty() {
            self.slowdown = vec![1.0; world as usize];
        }
        self.slowdown[rank as usize] = factor;
    }

    /// The slowdown of `rank` (1.0 when healthy).
    pub fn factor(&self, rank: u32) -> f32 {
        self.slowdown.get(rank as usize).copied().unwrap_or(1.0)
    }

    /// Ranks slower than healthy.
    pub fn slow_ranks(&self) -> impl Iterator<Item = u32> + '_ {
        (0..self.slowdown.len() as u32).filter(|&r| self.factor(r) != 1.0)
    }

    /// `d` stretched by `rank`'s slowdown, rounded to whole nanoseconds.
    #[inline]
    pub fn scale(&self, rank: u32, d: Nanos) -> Nanos {
        match self.slowdown.get(rank as usize) {
            Some(&f) if f != 1.0 => (d as f64 * f as f64).round() as Nanos,
            _ => d,
        }
    }
}
