//! Plumbing every Redress service shares, written once: server bootstrap with health,
//! reflection and graceful shutdown; configuration; telemetry and W3C trace propagation;
//! database connection and migrations for SQLite and PostgreSQL; the transactional outbox,
//! event feed and consumer loop; the verified caller principal; and the single mapping from
//! domain errors to `google.rpc.Status`.

pub mod blind_index;
pub mod config;
pub mod consumer;
pub mod db;
pub mod dead_letters;
pub mod error;
pub mod events;
pub mod free_text_pii;
pub mod host;
pub mod listing;
pub mod metrics;
pub mod names;
pub mod paging;
pub mod principal;
pub mod ready;
pub mod revisions;
pub mod segmenter;
pub mod server;
pub mod shutdown;
pub mod signing;
pub mod telemetry;
pub mod testing;
pub mod time;
pub mod tls;
pub mod watch;

pub use error::{ApiError, ErrorKind, FieldViolation, ServiceError};
pub use principal::{Permission, Principal};
