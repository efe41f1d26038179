//! A monotone radix heap: the engine's event queue.
//!
//! Keys are integer times that never go below the last popped key (the engine never
//! schedules into the past), which lets a radix heap run in amortised `O(log C)` with
//! cache-friendly bucket vectors and no per-event allocation once buckets have grown.
//! Ties pop in an unspecified but deterministic order (same pushes, same pops).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::units::Nanos;

const BUCKETS: usize = 65;

#[derive(Debug, Clone)]
pub struct RadixHeap {
    last: Nanos,
    len: usize,
    buckets: Vec<Vec<(Nanos, u64)>>,
    /// Bit `i` set when `buckets[i]` is non-empty: refills find the next bucket in one
    /// instruction instead of scanning 65 vectors.
    occupied: u128,
    /// Last key actually popped (`last` may run ahead of it after a peek re-buckets).
    popped: Nanos,
    /// Keys pushed below `last` after a peek moved it (a network event earlier than the
    /// peeked minimum scheduled work): still >= `popped`, kept in order here.
    early: BinaryHeap<Reverse<(Nanos, u64)>>,
}

impl Default for RadixHeap {
    fn default() -> Self {
        Self::new()
    }
}

#[inline]
fn bucket_of(key: Nanos, last: Nanos) -> usize {
    (64 - (key ^ last).leading_zeros()) as usize
}

impl RadixHeap {
    pub fn new() -> Self {
        RadixHeap {
            last: 0,
            len: 0,
            popped: 0,
            occupied: 0,
            early: BinaryHeap::new(),
            buckets: (0..BUCKETS).map(|_| Vec::new()).collect(),
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Pushes an event. `key` must not be earlier than the last popped key.
    #[inline]
    pub fn push(&mut self, key: Nanos, value: u64) {
        debug_assert!(key >= self.popped, "event scheduled in the past");
        self.len += 1;
        if key < self.last {
            self.early.push(Reverse((key.max(self.popped), value)));
            return;
        }
        let b = bucket_of(key, self.last);
        self.buckets[b].push((key, value));
        self.occupied |= 1 << b;
    }

    /// Smallest key without removing it.
    pub fn peek_key(&mut self) -> Option<Nanos> {
        if self.len == 0 {
            return None;
        }
        let early = self.early.peek().map(|Reverse((k, _))| *k);
        if self.len > self.early.len() {
            self.refill();
        }
        let bucket = self.buckets[0].last().map(|&(k, _)| k);
        match (early, bucket) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    #[inline]
    pub fn pop(&mut self) -> Option<(Nanos, u64)> {
        if self.early.is_empty() {
            return self.pop_bucket();
        }
        if self.len == 0 {
            return None;
        }
        if self.len > self.early.len() {
            self.refill();
        }
        let early = self.early.peek().map(|Reverse((k, _))| *k);
        let bucket = self.buckets[0].last().map(|&(k, _)| k);
        let item = match (early, bucket) {
            (Some(a), b) if b.is_none_or(|b| a <= b) => self.early.pop().map(|Reverse(e)| e),
            _ => {
                let item = self.buckets[0].pop();
                if self.buckets[0].is_empty() {
                    self.occupied &= !1;
                }
                item
            }
        };
        if let Some((k, _)) = item {
            self.len -= 1;
            self.popped = k;
        }
        item
    }

    /// `pop` when no early key is pending: bucket 0 holds the minimum after a refill.
    #[inline]
    fn pop_bucket(&mut self) -> Option<(Nanos, u64)> {
        if self.occupied & 1 == 0 {
            if self.occupied == 0 {
                return None;
            }
            self.refill();
        }
        let item = self.buckets[0].pop();
        if self.buckets[0].is_empty() {
            self.occupied &= !1;
        }
        if let Some((k, _)) = item {
            self.len -= 1;
            self.popped = k;
        }
        item
    }

    /// Makes bucket 0 non-empty by redistributing the first non-empty bucket around its
    /// minimum key.
    #[inline]
    fn refill(&mut self) {
        if self.occupied & 1 != 0 || self.occupied == 0 {
            return;
        }
        let i = self.occupied.trailing_zeros() as usize;
        let mut bucket = std::mem::take(&mut self.buckets[i]);
        self.occupied &= !(1 << i);
        let new_last = bucket.iter().map(|&(k, _)| k).min().unwrap_or(self.last);
        self.last = new_last;
        for (k, v) in bucket.drain(..) {
            let b = bucket_of(k, new_last);
            self.buckets[b].push((k, v));
            self.occupied |= 1 << b;
        }
        // Keep the grown allocation for reuse.
        self.buckets[i] = bucket;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn pops_in_nondecreasing_order(ops in proptest::collection::vec((0u64..1_000_000, any::<bool>()), 1..500)) {
            let mut h = RadixHeap::new();
            let mut reference = std::collections::BinaryHeap::new();
            let mut now = 0;
            for (delta, pop) in ops {
                if delta % 7 == 0 {
                    // Peeking must not forbid pushes between the last pop and the minimum.
                    let _ = h.peek_key();
                }
                if pop {
                    let a = h.pop();
                    let b = reference.pop().map(|std::cmp::Reverse(k)| k);
                    prop_assert_eq!(a.map(|(k, _)| k), b);
                    if let Some((k, _)) = a { now = k; }
                } else {
                    h.push(now + delta, 0);
                    reference.push(std::cmp::Reverse(now + delta));
                }
            }
            let mut last = 0;
            while let Some((k, _)) = h.pop() {
                prop_assert!(k >= last);
                last = k;
            }
        }
    }
}
