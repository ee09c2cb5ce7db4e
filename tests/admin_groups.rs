//! Live tests of the consumer-group calls of `josefk::admin::Admin` against a real Kafka broker:
//! two josefk members share a group; `list_groups` finds it, `describe_groups` gives its state,
//! assignor and each member's decoded subscription and assignment (checked against what each
//! consumer itself was assigned), `list_group_offsets` gives exactly what the members committed,
//! and `delete_groups` refuses a group with members and deletes it once they left.
//!
//! The broker comes from `KAFKA_BOOTSTRAP_SERVERS` (see `common::bootstrap`).

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use josefk::admin::Admin;
use josefk::consumer::Assignor;
use josefk::consumer::Consumer;
use josefk::ErrorCode;
use josefk::{Error, TopicPartition};
use tokio::time::Instant;

use common::members::{create_topic, group_config, produce};
use common::*;

const PARTITIONS: i32 = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_are_listed_described_offsets_read_and_deleted() {
    let bootstrap = bootstrap();
    let topic = unique_topic("admin-groups");
    let group = format!("{topic}-group");
    create_topic(&bootstrap, &topic, PARTITIONS).await;
    produce(&bootstrap, &topic, "v", 40).await;
    let admin = Admin::connect(config(&bootstrap)).await.unwrap();

    let mut a = Consumer::connect(group_config(&bootstrap, &group, vec![Assignor::Range]))
        .await
        .unwrap();
    let mut b = Consumer::connect(group_config(&bootstrap, &group, vec![Assignor::Range]))
        .await
        .unwrap();
    a.subscribe(&[&topic]).unwrap();
    b.subscribe(&[&topic]).unwrap();

    // Poll both until the group is Stable with both members holding partitions.
    let deadline = Instant::now() + Duration::from_secs(90);
    let description = loop {
        assert!(Instant::now() < deadline, "the group never became stable");
        let (ra, rb) = tokio::join!(
            a.poll(Duration::from_millis(300)),
            b.poll(Duration::from_millis(300))
        );
        ra.unwrap();
        rb.unwrap();
        if a.assignment().is_empty() || b.assignment().is_empty() {
            continue;
        }
        let d = admin.describe_groups(&[&group]).await.unwrap().remove(0);
        if d.state == "Stable" && d.members.len() == 2 {
            break d;
        }
    };
    assert_eq!(description.group_id, group);
    assert_eq!(description.protocol_type, "consumer");
    assert_eq!(description.protocol, "range");
    let mut assigned_total = Vec::new();
    for consumer in [&a, &b] {
        let member_id = consumer.group_metadata().unwrap().member_id;
        let member = description
            .members
            .iter()
            .find(|m| m.member_id == member_id)
            .unwrap_or_else(|| panic!("member {member_id} not described: {description:?}"));
        assert_eq!(member.client_id, "josefk-it");
        assert_eq!(member.subscription.as_deref(), Some(&[topic.clone()][..]));
        let mut described = member.assignment.clone().expect("assignment decoded");
        let mut own = consumer.assignment();
        described.sort();
        own.sort();
        assert_eq!(described, own, "member {member_id}");
        assigned_total.extend(own);
    }
    assigned_total.sort();
    let all: Vec<TopicPartition> = (0..PARTITIONS)
        .map(|p| TopicPartition::new(&topic, p))
        .collect();
    assert_eq!(assigned_total, all, "each partition assigned exactly once");

    let listed = admin.list_groups().await.unwrap();
    let ours = listed
        .iter()
        .find(|g| g.group_id == group)
        .unwrap_or_else(|| panic!("group {group} not listed in {listed:?}"));
    assert_eq!(ours.protocol_type, "consumer");
    assert_eq!(ours.state.as_deref(), Some("Stable"));
    assert_eq!(ours.coordinator, description.coordinator);

    // Each member commits its own partitions at distinct offsets.
    let mut committed = BTreeMap::new();
    for consumer in [&mut a, &mut b] {
        let offsets: Vec<(TopicPartition, i64)> = consumer
            .assignment()
            .into_iter()
            .map(|tp| {
                let offset = 3 + tp.partition as i64;
                (tp, offset)
            })
            .collect();
        consumer.commit_offsets(&offsets).await.unwrap();
        committed.extend(offsets);
    }
    let read = admin.list_group_offsets(&group).await.unwrap();
    let read: BTreeMap<TopicPartition, i64> =
        read.into_iter().map(|(tp, c)| (tp, c.offset)).collect();
    assert_eq!(read, committed);

    // A group with members cannot be deleted.
    let e = admin.delete_groups(&[&group]).await.unwrap_err();
    assert!(
        matches!(
            e,
            Error::Broker {
                code: ErrorCode::NonEmptyGroup,
                ..
            }
        ),
        "{e}"
    );
    a.close().await.unwrap();
    b.close().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match admin.delete_groups(&[&group]).await {
            Ok(()) => break,
            Err(Error::Broker {
                code: ErrorCode::NonEmptyGroup,
                ..
            }) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(200)).await,
            Err(e) => panic!("delete_groups after the members left: {e}"),
        }
    }
    assert!(admin.list_group_offsets(&group).await.unwrap().is_empty());
    // So is an empty group id (the coordinator would describe it as a Dead group).
    let e = admin.describe_groups(&[""]).await.expect_err("empty id");
    assert!(matches!(e, josefk::Error::InvalidArgument(_)), "{e:?}");
    assert!(!admin
        .list_groups()
        .await
        .unwrap()
        .iter()
        .any(|g| g.group_id == group));
    let gone = admin.describe_groups(&[&group]).await.unwrap().remove(0);
    assert_eq!(gone.state, "Dead");
    assert!(gone.members.is_empty());
    let e = admin.delete_groups(&[&group]).await.unwrap_err();
    assert!(
        matches!(
            e,
            Error::Broker {
                code: ErrorCode::GroupIdNotFound,
                ..
            }
        ),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_offsets_are_set_and_deleted_only_while_no_member_consumes() {
    let bootstrap = bootstrap();
    let topic = unique_topic("admin-group-offsets");
    let group = format!("{topic}-group");
    create_topic(&bootstrap, &topic, 2).await;
    produce(&bootstrap, &topic, "v", 20).await;
    let admin = Admin::connect(config(&bootstrap)).await.unwrap();
    let (p0, p1) = (
        TopicPartition::new(&topic, 0),
        TopicPartition::new(&topic, 1),
    );

    // A negative offset is refused before anything is sent, as Java does.
    let e = admin
        .alter_group_offsets(&group, &[(p0.clone(), 2), (p1.clone(), -5)])
        .await
        .expect_err("negative offset");
    assert!(matches!(e, josefk::Error::InvalidArgument(_)), "{e:?}");
    assert!(admin.list_group_offsets(&group).await.unwrap().is_empty());

    // An empty group: offsets are set as given, then one partition's deleted.
    admin
        .alter_group_offsets(&group, &[(p0.clone(), 2), (p1.clone(), 5)])
        .await
        .unwrap();
    let read: BTreeMap<TopicPartition, i64> = admin
        .list_group_offsets(&group)
        .await
        .unwrap()
        .into_iter()
        .map(|(tp, c)| (tp, c.offset))
        .collect();
    assert_eq!(read, BTreeMap::from([(p0.clone(), 2), (p1.clone(), 5)]));
    admin
        .delete_group_offsets(&group, std::slice::from_ref(&p0))
        .await
        .unwrap();
    let read: Vec<TopicPartition> = admin
        .list_group_offsets(&group)
        .await
        .unwrap()
        .into_keys()
        .collect();
    assert_eq!(read, vec![p1.clone()]);

    // A member consuming the topic: the coordinator refuses both.
    let mut member = Consumer::connect(group_config(&bootstrap, &group, vec![Assignor::Range]))
        .await
        .unwrap();
    member.subscribe(&[&topic]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while member.assignment().is_empty() {
        assert!(Instant::now() < deadline, "never assigned");
        member.poll(Duration::from_millis(300)).await.unwrap();
    }
    let e = admin
        .alter_group_offsets(&group, &[(p0.clone(), 7)])
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Broker { .. }), "{e}");
    let e = admin
        .delete_group_offsets(&group, std::slice::from_ref(&p1))
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::Broker {
                code: ErrorCode::GroupSubscribedToTopic,
                ..
            }
        ),
        "{e}"
    );
    member.close().await.unwrap();
}
