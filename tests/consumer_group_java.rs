//! A consumer group shared by josefk and Java's own consumer (`VerifiableConsumer`), under range
//! and cooperative-sticky, with either side leading (the leader runs the assignor for both): the
//! two consumers' protocol bytes must agree for the split to happen at all.

mod common;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::members::*;
use josefk::consumer::Assignor;
use tokio::time::Instant;

/// Partition numbers in one VerifiableConsumer JSON event line.
fn json_partitions(line: &str) -> BTreeSet<i32> {
    line.split("\"partition\":")
        .skip(1)
        .filter_map(|rest| {
            let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
            digits.parse().ok()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn josefk_and_java_consumers_share_one_group() {
    for (assignor, java_class) in [
        (
            Assignor::Range,
            "org.apache.kafka.clients.consumer.RangeAssignor",
        ),
        (
            Assignor::CooperativeSticky,
            "org.apache.kafka.clients.consumer.CooperativeStickyAssignor",
        ),
    ] {
        // The first member to join leads the group and runs the assignor for both.
        for java_leads in [true, false] {
            share_one_group_with_java(assignor, java_class, java_leads).await;
        }
    }
}

/// Java's own consumer and josefk in one group, both offering only `assignor`; the first to join
/// (Java if `java_leads`) is the leader.
async fn share_one_group_with_java(assignor: Assignor, java_class: &str, java_leads: bool) {
    use std::io::BufRead;

    let bootstrap = common::bootstrap();
    let topic = common::unique_topic(&format!("java-group-{}", assignor.name()));
    let group = format!("{topic}-g");
    create_topic(&bootstrap, &topic, 6).await;
    let board = SharedBoard::default();
    let config = group_config(&bootstrap, &group, vec![assignor]);
    let mut member = None;
    if !java_leads {
        member = Some(start_member(0, config.clone(), &topic, board.clone()).await);
        wait_stable(&board, &[0], &topic, 6, Duration::from_secs(60)).await;
    }

    let args = [
        "--bootstrap-server",
        &bootstrap,
        "--topic",
        &topic,
        "--group-id",
        &group,
        "--session-timeout",
        "6000",
        "--assignment-strategy",
        java_class,
    ]
    .map(str::to_owned);
    let mut java = tokio::task::spawn_blocking(move || {
        let dist = josefk_harness::KafkaDist::provision().expect("provision Kafka's tools");
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        josefk_harness::spawn_java_tool(&dist, "org.apache.kafka.tools.VerifiableConsumer", &args)
            .expect("spawn VerifiableConsumer")
    })
    .await
    .unwrap();
    let events: Arc<Mutex<Vec<String>>> = Arc::default();
    let stdout = java.take_stdout().expect("stdout");
    let sink = events.clone();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            sink.lock().unwrap().push(line);
        }
    });
    let stderr = java.take_stderr().expect("stderr");
    std::thread::spawn(move || {
        std::io::copy(&mut std::io::BufReader::new(stderr), &mut std::io::sink())
    });
    // Java's current assignment, replayed from its events (eager: revoke all, assign all;
    // cooperative: assigned and revoked are the increments).
    let java_assigned = |events: &Arc<Mutex<Vec<String>>>| {
        let mut held: Option<BTreeSet<i32>> = None;
        for line in events.lock().unwrap().iter() {
            if line.contains("\"name\":\"partitions_assigned\"") {
                held.get_or_insert_with(BTreeSet::new)
                    .extend(json_partitions(line));
            } else if line.contains("\"name\":\"partitions_revoked\"")
                || line.contains("\"name\":\"partitions_lost\"")
            {
                if let Some(h) = held.as_mut() {
                    for p in json_partitions(line) {
                        h.remove(&p);
                    }
                }
            }
        }
        held
    };
    if java_leads {
        let deadline = Instant::now() + Duration::from_secs(60);
        while java_assigned(&events).is_none_or(|p| p.len() != 6) {
            assert!(
                Instant::now() < deadline,
                "Java never got the 6 partitions: {:?}",
                events.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        member = Some(start_member(0, config, &topic, board.clone()).await);
    }
    let member = member.expect("started");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mine = board
            .lock()
            .unwrap()
            .assignments
            .get(&0)
            .map(|(_, s)| partitions_of(s))
            .unwrap_or_default();
        let theirs = java_assigned(&events).unwrap_or_default();
        if mine.len() == 3 && theirs.len() == 3 {
            let mine: BTreeSet<i32> = mine.into_iter().collect();
            assert!(
                mine.is_disjoint(&theirs),
                "josefk {mine:?}, Java {theirs:?}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no 3/3 split: josefk {mine:?}, Java {theirs:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Records on every partition: josefk reads exactly its three partitions' records.
    produce(&bootstrap, &topic, "a", 600).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (mine, got) = {
            let b = board.lock().unwrap();
            let mine: BTreeSet<i32> = b.assignments[&0].1.iter().map(|tp| tp.partition).collect();
            let got: BTreeSet<i32> = b
                .deliveries
                .iter()
                .map(|(_, _, tp, _)| tp.partition)
                .collect();
            (mine, got)
        };
        assert!(
            got.is_subset(&mine),
            "josefk read {got:?} but owns {mine:?}"
        );
        if got == mine {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "josefk did not read its partitions"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Java leaves: josefk takes over everything.
    tokio::task::spawn_blocking(move || java.stop(Duration::from_secs(20)).expect("stop Java"))
        .await
        .unwrap();
    let all = wait_stable(&board, &[0], &topic, 6, Duration::from_secs(60)).await;
    assert_eq!(all[&0].len(), 6);
    member.stop(Ctl::Close).await;
}
