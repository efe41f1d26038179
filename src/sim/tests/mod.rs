//! The step simulator's tests, one file per concern.
#![cfg(test)]

mod bubbles;
mod folding;
mod reductions;
mod steps;

use crate::config::Scenario;
use crate::engine::{self, RankSpeeds, Replay, TraceRanks};
use crate::network::analytic::FreeNetwork;
use crate::plan::RankGrid;
use crate::schedule::StepGraph;

/// `graph` (built from `s`) replayed on a free network at uniform speed, ranks folded.
fn free_replay(s: &Scenario, graph: &StepGraph) -> Replay {
    let grid = RankGrid::new(&s.parallelism);
    engine::replay(
        graph,
        &grid,
        &mut FreeNetwork,
        &RankSpeeds::uniform(),
        &TraceRanks::None,
    )
    .expect("free-network replay")
}
