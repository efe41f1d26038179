//! Which network model a scenario runs on, and the one type the simulator drives either
//! through.
//!
//! Owns: the resolved `network:` section ([`NetworkSpec`]: mode and collective algorithm)
//! and [`AnyNetwork`], the [`Network`] that dispatches to the analytic or the contention
//! model. Must not: parse YAML (that is `config`) or decide defaults beyond
//! [`NetworkSpec::default`] (analytic, NCCL's automatic algorithm choice, destination-mod-k
//! routing).

use serde::{Deserialize, Serialize};

use super::{
    AlgorithmChoice, AnalyticNetwork, Completion, FlowNetwork, Network, Routing, Transfer,
};
use crate::units::Nanos;
use crate::vocab::CollectiveSet;

/// The network model a step is timed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NetworkMode {
    /// Closed-form collective times, no contention (fast; sweeps and plan search).
    #[default]
    Analytic,
    /// Flows on the topology sharing links max-min fairly (detailed; writes link stats).
    Contention,
}

impl NetworkMode {
    pub fn label(self) -> &'static str {
        match self {
            NetworkMode::Analytic => "analytic",
            NetworkMode::Contention => "contention",
        }
    }
}

impl std::str::FromStr for NetworkMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "analytic" => Ok(NetworkMode::Analytic),
            "contention" => Ok(NetworkMode::Contention),
            _ => Err(format!(
                "unknown network mode `{s}`; allowed: analytic, contention"
            )),
        }
    }
}

/// A scenario's `network:` section, resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
pub struct NetworkSpec {
    pub mode: NetworkMode,
    pub algorithm: AlgorithmChoice,
    /// ECMP policy, hash seed and flows per connection (both modes route alike).
    pub routing: Routing,
}

impl NetworkSpec {
    /// The mode and routing, as provenance records them: `analytic, adaptive`,
    /// `contention, hash seed 7 x16`, `analytic, dest-mod`.
    pub fn label(&self) -> String {
        format!("{}, {}", self.mode.label(), self.routing.label())
    }
}

/// Either network model behind one [`Network`] (enum dispatch: no virtual calls, and
/// callers can still reach the contention model's link statistics).
#[derive(Debug, Clone)]
pub enum AnyNetwork {
    Analytic(Box<AnalyticNetwork>),
    Contention(Box<FlowNetwork>),
}

impl AnyNetwork {
    /// The contention model, when that is what runs.
    pub fn flows(&self) -> Option<&FlowNetwork> {
        match self {
            AnyNetwork::Contention(n) => Some(n),
            AnyNetwork::Analytic(_) => None,
        }
    }

    pub fn mode(&self) -> NetworkMode {
        match self {
            AnyNetwork::Analytic(_) => NetworkMode::Analytic,
            AnyNetwork::Contention(_) => NetworkMode::Contention,
        }
    }

    /// Closes link accounting at the end of the step (no-op for the analytic model).
    pub fn finish_accounting(&mut self, now: Nanos) {
        if let AnyNetwork::Contention(n) = self {
            n.finish_accounting(now);
        }
    }
}

impl Network for AnyNetwork {
    #[inline]
    fn begin(&mut self, now: Nanos, transfer: &Transfer<'_>) -> Completion {
        match self {
            AnyNetwork::Analytic(n) => n.begin(now, transfer),
            AnyNetwork::Contention(n) => n.begin(now, transfer),
        }
    }

    #[inline]
    fn next_event(&self) -> Option<Nanos> {
        match self {
            AnyNetwork::Analytic(n) => n.next_event(),
            AnyNetwork::Contention(n) => n.next_event(),
        }
    }

    #[inline]
    fn advance(&mut self, now: Nanos, completed: &mut Vec<u64>) {
        match self {
            AnyNetwork::Analytic(n) => n.advance(now, completed),
            AnyNetwork::Contention(n) => n.advance(now, completed),
        }
    }

    fn folding(&self) -> Option<Vec<u32>> {
        match self {
            AnyNetwork::Analytic(n) => n.folding(),
            AnyNetwork::Contention(n) => n.folding(),
        }
    }

    fn group_key(&mut self, members: &[u32], kinds: CollectiveSet, key: &mut Vec<u64>) {
        match self {
            AnyNetwork::Analytic(n) => n.group_key(members, kinds, key),
            AnyNetwork::Contention(n) => n.group_key(members, kinds, key),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_parses_and_defaults_to_analytic() {
        assert_eq!("contention".parse(), Ok(NetworkMode::Contention));
        assert_eq!("Analytic".parse(), Ok(NetworkMode::Analytic));
        assert!(
            "fast"
                .parse::<NetworkMode>()
                .unwrap_err()
                .contains("contention")
        );
        assert_eq!(NetworkSpec::default().mode, NetworkMode::Analytic);
        assert_eq!(NetworkSpec::default().algorithm, AlgorithmChoice::Auto);
    }
}
