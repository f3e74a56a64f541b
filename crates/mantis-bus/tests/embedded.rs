//! The conformance suite and the durability tests of the embedded on-disk bus.

use futures::FutureExt;
use mantis_bus::embedded::{EmbeddedBus, EmbeddedOptions};
use mantis_bus::{
    Bus, Envelope, Error, OutboundRecord, StartFrom, SubscribeOptions, Subscription, TopicSpec,
    TraceContext, conformance,
};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

macro_rules! conformance_tests {
    ($($name:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let dir = tempfile::tempdir().expect("tempdir");
            let bus = EmbeddedBus::open(dir.path()).await.expect("open");
            conformance::$name(&bus, &conformance::unique_ns(stringify!($name))).await;
        }
    )*};
}

conformance_tests!(
    ensure_topics_is_idempotent,
    unknown_topics_are_reported,
    per_key_order_holds_across_interleaved_keys,
    a_published_batch_keeps_per_key_order,
    headers_and_trace_context_round_trip,
    concurrent_publishes_all_land_once,
    group_members_share_partitions,
    a_member_is_told_which_partitions_were_taken_from_it,
    every_group_receives_every_record,
    a_restarted_group_resumes_after_its_commit,
    uncommitted_records_are_redelivered,
    latest_skips_older_records,
    dead_letters_carry_reason_and_source,
    topics_are_listed_with_their_retained_offsets,
);

const WAIT: Duration = Duration::from_secs(30);

fn spec(name: &str, partitions: i32) -> TopicSpec {
    TopicSpec {
        name: name.to_owned(),
        partitions,
        retention: Duration::from_secs(24 * 3600),
    }
}

async fn publish(bus: &EmbeddedBus, topic: &str, key: &str, payload: impl Into<Vec<u8>>) -> i64 {
    let record = OutboundRecord::new(
        topic,
        Some(key.as_bytes().to_vec()),
        payload.into(),
        TraceContext::new_root(),
    );
    bus.publish(record).await.expect("publish").offset
}

async fn join(bus: &EmbeddedBus, group: &str, topic: &str) -> Box<dyn Subscription> {
    let options = SubscribeOptions::new(group, [topic], StartFrom::Earliest);
    bus.subscribe(options).await.expect("subscribe")
}

async fn take(sub: &mut dyn Subscription, n: usize) -> Vec<Envelope> {
    let mut got = Vec::new();
    tokio::time::timeout(WAIT, async {
        while got.len() < n {
            got.push(sub.next().await.expect("next"));
        }
    })
    .await
    .expect("records in time");
    got
}

/// No further record arrives (checked for a moment).
async fn idle(sub: &mut dyn Subscription) -> bool {
    tokio::time::timeout(Duration::from_millis(300), sub.next())
        .await
        .is_err()
}

fn segments(dir: &Path, topic: &str, partition: i32) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(dir.join("topics").join(topic).join(partition.to_string()))
            .expect("partition dir")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "log"))
            .collect();
    files.sort();
    files
}

/// The first offset of a segment file (its name).
fn base_of(segment: &Path) -> i64 {
    segment
        .file_stem()
        .and_then(|s| s.to_str())
        .and_then(|s| s.parse().ok())
        .expect("a segment is named by its first offset")
}

fn payloads(envs: &[Envelope]) -> Vec<String> {
    envs.iter()
        .map(|e| String::from_utf8_lossy(&e.payload).into_owned())
        .collect()
}

#[tokio::test]
async fn records_topics_and_commits_survive_reopening() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let bus = EmbeddedBus::open(dir.path()).await.expect("open");
        bus.ensure_topics(&[spec("sensor.raw", 3)])
            .await
            .expect("ensure");
        for i in 0..30 {
            publish(&bus, "sensor.raw", &format!("asset-{i}"), format!("{i}")).await;
        }
        let mut sub = join(&bus, "features", "sensor.raw").await;
        for env in take(sub.as_mut(), 10).await {
            sub.commit(&env.next_position()).await.expect("commit");
        }
    }
    let bus = EmbeddedBus::open(dir.path()).await.expect("reopen");
    bus.ensure_topics(&[spec("sensor.raw", 12)])
        .await
        .expect("ensure");
    let mut all = join(&bus, "a-new-group", "sensor.raw").await;
    let everything = take(all.as_mut(), 30).await;
    assert!(idle(all.as_mut()).await);
    let partitions: BTreeSet<i32> = everything.iter().map(|e| e.partition).collect();
    assert_eq!(
        partitions,
        BTreeSet::from([0, 1, 2]),
        "partition count persisted"
    );
    let expected: BTreeSet<String> = (0..30).map(|i| i.to_string()).collect();
    assert_eq!(
        payloads(&everything).into_iter().collect::<BTreeSet<_>>(),
        expected
    );

    let mut resumed = join(&bus, "features", "sensor.raw").await;
    let rest = take(resumed.as_mut(), 20).await;
    assert!(
        idle(resumed.as_mut()).await,
        "the 10 committed records are not redelivered"
    );
    assert_eq!(payloads(&everything).len() - payloads(&rest).len(), 10);
    let record = OutboundRecord::new(
        "sensor.raw",
        None,
        b"after".to_vec(),
        TraceContext::new_root(),
    );
    let d = bus.publish(record).await.expect("publish after reopening");
    let before = everything
        .iter()
        .filter(|e| e.partition == d.partition)
        .count();
    assert_eq!(d.offset, before as i64, "offsets continue after reopening");
}

#[tokio::test]
async fn a_torn_write_at_the_tail_is_cut_off() {
    for tail in [
        &b"garbage!"[..],
        &[40, 0, 0, 0, 1, 2, 3, 4, 5, 6][..],
        &[0u8; 64][..],
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let bus = EmbeddedBus::open(dir.path()).await.expect("open");
            bus.ensure_topics(&[spec("alerts.critical", 1)])
                .await
                .expect("ensure");
            for i in 0..5 {
                publish(&bus, "alerts.critical", "k", format!("{i}")).await;
            }
        }
        let segment = segments(dir.path(), "alerts.critical", 0).remove(0);
        let mut bytes = std::fs::read(&segment).expect("read segment");
        bytes.extend_from_slice(tail);
        std::fs::write(&segment, &bytes).expect("damage segment");

        let bus = EmbeddedBus::open(dir.path())
            .await
            .expect("reopen after a torn write");
        assert_eq!(publish(&bus, "alerts.critical", "k", "5").await, 5);
        let mut sub = join(&bus, "g", "alerts.critical").await;
        let got = take(sub.as_mut(), 6).await;
        assert_eq!(payloads(&got), ["0", "1", "2", "3", "4", "5"]);
        assert!(idle(sub.as_mut()).await);
    }
}

/// A crash lets unsynced pages reach the disk in any order: a frame whose page never did reads
/// as zeros (a hole) before frames that did. None of them was acknowledged (an fsync covering
/// the later ones would have covered the hole), so the log starts again from the hole.
#[tokio::test]
async fn a_hole_left_by_a_crash_before_later_frames_is_cut_off() {
    let mut tails: Vec<Vec<u8>> = Vec::new();
    // A zeroed frame header, then bytes of a frame that did reach the disk.
    let mut zero_header = vec![0u8; 8];
    zero_header.extend((1..=100).map(|b: u32| b as u8));
    tails.push(zero_header);
    // A frame of 12 438 bytes whose first bytes were written and whose next pages were not,
    // then a frame that was written.
    let mut torn_page = vec![0x96, 0x30, 0, 0, 9, 9, 9, 9];
    torn_page.extend(std::iter::repeat_n(7u8, 100));
    torn_page.extend(std::iter::repeat_n(0u8, 3 * 4096));
    torn_page.extend(std::iter::repeat_n(8u8, 50));
    torn_page.extend(std::iter::repeat_n(9u8, 100));
    tails.push(torn_page);
    for tail in tails {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let bus = EmbeddedBus::open(dir.path()).await.expect("open");
            bus.ensure_topics(&[spec("t", 1)]).await.expect("ensure");
            for i in 0..5 {
                publish(&bus, "t", "k", format!("{i}")).await;
            }
        }
        let segment = segments(dir.path(), "t", 0).remove(0);
        let mut bytes = std::fs::read(&segment).expect("read segment");
        bytes.extend_from_slice(&tail);
        std::fs::write(&segment, &bytes).expect("damage segment");

        let bus = EmbeddedBus::open(dir.path())
            .await
            .expect("reopen after a crash that left a hole");
        assert_eq!(publish(&bus, "t", "k", "5").await, 5);
        let mut sub = join(&bus, "g", "t").await;
        assert_eq!(
            payloads(&take(sub.as_mut(), 6).await),
            ["0", "1", "2", "3", "4", "5"]
        );
    }
}

/// The usual shape with small records: one page of many frames never reached the disk, the
/// pages after it did. The log keeps the frames before the page, continues from there, and keeps
/// the bytes it cut beside the segment: past its recovery point (the crash came before it moved
/// on), and in a log of an older version that has none (the page of zeros tells).
#[tokio::test]
async fn a_zeroed_page_among_small_frames_is_cut_off_and_kept_aside() {
    for recovery_point in [Some(0), None] {
        let dir = tempfile::tempdir().expect("tempdir");
        let n = 200;
        {
            let bus = EmbeddedBus::open(dir.path()).await.expect("open");
            bus.ensure_topics(&[spec("t", 1)]).await.expect("ensure");
            for i in 0..n {
                publish(&bus, "t", "k", format!("{i:0>40}")).await;
            }
        }
        let segment = segments(dir.path(), "t", 0).remove(0);
        let mut bytes = std::fs::read(&segment).expect("read segment");
        assert!(bytes.len() > 4 * 4096, "{} bytes", bytes.len());
        bytes[8192..12288].fill(0);
        std::fs::write(&segment, &bytes).expect("damage segment");
        match recovery_point {
            Some(offset) => set_recovery_point(dir.path(), "t", 0, offset),
            None => std::fs::remove_file(segment.with_file_name("recovery-point"))
                .expect("no recovery point"),
        }

        let bus = EmbeddedBus::open(dir.path())
            .await
            .expect("reopen after a crash that lost a page");
        let kept = publish(&bus, "t", "k", "next").await;
        assert!(kept > 0 && kept < n, "{kept} records kept");
        let mut sub = join(&bus, "g", "t").await;
        let got = payloads(&take(sub.as_mut(), kept as usize + 1).await);
        let expected: Vec<String> = (0..kept)
            .map(|i| format!("{i:0>40}"))
            .chain(["next".to_owned()])
            .collect();
        assert_eq!(got, expected);
        let aside: Vec<_> = std::fs::read_dir(segment.parent().expect("dir"))
            .expect("list")
            .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
            .filter(|name| name.contains(".log.torn-"))
            .collect();
        assert_eq!(aside.len(), 1, "{aside:?}");
    }
}

/// Records `offset` as a partition's recovery point, in the file's format (8 bytes LE and their
/// CRC-32): what the log had recorded when a crash came.
fn set_recovery_point(root: &Path, topic: &str, partition: i32, offset: i64) {
    let mut bytes = offset.to_le_bytes().to_vec();
    bytes.extend(crc32fast::hash(&offset.to_le_bytes()).to_le_bytes());
    let path = root
        .join("topics")
        .join(topic)
        .join(partition.to_string())
        .join("recovery-point");
    assert!(path.exists(), "{}", path.display());
    std::fs::write(path, bytes).expect("recovery point");
}

/// The shape the heuristics of a log without a recovery point cannot tell from corruption: a
/// frame whose first sector reached the disk in its old state (the frame's start, then zeros,
/// as the file ended there) while the next sector, written later, did, with valid frames after
/// it. Past the recovery point it is a crash's leftover whatever its shape: cut off, the bytes
/// kept aside. Below it (the frames were on disk) the same damage is corruption.
#[tokio::test]
async fn damage_past_the_recovery_point_is_cut_off_whatever_its_shape_and_below_it_is_corruption() {
    for (stale, recorded, cut) in [
        (false, 2, true),
        (false, 5, false),
        (true, 2, true),
        (true, 5, false),
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let bus = EmbeddedBus::open(dir.path()).await.expect("open");
            bus.ensure_topics(&[spec("t", 1)]).await.expect("ensure");
            for i in 0..8 {
                publish(&bus, "t", "k", format!("{i}-{}", "x".repeat(200))).await;
            }
        }
        let segment = segments(dir.path(), "t", 0).remove(0);
        let mut bytes = std::fs::read(&segment).expect("read segment");
        // Where each frame starts: an 8-byte header (body length, checksum), then the body.
        let mut starts = vec![0usize];
        while let Some(&at) = starts.last().filter(|&&at| at < bytes.len()) {
            let len = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
            starts.push(at + 8 + len as usize);
        }
        let frame = |i: usize| starts[i]..starts[i + 1];
        if stale {
            // A whole valid frame of another time (record 0's) where record 3 was: the shape a
            // block of a deleted file exposed by a crash has.
            assert_eq!(frame(0).len(), frame(3).len());
            let old = bytes[frame(0)].to_vec();
            bytes[frame(3)].copy_from_slice(&old);
        } else {
            // The second half of record 3's payload as zeros: its header and the start of its
            // body stay, the frames after it are whole.
            let payload = bytes
                .windows(4)
                .position(|w| w == b"3-xx")
                .expect("record 3");
            bytes[payload + 100..payload + 200].fill(0);
        }
        std::fs::write(&segment, &bytes).expect("damage segment");
        set_recovery_point(dir.path(), "t", 0, recorded);

        match EmbeddedBus::open(dir.path()).await {
            Ok(bus) => {
                assert!(cut, "damage below the recovery point (5) was cut off");
                assert_eq!(publish(&bus, "t", "k", "next").await, 3);
                let mut sub = join(&bus, "g", "t").await;
                let got = payloads(&take(sub.as_mut(), 4).await);
                assert!(got[2].starts_with("2-") && got[3] == "next", "{got:?}");
                let aside = std::fs::read_dir(segment.parent().expect("dir"))
                    .expect("list")
                    .filter_map(Result::ok)
                    .filter(|e| e.file_name().to_string_lossy().contains(".log.torn-"))
                    .count();
                assert_eq!(aside, 1, "the bytes cut are kept beside the segment");
            }
            Err(Error::Corrupt { detail, .. }) => {
                assert!(!cut, "damage past the recovery point (2) refused: {detail}");
                let why = if stale {
                    "offset 0 at byte"
                } else {
                    "checksum"
                };
                assert!(detail.contains(why), "{detail}");
            }
            Err(e) => panic!("{e:?}"),
        }
    }
}

/// The recovery point follows what is on disk while records arrive (every second) and is
/// complete when the bus is closed; a topic's metadata naming no partitions is corruption, not
/// a topic to divide by; with a byte budget, segments are a quarter of it at most.
#[tokio::test]
async fn the_recovery_point_follows_the_log_and_the_metadata_is_checked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let point = |dir: &Path| {
        let bytes = std::fs::read(dir.join("topics/t/0/recovery-point")).expect("recovery point");
        i64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"))
    };
    {
        let bus = EmbeddedBus::open(dir.path()).await.expect("open");
        bus.ensure_topics(&[spec("t", 1)]).await.expect("ensure");
        assert_eq!(point(dir.path()), 0);
        for i in 0..3 {
            publish(&bus, "t", "k", format!("{i}")).await;
        }
        let deadline = std::time::Instant::now() + WAIT;
        while point(dir.path()) != 3 {
            assert!(
                std::time::Instant::now() < deadline,
                "not recorded while open"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        publish(&bus, "t", "k", "3").await;
        publish(&bus, "t", "k", "4").await;
    }
    assert_eq!(point(dir.path()), 5, "recorded on close");

    let meta = dir.path().join("topics/t/topic.json");
    let text = std::fs::read_to_string(&meta).expect("topic.json");
    std::fs::write(&meta, text.replace("\"partitions\":1", "\"partitions\":0")).expect("write");
    match EmbeddedBus::open(dir.path()).await {
        Err(Error::Corrupt { path, detail }) => {
            assert!(path.ends_with("topic.json"), "{path}");
            assert!(detail.contains("0 partitions"), "{detail}");
        }
        other => panic!("expected a corruption error, got {other:?}"),
    }

    let budget = tempfile::tempdir().expect("tempdir");
    let bus = EmbeddedBus::open_with(
        budget.path(),
        EmbeddedOptions {
            retention_bytes: Some(64 << 10),
            ..EmbeddedOptions::default()
        },
    )
    .await
    .expect("open");
    bus.ensure_topics(&[spec("t", 1)]).await.expect("ensure");
    for i in 0..100 {
        publish(&bus, "t", "k", format!("{i:0>1000}")).await;
    }
    let files = segments(budget.path(), "t", 0);
    assert!(files.len() >= 3, "{files:?}");
    for f in &files {
        assert!(
            std::fs::metadata(f).expect("stat").len() <= (16 << 10) + 2048,
            "{f:?}"
        );
    }
}

/// A log shorter than what a group read (records lost to damage, a segment removed by hand):
/// the group reads on from the log's end, so the records that take the lost offsets are read,
/// not skipped until they pass the old position.
#[tokio::test]
async fn a_group_past_the_end_of_a_shortened_log_reads_on_from_its_end() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cut_at;
    {
        let bus = EmbeddedBus::open(dir.path()).await.expect("open");
        bus.ensure_topics(&[spec("t", 1)]).await.expect("ensure");
        for i in 0..5 {
            publish(&bus, "t", "k", format!("{i}")).await;
        }
        let mut sub = join(&bus, "g", "t").await;
        let got = take(sub.as_mut(), 5).await;
        sub.commit(&got[4].next_position()).await.expect("commit");
        cut_at = std::fs::metadata(&segments(dir.path(), "t", 0)[0])
            .expect("stat")
            .len();
        for i in 5..8 {
            publish(&bus, "t", "k", format!("{i}")).await;
        }
        let got = take(sub.as_mut(), 3).await;
        sub.commit(&got[2].next_position()).await.expect("commit");
    }
    // Records 5..7 (read and committed) are lost.
    let segment = segments(dir.path(), "t", 0).remove(0);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .expect("open segment");
    file.set_len(cut_at).expect("truncate");
    drop(file);

    let bus = EmbeddedBus::open(dir.path()).await.expect("reopen");
    assert_eq!(publish(&bus, "t", "k", "after").await, 5);
    let mut sub = join(&bus, "g", "t").await;
    assert_eq!(payloads(&take(sub.as_mut(), 1).await), ["after"]);
}

#[tokio::test]
async fn a_partial_final_frame_is_cut_off() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let bus = EmbeddedBus::open(dir.path()).await.expect("open");
        bus.ensure_topics(&[spec("t", 1)]).await.expect("ensure");
        for i in 0..3 {
            publish(&bus, "t", "k", format!("{i}")).await;
        }
    }
    // Cut the last frame in half, as a crash during its write would.
    let segment = segments(dir.path(), "t", 0).remove(0);
    let len = std::fs::metadata(&segment).expect("stat").len();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .expect("open segment");
    file.set_len(len - 20).expect("truncate");
    drop(file);

    let bus = EmbeddedBus::open(dir.path()).await.expect("reopen");
    assert_eq!(
        publish(&bus, "t", "k", "new").await,
        2,
        "the torn record's offset is reused"
    );
    let mut sub = join(&bus, "g", "t").await;
    assert_eq!(payloads(&take(sub.as_mut(), 3).await), ["0", "1", "new"]);
}

#[tokio::test]
async fn corruption_inside_the_log_is_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let bus = EmbeddedBus::open(dir.path()).await.expect("open");
        bus.ensure_topics(&[spec("t", 1)]).await.expect("ensure");
        for i in 0..3 {
            publish(&bus, "t", "k", format!("payload-{i}")).await;
        }
    }
    let segment = segments(dir.path(), "t", 0).remove(0);
    let mut bytes = std::fs::read(&segment).expect("read");
    let at = bytes
        .windows(9)
        .position(|w| w == b"payload-0")
        .expect("first payload");
    bytes[at] ^= 0x20;
    std::fs::write(&segment, &bytes).expect("write");

    match EmbeddedBus::open(dir.path()).await {
        Err(Error::Corrupt { path, detail }) => {
            assert!(path.ends_with(".log"), "{path}");
            assert!(detail.contains("checksum"), "{detail}");
        }
        other => panic!("expected a corruption error, got {other:?}"),
    }
}

#[tokio::test]
async fn segments_roll_at_the_configured_size_and_stay_readable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = EmbeddedOptions {
        segment_bytes: 1024,
        ..EmbeddedOptions::default()
    };
    let n = 60;
    {
        let bus = EmbeddedBus::open_with(dir.path(), options.clone())
            .await
            .expect("open");
        bus.ensure_topics(&[spec("t", 1)]).await.expect("ensure");
        for i in 0..n {
            assert_eq!(publish(&bus, "t", "k", format!("{i:0>100}")).await, i);
        }
    }
    let files = segments(dir.path(), "t", 0);
    assert!(files.len() >= 5, "expected several segments, got {files:?}");
    for f in &files[..files.len() - 1] {
        let size = std::fs::metadata(f).expect("stat").len();
        assert!((1024..1024 + 512).contains(&size), "{f:?}: {size} bytes");
    }

    let bus = EmbeddedBus::open_with(dir.path(), options)
        .await
        .expect("reopen");
    assert_eq!(publish(&bus, "t", "k", format!("{n:0>100}")).await, n);
    let mut sub = join(&bus, "g", "t").await;
    let got = take(sub.as_mut(), n as usize + 1).await;
    let offsets: Vec<i64> = got.iter().map(|e| e.offset).collect();
    assert_eq!(offsets, (0..=n).collect::<Vec<_>>());
    assert!(idle(sub.as_mut()).await);
}

#[tokio::test]
async fn expired_segments_are_deleted_and_readers_skip_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = EmbeddedOptions {
        segment_bytes: 1024,
        ..EmbeddedOptions::default()
    };
    let short = TopicSpec {
        name: "t".into(),
        partitions: 1,
        retention: Duration::from_millis(1),
    };
    {
        let bus = EmbeddedBus::open_with(dir.path(), options.clone())
            .await
            .expect("open");
        bus.ensure_topics(&[short]).await.expect("ensure");
        for i in 0..30 {
            publish(&bus, "t", "k", format!("{i:0>100}")).await;
        }
    }
    // Let every record age past the 1 ms retention; reopening applies it.
    std::thread::sleep(Duration::from_millis(20));
    let bus = EmbeddedBus::open_with(dir.path(), options)
        .await
        .expect("reopen");
    let files = segments(dir.path(), "t", 0);
    assert_eq!(files.len(), 1, "only the active segment is kept: {files:?}");
    let mut sub = join(&bus, "g", "t").await;
    let got = take(sub.as_mut(), 1).await;
    assert!(got[0].offset > 0, "old offsets are gone");
    let later = publish(&bus, "t", "k", "new").await;
    let rest = take(sub.as_mut(), (later - got[0].offset) as usize).await;
    assert_eq!(rest.last().map(|e| e.offset), Some(later));
}

/// With a byte limit, a partition keeps at most that many bytes of closed segments (plus the
/// active one), whatever their age: the oldest go first, as they roll.
#[tokio::test]
async fn segments_over_the_byte_limit_are_deleted_oldest_first() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = EmbeddedOptions {
        segment_bytes: 1024,
        retention_bytes: Some(3 * 1024),
    };
    let bus = EmbeddedBus::open_with(dir.path(), options)
        .await
        .expect("open");
    bus.ensure_topics(&[spec("t", 1)]).await.expect("ensure");
    let n = 200;
    for i in 0..n {
        publish(&bus, "t", "k", format!("{i:0>100}")).await;
    }
    let files = segments(dir.path(), "t", 0);
    let bytes: u64 = files
        .iter()
        .map(|f| std::fs::metadata(f).expect("stat").len())
        .sum();
    assert!(
        bytes <= 4 * 1024 + 512,
        "{bytes} bytes in {} segments",
        files.len()
    );
    let mut sub = join(&bus, "g", "t").await;
    let first = take(sub.as_mut(), 1).await;
    assert!(first[0].offset > 100, "the oldest records went first");
    let rest = take(sub.as_mut(), (n - 1 - first[0].offset) as usize).await;
    assert_eq!(
        rest.last().map(|e| e.offset),
        Some(n - 1),
        "the newest are kept"
    );

    let other = tempfile::tempdir().expect("tempdir");
    let nothing = EmbeddedOptions {
        retention_bytes: Some(0),
        ..EmbeddedOptions::default()
    };
    assert!(matches!(
        EmbeddedBus::open_with(other.path(), nothing).await,
        Err(Error::Invalid(_))
    ));
}

/// Records below an offset are deleted in whole segments: the sealed segments below it go
/// (their bytes returned), the one holding the offset and the active one stay; a reader
/// positioned below moves up to the new log start, and the deletion survives a reopen.
#[tokio::test]
async fn records_below_an_offset_are_deleted_in_whole_segments() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = EmbeddedOptions {
        segment_bytes: 1024,
        ..EmbeddedOptions::default()
    };
    let n = 60;
    let kept = {
        let bus = EmbeddedBus::open_with(dir.path(), options.clone())
            .await
            .expect("open");
        bus.ensure_topics(&[spec("t", 1)]).await.expect("ensure");
        for i in 0..n {
            publish(&bus, "t", "k", format!("{i:0>100}")).await;
        }
        let before = segments(dir.path(), "t", 0);
        assert!(before.len() >= 5, "{before:?}");
        // The segments wholly below offset 25 and their sizes.
        let bases: Vec<i64> = before.iter().map(|f| base_of(f)).collect();
        let doomed: Vec<&PathBuf> = before
            .iter()
            .zip(bases.iter().skip(1))
            .filter(|(_, next)| **next <= 25)
            .map(|(f, _)| f)
            .collect();
        assert!(!doomed.is_empty(), "{before:?}");
        let doomed_bytes: u64 = doomed
            .iter()
            .map(|f| std::fs::metadata(f).expect("stat").len())
            .sum();

        assert_eq!(
            bus.delete_records_before("t", 0, 0).await.expect("delete"),
            0,
            "nothing lies below offset 0"
        );
        let freed = bus.delete_records_before("t", 0, 25).await.expect("delete");
        assert_eq!(freed, doomed_bytes);
        let after = segments(dir.path(), "t", 0);
        assert_eq!(after.len(), before.len() - doomed.len(), "{after:?}");
        let start = base_of(&after[0]);
        assert!(
            start <= 25,
            "the segment holding offset 25 stays: {after:?}"
        );
        let mut sub = join(&bus, "g", "t").await;
        let got = take(sub.as_mut(), (n - start) as usize).await;
        assert_eq!(got.first().map(|e| e.offset), Some(start));
        assert_eq!(got.last().map(|e| e.offset), Some(n - 1));

        // Past the end: every sealed segment goes, the active one stays.
        bus.delete_records_before("t", 0, i64::MAX)
            .await
            .expect("delete");
        assert_eq!(segments(dir.path(), "t", 0).len(), 1);
        assert!(matches!(
            bus.delete_records_before("missing", 0, 1).await,
            Err(Error::UnknownTopic(_))
        ));
        assert!(matches!(
            bus.delete_records_before("t", 3, 1).await,
            Err(Error::Invalid(_))
        ));
        base_of(&segments(dir.path(), "t", 0)[0])
    };
    let bus = EmbeddedBus::open_with(dir.path(), options)
        .await
        .expect("reopen");
    let mut sub = join(&bus, "other", "t").await;
    let got = take(sub.as_mut(), (n - kept) as usize).await;
    assert_eq!(got.first().map(|e| e.offset), Some(kept));
    assert_eq!(
        publish(&bus, "t", "k", "next").await,
        n,
        "offsets go on after the deleted ones"
    );
}

#[tokio::test]
async fn a_directory_is_opened_by_one_bus_at_a_time() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bus = EmbeddedBus::open(dir.path()).await.expect("open");
    assert!(matches!(
        EmbeddedBus::open(dir.path()).await,
        Err(Error::Unavailable(_))
    ));
    drop(bus);
    EmbeddedBus::open(dir.path())
        .await
        .expect("open after the first closed");
}

#[tokio::test]
async fn next_is_cancel_safe() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bus = EmbeddedBus::open(dir.path()).await.expect("open");
    bus.ensure_topics(&[spec("t", 2)]).await.expect("ensure");
    let mut sub = join(&bus, "g", "t").await;
    let n = 40;
    for i in 0..n {
        publish(&bus, "t", &format!("k{i}"), format!("{i}")).await;
    }
    // Start and abandon `next` over and over; whatever completes counts.
    let mut got = Vec::new();
    for _ in 0..1000 {
        if let Some(env) = sub.next().now_or_never() {
            got.push(env.expect("next"));
        }
        tokio::task::yield_now().await;
    }
    let missing = n - got.len();
    got.extend(take(sub.as_mut(), missing).await);
    assert!(idle(sub.as_mut()).await, "nothing is delivered twice");
    let unique: BTreeSet<String> = payloads(&got).into_iter().collect();
    assert_eq!(unique.len(), n);
}

#[tokio::test]
async fn a_dropped_member_hands_its_partitions_over() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bus = EmbeddedBus::open(dir.path()).await.expect("open");
    bus.ensure_topics(&[spec("t", 2)]).await.expect("ensure");
    let mut a = join(&bus, "g", "t").await;
    let b = join(&bus, "g", "t").await;
    for i in 0..20 {
        publish(&bus, "t", &format!("k{i}"), format!("{i}")).await;
    }
    let first = take(a.as_mut(), 1).await;
    let owned = first[0].partition;
    drop(b);
    let rest = take(a.as_mut(), 19).await;
    assert!(
        rest.iter().any(|e| e.partition != owned),
        "a took over b's partition"
    );
    assert!(idle(a.as_mut()).await);
}

#[tokio::test]
async fn a_reassigned_partition_resumes_at_the_committed_offset() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bus = EmbeddedBus::open(dir.path()).await.expect("open");
    bus.ensure_topics(&[spec("t", 2)]).await.expect("ensure");
    let mut a = join(&bus, "g", "t").await;
    for i in 0..20 {
        publish(&bus, "t", &format!("k{i}"), format!("old-{i}")).await;
    }
    for env in take(a.as_mut(), 20).await {
        a.commit(&env.next_position()).await.expect("commit");
    }
    let mut b = join(&bus, "g", "t").await;
    for i in 0..20 {
        publish(&bus, "t", &format!("k{i}"), format!("new-{i}")).await;
    }
    let mut got = Vec::new();
    while got.len() < 20 {
        for sub in [&mut a, &mut b] {
            if let Some(env) = sub.next().now_or_never() {
                got.push(env.expect("next"));
            }
        }
        tokio::task::yield_now().await;
    }
    assert!(
        payloads(&got).iter().all(|p| p.starts_with("new-")),
        "{:?}",
        payloads(&got)
    );
    assert!(idle(a.as_mut()).await && idle(b.as_mut()).await);
}

/// A partition handed to another member and back while the first member was not looking (held
/// in a retry, say) is reported taken all the same: the other member may have read and
/// committed it meanwhile, so the first one starts it again from the group's commit.
#[tokio::test]
async fn a_partition_taken_and_given_back_unseen_is_reported_and_read_from_the_commit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bus = EmbeddedBus::open(dir.path()).await.expect("open");
    bus.ensure_topics(&[spec("t", 2)]).await.expect("ensure");
    let mut a = join(&bus, "g", "t").await;
    for i in 0..20 {
        publish(&bus, "t", &format!("k{i}"), format!("{i}")).await;
    }
    // Everything read, nothing committed.
    let first = take(a.as_mut(), 20).await;
    assert!(idle(a.as_mut()).await);
    let partitions: BTreeSet<i32> = first.iter().map(|e| e.partition).collect();
    assert_eq!(partitions.len(), 2, "both partitions hold records");
    // Another member joins and leaves without `a` looking in between.
    let b = join(&bus, "g", "t").await;
    drop(b);
    let taken = a.take_revoked();
    assert_eq!(taken.len(), 1, "{taken:?}");
    let (topic, partition) = taken[0].clone();
    assert_eq!(topic, "t");
    // Taken and given back after its last record was read: that record is the old
    // assignment's (a consumer skips it: it comes again from the commit).
    assert!(!a.owns("t", partition));
    assert!(!a.owns("t", 7), "no such partition");
    // Read again from the group's commit (none: the start), its records only.
    let again = take(
        a.as_mut(),
        first.iter().filter(|e| e.partition == partition).count(),
    )
    .await;
    assert!(again.iter().all(|e| e.partition == partition));
    // Read under the assignment in force: the consumer handles them.
    assert!(a.owns("t", partition));
    assert!(idle(a.as_mut()).await);
    assert_eq!(a.take_revoked(), vec![]);
}
