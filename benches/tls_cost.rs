//! What TLS costs josefk: client CPU and wall time to produce and then consume the same records
//! over PLAINTEXT and over SSL, on one private broker, in alternating rounds.
//!
//! Run: `cargo bench --bench tls_cost`. Environment: `JOSEFK_BENCH_RECORDS` (default 300,000
//! records of 100 B per run), `JOSEFK_BENCH_ROUNDS` (default 3). CPU is this process's user+sys
//! time (`/proc/self/stat`): the broker is another process. Built without the `tls` feature
//! (or from a commit before TLS existed) it measures PLAINTEXT only, which is how the plaintext
//! path is compared before and after the transport refactor.

use std::time::{Duration, Instant};

use josefk::admin::{Admin, NewTopic};
use josefk::consumer::{AutoOffsetReset, Consumer, ConsumerConfig};
use josefk::producer::{Producer, ProducerConfig};
use josefk::{ClientConfig, ProducerRecord, TopicPartition};
use josefk_harness::{ClusterSpec, KafkaCluster};

const PARTITIONS: i32 = 6;

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// This process's user+sys CPU seconds.
fn cpu_seconds(ticks_per_second: f64) -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // Fields after the command name (which may contain spaces) start at ')'.
    let rest = &stat[stat.rfind(')').expect("stat format") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields[11].parse().expect("utime");
    let stime: f64 = fields[12].parse().expect("stime");
    (utime + stime) / ticks_per_second
}

fn ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

struct Mode {
    name: &'static str,
    client: ClientConfig,
}

#[derive(Default, Clone, Copy)]
struct Run {
    produce_cpu: f64,
    produce_wall: f64,
    consume_cpu: f64,
    consume_wall: f64,
}

async fn one_run(client: &ClientConfig, admin: &Admin, records: usize, ticks: f64) -> Run {
    static RUN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = RUN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let topic = format!("tls-cost-{}-{n}", std::process::id());
    admin
        .create_topics(&[NewTopic::new(&topic, PARTITIONS, 1)])
        .await
        .expect("create topic");
    let payload = bytes::Bytes::from(vec![b'x'; 100]);

    let cpu = cpu_seconds(ticks);
    let wall = Instant::now();
    let producer = Producer::connect(
        ProducerConfig::with_client(client.clone()).linger(Duration::from_millis(5)),
    )
    .await
    .expect("producer");
    let mut window = std::collections::VecDeque::new();
    for _ in 0..records {
        window.push_back(
            producer
                .send(ProducerRecord::new(&topic, payload.clone()))
                .await
                .expect("send"),
        );
        if window.len() >= 100_000 {
            window.pop_front().unwrap().await.expect("delivered");
        }
    }
    for d in window {
        d.await.expect("delivered");
    }
    producer.close(Duration::from_secs(30)).await.unwrap();
    let produce_wall = wall.elapsed().as_secs_f64();
    let produce_cpu = cpu_seconds(ticks) - cpu;

    let cpu = cpu_seconds(ticks);
    let wall = Instant::now();
    let mut consumer = Consumer::connect(
        ConsumerConfig::with_client(client.clone()).auto_offset_reset(AutoOffsetReset::Earliest),
    )
    .await
    .expect("consumer");
    let tps: Vec<TopicPartition> = (0..PARTITIONS)
        .map(|p| TopicPartition::new(&topic, p))
        .collect();
    consumer.assign(&tps).await.unwrap();
    let mut got = 0;
    while got < records {
        got += consumer
            .poll(Duration::from_millis(500))
            .await
            .expect("poll")
            .len();
    }
    assert_eq!(got, records, "every record read back once");
    let consume_wall = wall.elapsed().as_secs_f64();
    let consume_cpu = cpu_seconds(ticks) - cpu;
    drop(consumer);
    let _ = admin.delete_topics(&[&topic]).await;
    Run {
        produce_cpu,
        produce_wall,
        consume_cpu,
        consume_wall,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let records = env_num("JOSEFK_BENCH_RECORDS", 300_000);
    let rounds = env_num("JOSEFK_BENCH_ROUNDS", 3).max(1);
    let ticks = ticks_per_second();

    #[cfg(feature = "tls")]
    let certs = josefk_harness::TestCertificates::generate().expect("certificates");
    #[allow(unused_mut)]
    let mut spec = ClusterSpec::single();
    #[cfg(feature = "tls")]
    {
        spec = spec.listener(josefk_harness::Listener::ssl(
            "SSL",
            &certs.path("broker.pem"),
            &certs.path("ca.crt"),
        ));
    }
    let cluster = KafkaCluster::start(spec).expect("broker");
    #[allow(unused_mut)]
    let mut modes = vec![Mode {
        name: "PLAINTEXT",
        client: ClientConfig::new(&cluster.bootstrap_servers()),
    }];
    #[cfg(feature = "tls")]
    modes.push(Mode {
        name: "SSL",
        client: ClientConfig::new(&cluster.listener_bootstrap("SSL"))
            .security_protocol(josefk::SecurityProtocol::Ssl)
            .tls(
                josefk::security::TlsConfig::new()
                    .truststore(certs.path("ca.crt"), josefk::security::StoreType::Pem),
            ),
    });

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let admin = rt
        .block_on(Admin::connect(ClientConfig::new(
            &cluster.bootstrap_servers(),
        )))
        .expect("admin");
    // Warm-up (connections, allocator, broker JIT), not counted.
    for mode in &modes {
        rt.block_on(one_run(&mode.client, &admin, records / 10, ticks));
    }
    let mut results: Vec<Vec<Run>> = vec![Vec::new(); modes.len()];
    for _ in 0..rounds {
        for (i, mode) in modes.iter().enumerate() {
            results[i].push(rt.block_on(one_run(&mode.client, &admin, records, ticks)));
        }
    }
    println!(
        "{records} records of 100 B, 6 partitions, acks=all idempotent, linger 5 ms; median of \
         {rounds} rounds; client CPU = user+sys of this process"
    );
    println!(
        "{:<10} {:>16} {:>14} {:>16} {:>14}",
        "mode", "produce CPU s", "produce wall s", "consume CPU s", "consume wall s"
    );
    for (mode, runs) in modes.iter().zip(&results) {
        let m = |f: fn(&Run) -> f64| median(runs.iter().map(f).collect());
        println!(
            "{:<10} {:>16.2} {:>14.2} {:>16.2} {:>14.2}",
            mode.name,
            m(|r| r.produce_cpu),
            m(|r| r.produce_wall),
            m(|r| r.consume_cpu),
            m(|r| r.consume_wall)
        );
    }
    drop(admin);
    drop(rt);
    drop(cluster);
}
