//! The boot storm behind `compare-storm`: the lab (namespaces), the simulated nodes (our
//! wire crates as clients) and the two server stacks.

pub mod lab;
pub mod node;
pub mod servers;
