//! A monotone radix heap with byte digits: the engine's event queue.
//!
//! Keys are integer times that never go below the last popped key (the engine never
//! schedules into the past). Keys in the current 256 ns window (all bytes but the lowest
//! equal to the current minimum's) form a sorted *run* consumed in order; every later key
//! lives in the bucket named by the highest byte in which it differs from the minimum and
//! that byte's value (7 levels x 256 buckets, a bitmap per level). Finding the next bucket
//! is a few bit scans, and an event moves down at most once per byte of its delay (twice
//! for delays up to 16 ms) before it is sorted into a run. Buckets are plain vectors
//! reused across refills: no allocation per event once they have grown.
//!
//! Order is canonical: events pop by `(key, value)`, so ties pop in ascending value
//! whatever the order of pushes. The engine's values start with the rank, so the events
//! of one instant are handled rank by rank (sequential memory), and a replay does not
//! depend on the queue's internals.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::units::Nanos;

const LEVELS: usize = 8;
const RADIX: usize = 256;
/// Windows up to this many events are sorted by comparison, larger ones by counting.
const SMALL_WINDOW: usize = 32;
/// Emptied bucket buffers kept for reuse.
const SPARES: usize = 16;

#[derive(Debug, Clone)]
pub struct RadixHeap {
    /// The smallest key of the current run: every bucketed key is outside its 256 ns
    /// window and shares its bytes above the bucket's level.
    last: Nanos,
    len: usize,
    /// Events of the current window, sorted, consumed from `next`.
    run: Vec<(Nanos, u64)>,
    next: usize,
    /// Events pushed into the current window while its run is being consumed.
    side: BinaryHeap<Reverse<(Nanos, u64)>>,
    /// Emptied bucket buffers, reused by the next buckets to fill.
    spare: Vec<Vec<(Nanos, u64)>>,
    /// Scratch for refills: a window's events before sorting, and counting-sort counters.
    scratch: Vec<(Nanos, u64)>,
    counts: [u32; RADIX],
    /// Buckets of levels 1.. (level 0 is the run).
    buckets: Vec<Vec<(Nanos, u64)>>,
    /// Per level, a bitmap of its non-empty buckets.
    occupied: [[u64; RADIX / 64]; LEVELS],
    /// Bit `d` set when level `d` has a non-empty bucket.
    levels: u8,
    /// Last key actually popped (`last` may run ahead of it after a peek).
    popped: Nanos,
    /// Keys pushed below `last` after a peek moved it (a network event earlier than the
    /// peeked minimum): still >= `popped`, kept in order here.
    early: BinaryHeap<Reverse<(Nanos, u64)>>,
}

impl Default for RadixHeap {
    fn default() -> Self {
        Self::new()
    }
}

/// Level (highest differing byte) of `key` relative to `last`: 0 inside its window.
#[inline]
fn level_of(key: Nanos, last: Nanos) -> usize {
    ((64 - (key ^ last).leading_zeros()).saturating_sub(1) / 8) as usize
}

#[inline]
fn digit(key: Nanos, level: usize) -> usize {
    ((key >> (8 * level)) & 0xff) as usize
}

impl RadixHeap {
    pub fn new() -> Self {
        RadixHeap {
            last: 0,
            len: 0,
            run: Vec::new(),
            next: 0,
            side: BinaryHeap::new(),
            spare: Vec::new(),
            scratch: Vec::new(),
            counts: [0; RADIX],
            buckets: (0..LEVELS * RADIX).map(|_| Vec::new()).collect(),
            occupied: [[0; RADIX / 64]; LEVELS],
            levels: 0,
            popped: 0,
            early: BinaryHeap::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes held by the queue's buffers (capacity, not contents).
    pub fn capacity_bytes(&self) -> usize {
        let e = std::mem::size_of::<(Nanos, u64)>();
        (self.buckets.iter().map(Vec::capacity).sum::<usize>()
            + self.spare.iter().map(Vec::capacity).sum::<usize>()
            + self.run.capacity()
            + self.scratch.capacity()
            + self.side.capacity()
            + self.early.capacity())
            * e
    }

    /// Pushes an event. `key` must not be earlier than the last popped key.
    #[inline]
    pub fn push(&mut self, key: Nanos, value: u64) {
        debug_assert!(key >= self.popped, "event scheduled in the past");
        self.len += 1;
        if key < self.last {
            self.early.push(Reverse((key.max(self.popped), value)));
        } else if (key ^ self.last) < RADIX as u64 {
            self.side.push(Reverse((key, value)));
        } else {
            self.bucket(key, value);
        }
    }

    #[inline]
    fn bucket(&mut self, key: Nanos, value: u64) {
        let level = level_of(key, self.last);
        let d = digit(key, level);
        let b = &mut self.buckets[level * RADIX + d];
        if b.capacity() == 0
            && let Some(v) = self.spare.pop()
        {
            *b = v;
        }
        b.push((key, value));
        self.occupied[level][d / 64] |= 1 << (d % 64);
        self.levels |= 1 << level;
    }

    /// Smallest event of the current window, if any.
    #[inline]
    fn window_min(&self) -> Option<(Nanos, u64)> {
        let run = self.run.get(self.next).copied();
        match (run, self.side.peek()) {
            (Some(a), Some(&Reverse(b))) => Some(a.min(b)),
            (a, b) => a.or(b.map(|&Reverse(b)| b)),
        }
    }

    /// The value most likely to pop next (the current run's next event), for prefetching;
    /// no guarantee (a pushed event or an earlier key may come first).
    #[inline]
    pub fn next_hint(&self) -> Option<u64> {
        self.run.get(self.next).map(|&(_, v)| v)
    }

    /// Smallest key without removing it.
    pub fn peek_key(&mut self) -> Option<Nanos> {
        if let Some(Reverse((k, _))) = self.early.peek() {
            return Some(*k);
        }
        if let Some((k, _)) = self.window_min() {
            return Some(k);
        }
        self.refill();
        self.window_min().map(|(k, _)| k)
    }

    /// Removes the smallest `(key, value)`.
    #[inline]
    pub fn pop(&mut self) -> Option<(Nanos, u64)> {
        if let Some(Reverse(e)) = self.early.pop() {
            self.len -= 1;
            self.popped = e.0;
            return Some(e);
        }
        if self.next >= self.run.len() && self.side.is_empty() {
            self.refill();
        }
        let e = match (self.run.get(self.next), self.side.peek()) {
            (Some(&a), Some(&Reverse(b))) if b < a => self.side.pop().map(|Reverse(b)| b),
            (Some(&a), _) => {
                self.next += 1;
                Some(a)
            }
            (None, _) => self.side.pop().map(|Reverse(b)| b),
        }?;
        self.len -= 1;
        self.popped = e.0;
        Some(e)
    }

    /// Makes the next window's events the run (the current window is empty).
    fn refill(&mut self) {
        if self.levels == 0 {
            return;
        }
        self.run.clear();
        self.next = 0;
        let level = self.levels.trailing_zeros() as usize;
        let words = &mut self.occupied[level];
        let w = words.iter().position(|&w| w != 0).unwrap_or(0);
        let d = w * 64 + words[w].trailing_zeros() as usize;
        words[w] &= !(1 << (d % 64));
        if words.iter().all(|&w| w == 0) {
            self.levels &= !(1 << level);
        }
        let mut bucket = std::mem::take(&mut self.buckets[level * RADIX + d]);
        let new_last = bucket.iter().map(|&(k, _)| k).min().unwrap_or(self.last);
        self.last = new_last;
        if level == 1 && bucket.len() <= SMALL_WINDOW {
            // One small window: sorted in place, its buffer becomes the run.
            std::mem::swap(&mut self.run, &mut bucket);
            if !self.run.is_sorted() {
                self.run.sort_unstable();
            }
        } else if level == 1 {
            // One window: the bytes above the lowest are all equal.
            sort_window(&bucket, &mut self.run, &mut self.counts);
        } else {
            let mut window = std::mem::take(&mut self.scratch);
            for &(k, v) in &bucket {
                if (k ^ new_last) < RADIX as u64 {
                    window.push((k, v));
                } else {
                    self.bucket(k, v);
                }
            }
            sort_window(&window, &mut self.run, &mut self.counts);
            window.clear();
            self.scratch = window;
        }
        // The drained buffer goes to the spares, not back to its bucket: buffers follow the
        // few buckets in use, so memory tracks the events in flight, not every bucket's
        // largest ever.
        bucket.clear();
        if self.spare.len() < SPARES {
            self.spare.push(bucket);
        }
    }
}

/// Sorts events of one 256 ns window into `out` by `(key, value)`: a counting sort on the
/// key's low byte (the only one that differs), then each run of equal keys by value
/// (already ascending when pushed rank by rank, which the check skips).
fn sort_window(events: &[(Nanos, u64)], out: &mut Vec<(Nanos, u64)>, counts: &mut [u32; RADIX]) {
    out.clear();
    if events.len() <= SMALL_WINDOW {
        out.extend_from_slice(events);
        out.sort_unstable();
        return;
    }
    counts.fill(0);
    for &(k, _) in events {
        counts[(k & 0xff) as usize] += 1;
    }
    let mut sum = 0;
    for c in counts.iter_mut() {
        let n = *c;
        *c = sum;
        sum += n;
    }
    out.resize(events.len(), (0, 0));
    for &e in events {
        let slot = &mut counts[(e.0 & 0xff) as usize];
        out[*slot as usize] = e;
        *slot += 1;
    }
    let mut start = 0;
    while start < out.len() {
        let key = out[start].0;
        let end = start + out[start..].iter().take_while(|e| e.0 == key).count();
        let group = &mut out[start..end];
        if !group.is_sorted() {
            group.sort_unstable();
        }
        start = end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn pops_in_key_then_value_order(ops in proptest::collection::vec((0u64..1_000_000, 0u64..4, any::<bool>()), 1..500)) {
            let mut h = RadixHeap::new();
            let mut reference = std::collections::BinaryHeap::new();
            let mut now = 0;
            for (delta, value, pop) in ops {
                if delta % 7 == 0 {
                    // Peeking must not forbid pushes between the last pop and the minimum.
                    let _ = h.peek_key();
                }
                if pop {
                    let a = h.pop();
                    let b = reference.pop().map(|std::cmp::Reverse(e)| e);
                    prop_assert_eq!(a, b);
                    if let Some((k, _)) = a { now = k; }
                } else {
                    // Small deltas make ties; large ones reach the upper levels.
                    let key = now + if delta % 3 == 0 { delta % 4 } else { delta << (delta % 24) };
                    h.push(key, value);
                    reference.push(std::cmp::Reverse((key, value)));
                }
                prop_assert_eq!(h.len(), reference.len());
            }
            while let Some(e) = h.pop() {
                prop_assert_eq!(Some(e), reference.pop().map(|std::cmp::Reverse(e)| e));
            }
            prop_assert!(reference.is_empty());
        }
    }

    #[test]
    fn large_windows_sort_by_key_then_value() {
        let mut h = RadixHeap::new();
        let mut reference = Vec::new();
        let mut x = 12345u64;
        for _ in 0..5000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            // Keys in a few windows far ahead, many ties, values in any order.
            let key = (1 << 30) + ((x >> 20) % 4) * 1000 + (x >> 40) % 8;
            let value = (x >> 8) % 50;
            h.push(key, value);
            reference.push((key, value));
        }
        reference.sort_unstable();
        let got: Vec<_> = std::iter::from_fn(|| h.pop()).collect();
        assert_eq!(got, reference);
    }

    #[test]
    fn ties_pop_by_value_whatever_the_push_order() {
        let mut h = RadixHeap::new();
        for v in [5, 3, 9, 1] {
            h.push(100, v);
        }
        h.push(1 << 40, 0);
        assert_eq!(h.pop(), Some((100, 1)));
        h.push(100, 2); // same instant, pushed while it is being consumed
        h.push(100, 0);
        let rest: Vec<_> = std::iter::from_fn(|| h.pop()).collect();
        assert_eq!(
            rest,
            vec![
                (100, 0),
                (100, 2),
                (100, 3),
                (100, 5),
                (100, 9),
                (1 << 40, 0)
            ]
        );
    }
}
