//! Quality metrics' rules, free of I/O: what a complaint's events make of its fact, how a fact
//! counts in the rollups, and how KPIs, breakdowns, Pareto charts and hotspots are read from
//! summed counters.

pub mod analysis;
pub mod dims;
pub mod fact;
pub mod improvement;
pub mod kpi;
pub mod measures;
pub mod period;
pub mod report;
pub mod rollup;
pub mod taxonomy;
