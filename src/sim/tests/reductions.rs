//! Gradient reductions in the op graph and their cost: DualPipe's mirror all-reduce,
//! FSDP gathers, ZeRO-2/3 reduce-scatters per micro-batch, hybrid sharding.
#![cfg(test)]

use crate::config::Scenario;
use crate::fixtures::toy_scenario;
use crate::plan::{GroupMask, RankGrid, ScheduleKind};
use crate::schedule::{self, Category};
use crate::sim::{StepOptions, build_graph, simulate_step};

/// DualPipe holds each piece of the model on two ranks (chunk 0 of stage `i`, chunk 1
/// of stage `p-1-i`); their gradients are summed by an all-reduce between the two,
/// after the DP reduction (on its `1/dp` shard under a distributed optimizer), before
/// the optimizer step.
#[test]
fn dualpipe_sums_the_gradients_of_both_copies() {
    let mut per_stage = Vec::new();
    for (dp, zero) in [(1, 0), (2, 1), (2, 0)] {
        let mut s = toy_scenario(1, 4, dp, 16, 8 * dp);
        s.parallelism.schedule = ScheduleKind::Dualpipe;
        s.parallelism.zero = zero;
        let g = build_graph(&s);
        let mirror: Vec<&schedule::Comm> = g
            .comms
            .iter()
            .filter(|c| c.collective == schedule::Collective::AllReduce)
            .filter(|c| matches!(c.group, schedule::GroupRef::P2p { .. }))
            .collect();
        assert!(!mirror.is_empty());
        let sharded = zero >= 1 && dp > 1;
        for stage in 0..4u32 {
            let mine: Vec<&&schedule::Comm> = mirror
                .iter()
                .filter(|c| c.ops.iter().any(|&(st, _)| st == stage))
                .collect();
            for c in &mine {
                let schedule::GroupRef::P2p { from, to } = c.group else {
                    unreachable!()
                };
                assert_eq!((from + to, c.ops.len()), (3, 2));
                let stages: Vec<u32> = c.ops.iter().map(|&(st, _)| st).collect();
                assert!(stages.contains(&from) && stages.contains(&to));
                assert_eq!(c.category, Category::Dp);
            }
            // Both chunks' gradients: the stage's parameters once (its share after the
            // DP reduce-scatter under ZeRO).
            let bytes: u64 = mine.iter().map(|c| c.bytes).sum();
            per_stage.push(((dp, zero), stage, bytes));
            let reduce: u64 = g
                .comms
                .iter()
                .filter(|c| c.ops.iter().any(|&(st, _)| st == stage))
                .filter(|c| matches!(c.group, schedule::GroupRef::Axes(m) if m == GroupMask::DP))
                .filter(|c| c.collective != schedule::Collective::AllGather)
                .map(|c| c.bytes)
                .sum();
            if dp > 1 {
                let shard = if sharded { dp } else { 1 };
                let want = reduce as f64 / shard as f64;
                assert!(
                    (bytes as f64 / want - 1.0).abs() < 1e-6,
                    "{bytes} vs {want}"
                );
            }
            // The optimizer waits for every mirror all-reduce of its stage: they run on
            // the in-order DP stream, and the optimizer depends on that stream's last
            // reduction, issued no earlier than any of them.
            let sg = &g.stages[stage as usize].graph;
            let opt = sg
                .node_indices()
                .find(|&n| sg[n].category == Category::Optimizer)
                .unwrap();
            let last_dp = sg
                .neighbors_directed(opt, petgraph::Direction::Incoming)
                .filter(|&n| sg[n].stream == schedule::Stream::Dp)
                .map(|n| n.index())
                .max()
                .expect("the optimizer waits on the DP stream");
            for c in &mine {
                let &(_, op) = c.ops.iter().find(|&&(st, _)| st == stage).unwrap();
                let node = petgraph::graph::NodeIndex::new(op as usize);
                assert_eq!(sg[node].stream, schedule::Stream::Dp);
                assert!(op as usize <= last_dp, "mirror op {op} after {last_dp}");
            }
        }
        // The step replays (no stream-order deadlock between mirrored ranks) and the
        // all-reduces cost time on a real network.
        let r = simulate_step(&s, &StepOptions::default()).unwrap().metrics;
        s.parallelism.overlap_grad_reduce = false;
        s.parallelism.tp = 2;
        s.cluster.nodes *= 2;
        simulate_step(&s, &StepOptions::default()).unwrap();
        if dp == 1 {
            assert!(r.breakdown_s.dp_exposed > 0.0, "{:?}", r.breakdown_s);
        }
    }
    // Whole buckets without a distributed optimizer, halves with ZeRO-1 over dp=2.
    let of = |k| per_stage.iter().filter(move |x| x.0 == k).map(|x| x.2);
    for ((full, dp2), half) in of((1, 0)).zip(of((2, 0))).zip(of((2, 1))) {
        assert_eq!(full, dp2);
        assert!(full.abs_diff(2 * half) <= 2 * 4, "{full} vs {half}");
    }
}

#[test]
fn fsdp_gathers_every_layer_twice_and_overlaps_with_compute() {
    let mut s = toy_scenario(1, 1, 8, 8, 16);
    s.parallelism.zero = 3;
    let g = build_graph(&s);
    let gathers = g.stages[0]
        .graph
        .node_weights()
        .filter(|o| o.label == "fsdp param all-gather")
        .count();
    // Forward and backward of 2 micro-batches over 8 layers.
    assert_eq!(gathers, 2 * 2 * 8);
    let z3 = simulate_step(&s, &StepOptions::default()).unwrap().metrics;
    s.parallelism.zero = 1;
    let z1 = simulate_step(&s, &StepOptions::default()).unwrap().metrics;
    // Prefetch hides most gathers: the step grows by far less than the gather time.
    assert!(z3.step_time_s >= z1.step_time_s * 0.99);
    assert!(
        z3.step_time_s < z1.step_time_s * 1.5,
        "{} vs {}",
        z3.step_time_s,
        z1.step_time_s
    );
    assert!(z3.memory.weights < z1.memory.weights / 7.0);
}

#[test]
fn zero2_reduce_scatters_every_micro_batch() {
    let mut s = toy_scenario(2, 2, 4, 8, 32);
    let m = 32 / 4;
    let count = |s: &Scenario| {
        let g = build_graph(s);
        g.stages
            .iter()
            .flat_map(|st| st.graph.node_weights())
            .filter(|o| o.label == "dp grad reduce-scatter")
            .count()
    };
    // Under zero-bubble schedules the weight pass reduces, not the input-gradient pass.
    for (schedule, overlap) in [
        (ScheduleKind::OneFOneB, false),
        (ScheduleKind::OneFOneB, true),
        (ScheduleKind::ZbH1, false),
        (ScheduleKind::ZbH1, true),
    ] {
        s.parallelism.schedule = schedule;
        s.parallelism.overlap_grad_reduce = overlap;
        s.parallelism.zero = 1;
        let (n1, z1) = (count(&s), simulate_step(&s, &StepOptions::default()));
        s.parallelism.zero = 2;
        let (n2, z2) = (count(&s), simulate_step(&s, &StepOptions::default()));
        assert!(n1 > 0);
        assert_eq!(n2, m * n1, "{schedule:?} overlap {overlap}");
        let (t1, t2) = (
            z1.unwrap().metrics.step_time_s,
            z2.unwrap().metrics.step_time_s,
        );
        assert!(
            t2 >= t1,
            "overlap {overlap}: ZeRO-2 {t2} s vs ZeRO-1 {t1} s"
        );
    }
    // More reductions (64 micro-batches x 9 buckets) than a byte counts still replay.
    let mut s = toy_scenario(1, 1, 2, 8, 128);
    s.parallelism.zero = 2;
    assert!(simulate_step(&s, &StepOptions::default()).is_ok());
}

#[test]
fn zero3_reduce_scatters_every_micro_batch_between_its_gathers() {
    use crate::engine::TraceRanks;
    let mut s = toy_scenario(1, 1, 8, 8, 16);
    let m = 16 / 8;
    s.parallelism.zero = 1;
    let per_step = build_graph(&s)
        .comms
        .iter()
        .filter(|c| c.collective == crate::schedule::Collective::ReduceScatter)
        .count();
    s.parallelism.zero = 3;
    let g = build_graph(&s);
    // The DP stream in issue order: each backward pass's reduce-scatters sit between its
    // gathers (FSDP's post-backward hooks), not queued behind all of them.
    let dp: Vec<&str> = g.stages[0]
        .graph
        .node_weights()
        .filter(|o| o.stream == crate::schedule::Stream::Dp)
        .map(|o| o.label)
        .collect();
    let rs = "dp grad reduce-scatter";
    assert_eq!(dp.iter().filter(|&&l| l == rs).count(), m * per_step);
    let first_rs = dp.iter().position(|&l| l == rs).unwrap();
    assert_eq!(dp[first_rs + 1], "fsdp param all-gather", "{dp:?}");
    // So the last backward's reductions overlap its compute.
    let opts = StepOptions {
        trace: TraceRanks::Some(vec![0]),
        ..StepOptions::default()
    };
    let r = simulate_step(&s, &opts).unwrap();
    let op = |e: &crate::engine::TraceEvent| {
        &g.stages[0].graph[petgraph::graph::NodeIndex::new(e.op as usize)]
    };
    let last_rs = r
        .replay
        .trace
        .iter()
        .filter(|e| op(e).label == "dp grad reduce-scatter")
        .map(|e| e.start)
        .nth((m - 1) * per_step)
        .unwrap();
    let backward_end = r
        .replay
        .trace
        .iter()
        .filter(|e| op(e).category == Category::Backward)
        .map(|e| e.end)
        .max()
        .unwrap();
    assert!(last_rs < backward_end, "{last_rs} vs {backward_end}");
}

#[test]
fn hybrid_sharding_gathers_in_shard_groups_and_all_reduces_shards() {
    use crate::schedule::{Collective, GroupRef};
    let mut s = toy_scenario(1, 1, 8, 8, 16);
    s.parallelism.zero = 3;
    let flat = build_graph(&s);
    s.parallelism.zero_group = Some(4);
    let g = build_graph(&s);
    let of = |c: Collective, mask| {
        g.comms
            .iter()
            .filter(|k| k.collective == c && k.group == GroupRef::Axes(mask))
            .map(|k| k.bytes)
            .collect::<Vec<_>>()
    };
    let rs = of(Collective::ReduceScatter, GroupMask::DP_SHARD);
    let ar = of(Collective::AllReduce, GroupMask::DP_REPLICA);
    let ag = of(Collective::AllGather, GroupMask::DP_SHARD);
    // The same buckets and gathers as full sharding, over shard groups of 4 only (none
    // over all 8 DP ranks); each of the 2 micro-batches reduce-scatters every bucket,
    // and the last one's 1/4 shards are then all-reduced across the 2 replica groups.
    assert!(!rs.is_empty());
    assert!(of(Collective::AllGather, GroupMask::DP).is_empty());
    assert!(of(Collective::ReduceScatter, GroupMask::DP).is_empty());
    assert_eq!(g.comms.len(), flat.comms.len() + ar.len());
    // Per micro-batch: 8 layers gathered in forward and backward, the embedding before
    // its forward and the output layer before the logits forward and backward.
    assert_eq!(ag.len(), 2 * (2 * 8 + 3));
    assert_eq!(rs.len(), 2 * ar.len());
    let last: Vec<u64> = rs[ar.len()..].iter().map(|b| b / 4).collect();
    assert_eq!(ar, last);
    let grid = RankGrid::new(&s.parallelism);
    assert_eq!(grid.group_size(GroupMask::DP_SHARD), 4);
    assert_eq!(grid.group_size(GroupMask::DP_REPLICA), 2);
    // Ring traffic per rank and bucket of B bytes: (g-1)/g B reduce-scattered inside the
    // group, 2 (r-1)/r B/g all-reduced across groups: 3/4 B + 1/8 B vs 7/8 B flat.
    let hsdp = simulate_step(&s, &StepOptions::default()).unwrap().metrics;
    assert!(hsdp.step_time_s > 0.0);
}
