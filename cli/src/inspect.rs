//! The inspection and management commands over `josefk::admin`: `metadata`, `topics`, `configs`,
//! `groups` and `offsets`. Output is plain text on stdout, one fact per line, for people and for
//! `grep`/`awk`; confirmations of changes go to stderr.

use std::collections::BTreeMap;

use josefk::admin::{Admin, ConfigChange, ConfigResource, ConfigSource, NewTopic, OffsetSpec};
use josefk::{IsolationLevel, TopicPartition};

use crate::args::{ConfigTarget, ConfigsCommand, GroupsCommand, OffsetsCommand, TopicsCommand};
use crate::exit::{CliError, CliResult};
use crate::output::{diagln, outln};
use crate::props::{parse_pairs, Properties};

async fn admin(props: &Properties) -> CliResult<Admin> {
    Ok(Admin::connect(props.client()?).await?)
}

/// `metadata`: the cluster, then each topic with its partitions.
pub async fn metadata(props: &Properties) -> CliResult {
    let admin = admin(props).await?;
    let cluster = admin.describe_cluster().await?;
    outln!(
        "cluster {} controller {}",
        cluster.cluster_id.as_deref().unwrap_or("-"),
        cluster
            .controller_id
            .map_or("-".to_owned(), |c| c.to_string())
    )?;
    for b in &cluster.brokers {
        outln!(
            "broker {} {}:{}{}",
            b.node_id,
            b.host,
            b.port,
            b.rack
                .as_deref()
                .map(|r| format!(" rack {r}"))
                .unwrap_or_default()
        )?;
    }
    let names = admin.list_topics().await?;
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    describe_topics(&admin, &names).await
}

/// `topics ...`.
pub async fn topics(command: TopicsCommand, props: &Properties, quiet: bool) -> CliResult {
    let admin = admin(props).await?;
    match command {
        TopicsCommand::List { all } => {
            let described = if all {
                admin.list_topics().await?
            } else {
                let names = admin.list_topics().await?;
                let refs: Vec<&str> = names.iter().map(String::as_str).collect();
                admin
                    .describe_topics(&refs)
                    .await?
                    .into_iter()
                    .filter(|t| !t.internal)
                    .map(|t| t.name)
                    .collect()
            };
            for name in described {
                outln!("{name}")?;
            }
        }
        TopicsCommand::Describe { topics } => {
            let names: Vec<&str> = topics.iter().map(String::as_str).collect();
            describe_topics(&admin, &names).await?;
        }
        TopicsCommand::Create {
            topic,
            partitions,
            replication_factor,
            configs,
        } => {
            let mut new = NewTopic::new(&topic, partitions, replication_factor);
            for (k, v) in parse_pairs(&configs, "--config")? {
                new = new.config(k, v);
            }
            admin.create_topics(&[new]).await?;
            if !quiet {
                diagln!(
                    "created topic `{topic}` ({partitions} partitions, replication factor \
                     {replication_factor})"
                );
            }
        }
        TopicsCommand::Delete { topics } => {
            let names: Vec<&str> = topics.iter().map(String::as_str).collect();
            admin.delete_topics(&names).await?;
            if !quiet {
                diagln!("deleted {}", topics.join(", "));
            }
        }
        TopicsCommand::AddPartitions { topic, partitions } => {
            admin.create_partitions(&topic, partitions).await?;
            if !quiet {
                diagln!("topic `{topic}` now has {partitions} partitions");
            }
        }
        TopicsCommand::DeleteRecords {
            topic,
            partitions,
            before,
        } => {
            let before = match before.as_str() {
                "end" => -1,
                n => n.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
                    CliError::usage(format!("--before `{n}`: expected an offset or `end`"))
                })?,
            };
            let chosen = partitions_of(&admin, &topic, &partitions).await?;
            let specs: Vec<_> = chosen.iter().map(|tp| (tp.clone(), before)).collect();
            let low = admin.delete_records(&specs).await?;
            outln!("partition log-start-offset")?;
            for tp in &chosen {
                outln!("{} {}", tp.partition, low[tp])?;
            }
        }
    }
    Ok(())
}

/// The partitions of `topic` named in `chosen` (every partition if empty); a partition that does
/// not exist is a usage error.
async fn partitions_of(
    admin: &Admin,
    topic: &str,
    chosen: &[i32],
) -> CliResult<Vec<TopicPartition>> {
    let all: Vec<i32> = admin
        .describe_topics(&[topic])
        .await?
        .remove(0)
        .partitions
        .iter()
        .map(|p| p.partition)
        .collect();
    if let Some(missing) = chosen.iter().find(|p| !all.contains(p)) {
        return Err(CliError::usage(format!(
            "topic `{topic}` has no partition {missing}"
        )));
    }
    let picked = if chosen.is_empty() { &all[..] } else { chosen };
    Ok(picked
        .iter()
        .map(|p| TopicPartition::new(topic, *p))
        .collect())
}

/// `configs ...`.
pub async fn configs(command: ConfigsCommand, props: &Properties, quiet: bool) -> CliResult {
    let admin = admin(props).await?;
    let resource = |t: &ConfigTarget| match (&t.topic, t.broker) {
        (Some(topic), _) => ConfigResource::Topic(topic.clone()),
        (None, Some(id)) => ConfigResource::Broker(id),
        (None, None) => unreachable!("clap requires --topic or --broker"),
    };
    match command {
        ConfigsCommand::Describe(target) => {
            for e in admin.describe_configs(&resource(&target)).await? {
                let value = match (&e.value, e.sensitive) {
                    (_, true) => "(secret)".to_owned(),
                    (Some(v), false) => v.clone(),
                    (None, false) => "(none)".to_owned(),
                };
                outln!(
                    "{}={value} source {}{}",
                    e.name,
                    source_name(e.source),
                    if e.read_only { " read-only" } else { "" }
                )?;
            }
        }
        ConfigsCommand::Alter {
            target,
            set,
            delete,
        } => {
            let mut changes: Vec<ConfigChange> = parse_pairs(&set, "--set")?
                .into_iter()
                .map(|(k, v)| ConfigChange::Set(k, v))
                .collect();
            changes.extend(delete.into_iter().map(ConfigChange::Delete));
            if changes.is_empty() {
                return Err(CliError::usage("nothing to change: give --set or --delete"));
            }
            admin.alter_configs(&resource(&target), &changes).await?;
            if !quiet {
                diagln!("{} config(s) changed", changes.len());
            }
        }
    }
    Ok(())
}

fn source_name(source: ConfigSource) -> String {
    match source {
        ConfigSource::Topic => "topic".into(),
        ConfigSource::DynamicBroker => "dynamic-broker".into(),
        ConfigSource::DynamicDefaultBroker => "dynamic-default-broker".into(),
        ConfigSource::StaticBroker => "static-broker".into(),
        ConfigSource::Default => "default".into(),
        ConfigSource::Other(n) => format!("other({n})"),
        _ => "unknown".into(),
    }
}

async fn describe_topics(admin: &Admin, names: &[&str]) -> CliResult {
    for t in admin.describe_topics(names).await? {
        outln!(
            "topic {} partitions {}{}",
            t.name,
            t.partitions.len(),
            if t.internal { " internal" } else { "" }
        )?;
        for p in &t.partitions {
            outln!(
                "  partition {} leader {} replicas {} isr {}",
                p.partition,
                p.leader.map_or("none".to_owned(), |l| l.to_string()),
                join(&p.replicas),
                join(&p.isr)
            )?;
        }
    }
    Ok(())
}

fn join(ids: &[i32]) -> String {
    ids.iter().map(i32::to_string).collect::<Vec<_>>().join(",")
}

/// `groups ...`.
pub async fn groups(command: GroupsCommand, props: &Properties, quiet: bool) -> CliResult {
    let admin = admin(props).await?;
    match command {
        GroupsCommand::List => {
            for g in admin.list_groups().await? {
                outln!(
                    "{} state {} protocol-type {} coordinator {}",
                    g.group_id,
                    g.state.as_deref().unwrap_or("-"),
                    if g.protocol_type.is_empty() {
                        "-"
                    } else {
                        &g.protocol_type
                    },
                    g.coordinator
                )?;
            }
        }
        GroupsCommand::Describe { groups } => {
            let names: Vec<&str> = groups.iter().map(String::as_str).collect();
            for g in admin.describe_groups(&names).await? {
                outln!(
                    "group {} state {} protocol-type {} assignor {} coordinator {} members {}",
                    g.group_id,
                    g.state,
                    or_dash(&g.protocol_type),
                    or_dash(&g.protocol),
                    g.coordinator,
                    g.members.len()
                )?;
                for m in &g.members {
                    let assignment = m.assignment.as_ref().map_or("?".to_owned(), |a| {
                        a.iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(",")
                    });
                    outln!(
                        "  member {} client-id {} host {}{} assigned {}",
                        m.member_id,
                        m.client_id,
                        m.client_host,
                        m.group_instance_id
                            .as_deref()
                            .map(|i| format!(" instance {i}"))
                            .unwrap_or_default(),
                        if assignment.is_empty() {
                            "-"
                        } else {
                            &assignment
                        }
                    )?;
                }
            }
        }
        GroupsCommand::Delete { groups } => {
            let names: Vec<&str> = groups.iter().map(String::as_str).collect();
            admin.delete_groups(&names).await?;
            if !quiet {
                diagln!("deleted {}", groups.join(", "));
            }
        }
        GroupsCommand::ResetOffsets {
            group,
            topic,
            partitions,
            to,
        } => {
            let chosen = partitions_of(&admin, &topic, &partitions).await?;
            let offsets = reset_targets(&admin, &chosen, &to).await?;
            admin.alter_group_offsets(&group, &offsets).await?;
            outln!("topic partition new-offset")?;
            for (tp, o) in &offsets {
                outln!("{} {} {o}", tp.topic, tp.partition)?;
            }
        }
        GroupsCommand::DeleteOffsets {
            group,
            topic,
            partitions,
        } => {
            let chosen = partitions_of(&admin, &topic, &partitions).await?;
            admin.delete_group_offsets(&group, &chosen).await?;
            if !quiet {
                diagln!(
                    "deleted group `{group}`'s offsets of {} partition(s) of `{topic}`",
                    chosen.len()
                );
            }
        }
    }
    Ok(())
}

/// The offsets `--to` names for each partition.
async fn reset_targets(
    admin: &Admin,
    partitions: &[TopicPartition],
    to: &str,
) -> CliResult<Vec<(TopicPartition, i64)>> {
    let lookup = |spec: OffsetSpec| async move {
        let specs: Vec<_> = partitions.iter().map(|tp| (tp.clone(), spec)).collect();
        admin
            .list_offsets(&specs, IsolationLevel::ReadUncommitted)
            .await
            .map_err(CliError::from)
    };
    let offsets = match to {
        "earliest" => lookup(OffsetSpec::Earliest).await?,
        "latest" => lookup(OffsetSpec::Latest).await?,
        other => {
            let bad = || {
                CliError::usage(format!(
                    "--to `{other}`: expected earliest, latest, an offset or @TIMESTAMP_MS"
                ))
            };
            if let Some(ms) = other.strip_prefix('@') {
                let ms: i64 = ms.parse().map_err(|_| bad())?;
                let found = lookup(OffsetSpec::Timestamp(ms)).await?;
                let latest = lookup(OffsetSpec::Latest).await?;
                return Ok(partitions
                    .iter()
                    .map(|tp| {
                        let o = found[tp].offset;
                        (tp.clone(), if o >= 0 { o } else { latest[tp].offset })
                    })
                    .collect());
            }
            let n: i64 = other.parse().ok().filter(|n| *n >= 0).ok_or_else(bad)?;
            return Ok(partitions.iter().map(|tp| (tp.clone(), n)).collect());
        }
    };
    Ok(partitions
        .iter()
        .map(|tp| (tp.clone(), offsets[tp].offset))
        .collect())
}

fn or_dash(s: &str) -> &str {
    if s.is_empty() {
        "-"
    } else {
        s
    }
}

/// `offsets ...`.
pub async fn offsets(command: OffsetsCommand, props: &Properties) -> CliResult {
    let admin = admin(props).await?;
    match command {
        OffsetsCommand::Topic {
            topic,
            read_committed,
        } => {
            let isolation = if read_committed {
                IsolationLevel::ReadCommitted
            } else {
                IsolationLevel::ReadUncommitted
            };
            let partitions: Vec<TopicPartition> = admin
                .describe_topics(&[&topic])
                .await?
                .remove(0)
                .partitions
                .iter()
                .map(|p| TopicPartition::new(&topic, p.partition))
                .collect();
            let (earliest, latest) = ends(&admin, &partitions, isolation).await?;
            outln!("partition earliest latest")?;
            for tp in &partitions {
                outln!("{} {} {}", tp.partition, earliest[tp], latest[tp])?;
            }
        }
        OffsetsCommand::Group { group } => {
            let committed = admin.list_group_offsets(&group).await?;
            // Offsets outlive their topic: a deleted topic's are shown without latest and lag
            // (looking up its offsets would wait for the topic until the call's timeout).
            let existing: std::collections::BTreeSet<String> =
                admin.list_topics().await?.into_iter().collect();
            let partitions: Vec<TopicPartition> = committed
                .keys()
                .filter(|tp| existing.contains(&tp.topic))
                .cloned()
                .collect();
            let (_, latest) = ends(&admin, &partitions, IsolationLevel::ReadUncommitted).await?;
            outln!("topic partition committed latest lag")?;
            for (tp, c) in &committed {
                match latest.get(tp) {
                    Some(end) => outln!(
                        "{} {} {} {end} {}",
                        tp.topic,
                        tp.partition,
                        c.offset,
                        (end - c.offset).max(0)
                    )?,
                    None => outln!("{} {} {} - -", tp.topic, tp.partition, c.offset)?,
                }
            }
        }
    }
    Ok(())
}

/// Earliest and latest offsets of `partitions`.
async fn ends(
    admin: &Admin,
    partitions: &[TopicPartition],
    isolation: IsolationLevel,
) -> CliResult<(BTreeMap<TopicPartition, i64>, BTreeMap<TopicPartition, i64>)> {
    if partitions.is_empty() {
        return Ok(Default::default());
    }
    let lookup = |spec: OffsetSpec| {
        let specs: Vec<_> = partitions.iter().map(|tp| (tp.clone(), spec)).collect();
        async move { admin.list_offsets(&specs, isolation).await }
    };
    let earliest = lookup(OffsetSpec::Earliest).await?;
    let latest = lookup(OffsetSpec::Latest).await?;
    let flat = |m: std::collections::HashMap<TopicPartition, josefk::admin::ListedOffset>| {
        m.into_iter().map(|(tp, o)| (tp, o.offset)).collect()
    };
    Ok((flat(earliest), flat(latest)))
}
