//! SASL against a real broker: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 and OAUTHBEARER (unsecured JWS,
//! and the OIDC client-credentials provider against a token endpoint served by the test, over
//! SASL_PLAINTEXT and SASL_SSL) carry a produce, a group consume and a commit; refused
//! credentials fail fast with the broker's reason and a bounded number of connection attempts;
//! KIP-368 re-authentication keeps a long run whole; no password reaches the logs.
//!
//! Every test shares one private single-node cluster (started once, on first use) with one SASL
//! listener per mechanism; it stops by itself when the test process exits.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use josefk::admin::{Admin, NewTopic};
use josefk::consumer::{AutoOffsetReset, CommitMode, Consumer, ConsumerConfig};
use josefk::producer::{Producer, ProducerConfig};
use josefk::security::{
    OAuthBearerToken, OAuthBearerTokenProvider, SaslMechanism, SecurityProtocol,
    UnsecuredJwsProvider,
};
use josefk::security::{StoreType, TlsConfig};
use josefk::{ClientConfig, Error, ProducerRecord};
use josefk_harness::{run_java_tool, ClusterSpec, KafkaCluster, Listener, TestCertificates};

use common::security::{https_acceptor, token_endpoint, CountingProxy};

const ALICE_PASSWORD: &str = "alice-Secret-0n3";
const BOB_PASSWORD: &str = "bob-Secret-tw0";
/// The broker side of the unsecured-JWS OAUTHBEARER listeners (as the harness's OAUTH listener).
const OAUTH_BROKER_JAAS: &str =
    "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule \
                                 required unsecuredLoginStringClaim_sub=\"broker\";";

/// The shared cluster's listeners.
struct Shared {
    plain: String,
    scram: String,
    oauth: String,
    reauth: String,
    oauth_reauth: String,
    sasl_ssl: String,
    oauth_ssl: String,
    certs: TestCertificates,
    cluster: Mutex<KafkaCluster>,
}

fn start_shared() -> Shared {
    common::init_tracing();
    let certs = TestCertificates::generate().expect("test certificates (openssl CLI)");
    let spec = ClusterSpec::single()
        .listener(
            Listener::ssl("SASLSSL", &certs.path("broker.pem"), &certs.path("ca.crt"))
                .security_protocol("SASL_SSL")
                .property("sasl.enabled.mechanisms", "SCRAM-SHA-512")
                .property(
                    "scram-sha-512.sasl.jaas.config",
                    "org.apache.kafka.common.security.scram.ScramLoginModule required;",
                ),
        )
        .listener(
            Listener::ssl("OAUTHSSL", &certs.path("broker.pem"), &certs.path("ca.crt"))
                .security_protocol("SASL_SSL")
                .property("sasl.enabled.mechanisms", "OAUTHBEARER")
                .property("oauthbearer.sasl.jaas.config", OAUTH_BROKER_JAAS),
        )
        .listener(Listener::sasl_plain(
            "SASLPLAIN",
            &[("alice", ALICE_PASSWORD), ("bob", BOB_PASSWORD)],
        ))
        .listener(Listener::sasl_scram("SCRAM"))
        .listener(Listener::sasl_oauthbearer_unsecured("OAUTH"))
        .listener(
            Listener::sasl_plain("REAUTH", &[("alice", ALICE_PASSWORD)])
                .property("plain.connections.max.reauth.ms", "10000"),
        )
        .listener(
            Listener::sasl_oauthbearer_unsecured("OAUTHREAUTH")
                .property("oauthbearer.connections.max.reauth.ms", "10000"),
        )
        .scram_user("SCRAM-SHA-256", "alice", ALICE_PASSWORD)
        .scram_user("SCRAM-SHA-512", "alice", ALICE_PASSWORD);
    let cluster = KafkaCluster::start(spec)
        .unwrap_or_else(|e| panic!("cannot start the SASL test cluster: {e}"));
    Shared {
        plain: cluster.listener_bootstrap("SASLPLAIN"),
        scram: cluster.listener_bootstrap("SCRAM"),
        oauth: cluster.listener_bootstrap("OAUTH"),
        reauth: cluster.listener_bootstrap("REAUTH"),
        oauth_reauth: cluster.listener_bootstrap("OAUTHREAUTH"),
        sasl_ssl: cluster.listener_bootstrap("SASLSSL"),
        oauth_ssl: cluster.listener_bootstrap("OAUTHSSL"),
        certs,
        cluster: Mutex::new(cluster),
    }
}

async fn shared() -> &'static Shared {
    static SHARED: OnceLock<Shared> = OnceLock::new();
    tokio::task::spawn_blocking(|| SHARED.get_or_init(start_shared))
        .await
        .expect("cluster start panicked")
}

fn sasl(bootstrap: &str) -> ClientConfig {
    common::config(bootstrap).security_protocol(SecurityProtocol::SaslPlaintext)
}

/// Creates a topic, writes `count` keyed records through an idempotent producer, reads them all
/// back through a group member, commits, and checks contents, order per partition, offsets and
/// the committed positions.
async fn round_trip(config: ClientConfig, label: &str, count: usize) {
    let topic = common::unique_topic(label);
    let admin = Admin::connect(config.clone())
        .await
        .expect("admin connects");
    admin
        .create_topics(&[NewTopic::new(&topic, 3, 1)])
        .await
        .expect("create topic");
    let producer = Producer::connect(ProducerConfig::with_client(config.clone()))
        .await
        .expect("producer connects");
    let mut acks = Vec::new();
    for i in 0..count {
        let record = ProducerRecord::new(&topic, format!("{label}-{i}")).key(format!("k{}", i % 7));
        acks.push(producer.send(record).await.expect("send"));
    }
    let mut written: BTreeMap<i32, Vec<(i64, String)>> = BTreeMap::new();
    for (i, ack) in acks.into_iter().enumerate() {
        let meta = ack.await.expect("acked");
        written.entry(meta.partition).or_default().push((
            meta.offset.expect("acks=all has offsets"),
            format!("{label}-{i}"),
        ));
    }
    producer.close(Duration::from_secs(30)).await.unwrap();

    let group = format!("{topic}-g");
    let mut consumer = Consumer::connect(
        ConsumerConfig::with_client(config)
            .group_id(&group)
            .auto_offset_reset(AutoOffsetReset::Earliest)
            .commit_mode(CommitMode::Manual),
    )
    .await
    .expect("consumer connects");
    consumer.subscribe(&[&topic]).unwrap();
    let mut read: BTreeMap<i32, Vec<(i64, String)>> = BTreeMap::new();
    // Generous: the first group of a fresh cluster waits for __consumer_offsets, and the test
    // machine is shared with other brokers and builds.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut total = 0;
    while total < count {
        assert!(
            Instant::now() < deadline,
            "{label}: read {total} of {count}"
        );
        for r in consumer.poll(Duration::from_secs(1)).await.expect("poll") {
            let value = String::from_utf8(r.value.unwrap().to_vec()).unwrap();
            read.entry(r.partition).or_default().push((r.offset, value));
            total += 1;
        }
    }
    assert_eq!(read, written, "{label}: every record once, in offset order");
    consumer.commit().await.expect("commit");
    let committed = consumer.committed(&consumer.assignment()).await.unwrap();
    for (tp, offset) in committed {
        let expected = written.get(&tp.partition).map_or(0, |w| w.len() as i64);
        assert_eq!(offset, Some(expected), "{label}: committed {tp:?}");
    }
    consumer.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_and_scram_carry_produce_group_consume_and_commit() {
    let s = shared().await;
    round_trip(
        sasl(&s.plain).sasl_plain("alice", ALICE_PASSWORD),
        "plain",
        200,
    )
    .await;
    // The Java property names, as a user would paste them.
    for mechanism in ["SCRAM-SHA-256", "SCRAM-SHA-512"] {
        let config = ClientConfig::from_properties([
            ("bootstrap.servers", s.scram.as_str()),
            ("security.protocol", "SASL_PLAINTEXT"),
            ("sasl.mechanism", mechanism),
            (
                "sasl.jaas.config",
                &format!(
                    r#"org.apache.kafka.common.security.scram.ScramLoginModule required username="alice" password="{ALICE_PASSWORD}";"#
                ),
            ),
        ])
        .unwrap();
        round_trip(config, &mechanism.to_ascii_lowercase(), 200).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_sha_512_over_tls_carries_produce_group_consume_and_commit() {
    let s = shared().await;
    let config = common::config(&s.sasl_ssl)
        .security_protocol(SecurityProtocol::SaslSsl)
        .tls(TlsConfig::new().truststore(s.certs.path("ca.crt"), StoreType::Pem))
        .sasl_scram(SaslMechanism::ScramSha512, "alice", ALICE_PASSWORD);
    round_trip(config, "sasl-ssl", 200).await;
}

/// The issue's demo size: 20,000 records, the worker killed twice.
const DEMO_RECORDS: usize = 20_000;
const DEMO_KILLS: usize = 2;

/// The Java client properties of `mechanism` for user alice (`sasl.mechanism`, `sasl.jaas.config`).
fn java_sasl_properties(mechanism: &str) -> String {
    let jaas = match mechanism {
        "PLAIN" => format!(
            "org.apache.kafka.common.security.plain.PlainLoginModule required \
             username=\"alice\" password=\"{ALICE_PASSWORD}\";"
        ),
        "OAUTHBEARER" => "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule \
                          required unsecuredLoginStringClaim_sub=\"alice\";"
            .to_string(),
        _ => format!(
            "org.apache.kafka.common.security.scram.ScramLoginModule required \
             username=\"alice\" password=\"{ALICE_PASSWORD}\";"
        ),
    };
    format!("sasl.mechanism={mechanism}\nsasl.jaas.config={jaas}\n")
}

/// The Java client properties for SASL_SSL with `mechanism`, trusting the test CA (PEM).
fn java_sasl_ssl_properties(s: &Shared, mechanism: &str) -> String {
    format!(
        "security.protocol=SASL_SSL\nssl.truststore.type=PEM\nssl.truststore.location={}\n{}",
        s.certs.path("ca.crt").display(),
        java_sasl_properties(mechanism)
    )
}

/// One broker, six runs in sequence (not six brokers, to keep CI time down): the demo over
/// SASL_PLAINTEXT with each mechanism and over SASL_SSL with SCRAM-SHA-512 and OAUTHBEARER.
#[tokio::test(flavor = "multi_thread")]
async fn the_exactly_once_demo_runs_over_every_sasl_mechanism_and_sasl_ssl() {
    let s = shared().await;
    let plaintext = |mechanism: &str| {
        format!(
            "security.protocol=SASL_PLAINTEXT\n{}",
            java_sasl_properties(mechanism)
        )
    };
    let runs = [
        ("SASL_PLAINTEXT PLAIN", &s.plain, plaintext("PLAIN")),
        (
            "SASL_PLAINTEXT SCRAM-SHA-256",
            &s.scram,
            plaintext("SCRAM-SHA-256"),
        ),
        (
            "SASL_PLAINTEXT SCRAM-SHA-512",
            &s.scram,
            plaintext("SCRAM-SHA-512"),
        ),
        (
            "SASL_PLAINTEXT OAUTHBEARER",
            &s.oauth,
            plaintext("OAUTHBEARER"),
        ),
        (
            "SASL_SSL SCRAM-SHA-512",
            &s.sasl_ssl,
            java_sasl_ssl_properties(s, "SCRAM-SHA-512"),
        ),
        (
            "SASL_SSL OAUTHBEARER",
            &s.oauth_ssl,
            java_sasl_ssl_properties(s, "OAUTHBEARER"),
        ),
    ];
    let mut jobs = Vec::new();
    for (i, (label, bootstrap, properties)) in runs.into_iter().enumerate() {
        let path = s.certs.path(&format!("eos-sasl-{i}.properties"));
        std::fs::write(&path, properties).unwrap();
        jobs.push((label, bootstrap.clone(), path));
    }
    tokio::task::spawn_blocking(move || {
        for (label, bootstrap, path) in jobs {
            common::run_exactly_once_demo(label, &bootstrap, &path, DEMO_RECORDS, DEMO_KILLS);
        }
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauthbearer_over_sasl_ssl_carries_produce_group_consume_and_commit() {
    let s = shared().await;
    let config = common::config(&s.oauth_ssl)
        .security_protocol(SecurityProtocol::SaslSsl)
        .tls(TlsConfig::new().truststore(s.certs.path("ca.crt"), StoreType::Pem))
        .sasl_oauthbearer_provider(Arc::new(UnsecuredJwsProvider::new("alice")));
    round_trip(config, "oauth-sasl-ssl", 200).await;
}

/// Java's console consumer, configured as the Kafka docs configure a SASL_SSL client
/// (SCRAM-SHA-512, the test CA as a PEM truststore), reads exactly what josefk wrote over SASL_SSL.
#[tokio::test(flavor = "multi_thread")]
async fn java_console_consumer_reads_over_sasl_ssl_what_josefk_wrote() {
    let s = shared().await;
    let config = common::config(&s.sasl_ssl)
        .security_protocol(SecurityProtocol::SaslSsl)
        .tls(TlsConfig::new().truststore(s.certs.path("ca.crt"), StoreType::Pem))
        .sasl_scram(SaslMechanism::ScramSha512, "alice", ALICE_PASSWORD);
    let topic = common::unique_topic("sasl-ssl-java");
    let admin = Admin::connect(config.clone())
        .await
        .expect("admin connects");
    admin
        .create_topics(&[NewTopic::new(&topic, 1, 1)])
        .await
        .expect("create topic");
    let producer = Producer::connect(ProducerConfig::with_client(config))
        .await
        .expect("producer connects");
    let expected: Vec<String> = (0..50).map(|i| format!("sasl-java-{i}")).collect();
    let mut acks = Vec::new();
    for value in &expected {
        acks.push(
            producer
                .send(ProducerRecord::new(&topic, value.clone()))
                .await
                .expect("send"),
        );
    }
    for ack in acks {
        ack.await.expect("acked");
    }
    producer.close(Duration::from_secs(30)).await.unwrap();

    let props = s.certs.path("java-sasl-ssl-client.properties");
    std::fs::write(&props, java_sasl_ssl_properties(s, "SCRAM-SHA-512")).unwrap();
    let props = props.display().to_string();
    let bootstrap = s.sasl_ssl.clone();
    let dist = s.cluster.lock().unwrap().dist().clone();
    let output = tokio::task::spawn_blocking(move || {
        run_java_tool(
            &dist,
            "org.apache.kafka.tools.consumer.ConsoleConsumer",
            &[
                "--bootstrap-server",
                &bootstrap,
                "--topic",
                &topic,
                "--from-beginning",
                "--max-messages",
                "50",
                "--timeout-ms",
                "60000",
                "--command-config",
                &props,
            ],
            Duration::from_secs(120),
        )
    })
    .await
    .unwrap()
    .expect("ConsoleConsumer runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines,
        expected,
        "stderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauthbearer_unsecured_jws_carries_produce_group_consume_and_commit() {
    let s = shared().await;
    let config = ClientConfig::from_properties([
        ("bootstrap.servers", s.oauth.as_str()),
        ("security.protocol", "SASL_PLAINTEXT"),
        ("sasl.mechanism", "OAUTHBEARER"),
        (
            "sasl.jaas.config",
            // With a SASL extension (RFC 7628 key=value after the token), which the broker's
            // unsecured validator accepts.
            r#"org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required unsecuredLoginStringClaim_sub="alice" unsecuredLoginExtension_traceId="t-1";"#,
        ),
    ])
    .unwrap();
    round_trip(config, "oauth-unsecured", 200).await;
}

/// Client properties for the OIDC provider against `url` on the OAUTH listener.
fn oidc_config(s: &Shared, url: &str, secret: &str, extra: &[(&str, String)]) -> ClientConfig {
    let mut props: Vec<(&str, String)> = vec![
        ("bootstrap.servers", s.oauth.clone()),
        ("security.protocol", "SASL_PLAINTEXT".into()),
        ("sasl.mechanism", "OAUTHBEARER".into()),
        (
            "sasl.login.callback.handler.class",
            "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginCallbackHandler".into(),
        ),
        ("sasl.oauthbearer.token.endpoint.url", url.into()),
        (
            "sasl.oauthbearer.client.credentials.client.id",
            "app1".into(),
        ),
        (
            "sasl.oauthbearer.client.credentials.client.secret",
            secret.into(),
        ),
        ("sasl.oauthbearer.scope", "kafka".into()),
        (
            "sasl.jaas.config",
            "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required;".into(),
        ),
    ];
    props.extend(extra.iter().cloned());
    ClientConfig::from_properties(props.iter().map(|(k, v)| (*k, v.as_str()))).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauthbearer_oidc_client_credentials_provider_against_a_local_token_endpoint() {
    let s = shared().await;
    let (url, served) = token_endpoint("app1", "app1-s3cret", None).await;
    round_trip(oidc_config(s, &url, "app1-s3cret", &[]), "oauth-oidc", 100).await;
    // One token per client (admin, producer, consumer), shared by all of its connections.
    let fetched = served.load(Ordering::SeqCst);
    assert!((1..=3).contains(&fetched), "token requests: {fetched}");

    let started = Instant::now();
    let e = Admin::connect(oidc_config(s, &url, "wrong-secret", &[]))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Authentication { .. }), "{e}");
    let text = e.to_string();
    assert!(
        text.contains("HTTP 401") && text.contains("invalid_client"),
        "{text}"
    );
    assert!(!text.contains("wrong-secret"), "{text}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauthbearer_oidc_over_an_https_token_endpoint_checks_its_certificate() {
    let s = shared().await;
    let (url, served) = token_endpoint("app1", "app1-s3cret", Some(https_acceptor(&s.certs))).await;
    let trust = [
        ("ssl.truststore.type", "PEM".to_string()),
        (
            "ssl.truststore.location",
            s.certs.path("ca.crt").display().to_string(),
        ),
    ];
    round_trip(
        oidc_config(s, &url, "app1-s3cret", &trust),
        "oauth-https",
        50,
    )
    .await;
    assert!(served.load(Ordering::SeqCst) >= 1);
    // Without the test CA the endpoint's certificate is refused, before any secret is sent.
    let before = served.load(Ordering::SeqCst);
    let e = Admin::connect(oidc_config(s, &url, "app1-s3cret", &[]))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Authentication { .. }), "{e}");
    assert!(e.to_string().contains("token endpoint"), "{e}");
    assert_eq!(
        served.load(Ordering::SeqCst),
        before,
        "no request reached it"
    );
}

/// The built-in OIDC client-credentials provider over SASL_SSL: the broker's OAUTHBEARER listener
/// speaks TLS, and the token endpoint is HTTPS; one `ssl.truststore.*` (the test CA) serves both
/// handshakes, as in Java, where the login callback handler reads the client's `ssl.*` settings.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauthbearer_oidc_provider_over_sasl_ssl_carries_produce_group_consume_and_commit() {
    let s = shared().await;
    let (url, served) = token_endpoint("app1", "app1-s3cret", Some(https_acceptor(&s.certs))).await;
    let over_tls = [
        ("bootstrap.servers", s.oauth_ssl.clone()),
        ("security.protocol", "SASL_SSL".to_string()),
        ("ssl.truststore.type", "PEM".to_string()),
        (
            "ssl.truststore.location",
            s.certs.path("ca.crt").display().to_string(),
        ),
    ];
    round_trip(
        oidc_config(s, &url, "app1-s3cret", &over_tls),
        "oauth-oidc-sasl-ssl",
        200,
    )
    .await;
    // One token per client (admin, producer, consumer), shared by all of its connections.
    let fetched = served.load(Ordering::SeqCst);
    assert!((1..=3).contains(&fetched), "token requests: {fetched}");

    // A wrong secret over SASL_SSL: the endpoint's refusal, fast, without the secret in it.
    let started = Instant::now();
    let e = Admin::connect(oidc_config(s, &url, "wrong-secret", &over_tls))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Authentication { .. }), "{e}");
    let text = e.to_string();
    assert!(text.contains("HTTP 401"), "{text}");
    assert!(!text.contains("wrong-secret"), "{text}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

/// Connects a producer through a counting proxy; expects an authentication error containing
/// every piece of `expected`, within a bound, after one connection attempt.
async fn refused(config: ClientConfig, target: &str, expected: &[&str], secret: &str) {
    let proxy = CountingProxy::start(target.to_string()).await;
    let mut config = config;
    config.bootstrap_servers = vec![proxy.addr.clone()];
    let started = Instant::now();
    let e = match Producer::connect(ProducerConfig::with_client(config)).await {
        Ok(_) => panic!("connected with bad credentials ({expected:?})"),
        Err(e) => e,
    };
    let elapsed = started.elapsed();
    // Give a retry storm the chance to show, then count: one dial, no redials.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(proxy.attempts(), 1, "connection attempts ({e})");
    assert!(matches!(e, Error::Authentication { .. }), "{e:?}");
    assert_eq!(e.class(), josefk::ErrorClass::Fatal);
    let text = e.to_string();
    for piece in expected {
        assert!(text.contains(piece), "`{piece}` not in: {text}");
    }
    assert!(!text.contains(secret), "{text}");
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_credentials_fail_fast_with_the_brokers_reason_and_one_dial() {
    let s = shared().await;
    refused(
        sasl(&s.plain).sasl_plain("alice", "Wrong-pass-1"),
        &s.plain,
        &[
            "PLAIN authentication failed",
            "Invalid username or password",
        ],
        "Wrong-pass-1",
    )
    .await;
    refused(
        sasl(&s.plain).sasl_plain("mallory", "Wrong-pass-2"),
        &s.plain,
        &[
            "PLAIN authentication failed",
            "Invalid username or password",
        ],
        "Wrong-pass-2",
    )
    .await;
    for mechanism in [SaslMechanism::ScramSha256, SaslMechanism::ScramSha512] {
        refused(
            sasl(&s.scram).sasl_scram(mechanism, "alice", "Wrong-pass-3"),
            &s.scram,
            &[mechanism.name(), "invalid credentials"],
            "Wrong-pass-3",
        )
        .await;
        refused(
            sasl(&s.scram).sasl_scram(mechanism, "nobody", "Wrong-pass-4"),
            &s.scram,
            &[mechanism.name(), "authentication failed"],
            "Wrong-pass-4",
        )
        .await;
    }
    refused(
        sasl(&s.scram).sasl_plain("alice", ALICE_PASSWORD),
        &s.scram,
        &["PLAIN is not enabled", "SCRAM-SHA-256", "SCRAM-SHA-512"],
        ALICE_PASSWORD,
    )
    .await;
}

/// Hands out unsecured tokens that expired an hour ago.
#[derive(Debug)]
struct ExpiredTokens;

impl OAuthBearerTokenProvider for ExpiredTokens {
    fn token(&self) -> josefk::security::TokenFuture<'_> {
        let stale = UnsecuredJwsProvider::new("alice")
            .token_at(std::time::SystemTime::now() - Duration::from_secs(7200));
        Box::pin(async move { Ok(OAuthBearerToken::new(stale.value, Duration::from_secs(60))) })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_token_is_refused_with_the_brokers_status() {
    let s = shared().await;
    refused(
        sasl(&s.oauth).sasl_oauthbearer_provider(Arc::new(ExpiredTokens)),
        &s.oauth,
        &[
            "OAUTHBEARER authentication failed",
            "broker status `invalid_token`",
        ],
        "\u{1}",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reauthentication_keeps_a_long_produce_and_consume_run_whole() {
    let s = shared().await;
    // The REAUTH listener grants 10 s sessions (connections.max.reauth.ms=10000).
    long_run(
        sasl(&s.reauth).sasl_plain("alice", ALICE_PASSWORD),
        "reauth",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauthbearer_reauthenticates_with_refreshed_tokens_through_a_long_run() {
    let s = shared().await;
    // 10 s sessions, and tokens that live 15 s: sessions end with the token at times, and
    // re-authentication needs the token refreshed (at 80 %, 12 s).
    let config = ClientConfig::from_properties([
        ("bootstrap.servers", s.oauth_reauth.as_str()),
        ("security.protocol", "SASL_PLAINTEXT"),
        ("sasl.mechanism", "OAUTHBEARER"),
        (
            "sasl.jaas.config",
            r#"org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required unsecuredLoginStringClaim_sub="alice" unsecuredLoginLifetimeSeconds="15";"#,
        ),
    ])
    .unwrap();
    long_run(config, "oauth-reauth").await;
}

/// Produces and consumes for 35 s on a listener with short SASL sessions; checks nothing was
/// lost, duplicated or reordered and that both clients re-authenticated at least three times.
async fn long_run(config: ClientConfig, label: &str) {
    let topic = common::unique_topic(label);
    let admin = Admin::connect(config.clone()).await.unwrap();
    admin
        .create_topics(&[NewTopic::new(&topic, 2, 1)])
        .await
        .unwrap();
    let producer = Producer::connect(ProducerConfig::with_client(config.clone()))
        .await
        .unwrap();
    let mut consumer = Consumer::connect(
        ConsumerConfig::with_client(config)
            .auto_offset_reset(AutoOffsetReset::Earliest)
            .fetch_max_wait(Duration::from_millis(200)),
    )
    .await
    .unwrap();
    let partitions: Vec<josefk::TopicPartition> = (0..2)
        .map(|p| josefk::TopicPartition::new(topic.as_str(), p))
        .collect();
    consumer.assign(&partitions).await.unwrap();

    let run = Duration::from_secs(35);
    let writer = {
        let producer = producer.clone();
        let topic = topic.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let mut written: BTreeMap<i32, Vec<(i64, String)>> = BTreeMap::new();
            let mut i = 0u64;
            while started.elapsed() < run {
                let value = format!("r-{i}");
                let ack = producer
                    .send(ProducerRecord::new(&topic, value.clone()).key(format!("k{}", i % 5)))
                    .await
                    .expect("send");
                let meta = ack.await.expect("acked");
                written
                    .entry(meta.partition)
                    .or_default()
                    .push((meta.offset.unwrap(), value));
                i += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            written
        })
    };
    let mut read: BTreeMap<i32, Vec<(i64, String)>> = BTreeMap::new();
    let started = Instant::now();
    while started.elapsed() < run {
        for r in consumer
            .poll(Duration::from_millis(500))
            .await
            .expect("poll")
        {
            let value = String::from_utf8(r.value.unwrap().to_vec()).unwrap();
            read.entry(r.partition).or_default().push((r.offset, value));
        }
    }
    let written = writer.await.unwrap();
    let total: usize = written.values().map(Vec::len).sum();
    let deadline = Instant::now() + Duration::from_secs(30);
    while read.values().map(Vec::len).sum::<usize>() < total {
        assert!(Instant::now() < deadline, "consumer fell behind");
        for r in consumer
            .poll(Duration::from_millis(500))
            .await
            .expect("poll")
        {
            let value = String::from_utf8(r.value.unwrap().to_vec()).unwrap();
            read.entry(r.partition).or_default().push((r.offset, value));
        }
    }
    assert!(total > 300, "only {total} records written");
    assert_eq!(read, written, "nothing lost, duplicated or reordered");
    let producer_reauths = producer.metrics().network.successful_reauthentication_total;
    let consumer_reauths = consumer.metrics().network.successful_reauthentication_total;
    eprintln!(
        "{label}: records: {total}; re-authentications: producer {producer_reauths}, consumer {consumer_reauths}"
    );
    // Each connection re-authenticates every 8.5-9.5 s: three times or more in 35 s.
    assert!(producer_reauths >= 3, "producer: {producer_reauths}");
    assert!(consumer_reauths >= 3, "consumer: {consumer_reauths}");
    producer.close(Duration::from_secs(30)).await.unwrap();
}

/// Collects formatted log lines.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_trace_level_log_of_sasl_runs_contains_no_password() {
    let capture = Capture::default();
    let sink = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || sink.clone())
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let s = shared().await;
            round_trip(
                sasl(&s.plain).sasl_plain("alice", ALICE_PASSWORD),
                "log-plain",
                20,
            )
            .await;
            round_trip(
                sasl(&s.scram).sasl_scram(SaslMechanism::ScramSha512, "alice", ALICE_PASSWORD),
                "log-scram",
                20,
            )
            .await;
            let refused = Admin::connect(sasl(&s.plain).sasl_plain("bob", "Not-B0bs-pass")).await;
            assert!(refused.is_err());
        });
    });
    let log = String::from_utf8_lossy(&capture.0.lock().unwrap()).to_string();
    assert!(log.contains("connected"), "nothing captured: {log}");
    assert!(log.lines().count() > 100, "{} lines", log.lines().count());
    for secret in [ALICE_PASSWORD, "Not-B0bs-pass"] {
        assert!(!log.contains(secret), "{secret} in the log");
    }
}
