//! Live test of the admin client's ACL calls (`create_acls`, `describe_acls`, `delete_acls`)
//! against a private node running Kafka's StandardAuthorizer (no ACL means denied; the admin
//! connects over PLAINTEXT as the super user ANONYMOUS, `User:bob` over SASL/PLAIN):
//!
//! - bindings josefk creates are what Kafka's own `AclCommand --list` shows, and what
//!   `describe_acls` returns for principal, resource and matching-pattern filters;
//! - bob is refused (TOPIC_AUTHORIZATION_FAILED) before his Describe ACL exists, allowed once it
//!   does, and refused again after `delete_acls` removed it, which returns exactly the binding it
//!   matched;
//! - a filter that matches nothing deletes nothing; a binding with `Any` in it is refused locally.

mod common;

use std::time::Duration;

use josefk::admin::{
    AclBinding, AclFilter, AclOperation, AclPermission, Admin, NewTopic, PatternType, ResourceType,
};
use josefk::security::SecurityProtocol;
use josefk::{ClientConfig, Error, ErrorCode};
use josefk_harness::{run_java_tool, ClusterSpec, Listener};
use tokio::time::Instant;

fn bob(bootstrap: &str) -> ClientConfig {
    common::config(bootstrap)
        .security_protocol(SecurityProtocol::SaslPlaintext)
        .sasl_plain("bob", "bob-secret")
}

/// Waits (up to 60 s: ACL changes reach the broker through the metadata log) until bob's
/// describe of `topic` is allowed (`true`) or refused with TOPIC_AUTHORIZATION_FAILED (`false`).
async fn wait_bob_may_describe(bob_admin: &Admin, topic: &str, allowed: bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let result = bob_admin.describe_topics(&[topic]).await;
        let last = match &result {
            Ok(d) if allowed => {
                assert_eq!(d[0].name, topic);
                return;
            }
            Err(e) if !allowed && e.kafka_code() == Some(ErrorCode::TopicAuthorizationFailed) => {
                return;
            }
            Err(e) if e.kafka_code() != Some(ErrorCode::TopicAuthorizationFailed) => {
                panic!("unexpected error: {e}")
            }
            other => format!("{other:?}"),
        };
        assert!(
            Instant::now() < deadline,
            "bob still {} after 60 s: {last}",
            if allowed { "refused" } else { "allowed" }
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acls_are_created_described_enforced_and_deleted() {
    let kafka = common::PrivateCluster::start(
        ClusterSpec::single()
            .listener(Listener::sasl_plain(
                "SASL",
                &[("admin", "admin-secret"), ("bob", "bob-secret")],
            ))
            .authorizer(&["admin"]),
    )
    .await;
    let plaintext = kafka.bootstrap_servers();
    let sasl = kafka.with(|c| c.listener_bootstrap("SASL")).await;
    let admin = Admin::connect(common::config(&plaintext)).await.unwrap();
    let topic = common::unique_topic("acl-admin");
    admin
        .create_topics(&[NewTopic::new(&topic, 1, 1)])
        .await
        .unwrap();
    let bob_admin = Admin::connect(bob(&sasl)).await.expect("bob connects");
    let e = bob_admin
        .describe_topics(&[topic.as_str()])
        .await
        .expect_err("no ACL yet");
    assert_eq!(
        e.kafka_code(),
        Some(ErrorCode::TopicAuthorizationFailed),
        "{e}"
    );

    let describe = AclBinding::new(
        ResourceType::Topic,
        &topic,
        "User:bob",
        AclOperation::Describe,
        AclPermission::Allow,
    );
    let prefix = format!("{topic}-");
    let read_prefixed = AclBinding::new(
        ResourceType::Topic,
        &prefix,
        "User:bob",
        AclOperation::Read,
        AclPermission::Allow,
    )
    .prefixed();
    admin
        .create_acls(&[describe.clone(), read_prefixed.clone()])
        .await
        .expect("create ACLs");

    // Kafka's own tool sees them.
    let listed = {
        let bootstrap = plaintext.clone();
        let topic = topic.clone();
        kafka
            .with(move |c| {
                run_java_tool(
                    c.dist(),
                    "org.apache.kafka.tools.AclCommand",
                    &[
                        "--bootstrap-server",
                        &bootstrap,
                        "--list",
                        "--topic",
                        &topic,
                    ],
                    Duration::from_secs(120),
                )
            })
            .await
            .expect("AclCommand runs")
    };
    let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
    assert!(
        listed.contains("principal=User:bob, host=*, operation=DESCRIBE, permissionType=ALLOW"),
        "{listed}"
    );

    let mut both = vec![describe.clone(), read_prefixed.clone()];
    both.sort();
    let by_principal = admin
        .describe_acls(&AclFilter::any().principal("User:bob"))
        .await
        .expect("describe by principal");
    assert_eq!(by_principal, both);
    let by_resource = admin
        .describe_acls(&AclFilter::any().resource(ResourceType::Topic, &topic))
        .await
        .expect("describe by resource");
    assert_eq!(by_resource, vec![describe.clone()]);
    let matching = admin
        .describe_acls(
            &AclFilter::any()
                .resource(ResourceType::Topic, format!("{prefix}x"))
                .pattern_type(PatternType::Match),
        )
        .await
        .expect("describe matching");
    assert_eq!(matching, vec![read_prefixed.clone()]);
    let nobody = admin
        .describe_acls(&AclFilter::any().principal("User:nobody"))
        .await
        .expect("describe nobody");
    assert!(nobody.is_empty(), "{nobody:?}");

    wait_bob_may_describe(&bob_admin, &topic, true).await;

    let none = admin
        .delete_acls(&[AclFilter::any().principal("User:nobody")])
        .await
        .expect("delete nothing");
    assert!(none.is_empty(), "{none:?}");
    let deleted = admin
        .delete_acls(&[AclFilter::from(&describe)])
        .await
        .expect("delete the describe ACL");
    assert_eq!(deleted, vec![describe.clone()]);
    let left = admin
        .describe_acls(&AclFilter::any().principal("User:bob"))
        .await
        .expect("describe after delete");
    assert_eq!(left, vec![read_prefixed.clone()]);

    wait_bob_may_describe(&bob_admin, &topic, false).await;

    let deleted = admin
        .delete_acls(&[AclFilter::any()
            .principal("User:bob")
            .operation(AclOperation::Read)])
        .await
        .expect("delete the rest");
    assert_eq!(deleted, vec![read_prefixed]);
    assert!(admin
        .describe_acls(&AclFilter::any())
        .await
        .expect("describe all")
        .is_empty());

    let mut vague = describe;
    vague.operation = AclOperation::Any;
    let e = admin
        .create_acls(&[vague])
        .await
        .expect_err("Any is no operation");
    assert!(matches!(e, Error::InvalidArgument(_)), "{e}");
    kafka.shutdown().await;
}
