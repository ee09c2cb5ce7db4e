//! Live test of `Admin::describe_features` against a real Kafka broker: every feature level it
//! reports equals what Kafka's own `FeatureCommand describe` prints for the same broker.
//!
//! The broker comes from `KAFKA_BOOTSTRAP_SERVERS` (see `common::bootstrap`).

mod common;

use josefk::admin::Admin;
use josefk_harness::KafkaDist;

use common::*;

#[tokio::test]
async fn feature_levels_match_kafkas_feature_command() {
    let bootstrap = bootstrap();
    let admin = Admin::connect(config(&bootstrap)).await.expect("admin");
    let features = admin.describe_features().await.expect("describe features");
    assert!(features.finalized_epoch.is_some(), "{features:?}");
    assert!(
        features.finalized.contains_key("metadata.version"),
        "{features:?}"
    );

    let out = tokio::task::spawn_blocking(move || {
        let dist = KafkaDist::provision().expect("provision Kafka's tools");
        josefk_harness::run_java_tool(
            &dist,
            "org.apache.kafka.tools.FeatureCommand",
            &["--bootstrap-server", &bootstrap, "describe"],
            std::time::Duration::from_secs(120),
        )
        .expect("FeatureCommand runs")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{stdout}");
    // "Feature: x  SupportedMinVersion: a  SupportedMaxVersion: b  FinalizedVersionLevel: c ..."
    // metadata.version prints release names (3.3-IV3) rather than levels: compared by presence.
    let mut compared = Vec::new();
    for line in stdout.lines().filter(|l| l.starts_with("Feature: ")) {
        // Kafka 4.x pads the columns with spaces rather than tabs: the value is the next word.
        let field = |key: &str| {
            let mut words = line.split_whitespace();
            words
                .find(|w| *w == key)
                .and_then(|_| words.next())
                .unwrap_or_else(|| panic!("no {key} in {line:?}"))
        };
        let name = field("Feature:");
        let supported = features
            .supported
            .get(name)
            .unwrap_or_else(|| panic!("{name} is not in {features:?}"));
        let (Ok(min), Ok(max), Ok(finalized)) = (
            field("SupportedMinVersion:").parse::<i16>(),
            field("SupportedMaxVersion:").parse::<i16>(),
            field("FinalizedVersionLevel:").parse::<i16>(),
        ) else {
            continue;
        };
        assert_eq!((supported.min, supported.max), (min, max), "{line}");
        let ours = features.finalized.get(name).map_or(0, |r| r.max);
        assert_eq!(ours, finalized, "{line}\n{features:?}");
        compared.push(name.to_owned());
    }
    assert!(
        compared.iter().any(|n| n == "transaction.version")
            && compared.iter().any(|n| n == "group.version"),
        "compared {compared:?}:\n{stdout}"
    );
    assert_eq!(
        features.supported.len(),
        stdout
            .lines()
            .filter(|l| l.starts_with("Feature: "))
            .count(),
        "{stdout}"
    );
}
