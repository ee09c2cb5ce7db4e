//! Live TLS tests against a real Kafka with SSL listeners (made by the harness with certificates
//! from the `openssl` CLI): produce and consume over SSL and mutual TLS with PEM and PKCS#12
//! stores, a consumer group, Java's console consumer reading what josefk wrote over SSL, and each
//! way TLS set-up can fail: the error names the broker and what to check, arrives within the
//! set-up timeout, and costs a bounded number of connection attempts (counted by a TCP proxy).
//!
//! One private cluster serves every test in this file (started on first use; the harness's
//! watcher stops it when the test process exits).
#![cfg(feature = "tls")]

mod common;

use std::collections::BTreeSet;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use josefk::admin::{Admin, NewTopic};
use josefk::consumer::{AutoOffsetReset, Consumer, ConsumerConfig};
use josefk::producer::{Producer, ProducerConfig};
use josefk::security::{StoreType, TlsConfig};
use josefk::{ClientConfig, Error, ErrorClass, ProducerRecord, SecurityProtocol, TopicPartition};
use josefk_harness::{
    run_java_tool, ClusterSpec, KafkaCluster, Listener, TestCertificates, STORE_PASSWORD,
};

/// The shared cluster: listeners SSL (server certificate only), MTLS (client certificate
/// required), WRONGHOST (certificate for wrong.example.com) and EXPIRED (expired in 2020).
struct TlsCluster {
    certs: TestCertificates,
    cluster: KafkaCluster,
}

static CLUSTER: OnceLock<TlsCluster> = OnceLock::new();

async fn tls_cluster() -> &'static TlsCluster {
    common::init_tracing();
    tokio::task::spawn_blocking(|| {
        CLUSTER.get_or_init(|| {
            let certs = TestCertificates::generate().expect("test certificates (openssl CLI)");
            let ca = certs.path("ca.crt");
            let spec = ClusterSpec::single()
                .listener(Listener::ssl("SSL", &certs.path("broker.pem"), &ca))
                .listener(Listener::mtls("MTLS", &certs.path("broker.pem"), &ca))
                .listener(Listener::ssl(
                    "WRONGHOST",
                    &certs.path("wronghost.pem"),
                    &ca,
                ))
                .listener(Listener::ssl("EXPIRED", &certs.path("expired.pem"), &ca));
            let cluster = KafkaCluster::start(spec).expect("Kafka with TLS listeners");
            TlsCluster { certs, cluster }
        })
    })
    .await
    .expect("cluster start panicked")
}

impl TlsCluster {
    fn listener(&self, name: &str) -> String {
        self.cluster.listener_bootstrap(name)
    }

    /// Trusts the test CA (PEM file).
    fn trust_pem(&self) -> TlsConfig {
        TlsConfig::new().truststore(self.certs.path("ca.crt"), StoreType::Pem)
    }
}

fn ssl_config(bootstrap: &str, tls: TlsConfig) -> ClientConfig {
    common::config(bootstrap)
        .security_protocol(SecurityProtocol::Ssl)
        .tls(tls)
        .connection_setup_timeout(Duration::from_secs(20))
}

/// Creates a topic over the plaintext listener (admin is not what these tests are about).
async fn create_topic(cluster: &TlsCluster, prefix: &str, partitions: i32) -> String {
    let topic = common::unique_topic(prefix);
    let admin = Admin::connect(common::config(&cluster.cluster.bootstrap_servers()))
        .await
        .expect("admin");
    admin
        .create_topics(&[NewTopic::new(&topic, partitions, 1)])
        .await
        .expect("create topic");
    topic
}

/// Produces `count` records `prefix-i` to partition 0 and checks offsets 0..count came back.
async fn produce(config: ClientConfig, topic: &str, prefix: &str, count: usize) {
    let producer = Producer::connect(ProducerConfig::with_client(config))
        .await
        .expect("producer connects over TLS");
    let mut deliveries = Vec::new();
    for i in 0..count {
        let record = ProducerRecord::new(topic, format!("{prefix}-{i}")).partition(0);
        deliveries.push(producer.send(record).await.expect("send"));
    }
    let mut offsets = Vec::new();
    for d in deliveries {
        offsets.push(d.await.expect("delivered").offset);
    }
    assert_eq!(offsets, (0..count as i64).map(Some).collect::<Vec<_>>());
    producer.close(Duration::from_secs(10)).await.unwrap();
}

/// Reads partition 0 from the start until `count` records came; returns their values in order.
async fn consume(config: ClientConfig, topic: &str, count: usize) -> Vec<String> {
    let mut consumer = Consumer::connect(
        ConsumerConfig::with_client(config)
            .auto_offset_reset(AutoOffsetReset::Earliest)
            .fetch_max_wait(Duration::from_millis(200)),
    )
    .await
    .expect("consumer connects over TLS");
    consumer
        .assign(&[TopicPartition::new(topic, 0)])
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut values = Vec::new();
    while values.len() < count {
        assert!(
            Instant::now() < deadline,
            "only {} of {count}",
            values.len()
        );
        for r in consumer
            .poll(Duration::from_millis(500))
            .await
            .expect("poll")
        {
            values.push(String::from_utf8(r.value.unwrap().to_vec()).unwrap());
        }
    }
    values
}

/// Produces and reads back 200 records through `config`, checking content and order.
async fn round_trip(cluster: &TlsCluster, config: ClientConfig, prefix: &str) {
    let topic = create_topic(cluster, prefix, 1).await;
    produce(config.clone(), &topic, prefix, 200).await;
    let values = consume(config, &topic, 200).await;
    let expected: Vec<String> = (0..200).map(|i| format!("{prefix}-{i}")).collect();
    assert_eq!(values, expected);
}

#[tokio::test(flavor = "multi_thread")]
async fn produce_and_consume_over_ssl_with_a_pem_truststore() {
    let c = tls_cluster().await;
    round_trip(c, ssl_config(&c.listener("SSL"), c.trust_pem()), "tls-pem").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn produce_and_consume_over_ssl_with_a_pkcs12_truststore_from_properties() {
    let c = tls_cluster().await;
    let truststore = c.certs.path("truststore.p12").display().to_string();
    let bootstrap = c.listener("SSL");
    let config = ClientConfig::from_properties([
        ("bootstrap.servers", bootstrap.as_str()),
        ("security.protocol", "SSL"),
        ("ssl.truststore.type", "PKCS12"),
        ("ssl.truststore.location", truststore.as_str()),
        ("ssl.truststore.password", STORE_PASSWORD),
    ])
    .expect("Java-style SSL properties");
    round_trip(c, config, "tls-p12").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mtls_with_a_pem_keystore_file() {
    let c = tls_cluster().await;
    let tls = c
        .trust_pem()
        .keystore(c.certs.path("client.pem"), StoreType::Pem);
    round_trip(c, ssl_config(&c.listener("MTLS"), tls), "mtls-pem").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mtls_with_inline_pem_chain_and_encrypted_key() {
    let c = tls_cluster().await;
    let chain = [
        c.certs.text("client.crt").unwrap(),
        c.certs.text("ca.crt").unwrap(),
    ]
    .concat();
    let tls = TlsConfig::new()
        .truststore_certificates(c.certs.text("ca.crt").unwrap())
        .client_certificate_pem(chain, c.certs.text("client-encrypted.key").unwrap())
        .key_password("keypass");
    round_trip(c, ssl_config(&c.listener("MTLS"), tls), "mtls-inline").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mtls_with_a_pkcs12_keystore() {
    let c = tls_cluster().await;
    let tls = TlsConfig::new()
        .truststore(c.certs.path("truststore.p12"), StoreType::Pkcs12)
        .truststore_password(STORE_PASSWORD)
        .keystore(c.certs.path("client.p12"), StoreType::Pkcs12)
        .keystore_password(STORE_PASSWORD);
    round_trip(c, ssl_config(&c.listener("MTLS"), tls), "mtls-p12").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn large_records_cross_tls_intact() {
    // Frames far larger than a TLS record (16 KiB) and than the socket buffers: the connection
    // task's partial writes and flushes through the TLS layer must deliver every byte.
    let c = tls_cluster().await;
    let config = ssl_config(&c.listener("MTLS"), c.trust_pem()).tls(
        c.trust_pem()
            .keystore(c.certs.path("client.pem"), StoreType::Pem),
    );
    let topic = create_topic(c, "tls-large", 1).await;
    let producer = Producer::connect(ProducerConfig::with_client(config.clone()))
        .await
        .unwrap();
    let value = |i: usize| -> Vec<u8> { (0..600_000).map(|j| ((i * 7 + j) % 251) as u8).collect() };
    let mut deliveries = Vec::new();
    for i in 0..30 {
        let record = ProducerRecord::new(&topic, value(i)).partition(0);
        deliveries.push(producer.send(record).await.unwrap());
    }
    for (i, d) in deliveries.into_iter().enumerate() {
        assert_eq!(d.await.unwrap().offset, Some(i as i64));
    }
    producer.close(Duration::from_secs(10)).await.unwrap();
    let mut consumer = Consumer::connect(
        ConsumerConfig::with_client(config)
            .auto_offset_reset(AutoOffsetReset::Earliest)
            .fetch_max_wait(Duration::from_millis(200)),
    )
    .await
    .unwrap();
    consumer
        .assign(&[TopicPartition::new(&topic, 0)])
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut got = Vec::new();
    while got.len() < 30 {
        assert!(Instant::now() < deadline, "only {} of 30", got.len());
        got.extend(consumer.poll(Duration::from_millis(500)).await.unwrap());
    }
    for (i, r) in got.iter().enumerate() {
        assert_eq!(r.offset, i as i64);
        assert!(
            r.value.as_deref() == Some(&value(i)[..]),
            "record {i} corrupted"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_consumer_group_over_ssl_reads_every_record_once_and_commits() {
    let c = tls_cluster().await;
    let config = ssl_config(&c.listener("SSL"), c.trust_pem());
    let topic = create_topic(c, "tls-group", 3).await;
    let producer = Producer::connect(ProducerConfig::with_client(config.clone()))
        .await
        .unwrap();
    let mut deliveries = Vec::new();
    for i in 0..300 {
        let record = ProducerRecord::new(&topic, format!("g-{i}")).key(format!("k{i}"));
        deliveries.push(producer.send(record).await.unwrap());
    }
    for d in deliveries {
        d.await.unwrap();
    }
    producer.close(Duration::from_secs(10)).await.unwrap();

    let group = common::unique_topic("tls-group-id");
    let mut consumer = Consumer::connect(
        ConsumerConfig::with_client(config)
            .group_id(&group)
            .auto_offset_reset(AutoOffsetReset::Earliest)
            .fetch_max_wait(Duration::from_millis(200)),
    )
    .await
    .unwrap();
    consumer.subscribe(&[&topic]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut seen = Vec::new();
    while seen.len() < 300 {
        assert!(Instant::now() < deadline, "only {} of 300", seen.len());
        for r in consumer.poll(Duration::from_millis(500)).await.unwrap() {
            seen.push(String::from_utf8(r.value.unwrap().to_vec()).unwrap());
        }
    }
    let distinct: BTreeSet<&String> = seen.iter().collect();
    assert_eq!((seen.len(), distinct.len()), (300, 300), "no duplicates");
    assert_eq!(consumer.assignment().len(), 3);
    consumer.commit().await.expect("commit over TLS");
    let tps: Vec<TopicPartition> = (0..3).map(|p| TopicPartition::new(&topic, p)).collect();
    let committed: i64 = consumer
        .committed(&tps)
        .await
        .expect("committed offsets over TLS")
        .iter()
        .map(|(_, o)| o.unwrap_or(0))
        .sum();
    assert_eq!(committed, 300, "committed offsets cover every record");
    consumer.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread")]
async fn java_console_consumer_reads_over_ssl_what_josefk_wrote_over_ssl() {
    let c = tls_cluster().await;
    let topic = create_topic(c, "tls-java", 1).await;
    let config = ssl_config(&c.listener("SSL"), c.trust_pem());
    produce(config, &topic, "java", 50).await;
    let props = c.certs.path("java-client.properties");
    std::fs::write(
        &props,
        format!(
            "security.protocol=SSL\nssl.truststore.type=PEM\nssl.truststore.location={}\n",
            c.certs.path("ca.crt").display()
        ),
    )
    .unwrap();
    let bootstrap = c.listener("SSL");
    let props = props.display().to_string();
    let dist = c.cluster.dist().clone();
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
    let expected: Vec<String> = (0..50).map(|i| format!("java-{i}")).collect();
    assert_eq!(
        lines,
        expected,
        "stderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The demo size: 20,000 records, the worker killed twice.
const DEMO_RECORDS: usize = 20_000;
const DEMO_KILLS: usize = 2;

#[tokio::test(flavor = "multi_thread")]
async fn the_exactly_once_demo_runs_over_ssl_and_mutual_tls() {
    let c = tls_cluster().await;
    let ssl = c.certs.path("eos-ssl-client.properties");
    std::fs::write(
        &ssl,
        format!(
            "security.protocol=SSL\nssl.truststore.type=PEM\nssl.truststore.location={}\n",
            c.certs.path("ca.crt").display()
        ),
    )
    .unwrap();
    let mtls = c.certs.path("eos-mtls-client.properties");
    std::fs::write(
        &mtls,
        format!(
            "security.protocol=SSL\nssl.truststore.type=PKCS12\nssl.truststore.location={}\n\
             ssl.truststore.password={STORE_PASSWORD}\nssl.keystore.type=PEM\n\
             ssl.keystore.location={}\n",
            c.certs.path("truststore.p12").display(),
            c.certs.path("client.pem").display()
        ),
    )
    .unwrap();
    let runs = [
        ("SSL", c.listener("SSL"), ssl),
        ("mTLS", c.listener("MTLS"), mtls),
    ];
    tokio::task::spawn_blocking(move || {
        for (label, bootstrap, props) in runs {
            common::run_exactly_once_demo(label, &bootstrap, &props, DEMO_RECORDS, DEMO_KILLS);
        }
    })
    .await
    .unwrap();
}

/// Connects a producer through a counting proxy to `target` and returns its error, checking that
/// it is fatal, came within the set-up timeout, and took at most two connection attempts.
async fn connect_fails(target: String, config: impl Fn(&str) -> ClientConfig) -> Error {
    let proxy = common::security::CountingProxy::start(target).await;
    let config = config(&proxy.addr).connection_setup_timeout(Duration::from_secs(15));
    let started = Instant::now();
    let result = Producer::connect(ProducerConfig::with_client(config)).await;
    let elapsed = started.elapsed();
    let error = match result {
        Ok(_) => panic!("connected where it must not"),
        Err(e) => e,
    };
    assert_eq!(error.class(), ErrorClass::Fatal, "{error}");
    assert!(
        elapsed < Duration::from_secs(15),
        "took {elapsed:?}: {error}"
    );
    let attempts = proxy.attempts();
    eprintln!("refused after {elapsed:?}, {attempts} connection attempt(s): {error}");
    assert!(
        (1..=2).contains(&attempts),
        "{attempts} connection attempts: {error}"
    );
    assert_eq!(
        error.broker().map(|b| b.addr.as_str()),
        Some(proxy.addr.as_str()),
        "{error}"
    );
    error
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_ca_is_a_fatal_tls_error_naming_the_truststore() {
    let c = tls_cluster().await;
    // No trust store: the bundled public roots, which do not include the test CA.
    let e = connect_fails(c.listener("SSL"), |b| ssl_config(b, TlsConfig::new())).await;
    assert!(matches!(e, Error::Tls { .. }), "{e:?}");
    assert!(e.to_string().contains("not signed by a trusted CA"), "{e}");
    assert!(e.to_string().contains("ssl.truststore"), "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_host_name_mismatch_is_refused_unless_identification_is_off() {
    let c = tls_cluster().await;
    let e = connect_fails(c.listener("WRONGHOST"), |b| ssl_config(b, c.trust_pem())).await;
    assert!(matches!(e, Error::Tls { .. }), "{e:?}");
    assert!(e.to_string().contains("does not name the host"), "{e}");
    assert!(e.to_string().contains("(127.0.0.1)"), "{e}");
    assert!(e.to_string().contains("wrong.example.com"), "{e}");
    assert!(
        e.to_string()
            .contains("ssl.endpoint.identification.algorithm"),
        "{e}"
    );
    // With host-name checks off the same certificate is accepted (the chain still is checked).
    let config = ssl_config(
        &c.listener("WRONGHOST"),
        c.trust_pem().verify_hostname(false),
    );
    round_trip(c, config, "tls-nohostcheck").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_broker_certificate_is_refused_even_without_host_checks() {
    let c = tls_cluster().await;
    let e = connect_fails(c.listener("EXPIRED"), |b| {
        ssl_config(b, c.trust_pem().verify_hostname(false))
    })
    .await;
    assert!(matches!(e, Error::Tls { .. }), "{e:?}");
    assert!(e.to_string().contains("expired on 2020-02-01"), "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn mtls_without_a_client_certificate_is_refused() {
    let c = tls_cluster().await;
    let e = connect_fails(c.listener("MTLS"), |b| ssl_config(b, c.trust_pem())).await;
    assert!(matches!(e, Error::Tls { .. }), "{e:?}");
    assert!(e.to_string().contains("ssl.keystore"), "{e}");
    assert!(e.to_string().contains("client certificates"), "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plaintext_client_on_a_tls_port_is_told_to_use_ssl() {
    let c = tls_cluster().await;
    let e = connect_fails(c.listener("SSL"), common::config).await;
    assert!(e.to_string().contains("security.protocol"), "{e}");
    assert!(e.to_string().contains("TLS"), "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tls_client_on_a_plaintext_port_is_told_to_check_the_port() {
    let c = tls_cluster().await;
    let plaintext = c.cluster.bootstrap_servers();
    let e = connect_fails(plaintext, |b| ssl_config(b, c.trust_pem())).await;
    assert!(matches!(e, Error::Tls { .. }), "{e:?}");
    assert!(e.to_string().contains("TLS listener"), "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_tls_settings_fail_when_the_client_is_built() {
    let c = tls_cluster().await;
    let bootstrap = c.listener("MTLS");
    // Wrong PKCS#12 password: a config error naming the key, never the password.
    let tls = TlsConfig::new()
        .keystore(c.certs.path("client.p12"), StoreType::Pkcs12)
        .keystore_password("not-the-password");
    let e = Producer::connect(ProducerConfig::with_client(ssl_config(&bootstrap, tls)))
        .await
        .map(drop)
        .expect_err("refused");
    assert!(matches!(e, Error::Config(_)), "{e:?}");
    assert!(e.to_string().contains("ssl.keystore.password"), "{e}");
    assert!(!e.to_string().contains("not-the-password"), "{e}");
    // Encrypted key without ssl.key.password.
    let chain = c.certs.text("client.crt").unwrap();
    let tls = TlsConfig::new()
        .client_certificate_pem(chain, c.certs.text("client-encrypted.key").unwrap());
    let e = Producer::connect(ProducerConfig::with_client(ssl_config(&bootstrap, tls)))
        .await
        .map(drop)
        .expect_err("refused");
    assert!(e.to_string().contains("ssl.key.password"), "{e}");
}
