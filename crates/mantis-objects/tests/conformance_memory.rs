//! The conformance suite on the in-memory store (in-process services and tests).

use mantis_objects::{MemoryObjects, ObjectStore};
use std::future::Future;
use std::sync::Arc;

async fn with_store<F, Fut>(body: F)
where
    F: FnOnce(Arc<dyn ObjectStore>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    body(Arc::new(MemoryObjects::new())).await;
}

mantis_objects::conformance_tests!(with_store);
