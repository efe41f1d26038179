//! Where a command's scenario comes from: a YAML file or the built-in default (as a
//! parsed tree, so `path=value` overrides apply), or a [`Scenario`] already resolved.
//!
//! Each step fails with the error `config::load_scenario` gives for it, in the same
//! order: reading and parsing, then each override, then resolution and validation.
//! Must not simulate anything.

use std::path::Path;

use super::error::{Error, Result};
use crate::config::{Provenance, Scenario, ScenarioDraft};

/// A scenario on its way into a command.
#[derive(Debug, Clone)]
pub struct ScenarioInput(Inner, Vec<String>);

#[derive(Debug, Clone)]
enum Inner {
    Draft(ScenarioDraft),
    Resolved(Box<Scenario>),
}

impl ScenarioInput {
    /// Reads and parses a scenario file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        Self::load(Some(path.as_ref()))
    }

    /// A scenario file, or the built-in default scenario when `path` is `None`.
    pub fn load(path: Option<&Path>) -> Result<Self> {
        Ok(ScenarioInput(
            Inner::Draft(ScenarioDraft::load(path)?),
            Vec::new(),
        ))
    }

    /// The built-in default scenario (`clustersim run` without a file).
    pub fn default_scenario() -> Self {
        let draft = ScenarioDraft::load(None).expect("the built-in default scenario parses");
        ScenarioInput(Inner::Draft(draft), Vec::new())
    }

    /// Scenario YAML text; `name` names it in errors.
    pub fn from_yaml(name: &str, text: &str) -> Result<Self> {
        let draft = ScenarioDraft::parse(name, text, "scenario", None)?;
        Ok(ScenarioInput(Inner::Draft(draft), Vec::new()))
    }

    /// A scenario already resolved (built in code, or loaded before).
    pub fn from_scenario(s: Scenario) -> Self {
        ScenarioInput(Inner::Resolved(Box::new(s)), Vec::new())
    }

    /// Applies `path=value` overrides (`parallelism.tp=4`) in order. Overrides edit the
    /// YAML, so a resolved scenario takes none: change its fields instead.
    pub fn with_overrides<S: AsRef<str>>(self, args: &[S]) -> Result<Self> {
        let mut given = self.1;
        given.extend(args.iter().map(|a| a.as_ref().to_string()));
        match self.0 {
            Inner::Draft(d) => Ok(ScenarioInput(Inner::Draft(d.with_overrides(args)?), given)),
            resolved if args.is_empty() => Ok(ScenarioInput(resolved, given)),
            Inner::Resolved(_) => Err(Error::invalid(
                "overrides apply to scenario YAML; set the fields of a resolved Scenario instead",
            )),
        }
    }

    /// The resolved, validated scenario.
    pub fn resolve(self) -> Result<Scenario> {
        match self.0 {
            Inner::Draft(d) => Ok(d.resolve()?),
            Inner::Resolved(s) => Ok(*s),
        }
    }

    /// The resolved scenario and the provenance of `command` run on it: its sources with
    /// their hashes and the overrides applied (seed, network and settings are the
    /// command's to add). A scenario resolved in code records its source file, if any, and
    /// `settings.scenario = "resolved in code"`.
    pub fn resolve_with_provenance(self, command: &str) -> Result<(Scenario, Provenance)> {
        let mut p = Provenance::new(command);
        p.overrides = self.1;
        let s = match self.0 {
            Inner::Draft(d) => {
                let (s, sources) = d.resolve_traced()?;
                p.add_inputs(&sources);
                s
            }
            Inner::Resolved(s) => {
                if let Some(src) = &s.source {
                    p.add_inputs(&[src.display().to_string()]);
                }
                p.set("scenario", "resolved in code");
                *s
            }
        };
        refuse_jobs(&s, command)?;
        Ok((s, p))
    }
}

/// Several jobs on one cluster (`jobs:`) run through `clustersim run` only: the other
/// commands search, compare or repeat one job's plan.
pub(crate) fn refuse_jobs(s: &Scenario, command: &str) -> Result<()> {
    if command != "run" && s.jobs.is_some() {
        return Err(Error::invalid(format!(
            "jobs: several jobs on one cluster run with `clustersim run` only; `clustersim {command}` works on one job's scenario (remove `jobs:`)"
        )));
    }
    Ok(())
}

/// The scenario constructors every scenario-driven command shares; the type needs a
/// field `input: ScenarioInput` and a `fn new(ScenarioInput) -> Self`.
macro_rules! scenario_constructors {
    ($t:ident) => {
        impl $t {
            /// Reads and parses a scenario file (resolved when the command runs).
            pub fn from_file(path: impl AsRef<std::path::Path>) -> $crate::api::Result<Self> {
                Ok(Self::new($crate::api::ScenarioInput::from_file(path)?))
            }

            /// The built-in default scenario.
            pub fn default_scenario() -> Self {
                Self::new($crate::api::ScenarioInput::default_scenario())
            }

            /// A scenario already resolved.
            pub fn from_scenario(s: $crate::config::Scenario) -> Self {
                Self::new($crate::api::ScenarioInput::from_scenario(s))
            }

            /// Applies `path=value` overrides to the scenario YAML, in order
            /// (see [`ScenarioInput::with_overrides`](crate::api::ScenarioInput::with_overrides)).
            pub fn with_overrides<S: AsRef<str>>(
                mut self,
                args: &[S],
            ) -> $crate::api::Result<Self> {
                self.input = self.input.with_overrides(args)?;
                Ok(self)
            }
        }
    };
}
pub(crate) use scenario_constructors;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_scenario_resolves_and_takes_overrides() {
        let s = ScenarioInput::default_scenario()
            .with_overrides(&["training.global_batch=256"])
            .unwrap()
            .resolve()
            .unwrap();
        assert_eq!(s.training.global_batch, 256);
        let e = ScenarioInput::from_scenario(s)
            .with_overrides(&["parallelism.tp=2"])
            .unwrap_err();
        assert!(e.is_bad_input(), "{e}");
    }

    #[test]
    fn errors_match_load_scenario() {
        let args = ["parallelism.tp=3".to_string()];
        let want = crate::config::load_scenario(None, &args).unwrap_err();
        let got = ScenarioInput::default_scenario()
            .with_overrides(&args)
            .unwrap()
            .resolve()
            .unwrap_err();
        assert_eq!(got.to_string(), want.to_string());
        assert!(got.is_bad_input());
        let missing = ScenarioInput::from_file("/nonexistent.yaml").unwrap_err();
        assert!(missing.to_string().contains("cannot read scenario file"));
    }
}
