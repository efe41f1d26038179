//! Event-queue throughput: the engine's radix heap alone, in the engine's access pattern.
//!
//! `cargo bench --bench queue` keeps `pending` events in flight (every pop schedules one
//! event a pseudo-random 1 ns..1 ms later, as op completions do) and prints push+pop pairs
//! per second against a `std::collections::BinaryHeap` doing the same work, per second of
//! wall time and per second of this thread's CPU time (`/proc/thread-self/schedstat`, in
//! nanoseconds: the figure to compare on a shared machine).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::hint::black_box;
use std::time::Instant;

use clustersim::engine::queue::RadixHeap;

const EVENTS: u64 = 20_000_000;

/// xorshift64*: deterministic delays without an RNG dependency in the hot loop.
fn next_delay(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    1 + (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 44) % 1_000_000
}

/// CPU time of this thread, seconds (nanosecond resolution).
fn thread_cpu_s() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(f64::NAN, |ns| ns * 1e-9)
}

/// Pairs per second of wall time and of CPU time.
struct Rate {
    wall: f64,
    cpu: f64,
}

fn timed(work: impl FnOnce()) -> Rate {
    let (t, c) = (Instant::now(), thread_cpu_s());
    work();
    Rate {
        wall: EVENTS as f64 / t.elapsed().as_secs_f64(),
        cpu: EVENTS as f64 / (thread_cpu_s() - c),
    }
}

fn radix(pending: u64) -> Rate {
    let mut q = RadixHeap::new();
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    for i in 0..pending {
        q.push(next_delay(&mut rng), i);
    }
    timed(|| {
        let mut sum = 0u64;
        for _ in 0..EVENTS {
            let (now, v) = q.pop().expect("never empties");
            sum = sum.wrapping_add(v);
            q.push(now + next_delay(&mut rng), v);
        }
        black_box(sum);
    })
}

fn binary(pending: u64) -> Rate {
    let mut q = BinaryHeap::new();
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    for i in 0..pending {
        q.push(Reverse((next_delay(&mut rng), i)));
    }
    timed(|| {
        let mut sum = 0u64;
        for _ in 0..EVENTS {
            let Reverse((now, v)) = q.pop().expect("never empties");
            sum = sum.wrapping_add(v);
            q.push(Reverse((now + next_delay(&mut rng), v)));
        }
        black_box(sum);
    })
}

/// The delay generator alone, to read the queues' own share of the time.
fn generator_only() -> Rate {
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    timed(|| {
        let mut now = 0u64;
        for _ in 0..EVENTS {
            now = black_box(now + next_delay(&mut rng));
        }
        black_box(now);
    })
}

fn main() {
    println!(
        "event queue: {EVENTS} pop+push pairs, delays 1 ns..1 ms; M pairs/s per CPU second (per wall second)"
    );
    let g = generator_only();
    println!(
        "  delay generator alone: {:.1} ({:.1}) M/s (included in the figures below)",
        g.cpu / 1e6,
        g.wall / 1e6
    );
    for pending in [1_000u64, 100_000, 1_000_000] {
        let (r, b) = (radix(pending), binary(pending));
        println!(
            "  {pending:>9} in flight: radix heap {:6.1} ({:5.1}) M/s, std BinaryHeap {:6.1} ({:5.1}) M/s",
            r.cpu / 1e6,
            r.wall / 1e6,
            b.cpu / 1e6,
            b.wall / 1e6
        );
    }
}
