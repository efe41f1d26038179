//! Seeded random streams, one per component.
//!
//! Every random quantity of a fault model is drawn from a [`Xoshiro256PlusPlus`] stream keyed
//! by (global seed, stream class, component index) through a fixed SplitMix64 hash. A
//! component's draws therefore never depend on how many draws other components made, so
//! changing one setting (say the checkpoint interval) leaves every failure time unchanged.

use rand::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;

/// The RNG every fault draw goes through.
pub type FaultRng = Xoshiro256PlusPlus;

/// What a stream is for: part of its key, so streams of different purposes never collide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u64)]
pub enum StreamClass {
    Gpu = 1,
    GpuMemory = 2,
    Node = 3,
    Nic = 4,
    Link = 5,
    Switch = 6,
    /// Which nodes are lemons.
    Lemon = 16,
    /// Persistent stragglers (membership and factor).
    Straggler = 17,
    /// Transient slowdowns (arrival times, durations, factors).
    Transient = 18,
    /// Degraded links chosen at random.
    LinkFault = 19,
    /// Seeds of Monte-Carlo replicas.
    Replica = 32,
}

/// SplitMix64 finalizer (Steele, Lea, Flood 2014): a fixed bijective 64-bit mixer.
pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The 64-bit key of stream (`seed`, `class`, `index`).
pub fn stream_key(seed: u64, class: StreamClass, index: u64) -> u64 {
    splitmix64(splitmix64(splitmix64(seed) ^ class as u64) ^ index)
}

/// The RNG of component `index` of `class` under global `seed`.
pub fn stream(seed: u64, class: StreamClass, index: u64) -> FaultRng {
    FaultRng::seed_from_u64(stream_key(seed, class, index))
}

/// The seed of Monte-Carlo replica `replica` (replica 0 keeps the global seed).
pub fn replica_seed(seed: u64, replica: u64) -> u64 {
    if replica == 0 {
        seed
    } else {
        stream_key(seed, StreamClass::Replica, replica)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::RngExt;

    #[test]
    fn streams_are_reproducible_and_distinct() {
        let a: u64 = stream(7, StreamClass::Gpu, 3).random();
        let b: u64 = stream(7, StreamClass::Gpu, 3).random();
        let c: u64 = stream(7, StreamClass::Gpu, 4).random();
        let d: u64 = stream(7, StreamClass::Nic, 3).random();
        let e: u64 = stream(8, StreamClass::Gpu, 3).random();
        assert_eq!(a, b);
        assert!(a != c && a != d && a != e);
    }

    #[test]
    fn replica_zero_keeps_the_seed() {
        assert_eq!(replica_seed(42, 0), 42);
        assert_ne!(replica_seed(42, 1), replica_seed(42, 2));
    }
}
