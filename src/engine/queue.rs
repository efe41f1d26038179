//! A monotone radix heap: the engine's event queue.
//!
//! Keys are integer times that never go below the last popped key (the engine never
//! schedules into the past), which lets a radix heap run in amortised `O(log C)` with
//! cache-friendly bucket vectors and no per-event allocation once buckets have grown.
//! Ties pop in an unspecified but deterministic order (same pushes, same pops).

use crate::units::Nanos;

const BUCKETS: usize = 65;

#[derive(Debug, Clone)]
pub struct RadixHeap {
    last: Nanos,
    len: usize,
    buckets: Vec<Vec<(Nanos, u64)>>,
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
        debug_assert!(key >= self.last, "event scheduled in the past");
        let key = key.max(self.last);
        self.buckets[bucket_of(key, self.last)].push((key, value));
        self.len += 1;
    }

    /// Smallest key without removing it.
    pub fn peek_key(&mut self) -> Option<Nanos> {
        if self.len == 0 {
            return None;
        }
        self.refill();
        self.buckets[0].last().map(|&(k, _)| k)
    }

    #[inline]
    pub fn pop(&mut self) -> Option<(Nanos, u64)> {
        if self.len == 0 {
            return None;
        }
        self.refill();
        let item = self.buckets[0].pop();
        if item.is_some() {
            self.len -= 1;
        }
        item
    }

    /// Makes bucket 0 non-empty by redistributing the first non-empty bucket around its
    /// minimum key.
    #[inline]
    fn refill(&mut self) {
        if !self.buckets[0].is_empty() {
            return;
        }
        let Some(i) = (1..BUCKETS).find(|&i| !self.buckets[i].is_empty()) else {
            return;
        };
        let mut bucket = std::mem::take(&mut self.buckets[i]);
        let new_last = bucket.iter().map(|&(k, _)| k).min().unwrap_or(self.last);
        self.last = new_last;
        for (k, v) in bucket.drain(..) {
            self.buckets[bucket_of(k, new_last)].push((k, v));
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
