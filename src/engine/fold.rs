//! Replica folding: data-parallel replicas that provably behave alike are simulated once.
//!
//! When the network has no contention, a replica's timeline depends only on its stage
//! programs, its GPUs' speeds, the times of its own (replica-local) collectives and the
//! collectives spanning replicas. Replicas holding slow GPUs, degraded links or traced
//! ranks are simulated as themselves; the others fall into classes of equal placement on
//! the fabric ([`Network::group_key`]) and one replica per class stands for its class.
//! Spanning collectives see their full groups (the network gets every member's GPU id), so
//! their times are the full replay's; their rendezvous waits for every simulated member,
//! and an unsimulated member arrives exactly when its stand-in does. Results equal the full
//! replay rank by rank (`tests/folding.rs`).

use std::collections::HashMap;

use super::{EngineError, RankSpeeds, Replay, TraceRanks};
use crate::network::Network;
use crate::plan::{GroupMask, RankGrid};
use crate::schedule::{GroupRef, StepGraph};
use crate::vocab::CollectiveSet;

/// Replica folding: the engine simulates `reduced` (a few replicas) and presents full GPU
/// ids and full groups to the network.
#[derive(Debug, Clone)]
pub(super) struct Fold {
    pub(super) full: RankGrid,
    pub(super) reduced: RankGrid,
    /// Full replica index of each simulated replica.
    replica_of: Vec<u32>,
    /// For each full replica, the simulated replica (index into `replica_of`) standing for it.
    stand_in: Vec<u32>,
}

impl Fold {
    /// The GPU (full rank) a simulated rank stands for.
    pub(super) fn gpu(&self, rank: u32) -> u32 {
        let replica = self.reduced.coord(rank, crate::plan::Axis::Edp);
        self.reduced
            .rank_in(rank, &self.full, self.replica_of[replica as usize])
    }
}

/// The replicas a folded replay must simulate, or `None` when folding saves nothing or is
/// not exact.
///
/// A replica is *special* when it holds a slow GPU, a degraded link or a traced rank: it is
/// simulated as itself. The others are grouped into classes by their placement on the fabric
/// ([`Network::group_key`] of every replica-local group: TP/CP/EP groups and pipeline hops);
/// one replica per class is simulated and stands for the rest of its class. Exactness: a
/// replica's ops depend only on its stage programs, its speeds, the times of its own groups'
/// collectives (equal within a class) and the collectives spanning replicas, which start
/// when every member has arrived and which the network times over the full group.
pub(super) fn plan_fold<N: Network>(
    step: &StepGraph,
    grid: &RankGrid,
    net: &mut N,
    speeds: &RankSpeeds,
    trace_ranks: &TraceRanks,
) -> Option<Fold> {
    let replicas = grid.replicas();
    if replicas <= 2 {
        return None;
    }
    let degraded = net.folding()?;
    let replica = |r: u32| grid.coord(r, crate::plan::Axis::Edp);
    let mut special: Vec<u32> = degraded
        .into_iter()
        .chain(speeds.slow_ranks())
        .map(replica)
        .collect();
    match trace_ranks {
        TraceRanks::All => return None,
        TraceRanks::Some(rs) => special.extend(
            rs.iter()
                .filter(|&&r| r < grid.world())
                .map(|&r| replica(r)),
        ),
        TraceRanks::None => {}
    }
    special.sort_unstable();
    special.dedup();
    if special.len() as u32 * 2 > replicas {
        return None;
    }
    // Replica-local group kinds: masks without the replica axis, and pipeline hops.
    let mut masks: Vec<GroupMask> = Vec::new();
    let mut hops: Vec<(u32, u32)> = Vec::new();
    for c in &step.comms {
        match c.group {
            GroupRef::Axes(m) if !RankGrid::spans_replicas(m) => masks.push(m),
            GroupRef::Axes(_) => {}
            GroupRef::P2p { from, to } => hops.push((from.min(to), from.max(to))),
        }
    }
    masks.sort_unstable();
    masks.dedup();
    hops.sort_unstable();
    hops.dedup();
    // The replica-local groups of replica 0 as full ranks, flattened; replica `k`'s are the
    // same plus `k` times the replica stride.
    let one = grid.with_replicas(1);
    let stride = one.rank_in(0, grid, 1) - one.rank_in(0, grid, 0);
    let mut flat: Vec<u32> = Vec::new();
    let mut bounds: Vec<u32> = vec![0];
    for &m in &masks {
        for g in 0..one.group_count(m) {
            flat.extend((0..one.group_size(m)).map(|i| one.rank_in(one.member(m, g, i), grid, 0)));
            bounds.push(flat.len() as u32);
        }
    }
    let ss = one.stage_size();
    for &(a, b) in &hops {
        for local in 0..ss {
            flat.push(one.rank_in(local + a * ss, grid, 0));
            flat.push(one.rank_in(local + b * ss, grid, 0));
            bounds.push(flat.len() as u32);
        }
    }
    let mut members = Vec::new();
    let mut signature = |k: u32, key: &mut Vec<u64>| {
        key.clear();
        for w in bounds.windows(2) {
            members.clear();
            members.extend(
                flat[w[0] as usize..w[1] as usize]
                    .iter()
                    .map(|&r| r + k * stride),
            );
            net.group_key(&members, CollectiveSet::ALL, key);
        }
    };
    // Classes of the ordinary replicas, each represented by its first member.
    let mut classes: HashMap<Vec<u64>, u32> = HashMap::new();
    let mut class_of = vec![u32::MAX; replicas as usize];
    let mut simulated = special.clone();
    let mut key = Vec::new();
    for k in 0..replicas {
        if special.binary_search(&k).is_ok() {
            continue;
        }
        signature(k, &mut key);
        let rep = match classes.get(&key) {
            Some(&rep) => rep,
            None => {
                if (simulated.len() as u32 + 1) * 2 > replicas {
                    return None;
                }
                classes.insert(key.clone(), k);
                simulated.push(k);
                k
            }
        };
        class_of[k as usize] = rep;
    }
    simulated.sort_unstable();
    let stand_in = (0..replicas)
        .map(|k| {
            let rep = if class_of[k as usize] == u32::MAX {
                k
            } else {
                class_of[k as usize]
            };
            simulated.binary_search(&rep).map(|i| i as u32).ok()
        })
        .collect::<Option<Vec<u32>>>()?;
    let reduced = grid.with_replicas(simulated.len() as u32);
    Some(Fold {
        full: grid.clone(),
        reduced,
        replica_of: simulated,
        stand_in,
    })
}

pub(super) fn replay_folded<N: Network>(
    step: &StepGraph,
    fold: Fold,
    net: &mut N,
    speeds: &RankSpeeds,
    trace_ranks: &TraceRanks,
) -> Result<Replay, EngineError> {
    let reduced = fold.reduced.clone();
    let mut small_speeds = RankSpeeds::uniform();
    for r in 0..reduced.world() {
        let f = speeds.factor(fold.gpu(r));
        if f != 1.0 {
            small_speeds.set(reduced.world(), r, f);
        }
    }
    let small_trace = match trace_ranks {
        TraceRanks::Some(rs) => TraceRanks::Some(
            (0..reduced.world())
                .filter(|&r| rs.contains(&fold.gpu(r)))
                .collect(),
        ),
        other => other.clone(),
    };
    let full = fold.full.clone();
    let small = super::core::replay_grid(
        step,
        &reduced,
        net,
        &small_speeds,
        &small_trace,
        Some(fold.clone()),
    )?;
    // Every full rank takes the stats of the simulated rank standing for its replica.
    let stand_in = |r: u32| {
        let replica = full.coord(r, crate::plan::Axis::Edp);
        full.rank_in(r, &reduced, fold.stand_in[replica as usize])
    };
    let ranks = (0..full.world())
        .map(|r| small.ranks[stand_in(r) as usize].clone())
        .collect();
    Ok(Replay {
        ranks,
        events: super::event_count(step, &full),
        ..small
    })
}
