//! The payload of one edge-buffer entry: the outbound records of one accepted batch, in order.
//!
//! The embedded log frames, checksums and fsyncs each entry; this only lays the records out
//! inside it (all integers little-endian):
//!
//! ```text
//! version: u8 (1) | count: u32 | record*
//! record = topic_len: u16 | topic | key_len: i32 (-1: none) | key
//!        | traceparent_len: u16 | traceparent | header_count: u32
//!        | (name_len: u32 | name | value_len: u32 | value)* | payload_len: u32 | payload
//! ```
//!
//! One entry per batch means one fsync per batch rather than per reading.

use mantis_bus::{Header, OutboundRecord, TraceContext};

const VERSION: u8 = 1;

/// An entry that cannot be decoded (written by a newer version, or damaged).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("edge-buffer entry cannot be decoded: {0}")]
pub(crate) struct DecodeError(pub(crate) &'static str);

/// A record field too large for the entry format.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("record field too large for the edge buffer: {0}")]
pub(crate) struct EncodeError(pub(crate) &'static str);

fn len<T: TryFrom<usize>>(n: usize, what: &'static str) -> Result<T, EncodeError> {
    T::try_from(n).map_err(|_| EncodeError(what))
}

/// Encodes `records` as one entry.
pub(crate) fn encode(records: &[OutboundRecord]) -> Result<Vec<u8>, EncodeError> {
    let size: usize = records
        .iter()
        .map(|r| {
            r.topic.len()
                + r.key.as_ref().map_or(0, Vec::len)
                + r.payload.len()
                + r.headers
                    .iter()
                    .map(|(k, v)| k.len() + v.len() + 8)
                    .sum::<usize>()
                + 128
        })
        .sum();
    let mut out = Vec::with_capacity(size + 5);
    out.push(VERSION);
    let count: u32 = len(records.len(), "record count")?;
    out.extend_from_slice(&count.to_le_bytes());
    for r in records {
        let topic_len: u16 = len(r.topic.len(), "topic")?;
        out.extend_from_slice(&topic_len.to_le_bytes());
        out.extend_from_slice(r.topic.as_bytes());
        match &r.key {
            Some(key) => {
                let n: i32 = len(key.len(), "key")?;
                out.extend_from_slice(&n.to_le_bytes());
                out.extend_from_slice(key);
            }
            None => out.extend_from_slice(&(-1i32).to_le_bytes()),
        }
        let trace = r.trace.to_traceparent();
        let trace_len: u16 = len(trace.len(), "traceparent")?;
        out.extend_from_slice(&trace_len.to_le_bytes());
        out.extend_from_slice(trace.as_bytes());
        let headers: Vec<&Header> = r
            .headers
            .iter()
            .filter(|(k, _)| k != mantis_bus::TRACEPARENT)
            .collect();
        let n: u32 = len(headers.len(), "header count")?;
        out.extend_from_slice(&n.to_le_bytes());
        for (name, value) in headers {
            let n: u32 = len(name.len(), "header name")?;
            out.extend_from_slice(&n.to_le_bytes());
            out.extend_from_slice(name.as_bytes());
            let n: u32 = len(value.len(), "header value")?;
            out.extend_from_slice(&n.to_le_bytes());
            out.extend_from_slice(value);
        }
        let n: u32 = len(r.payload.len(), "payload")?;
        out.extend_from_slice(&n.to_le_bytes());
        out.extend_from_slice(&r.payload);
    }
    Ok(out)
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let (head, rest) = self.0.split_at_checked(n).ok_or(DecodeError("truncated"))?;
        self.0 = rest;
        Ok(head)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        self.take(N)?
            .try_into()
            .map_err(|_| DecodeError("truncated"))
    }
    fn u16(&mut self) -> Result<usize, DecodeError> {
        Ok(usize::from(u16::from_le_bytes(self.array()?)))
    }
    fn u32(&mut self) -> Result<usize, DecodeError> {
        usize::try_from(u32::from_le_bytes(self.array()?)).map_err(|_| DecodeError("length"))
    }
    fn string(&mut self, n: usize) -> Result<String, DecodeError> {
        String::from_utf8(self.take(n)?.to_vec()).map_err(|_| DecodeError("text is not UTF-8"))
    }
}

/// The number of records of an entry, without decoding them.
pub(crate) fn count(entry: &[u8]) -> Result<usize, DecodeError> {
    let mut r = Reader(entry);
    match r.array::<1>()? {
        [VERSION] => r.u32(),
        _ => Err(DecodeError("unknown version")),
    }
}

/// Decodes an entry back into its records, in order.
pub(crate) fn decode(entry: &[u8]) -> Result<Vec<OutboundRecord>, DecodeError> {
    let mut r = Reader(entry);
    if r.array::<1>()? != [VERSION] {
        return Err(DecodeError("unknown version"));
    }
    let count = r.u32()?;
    // Every record takes at least 18 bytes: a damaged count must not allocate wildly.
    let mut records = Vec::with_capacity(count.min(entry.len() / 18));
    for _ in 0..count {
        let n = r.u16()?;
        let topic = r.string(n)?;
        let key_len = i32::from_le_bytes(r.array()?);
        let key = match usize::try_from(key_len) {
            Ok(n) => Some(r.take(n)?.to_vec()),
            Err(_) => None,
        };
        let n = r.u16()?;
        let trace = TraceContext::parse(&r.string(n)?).ok_or(DecodeError("bad traceparent"))?;
        let headers = r.u32()?;
        let mut record = OutboundRecord::new(topic, key, Vec::new(), trace);
        for _ in 0..headers {
            let n = r.u32()?;
            let name = r.string(n)?;
            let n = r.u32()?;
            record.headers.push((name, r.take(n)?.to_vec()));
        }
        let n = r.u32()?;
        record.payload = r.take(n)?.to_vec();
        records.push(record);
    }
    if !r.0.is_empty() {
        return Err(DecodeError("trailing bytes"));
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(topic: &str, key: Option<&[u8]>, payload: &[u8]) -> OutboundRecord {
        OutboundRecord::new(
            topic,
            key.map(<[u8]>::to_vec),
            payload.to_vec(),
            TraceContext::new_root(),
        )
    }

    #[test]
    fn a_batch_round_trips_in_order_with_keys_headers_and_trace() {
        let records = vec![
            record("sensor.raw", Some(b"asset-1"), b"\x00\x01binary\xff"),
            record("data.quality.issues", None, b"")
                .with_header("h", b"v".to_vec())
                .with_header("empty", Vec::new()),
            record("sensor.raw", Some(b""), &[7u8; 1000]),
        ];
        let entry = encode(&records).expect("encodes");
        assert_eq!(count(&entry), Ok(3));
        assert_eq!(decode(&entry).expect("decodes"), records);
    }

    #[test]
    fn an_empty_batch_is_a_valid_entry() {
        let entry = encode(&[]).expect("encodes");
        assert_eq!(count(&entry), Ok(0));
        assert!(decode(&entry).expect("decodes").is_empty());
    }

    #[test]
    fn damaged_entries_are_errors_not_panics() {
        let entry = encode(&[record("t", Some(b"k"), b"payload")]).expect("encodes");
        for cut in 0..entry.len() {
            assert!(decode(&entry[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = entry.clone();
        longer.push(0);
        assert_eq!(decode(&longer), Err(DecodeError("trailing bytes")));
        let mut newer = entry;
        newer[0] = 2;
        assert_eq!(count(&newer), Err(DecodeError("unknown version")));
        let mut huge = vec![VERSION];
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode(&huge).is_err());
    }
}
