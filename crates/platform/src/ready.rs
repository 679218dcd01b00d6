//! A value that becomes available once start-up work (migrations) has finished. Servers start
//! listening first so health checks answer NOT_SERVING meanwhile; calls that arrive early get
//! UNAVAILABLE instead of waiting.

use std::sync::{Arc, OnceLock};

use crate::ServiceError;

#[derive(Debug)]
pub struct Ready<T>(Arc<OnceLock<T>>);

impl<T> Clone for Ready<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<T> Default for Ready<T> {
    fn default() -> Self {
        Self(Arc::new(OnceLock::new()))
    }
}

impl<T> From<T> for Ready<T> {
    /// A value that is available from the start.
    fn from(value: T) -> Self {
        let cell = OnceLock::new();
        let _ = cell.set(value);
        Self(Arc::new(cell))
    }
}

impl<T> Ready<T> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes the value available; a second call is ignored.
    pub fn set(&self, value: T) {
        let _ = self.0.set(value);
    }

    pub fn get(&self) -> Result<&T, ServiceError> {
        self.0.get().ok_or_else(|| ServiceError::Unavailable("service is starting".to_owned()))
    }
}
