//! Live test of the group admin calls on a private three-node cluster, where groups have
//! different coordinators: `list_groups` asks every broker and finds every group, each listed with
//! the coordinator `describe_groups` reaches, and offsets set and read for each group go to that
//! group's coordinator.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use josefk::admin::{Admin, NewTopic};
use josefk::TopicPartition;
use josefk_harness::ClusterSpec;

use common::*;

#[tokio::test(flavor = "multi_thread")]
async fn groups_spread_over_three_coordinators_are_all_listed_and_reached() {
    let kafka = PrivateCluster::start(ClusterSpec::three_nodes()).await;
    let admin = Admin::connect(config(&kafka.bootstrap_servers()))
        .await
        .unwrap();
    let topic = unique_topic("groups-3");
    admin
        .create_topics(&[NewTopic::new(&topic, 3, 1)])
        .await
        .unwrap();
    let groups: Vec<String> = (0..12).map(|i| format!("{topic}-g{i}")).collect();
    for (i, g) in groups.iter().enumerate() {
        let offsets: Vec<(TopicPartition, i64)> = (0..3)
            .map(|p| (TopicPartition::new(&topic, p), (i * 10 + p as usize) as i64))
            .collect();
        admin.alter_group_offsets(g, &offsets).await.unwrap();
    }
    let listed: BTreeMap<String, i32> = admin
        .list_groups()
        .await
        .unwrap()
        .into_iter()
        .map(|g| (g.group_id, g.coordinator))
        .collect();
    let refs: Vec<&str> = groups.iter().map(String::as_str).collect();
    let described = admin.describe_groups(&refs).await.unwrap();
    let mut coordinators = BTreeSet::new();
    for d in &described {
        assert_eq!(
            listed.get(&d.group_id),
            Some(&d.coordinator),
            "group {} listed with its coordinator",
            d.group_id
        );
        coordinators.insert(d.coordinator);
    }
    assert!(
        coordinators.len() >= 2,
        "12 groups on one coordinator: {coordinators:?}"
    );
    for (i, g) in groups.iter().enumerate() {
        let read: Vec<i64> = admin
            .list_group_offsets(g)
            .await
            .unwrap()
            .values()
            .map(|c| c.offset)
            .collect();
        let want: Vec<i64> = (0..3).map(|p| (i * 10 + p) as i64).collect();
        assert_eq!(read, want, "group {g}");
    }
    kafka.shutdown().await;
}
