//! Throughput of the embedded log on this machine (a bench binary that prints figures):
//! sequential publishes (one fsync each), concurrent publishers sharing fsyncs (group commit),
//! a consumer reading everything back, and reopening the log.
//!
//! Run: `cargo bench -p mantis-bus --bench embedded_log`

use mantis_bus::{
    Bus, OutboundRecord, StartFrom, SubscribeOptions, TopicSpec, TraceContext,
    embedded::{EmbeddedBus, EmbeddedOptions},
};
use std::sync::Arc;
use std::time::{Duration, Instant};

const PAYLOAD: usize = 120; // about one Avro-encoded reading

fn record(i: usize) -> OutboundRecord {
    OutboundRecord::new(
        "bench",
        Some(format!("asset-{}", i % 64).into_bytes()),
        vec![7u8; PAYLOAD],
        TraceContext::new_root(),
    )
}

/// `publishers` tasks publishing `per` records each, at once.
async fn publish_concurrently(
    bus: &Arc<EmbeddedBus>,
    publishers: usize,
    per: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut tasks = Vec::new();
    for p in 0..publishers {
        let bus = bus.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..per {
                bus.publish(record(p * per + i)).await?;
            }
            Ok::<_, mantis_bus::Error>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let bus = Arc::new(EmbeddedBus::open(dir.path()).await?);
    bus.ensure_topics(&[TopicSpec {
        name: "bench".into(),
        partitions: 12,
        retention: Duration::from_secs(3600),
    }])
    .await?;

    let n = 2_000;
    let t = Instant::now();
    for i in 0..n {
        bus.publish(record(i)).await?;
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "embedded log, sequential publish (fsync each): {:>8.0} records/s ({:.2} ms per publish)",
        n as f64 / secs,
        secs * 1000.0 / n as f64
    );

    for publishers in [8usize, 64] {
        let per = 20_000 / publishers;
        let t = Instant::now();
        publish_concurrently(&bus, publishers, per).await?;
        let total = per * publishers;
        println!(
            "embedded log, {publishers:>2} concurrent publishers (group commit): {:>8.0} records/s",
            total as f64 / t.elapsed().as_secs_f64()
        );
    }

    let total = n + 20_000 / 8 * 8 + 20_000 / 64 * 64;
    // Read back five times by new groups (a read of 42 000 records takes tens of ms: the median
    // of five steadies the figure on a shared machine).
    let mut rates = Vec::new();
    for round in 0..5 {
        let mut sub = bus
            .subscribe(SubscribeOptions::new(
                format!("bench-reader-{round}"),
                ["bench"],
                StartFrom::Earliest,
            ))
            .await?;
        let t = Instant::now();
        for _ in 0..total {
            sub.next().await?;
        }
        rates.push(total as f64 / t.elapsed().as_secs_f64());
    }
    rates.sort_by(f64::total_cmp);
    println!(
        "embedded log, one consumer reading back:       {:>8.0} records/s median of 5 ({:.0}-{:.0}; {total} records)",
        rates[2], rates[0], rates[4]
    );
    drop(bus);

    // Opening scans the active segment of each partition to rebuild its offset index (every
    // 64th record's position); here every partition has only that one.
    let t = Instant::now();
    let bus = EmbeddedBus::open(dir.path()).await?;
    println!(
        "embedded log, reopening (scan of {total} records): {:>8.1} ms",
        t.elapsed().as_secs_f64() * 1000.0
    );
    drop(bus);

    reopen_sealed_segments().await
}

/// Reopening a partition of many sealed segments: from their index files, and by scanning them
/// (the index files removed: an older log, or a crash before they were written).
async fn reopen_sealed_segments() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let options = EmbeddedOptions {
        segment_bytes: 1 << 20,
        ..EmbeddedOptions::default()
    };
    let bus = Arc::new(EmbeddedBus::open_with(dir.path(), options.clone()).await?);
    bus.ensure_topics(&[TopicSpec {
        name: "bench".into(),
        partitions: 1,
        retention: Duration::from_secs(3600),
    }])
    .await?;
    let (publishers, per) = (64usize, 5_000usize);
    publish_concurrently(&bus, publishers, per).await?;
    drop(bus);
    let partition = dir.path().join("topics").join("bench").join("0");
    let files = |ext: &str| -> std::io::Result<Vec<std::path::PathBuf>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&partition)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == ext) {
                out.push(path);
            }
        }
        Ok(out)
    };
    let segments = files("log")?.len();
    let total = publishers * per;
    let mut indexed = Vec::new();
    let mut scanned = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        drop(EmbeddedBus::open_with(dir.path(), options.clone()).await?);
        indexed.push(t.elapsed().as_secs_f64() * 1000.0);
        for index in files("index")? {
            std::fs::remove_file(index)?;
        }
        // Scans every segment (and writes its index again).
        let t = Instant::now();
        drop(EmbeddedBus::open_with(dir.path(), options.clone()).await?);
        scanned.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    indexed.sort_by(f64::total_cmp);
    scanned.sort_by(f64::total_cmp);
    println!(
        "embedded log, reopening {total} records in {segments} segments: {:>6.1} ms from the index files, {:>6.1} ms scanning them (medians of 5)",
        indexed[2], scanned[2]
    );
    Ok(())
}
