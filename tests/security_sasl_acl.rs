//! Authorization over SASL: a node with Kafka's StandardAuthorizer (no ACL means denied), ACLs
//! for `User:bob` set with Kafka's AclCommand, and bob's clients refused where he has no ACL:
//! TOPIC_AUTHORIZATION_FAILED fails that send / that fetch, not the client;
//! GROUP_AUTHORIZATION_FAILED on the group path; TRANSACTIONAL_ID_AUTHORIZATION_FAILED on
//! `init_transactions`.

mod common;

use std::time::{Duration, Instant};

use josefk::admin::{Admin, NewTopic};
use josefk::consumer::{AutoOffsetReset, CommitMode, Consumer, ConsumerConfig};
use josefk::producer::{Producer, ProducerConfig};
use josefk::security::SecurityProtocol;
use josefk::ErrorCode;
use josefk::{ClientConfig, Error, ProducerRecord, TopicPartition};
use josefk_harness::{run_java_tool, ClusterSpec, Listener};

fn bob(bootstrap: &str) -> ClientConfig {
    common::config(bootstrap)
        .security_protocol(SecurityProtocol::SaslPlaintext)
        .sasl_plain("bob", "bob-secret")
}

fn code_of(e: &Error) -> Option<ErrorCode> {
    e.kafka_code()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthorized_topic_group_and_transactional_id_fail_their_own_calls() {
    let kafka = common::PrivateCluster::start(
        ClusterSpec::single()
            .listener(Listener::sasl_plain(
                "SASL",
                &[("admin", "admin-secret"), ("bob", "bob-secret")],
            ))
            // ANONYMOUS is a super user too: the PLAINTEXT listener (between brokers, the
            // controller, and this test's admin calls) authenticates nobody.
            .authorizer(&["admin"]),
    )
    .await;
    let plaintext = kafka.bootstrap_servers();
    let sasl = kafka.with(|c| c.listener_bootstrap("SASL")).await;
    let secure = common::unique_topic("acl-secure");
    let nowrite = common::unique_topic("acl-nowrite");
    let admin = Admin::connect(common::config(&plaintext)).await.unwrap();
    admin
        .create_topics(&[NewTopic::new(&secure, 1, 1), NewTopic::new(&nowrite, 1, 1)])
        .await
        .unwrap();
    let acls: Vec<Vec<String>> = vec![
        vec![
            "--topic",
            &secure,
            "--operation",
            "Write",
            "--operation",
            "Read",
            "--operation",
            "Describe",
        ],
        vec!["--topic", &nowrite, "--operation", "Describe"],
        vec!["--group", "g-allowed", "--operation", "Read"],
    ]
    .into_iter()
    .map(|v| v.into_iter().map(str::to_owned).collect())
    .collect();
    for acl in acls {
        let bootstrap = plaintext.clone();
        let output = kafka
            .with(move |c| {
                let mut args = vec![
                    "--bootstrap-server",
                    bootstrap.as_str(),
                    "--add",
                    "--allow-principal",
                    "User:bob",
                ];
                args.extend(acl.iter().map(String::as_str));
                run_java_tool(
                    c.dist(),
                    "org.apache.kafka.tools.AclCommand",
                    &args,
                    Duration::from_secs(120),
                )
            })
            .await
            .expect("AclCommand runs");
        assert!(
            output.status.success(),
            "AclCommand failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    // Produce: the unauthorized send fails on its own; the producer keeps working.
    let producer = Producer::connect(ProducerConfig::with_client(bob(&sasl)))
        .await
        .expect("bob connects");
    let ok = producer
        .send(ProducerRecord::new(&secure, "allowed-1"))
        .await
        .unwrap()
        .await
        .expect("bob may write to the secure topic");
    let refused = async {
        producer
            .send(ProducerRecord::new(&nowrite, "denied"))
            .await?
            .await
    }
    .await
    .expect_err("bob may not write to nowrite");
    assert_eq!(
        code_of(&refused),
        Some(ErrorCode::TopicAuthorizationFailed),
        "{refused}"
    );
    let after = producer
        .send(ProducerRecord::new(&secure, "allowed-2"))
        .await
        .expect("the producer still takes records")
        .await
        .expect("and writes them");
    assert_eq!(after.offset, ok.offset.map(|o| o + 1));
    producer.close(Duration::from_secs(30)).await.unwrap();

    // Fetch: reading the denied topic fails that poll; the secure topic still reads.
    let mut consumer = Consumer::connect(
        ConsumerConfig::with_client(bob(&sasl)).auto_offset_reset(AutoOffsetReset::Earliest),
    )
    .await
    .unwrap();
    consumer
        .assign(&[TopicPartition::new(nowrite.as_str(), 0)])
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let e = loop {
        assert!(
            Instant::now() < deadline,
            "no authorization error from fetch"
        );
        match consumer.poll(Duration::from_secs(1)).await {
            Ok(records) => assert!(records.is_empty(), "read a denied topic"),
            Err(e) => break e,
        }
    };
    assert_eq!(
        code_of(&e),
        Some(ErrorCode::TopicAuthorizationFailed),
        "{e}"
    );
    consumer
        .assign(&[TopicPartition::new(secure.as_str(), 0)])
        .await
        .unwrap();
    let mut values = Vec::new();
    while values.len() < 2 {
        assert!(
            Instant::now() < deadline,
            "secure topic not read: {values:?}"
        );
        for r in consumer
            .poll(Duration::from_secs(1))
            .await
            .expect("poll secure")
        {
            values.push(String::from_utf8(r.value.unwrap().to_vec()).unwrap());
        }
    }
    assert_eq!(values, ["allowed-1", "allowed-2"]);

    // Group: a group without a Read ACL is refused on the group path.
    let mut member = Consumer::connect(
        ConsumerConfig::with_client(bob(&sasl))
            .group_id("g-denied")
            .auto_offset_reset(AutoOffsetReset::Earliest)
            .commit_mode(CommitMode::Manual),
    )
    .await
    .unwrap();
    member.subscribe(&[&secure]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let e = loop {
        assert!(Instant::now() < deadline, "no group authorization error");
        match member.poll(Duration::from_secs(1)).await {
            Ok(records) => assert!(records.is_empty(), "read through a denied group"),
            Err(e) => break e,
        }
    };
    assert_eq!(
        code_of(&e),
        Some(ErrorCode::GroupAuthorizationFailed),
        "{e}"
    );

    // Transactions: no ACL on the transactional id.
    let txn =
        Producer::connect(ProducerConfig::with_client(bob(&sasl)).transactional_id("tx-denied"))
            .await
            .unwrap();
    let e = txn
        .init_transactions()
        .await
        .expect_err("tx-denied has no ACL");
    assert_eq!(
        code_of(&e),
        Some(ErrorCode::TransactionalIdAuthorizationFailed),
        "{e}"
    );
    kafka.shutdown().await;
}
