//! Live tests of consumer-group membership against a real Kafka: members sharing partitions
//! under each assignor, partitions moving when a member leaves, is killed or stops polling,
//! cooperative rebalances moving only what must move, static membership, topics appearing after
//! subscribing, and a session timeout the broker refuses. Commit semantics are in
//! `consumer_commits.rs`, a group shared with Java's consumer in `consumer_group_java.rs`.
//!
//! "Killed" means the consumer is dropped without `close`: its tasks stop, no LeaveGroup is sent,
//! and the coordinator only notices when its session times out — what a crashed process does.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::members::*;
use josefk::consumer::Assignor;
use josefk::consumer::{Consumer, RebalanceListener};
use josefk::TopicPartition;
use tokio::time::Instant;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_members_share_partitions_under_each_assignor() {
    let bootstrap = common::bootstrap();
    for assignor in [
        Assignor::Range,
        Assignor::RoundRobin,
        Assignor::CooperativeSticky,
    ] {
        let topic = common::unique_topic(&format!("share-{}", assignor.name()));
        let group = format!("{topic}-g");
        create_topic(&bootstrap, &topic, 6).await;
        produce(&bootstrap, &topic, "a", 600).await;
        let board = SharedBoard::default();
        let mut members = Vec::new();
        for id in 0..3 {
            let config =
                group_config(&bootstrap, &group, vec![assignor]).client_id(&format!("m{id}"));
            members.push(start_member(id, config, &topic, board.clone()).await);
        }
        let stable = wait_stable(&board, &[0, 1, 2], &topic, 6, Duration::from_secs(60)).await;
        wait_delivered(&board, 600, Duration::from_secs(60)).await;
        let mut layouts: Vec<Vec<i32>> = stable.values().map(partitions_of).collect();
        layouts.sort();
        match assignor {
            // Members ordered by member id get consecutive ranges.
            Assignor::Range => assert_eq!(layouts, vec![vec![0, 1], vec![2, 3], vec![4, 5]]),
            // Partitions dealt round the members in member-id order.
            Assignor::RoundRobin => assert_eq!(layouts, vec![vec![0, 3], vec![1, 4], vec![2, 5]]),
            Assignor::CooperativeSticky => {
                assert!(layouts.iter().all(|l| l.len() == 2), "{layouts:?}")
            }
            other => panic!("no expected layout for {other:?}"),
        }
        assert_single_owner_per_generation(&board);
        for m in members {
            m.stop(Ctl::Close).await;
        }
        eprintln!("{}: {layouts:?}", assignor.name());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn partitions_of_leaving_and_killed_members_move_to_the_others() {
    let bootstrap = common::bootstrap();
    let topic = common::unique_topic("move");
    let group = format!("{topic}-g");
    create_topic(&bootstrap, &topic, 6).await;
    produce(&bootstrap, &topic, "a", 300).await;
    let board = SharedBoard::default();
    let mut members = BTreeMap::new();
    for id in 0..3 {
        let config = group_config(&bootstrap, &group, vec![Assignor::Range]);
        members.insert(id, start_member(id, config, &topic, board.clone()).await);
    }
    wait_stable(&board, &[0, 1, 2], &topic, 6, Duration::from_secs(60)).await;
    wait_delivered(&board, 300, Duration::from_secs(60)).await;

    // Member 0 leaves: the others take its partitions.
    let t = Instant::now();
    members.remove(&0).unwrap().stop(Ctl::Close).await;
    board.lock().unwrap().assignments.remove(&0);
    let after_leave = wait_stable(&board, &[1, 2], &topic, 6, Duration::from_secs(60)).await;
    eprintln!("after leave ({:?}): {after_leave:?}", t.elapsed());
    produce(&bootstrap, &topic, "b", 300).await;
    wait_delivered(&board, 600, Duration::from_secs(60)).await;

    // Member 1 is killed: after its session times out, member 2 has everything.
    let t = Instant::now();
    members.remove(&1).unwrap().stop(Ctl::Kill).await;
    board.lock().unwrap().assignments.remove(&1);
    let after_kill = wait_stable(&board, &[2], &topic, 6, SESSION * 5).await;
    eprintln!("after kill ({:?}): {after_kill:?}", t.elapsed());
    assert_eq!(after_kill[&2].len(), 6);
    produce(&bootstrap, &topic, "c", 300).await;
    wait_delivered(&board, 900, Duration::from_secs(60)).await;
    assert_single_owner_per_generation(&board);
    members.remove(&2).unwrap().stop(Ctl::Close).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cooperative_sticky_moves_only_what_must_move() {
    let bootstrap = common::bootstrap();
    let topic = common::unique_topic("coop");
    let group = format!("{topic}-g");
    create_topic(&bootstrap, &topic, 6).await;
    let board = SharedBoard::default();
    let config = || group_config(&bootstrap, &group, vec![Assignor::CooperativeSticky]);
    let m0 = start_member(0, config(), &topic, board.clone()).await;
    let m1 = start_member(1, config(), &topic, board.clone()).await;
    let before = wait_stable(&board, &[0, 1], &topic, 6, Duration::from_secs(60)).await;
    board.lock().unwrap().revoked.clear();

    let m2 = start_member(2, config(), &topic, board.clone()).await;
    let after = wait_stable(&board, &[0, 1, 2], &topic, 6, Duration::from_secs(60)).await;
    for old in [0, 1] {
        assert!(
            after[&old].is_subset(&before[&old]),
            "member {old} gained partitions: {:?} → {:?}",
            before[&old],
            after[&old]
        );
        assert_eq!(
            after[&old].len(),
            2,
            "member {old} gave up exactly one partition"
        );
        // Cooperative: only the moving partition was ever revoked, never the whole assignment.
        let moved: BTreeSet<TopicPartition> =
            before[&old].difference(&after[&old]).cloned().collect();
        let revoked: BTreeSet<TopicPartition> = board
            .lock()
            .unwrap()
            .revoked
            .get(&old)
            .map(|sets| sets.iter().flatten().cloned().collect())
            .unwrap_or_default();
        assert_eq!(revoked, moved, "member {old} revoked more than moved");
    }
    for m in [m0, m1, m2] {
        m.stop(Ctl::Close).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_static_member_restarting_within_its_session_keeps_its_partitions() {
    let bootstrap = common::bootstrap();
    let topic = common::unique_topic("static");
    let group = format!("{topic}-g");
    create_topic(&bootstrap, &topic, 4).await;
    let board = SharedBoard::default();
    let config = |instance: &str| {
        group_config(&bootstrap, &group, vec![Assignor::Range]).group_instance_id(instance)
    };
    let a = start_member(0, config("a"), &topic, board.clone()).await;
    let b = start_member(1, config("b"), &topic, board.clone()).await;
    let before = wait_stable(&board, &[0, 1], &topic, 4, Duration::from_secs(60)).await;
    let generation = board.lock().unwrap().assignments[&1].0;

    // Restart "b" (killed, not left) and let it rejoin with the same instance id.
    b.stop(Ctl::Kill).await;
    board.lock().unwrap().assignments.remove(&1);
    let b = start_member(1, config("b"), &topic, board.clone()).await;
    let after = wait_stable(&board, &[0, 1], &topic, 4, Duration::from_secs(60)).await;
    assert_eq!(after, before, "same partitions after a static restart");
    let b_generation = board.lock().unwrap().assignments[&1].0;
    assert_eq!(
        b_generation, generation,
        "no rebalance: the generation did not move"
    );
    for m in [a, b] {
        m.stop(Ctl::Close).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_topic_created_after_subscribing_gets_assigned() {
    let bootstrap = common::bootstrap();
    let present = common::unique_topic("sub-present");
    let later = common::unique_topic("sub-later");
    let group = format!("{present}-g");
    create_topic(&bootstrap, &present, 2).await;
    let mut config = group_config(&bootstrap, &group, vec![Assignor::Range]);
    config.client.metadata_max_age = Duration::from_millis(500);
    let mut c = Consumer::connect(config).await.unwrap();
    c.subscribe(&[&present, &later]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while c.assignment().len() != 2 {
        assert!(Instant::now() < deadline, "never assigned {present}");
        c.poll(Duration::from_millis(200)).await.unwrap();
    }

    create_topic(&bootstrap, &later, 3).await;
    produce(&bootstrap, &later, "late", 30).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut got = BTreeSet::new();
    while got.len() < 30 {
        assert!(
            Instant::now() < deadline,
            "records of the new topic: {} of 30, assignment {:?}",
            got.len(),
            c.assignment()
        );
        for r in c.poll(Duration::from_millis(200)).await.unwrap() {
            assert_eq!(&*r.topic, later.as_str());
            got.insert((r.partition, r.offset));
        }
    }
    assert_eq!(c.assignment().len(), 5, "2 + 3 partitions");
    c.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_session_timeout_the_broker_refuses_is_a_clear_fatal_error() {
    let bootstrap = common::bootstrap();
    let topic = common::unique_topic("bad-session");
    let group = format!("{topic}-g");
    create_topic(&bootstrap, &topic, 1).await;
    // The broker's group.min.session.timeout.ms is 6 s.
    let config = group_config(&bootstrap, &group, vec![Assignor::Range])
        .session_timeout(Duration::from_millis(1000))
        .heartbeat_interval(Duration::from_millis(200));
    let mut c = Consumer::connect(config).await.unwrap();
    c.subscribe(&[&topic]).unwrap();
    let e = c.poll(Duration::from_secs(20)).await.unwrap_err();
    assert_eq!(
        e.kafka_code(),
        Some(josefk::ErrorCode::InvalidSessionTimeout),
        "{e}"
    );
    assert_eq!(e.class(), josefk::ErrorClass::Fatal);
    assert!(
        e.to_string().contains(&group),
        "the error names the group: {e}"
    );
}

/// Records the partitions the listener was told were lost.
struct LostLog(Arc<Mutex<Vec<TopicPartition>>>);

impl RebalanceListener for LostLog {
    fn on_partitions_lost(&mut self, partitions: &[TopicPartition]) {
        self.0.lock().unwrap().extend_from_slice(partitions);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_member_that_stops_polling_leaves_and_its_partitions_are_lost_not_revoked() {
    let bootstrap = common::bootstrap();
    let topic = common::unique_topic("pollgap");
    let group = format!("{topic}-g");
    create_topic(&bootstrap, &topic, 2).await;
    let board = SharedBoard::default();
    let other = start_member(
        1,
        group_config(&bootstrap, &group, vec![Assignor::Range]),
        &topic,
        board.clone(),
    )
    .await;

    let lost: Arc<Mutex<Vec<TopicPartition>>> = Arc::default();
    let mut slow = Consumer::connect(
        group_config(&bootstrap, &group, vec![Assignor::Range])
            .max_poll_interval(Duration::from_secs(2)),
    )
    .await
    .unwrap();
    slow.subscribe(&[&topic]).unwrap();
    slow.set_rebalance_listener(LostLog(lost.clone()));
    let deadline = Instant::now() + Duration::from_secs(30);
    while slow.assignment().len() != 1 {
        assert!(Instant::now() < deadline, "no 1/1 split");
        slow.poll(Duration::from_millis(200)).await.unwrap();
    }
    let held = slow.assignment();
    let generation = slow.group_metadata().unwrap().generation_id;

    // No poll for longer than max.poll.interval.ms: the heartbeat task leaves the group and the
    // other member takes both partitions in a later generation.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let other_now = board.lock().unwrap().assignments.get(&1).cloned();
        if other_now.is_some_and(|(g, set)| g > generation && set.len() == 2) {
            break;
        }
        assert!(Instant::now() < deadline, "the idle member never left");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The next poll finds the partitions gone: lost (they may be someone else's), then rejoins.
    let deadline = Instant::now() + Duration::from_secs(30);
    while lost.lock().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "partitions never reported lost");
        slow.poll(Duration::from_millis(200)).await.unwrap();
    }
    assert_eq!(*lost.lock().unwrap(), held);
    wait_until_split(&mut slow, &board).await;
    slow.close().await.unwrap();
    other.stop(Ctl::Close).await;
}

/// Polls `slow` until it and member 1 hold one partition each.
async fn wait_until_split(slow: &mut Consumer, board: &SharedBoard) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        slow.poll(Duration::from_millis(200)).await.unwrap();
        let theirs = board
            .lock()
            .unwrap()
            .assignments
            .get(&1)
            .map_or(0, |(_, s)| s.len());
        if slow.assignment().len() == 1 && theirs == 1 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "rejoined member never got a partition back"
        );
    }
}
