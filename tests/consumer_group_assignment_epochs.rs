//! Live test of KIP-1251 (assignment epochs, Kafka 4.3+) as it reaches an exactly-once client.
//!
//! Under KIP-848 a member's epoch moves whenever its assignment moves. Before KIP-1251 the group
//! coordinator accepted a (transactional) offset commit only at the member's current epoch, so a
//! commit sent just before the member learned of a new epoch was fenced although the member still
//! owned the partitions. Since 4.3 the coordinator keeps, per assigned partition, the epoch at
//! which the member got it, and accepts `assignment epoch <= commit epoch <= member epoch`. The
//! client sends nothing new for this (ConsumerGroupHeartbeat stays v0–1 and TxnOffsetCommit
//! carries the member epoch as before): josefk's part is to send the epoch it knows, which it
//! does. This test pins the broker behaviour josefk's exactly-once copy relies on:
//!
//! - a transactional commit with an older epoch, for partitions the member has held since that
//!   epoch, is accepted (it was fenced before 4.3);
//! - the same older epoch for partitions the member got back later is refused, and the group's
//!   committed offsets do not move.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::members::{create_topic, produce};
use josefk::consumer::{AutoOffsetReset, CommitMode, Consumer, ConsumerConfig, GroupProtocol};
use josefk::producer::{Producer, ProducerConfig};
use josefk::{Guarantee, TopicPartition};
use tokio::time::Instant;

const PARTITIONS: i32 = 4;

async fn member(bootstrap: &str, group: &str, topic: &str) -> Consumer {
    let config = ConsumerConfig::with_client(common::config(bootstrap))
        .group_id(group)
        .group_protocol(GroupProtocol::Consumer)
        .guarantee(Guarantee::ExactlyOnce)
        .commit_mode(CommitMode::Manual)
        .auto_offset_reset(AutoOffsetReset::Earliest)
        .fetch_max_wait(Duration::from_millis(100));
    let mut c = Consumer::connect(config).await.unwrap();
    c.subscribe(&[topic]).unwrap();
    c
}

fn partitions(c: &Consumer) -> BTreeSet<i32> {
    c.assignment().iter().map(|tp| tp.partition).collect()
}

/// Polls every member in turn (reconciliation happens in `poll`) until `done` holds for their
/// assignments; generous: the broker's heartbeat interval is 5 s and the machine is loaded.
async fn poll_until(members: &mut [&mut Consumer], done: impl Fn(&[BTreeSet<i32>]) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let owned: Vec<BTreeSet<i32>> = members.iter().map(|c| partitions(c)).collect();
        if done(&owned) {
            return;
        }
        assert!(Instant::now() < deadline, "assignments stayed {owned:?}");
        for c in members.iter_mut() {
            c.poll(Duration::from_millis(100)).await.unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_older_member_epoch_commits_partitions_held_since_and_is_fenced_for_later_ones() {
    let bootstrap = common::bootstrap();
    let topic = common::unique_topic("kip1251");
    let group = format!("{topic}-g");
    create_topic(&bootstrap, &topic, PARTITIONS).await;
    produce(&bootstrap, &topic, "r", 40).await;
    let all: BTreeSet<i32> = (0..PARTITIONS).collect();

    // A alone owns every partition, at epoch `old`.
    let mut a = member(&bootstrap, &group, &topic).await;
    poll_until(&mut [&mut a], |o| o[0] == all).await;
    let old = a.group_metadata().unwrap();

    // B joins: A gives two partitions away and its member epoch moves on.
    let mut b = member(&bootstrap, &group, &topic).await;
    poll_until(&mut [&mut a, &mut b], |o| {
        o[0].len() == 2 && o[1].len() == 2
    })
    .await;
    let kept = partitions(&a);
    let middle = a.group_metadata().unwrap();
    assert!(
        middle.generation_id > old.generation_id,
        "the member epoch moved with the assignment: {old:?} → {middle:?}"
    );

    // B leaves: its partitions come back to A at a newer epoch still.
    b.close().await.unwrap();
    poll_until(&mut [&mut a], |o| o[0] == all).await;
    let now = a.group_metadata().unwrap();
    assert!(
        now.generation_id > middle.generation_id,
        "{middle:?} → {now:?}"
    );
    let returned: BTreeSet<i32> = all.difference(&kept).copied().collect();
    eprintln!(
        "epochs: all at {}, kept {kept:?} at {}, {returned:?} back at {}",
        old.generation_id, middle.generation_id, now.generation_id
    );

    let producer = Producer::connect(
        ProducerConfig::with_client(common::config(&bootstrap))
            .guarantee(Guarantee::ExactlyOnce)
            .transactional_id(format!("{group}-txn")),
    )
    .await
    .unwrap();
    producer.init_transactions().await.unwrap();
    let tps = |set: &BTreeSet<i32>| -> Vec<TopicPartition> {
        set.iter()
            .map(|p| TopicPartition::new(&topic, *p))
            .collect()
    };
    let offsets = |set: &BTreeSet<i32>, at: i64| -> Vec<(TopicPartition, i64, Option<String>)> {
        tps(set).into_iter().map(|tp| (tp, at, None)).collect()
    };

    // The epoch A had before its assignment moved twice, for partitions it has held since then.
    producer.begin_transaction().unwrap();
    producer
        .send_offsets_to_transaction(&offsets(&kept, 7), &old)
        .await
        .expect("an older epoch within the partitions' assignment epochs is accepted");
    producer
        .commit_transaction()
        .await
        .expect("commit the offsets");
    let committed = a.committed(&tps(&kept)).await.unwrap();
    assert!(
        committed.iter().all(|(_, o)| *o == Some(7)),
        "committed {committed:?}"
    );

    // The same epoch for partitions A got back after it: fenced, nothing committed.
    producer.begin_transaction().unwrap();
    let refused = async {
        producer
            .send_offsets_to_transaction(&offsets(&returned, 9), &old)
            .await?;
        producer.commit_transaction().await
    }
    .await
    .expect_err("partitions assigned after the commit's epoch are fenced");
    eprintln!("refused: {refused} ({:?})", refused.class());
    let _ = producer.abort_transaction().await;
    let committed = a.committed(&tps(&returned)).await.unwrap();
    assert!(
        committed.iter().all(|(_, o)| *o != Some(9)),
        "committed {committed:?}"
    );
    a.close().await.unwrap();
}
