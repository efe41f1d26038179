//! The step simulator's tests, one file per concern.
#![cfg(test)]

mod bubbles;
mod folding;
mod reductions;
mod steps;
