//! The command-line client: `redress case …` drives cases by hand through a running gateway.
//! It speaks the public API with the generated clients, exactly as any other caller does.

mod case;
mod output;

pub use case::{CaseArgs, run};
