//! Live test of `Admin::describe_consumer_groups` (ConsumerGroupDescribe) against a real Kafka
//! 4.x, with josefk members of a KIP-848 `consumer` group: one subscribed by pattern, one by
//! name. Epochs, assignor, subscriptions and assignments are checked against what the members
//! themselves hold.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::members::create_topic;
use josefk::admin::{Admin, ConsumerGroupDescription};
use josefk::consumer::{AutoOffsetReset, CommitMode, Consumer, ConsumerConfig, GroupProtocol};
use josefk::error::ErrorCode;
use josefk::{Error, TopicPartition};
use tokio::time::Instant;

fn member_config(bootstrap: &str, group: &str, client_id: &str) -> ConsumerConfig {
    let mut c = ConsumerConfig::with_client(common::config(bootstrap))
        .group_id(group)
        .group_protocol(GroupProtocol::Consumer)
        .auto_offset_reset(AutoOffsetReset::Earliest)
        .fetch_max_wait(Duration::from_millis(100))
        .commit_mode(CommitMode::Manual);
    c.client.client_id = client_id.to_owned();
    c
}

fn settled(d: &ConsumerGroupDescription, held: &[Vec<TopicPartition>; 2]) -> bool {
    d.state == "Stable"
        && d.members.len() == 2
        && held.iter().all(|h| h.len() == 2)
        && d.members
            .iter()
            .all(|m| m.assignment == m.target_assignment && m.member_epoch == d.group_epoch)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_consumer_groups_reports_epochs_subscriptions_and_assignments() {
    let bootstrap = common::bootstrap();
    let base = common::unique_topic("describe-cg");
    let topic = format!("{base}-t");
    create_topic(&bootstrap, &topic, 4).await;
    let group = format!("{base}-group");
    let pattern = format!("{base}-.*");

    let mut by_pattern = Consumer::connect(member_config(&bootstrap, &group, "by-pattern"))
        .await
        .expect("connect");
    by_pattern.subscribe_pattern(&pattern).expect("subscribe");
    let mut by_name = Consumer::connect(member_config(&bootstrap, &group, "by-name"))
        .await
        .expect("connect");
    by_name.subscribe(&[topic.as_str()]).expect("subscribe");
    let admin = Admin::connect(common::config(&bootstrap)).await.unwrap();

    let deadline = Instant::now() + Duration::from_secs(90);
    let (described, held) = loop {
        by_pattern
            .poll(Duration::from_millis(200))
            .await
            .expect("poll");
        by_name
            .poll(Duration::from_millis(200))
            .await
            .expect("poll");
        let held = [by_pattern.assignment(), by_name.assignment()];
        let described = match admin.describe_consumer_groups(&[group.as_str()]).await {
            Ok(mut d) => d.remove(0),
            // Before the first heartbeat reaches the coordinator the group does not exist.
            Err(Error::Broker {
                code: ErrorCode::GroupIdNotFound,
                ..
            }) => {
                assert!(Instant::now() < deadline, "the group never appeared");
                continue;
            }
            Err(e) => panic!("describe: {e}"),
        };
        if settled(&described, &held) {
            break (described, held);
        }
        assert!(
            Instant::now() < deadline,
            "group did not settle: {described:#?}, members hold {held:?}"
        );
    };

    assert_eq!(described.group_id, group);
    assert_eq!(
        described.assignor, "uniform",
        "the broker's default assignor"
    );
    assert!(described.group_epoch >= 2, "two joins bump the epoch twice");
    assert_eq!(described.assignment_epoch, described.group_epoch);
    let mut all = BTreeSet::new();
    for (client, mine) in ["by-pattern", "by-name"].iter().zip(&held) {
        let m = described
            .members
            .iter()
            .find(|m| m.client_id == *client)
            .unwrap_or_else(|| panic!("member {client} described: {described:#?}"));
        let mut mine = mine.clone();
        mine.sort();
        assert_eq!(&m.assignment, &mine, "{client}: what it holds");
        assert_eq!(m.target_assignment, mine, "{client}: its target");
        assert_eq!(m.uses_consumer_protocol, Some(true));
        assert_eq!(m.group_instance_id, None);
        assert!(!m.member_id.is_empty() && !m.client_host.is_empty());
        all.extend(m.assignment.iter().cloned());
        if *client == "by-pattern" {
            assert_eq!(m.subscribed_topic_regex.as_deref(), Some(pattern.as_str()));
            assert!(m.subscribed_topics.is_empty(), "{:?}", m.subscribed_topics);
        } else {
            assert_eq!(m.subscribed_topic_regex, None);
            assert_eq!(m.subscribed_topics, vec![topic.clone()]);
        }
    }
    let every: BTreeSet<TopicPartition> = (0..4).map(|p| TopicPartition::new(&topic, p)).collect();
    assert_eq!(all, every, "the two members share the four partitions");

    // A group that does not exist (or is classic) is an error naming it.
    let missing = format!("{base}-missing");
    match admin.describe_consumer_groups(&[missing.as_str()]).await {
        Err(
            e @ Error::Broker {
                code: ErrorCode::GroupIdNotFound,
                ..
            },
        ) => assert!(e.to_string().contains(&missing), "{e}"),
        other => panic!("expected GROUP_ID_NOT_FOUND, got {other:?}"),
    }

    by_pattern.close().await.expect("close");
    by_name.close().await.expect("close");
    admin
        .delete_topics(&[topic.as_str()])
        .await
        .expect("clean up");
}
