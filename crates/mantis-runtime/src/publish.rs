//! Publishing typed records.

use crate::Result;
use mantis_bus::{Bus, Delivery, Header, OutboundRecord, TraceContext};
use mantis_codec::{Codec, Record};
use std::sync::Arc;

/// Encodes records with the codec and publishes them on the bus with trace context.
#[derive(Clone)]
pub struct Publisher {
    bus: Arc<dyn Bus>,
    codec: Arc<Codec>,
    service: &'static str,
}

impl Publisher {
    /// A publisher for `service` (used as a metric label).
    pub fn new(bus: Arc<dyn Bus>, codec: Arc<Codec>, service: &'static str) -> Self {
        Self {
            bus,
            codec,
            service,
        }
    }

    /// Builds the outbound record of `value` on its topic (pure, no I/O).
    pub fn to_record<R: Record>(
        &self,
        key: Option<String>,
        value: &R,
        trace: TraceContext,
        headers: Vec<Header>,
    ) -> Result<OutboundRecord> {
        let payload = self.codec.encode(value)?;
        let mut record = OutboundRecord::new(R::TOPIC, key.map(String::into_bytes), payload, trace);
        record.headers = headers;
        Ok(record)
    }

    /// Encodes and publishes `value` on its topic; returns once the bus accepted it durably.
    pub async fn publish<R: Record>(
        &self,
        key: Option<String>,
        value: &R,
        trace: TraceContext,
        headers: Vec<Header>,
    ) -> Result<Delivery> {
        let record = self.to_record(key, value, trace, headers)?;
        self.send(record).await
    }

    /// Publishes already built records in order ([`mantis_bus::Bus::publish_all`]): how many,
    /// from the first, were accepted, and the error that stopped the others.
    pub async fn send_all(&self, records: &[OutboundRecord]) -> (usize, Option<mantis_bus::Error>) {
        let (accepted, error) = self.bus.publish_all(records).await;
        for record in records.iter().take(accepted) {
            metrics::counter!("mantis_records_published_total", "service" => self.service, "topic" => record.topic.clone())
                .increment(1);
        }
        (accepted, error)
    }

    /// Publishes an already built record.
    pub async fn send(&self, record: OutboundRecord) -> Result<Delivery> {
        let topic = record.topic.clone();
        let delivery = self.bus.publish(record).await?;
        metrics::counter!("mantis_records_published_total", "service" => self.service, "topic" => topic)
            .increment(1);
        Ok(delivery)
    }
}
