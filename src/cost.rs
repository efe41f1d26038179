//! Cost and energy of training: what a cluster costs to buy, to run and to rent, and what
//! one training run on it costs.
//!
//! Owns the bill of materials estimated from a topology ([`NetworkBom`]: NICs, switches per
//! tier, optics per link), the default prices and powers ([`Prices`], every one a
//! documented default a user can override), and the arithmetic from a simulated
//! throughput to time, GPU-hours, energy and money ([`TrainingCost`]). Pure: no I/O, no
//! simulation; inputs are a [`ClusterSpec`] and figures the simulator produced.
//!
//! Conventions (tests hold them exactly):
//! - `gpu_hours = gpus × time_h`;
//! - `it_power_kw = nodes × node_kw + switches × switch_w / 1000 + optics × optic_w / 1000`,
//!   `facility_power_kw = it_power_kw × pue`, `energy_mwh = facility_power_kw × time_h / 1000`;
//! - `rental_usd = gpu_hour_usd × gpu_hours` (a cloud rate includes power and capital);
//! - `ownership_usd = capital_usd × time_h / (amortization_years × 8760) + energy_usd`;
//! - `cost_usd` is one of the two, chosen by [`Prices::basis`].

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::hardware::{ClusterSpec, FabricKind};

/// Hours in a year, for amortising capital.
pub const HOURS_PER_YEAR: f64 = 8760.0;

#[derive(Debug, Error, PartialEq)]
pub enum CostError {
    #[error("unknown price key `{0}` (known: {1})")]
    UnknownKey(String, String),
    #[error("price `{key}`: `{value}` is not a number (or `rental`/`ownership` for basis)")]
    BadValue { key: String, value: String },
    #[error("expected `key=value`, got `{0}`")]
    Syntax(String),
    #[error("price `{key}`: {value} is outside the allowed range {lo} to {hi}")]
    Range {
        key: String,
        value: String,
        lo: f64,
        hi: f64,
    },
}

/// Which cost is the headline `cost_usd`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum CostBasis {
    /// GPU-hours at the topology's `cost.gpu_hour_usd` (cloud rental).
    #[default]
    Rental,
    /// Amortised purchase (GPUs, nodes, network) plus electricity.
    Ownership,
}

/// Prices and powers not in the topology file. Defaults are representative 2024 street
/// figures for 400 Gb/s InfiniBand gear; NIC and optic prices scale linearly with
/// `nic_gbps / 400`. Override with `--price key=value`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Prices {
    pub basis: CostBasis,
    /// GPU purchase price; `None` takes the GPU catalog's `price_usd`.
    pub gpu_usd: Option<f64>,
    /// Node without its GPUs (CPUs, memory, NVSwitch baseboard, chassis, local NVMe).
    pub node_usd: f64,
    /// One 400 Gb/s NIC (ConnectX-7 class).
    pub nic_usd: f64,
    /// One switch of the fabric (64-port 400 Gb/s, QM9700 class).
    pub switch_usd: f64,
    /// One 400 Gb/s transceiver; every link has one at each end.
    pub optic_usd: f64,
    /// Switch power, watts.
    pub switch_w: f64,
    /// Transceiver power, watts.
    pub optic_w: f64,
    /// Node power, kW, when the topology gives `cost.power_kw_per_node: 0`: GPUs at their
    /// board power plus this much for the rest of the node.
    pub node_overhead_kw: f64,
    /// Years over which the purchase is written off.
    pub amortization_years: f64,
}

impl Default for Prices {
    fn default() -> Self {
        Prices {
            basis: CostBasis::Rental,
            gpu_usd: None,
            node_usd: 60_000.0,
            nic_usd: 1_500.0,
            switch_usd: 30_000.0,
            optic_usd: 800.0,
            switch_w: 1_700.0,
            optic_w: 15.0,
            node_overhead_kw: 3.0,
            amortization_years: 4.0,
        }
    }
}

const PRICE_KEYS: &str = "basis, gpu_usd, node_usd, nic_usd, switch_usd, optic_usd, switch_w, \
                          optic_w, node_overhead_kw, amortization_years";

impl Prices {
    /// Applies one `key=value` override.
    pub fn set(&mut self, arg: &str) -> Result<(), CostError> {
        let (key, value) = arg
            .split_once('=')
            .ok_or_else(|| CostError::Syntax(arg.into()))?;
        let (key, value) = (key.trim(), value.trim());
        let bad = || CostError::BadValue {
            key: crate::units::shorten(key),
            value: crate::units::shorten(value),
        };
        if key == "basis" {
            self.basis = match value {
                "rental" => CostBasis::Rental,
                "ownership" => CostBasis::Ownership,
                _ => return Err(bad()),
            };
            return Ok(());
        }
        let v: f64 = value.parse().map_err(|_| bad())?;
        if !v.is_finite() {
            return Err(bad());
        }
        // Physical ranges: a price up to $10^9 a part, a power up to 1 MW a part, write-off
        // over 0.1 to 100 years.
        let (lo, hi) = match key {
            "amortization_years" => (0.1, 100.0),
            "switch_w" | "optic_w" => (0.0, 1e6),
            "node_overhead_kw" => (0.0, 1e3),
            _ => (0.0, 1e9),
        };
        if !(lo..=hi).contains(&v) {
            return Err(CostError::Range {
                key: crate::units::shorten(key),
                value: crate::units::short_num(v),
                lo,
                hi,
            });
        }
        let slot = match key {
            "gpu_usd" => {
                self.gpu_usd = Some(v);
                return Ok(());
            }
            "node_usd" => &mut self.node_usd,
            "nic_usd" => &mut self.nic_usd,
            "switch_usd" => &mut self.switch_usd,
            "optic_usd" => &mut self.optic_usd,
            "switch_w" => &mut self.switch_w,
            "optic_w" => &mut self.optic_w,
            "node_overhead_kw" => &mut self.node_overhead_kw,
            "amortization_years" => &mut self.amortization_years,
            _ => {
                return Err(CostError::UnknownKey(
                    crate::units::shorten(key),
                    PRICE_KEYS.into(),
                ));
            }
        };
        *slot = v;
        Ok(())
    }

    /// Prices with every `key=value` override applied in order.
    pub fn with_overrides(overrides: &[String]) -> Result<Self, CostError> {
        let mut p = Prices::default();
        for o in overrides {
            p.set(o)?;
        }
        Ok(p)
    }
}

/// Network parts estimated from the topology.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
pub struct NetworkBom {
    pub nics: u64,
    /// Switches per tier, leaf first (tiers beyond the fabric's are zero).
    pub leaf_switches: u64,
    pub spine_switches: u64,
    pub core_switches: u64,
    /// Cables: NIC-leaf, leaf-spine and spine-core.
    pub links: u64,
    /// Transceivers: two per link.
    pub optics: u64,
}

impl NetworkBom {
    pub fn switches(&self) -> u64 {
        self.leaf_switches + self.spine_switches + self.core_switches
    }
}

/// Leaf ports facing nodes for a radix and a down:up oversubscription ratio.
fn leaf_down_ports(radix: u64, oversubscription: f64) -> u64 {
    let os = oversubscription.max(1.0);
    ((radix as f64 * os / (1.0 + os)).floor() as u64).clamp(1, radix)
}

/// Switches needed to terminate `ports` uplinks with half of each switch's radix facing
/// down (the upper tiers of a fat tree are non-blocking).
fn tier_above(ports: u64, radix: u64, top: bool) -> u64 {
    let per = if top { radix } else { (radix / 2).max(1) };
    ports.div_ceil(per)
}

/// Estimates NICs, switches and optics of a cluster's scale-out fabric.
///
/// Leaves: every node port lands on a leaf with `radix × os/(1+os)` down ports
/// (rail-optimized fabrics fill one leaf group per NIC rail). Above the leaf each tier is a
/// non-blocking fat tree: a middle tier uses half its ports for each direction, the top
/// tier all of them downward. A fabric that fits one switch has no upper tier.
pub fn network_bom(c: &ClusterSpec) -> NetworkBom {
    let radix = c.fabric.switch_radix.max(2);
    let nics = c.nodes * c.node.nics;
    if nics == 0 {
        return NetworkBom::default();
    }
    if c.fabric.kind == FabricKind::SingleSwitch || nics <= radix {
        let leaf = nics.div_ceil(radix);
        return NetworkBom {
            nics,
            leaf_switches: leaf,
            links: nics,
            optics: 2 * nics,
            ..NetworkBom::default()
        };
    }
    let down = leaf_down_ports(radix, c.fabric.oversubscription);
    let up_per_leaf = radix - down;
    let leaves = if c.fabric.kind == FabricKind::RailOptimized {
        c.node.nics.max(1) * c.nodes.div_ceil(down)
    } else {
        nics.div_ceil(down)
    };
    let uplinks = leaves * up_per_leaf;
    let tiers = c.fabric.tiers.clamp(2, 3);
    let (spine, core, upper_links) = if tiers == 2 {
        (tier_above(uplinks, radix, true), 0, 0)
    } else {
        let spine = tier_above(uplinks, radix, false);
        let spine_up = spine * (radix / 2);
        (spine, tier_above(spine_up, radix, true), spine_up)
    };
    let links = nics + uplinks + upper_links;
    NetworkBom {
        nics,
        leaf_switches: leaves,
        spine_switches: spine,
        core_switches: core,
        links,
        optics: 2 * links,
    }
}

/// Purchase price of a cluster, by part.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Capital {
    pub gpus_usd: f64,
    pub nodes_usd: f64,
    pub nics_usd: f64,
    pub switches_usd: f64,
    pub optics_usd: f64,
    pub total_usd: f64,
}

/// Power draw of a cluster at full load.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Power {
    pub nodes_kw: f64,
    pub network_kw: f64,
    pub it_kw: f64,
    pub facility_kw: f64,
}

/// Everything fixed about a cluster before it trains: parts, capital and power.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClusterCost {
    pub gpus: u64,
    pub nodes: u64,
    pub bom: NetworkBom,
    pub capital: Capital,
    pub power: Power,
    pub gpu_hour_usd: f64,
    pub usd_per_kwh: f64,
    pub amortization_years: f64,
    pub basis: CostBasis,
}

fn speed_scale(c: &ClusterSpec) -> f64 {
    (c.node.nic_gbps / 400.0).max(0.0)
}

/// Node power, kW: the topology's figure, or GPUs at board power plus the overhead.
pub fn node_power_kw(c: &ClusterSpec, p: &Prices) -> f64 {
    if c.cost.power_kw_per_node > 0.0 {
        c.cost.power_kw_per_node
    } else {
        c.node.gpus as f64 * c.gpu.power_w / 1000.0 + p.node_overhead_kw
    }
}

/// Capital and power of a cluster under some prices.
pub fn cluster_cost(c: &ClusterSpec, p: &Prices) -> ClusterCost {
    let bom = network_bom(c);
    let gpus = c.total_gpus();
    let scale = speed_scale(c);
    let gpu_price = p.gpu_usd.unwrap_or(c.gpu.price_usd);
    let gpus_usd = gpus as f64 * gpu_price;
    let nodes_usd = c.nodes as f64 * p.node_usd;
    let nics_usd = bom.nics as f64 * p.nic_usd * scale;
    let switches_usd = bom.switches() as f64 * p.switch_usd;
    let optics_usd = bom.optics as f64 * p.optic_usd * scale;
    let nodes_kw = c.nodes as f64 * node_power_kw(c, p);
    let network_kw = (bom.switches() as f64 * p.switch_w + bom.optics as f64 * p.optic_w) / 1000.0;
    let it_kw = nodes_kw + network_kw;
    ClusterCost {
        gpus,
        nodes: c.nodes,
        bom,
        capital: Capital {
            gpus_usd,
            nodes_usd,
            nics_usd,
            switches_usd,
            optics_usd,
            total_usd: gpus_usd + nodes_usd + nics_usd + switches_usd + optics_usd,
        },
        power: Power {
            nodes_kw,
            network_kw,
            it_kw,
            facility_kw: it_kw * c.cost.pue.max(1.0),
        },
        gpu_hour_usd: c.cost.gpu_hour_usd,
        usd_per_kwh: c.cost.usd_per_kwh,
        amortization_years: p.amortization_years,
        basis: p.basis,
    }
}

/// What training costs over a stretch of wall time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Spend {
    pub time_s: f64,
    pub gpu_hours: f64,
    pub energy_mwh: f64,
    pub energy_usd: f64,
    pub rental_usd: f64,
    /// Share of the purchase price written off over this time.
    pub capital_share_usd: f64,
    pub ownership_usd: f64,
    /// `rental_usd` or `ownership_usd`, per the basis.
    pub cost_usd: f64,
}

impl ClusterCost {
    /// Time, GPU-hours, energy and money for `time_s` seconds of the cluster at full load.
    pub fn spend(&self, time_s: f64) -> Spend {
        let hours = time_s / 3600.0;
        let gpu_hours = self.gpus as f64 * hours;
        let energy_mwh = self.power.facility_kw * hours / 1000.0;
        let energy_usd = energy_mwh * 1000.0 * self.usd_per_kwh;
        let rental_usd = self.gpu_hour_usd * gpu_hours;
        let amort_h = (self.amortization_years * HOURS_PER_YEAR).max(f64::MIN_POSITIVE);
        let capital_share_usd = self.capital.total_usd * hours / amort_h;
        let ownership_usd = capital_share_usd + energy_usd;
        let cost_usd = match self.basis {
            CostBasis::Rental => rental_usd,
            CostBasis::Ownership => ownership_usd,
        };
        Spend {
            time_s,
            gpu_hours,
            energy_mwh,
            energy_usd,
            rental_usd,
            capital_share_usd,
            ownership_usd,
            cost_usd,
        }
    }
}

/// The cost of training a token budget at a simulated throughput.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrainingCost {
    pub tokens: f64,
    pub tokens_per_s: f64,
    /// At the step-level throughput (no failures).
    pub ideal: Spend,
    /// Dividing by goodput (ETTR), when a run-level figure is given.
    pub goodput: Option<f64>,
    pub effective: Option<Spend>,
    pub usd_per_million_tokens: f64,
    pub effective_usd_per_million_tokens: Option<f64>,
}

/// Cost of training `tokens` at `tokens_per_s`, and goodput-adjusted when `goodput` is
/// given (`time / goodput`: failures and checkpoints stretch the wall time).
pub fn training_cost(
    cluster: &ClusterCost,
    tokens: f64,
    tokens_per_s: f64,
    goodput: Option<f64>,
) -> TrainingCost {
    let time_s = if tokens_per_s > 0.0 {
        tokens / tokens_per_s
    } else {
        f64::INFINITY
    };
    let ideal = cluster.spend(time_s);
    let per_m = |s: &Spend| s.cost_usd / (tokens / 1e6);
    let goodput = goodput.filter(|g| *g > 0.0);
    let effective = goodput.map(|g| cluster.spend(time_s / g));
    TrainingCost {
        tokens,
        tokens_per_s,
        usd_per_million_tokens: per_m(&ideal),
        effective_usd_per_million_tokens: effective.as_ref().map(per_m),
        ideal,
        goodput,
        effective,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;

    fn h100_1k() -> ClusterSpec {
        fixtures::dgx_h100_ndr(128)
    }

    #[test]
    fn energy_is_power_times_time_and_cost_is_rate_times_gpu_hours() {
        let c = h100_1k();
        let cc = cluster_cost(&c, &Prices::default());
        let s = cc.spend(7200.0);
        assert_eq!(s.gpu_hours, 1024.0 * 2.0);
        assert_eq!(s.energy_mwh, cc.power.facility_kw * 2.0 / 1000.0);
        assert_eq!(s.rental_usd, c.cost.gpu_hour_usd * s.gpu_hours);
        assert_eq!(s.cost_usd, s.rental_usd);
        assert_eq!(s.energy_usd, s.energy_mwh * 1000.0 * c.cost.usd_per_kwh);
        assert_eq!(
            cc.power.facility_kw,
            (128.0 * 10.2 + cc.power.network_kw) * 1.3
        );
    }

    #[test]
    fn ownership_is_amortized_capital_plus_energy() {
        let c = h100_1k();
        let mut p = Prices::default();
        p.set("basis=ownership").unwrap();
        p.set("amortization_years=1").unwrap();
        let cc = cluster_cost(&c, &p);
        let s = cc.spend(HOURS_PER_YEAR * 3600.0);
        assert_eq!(s.capital_share_usd, cc.capital.total_usd);
        assert_eq!(s.cost_usd, cc.capital.total_usd + s.energy_usd);
        let cap = &cc.capital;
        assert_eq!(cap.gpus_usd, 1024.0 * 30000.0);
        assert_eq!(
            cap.total_usd,
            cap.gpus_usd + cap.nodes_usd + cap.nics_usd + cap.switches_usd + cap.optics_usd
        );
    }

    #[test]
    fn rail_optimized_1k_bom() {
        let bom = network_bom(&h100_1k());
        // 8 rails x 128 nodes / 32 down ports = 32 leaves, 1024 uplinks on 16 spines.
        assert_eq!(bom.nics, 1024);
        assert_eq!(bom.leaf_switches, 32);
        assert_eq!(bom.spine_switches, 16);
        assert_eq!(bom.core_switches, 0);
        assert_eq!(bom.links, 2048);
        assert_eq!(bom.optics, 4096);
    }

    #[test]
    fn oversubscription_needs_fewer_switches() {
        let mut c = h100_1k();
        let full = network_bom(&c);
        c.fabric.oversubscription = 2.0;
        let half = network_bom(&c);
        assert!(half.switches() < full.switches(), "{half:?} vs {full:?}");
        assert!(half.optics < full.optics);
    }

    #[test]
    fn three_tiers_add_a_core() {
        let mut c = h100_1k();
        c.fabric.tiers = 3;
        c.fabric.kind = FabricKind::FatTree;
        let b = network_bom(&c);
        assert_eq!(b.leaf_switches, 32);
        assert_eq!(b.spine_switches, 32);
        assert_eq!(b.core_switches, 16);
    }

    #[test]
    fn goodput_stretches_time_and_cost() {
        let cc = cluster_cost(&h100_1k(), &Prices::default());
        let t = training_cost(&cc, 1e12, 1e6, Some(0.8));
        assert_eq!(t.ideal.time_s, 1e6);
        let e = t.effective.unwrap();
        assert_eq!(e.time_s, 1e6 / 0.8);
        assert!((e.cost_usd / t.ideal.cost_usd - 1.25).abs() < 1e-12);
        assert_eq!(t.usd_per_million_tokens, t.ideal.cost_usd / 1e6);
    }

    #[test]
    fn bad_price_overrides_are_rejected() {
        assert!(matches!(
            Prices::with_overrides(&["nope=1".into()]),
            Err(CostError::UnknownKey(..))
        ));
        assert!(matches!(
            Prices::with_overrides(&["switch_usd=abc".into()]),
            Err(CostError::BadValue { .. })
        ));
        assert!(matches!(
            Prices::with_overrides(&["switch_usd".into()]),
            Err(CostError::Syntax(_))
        ));
    }
}
