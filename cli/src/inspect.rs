//! The inspection and management commands over `josefk::admin`: `metadata`, `topics`, `configs`,
//! `groups` and `offsets`. Output is plain text on stdout, one fact per line, for people and for
//! `grep`/`awk`; confirmations of changes go to stderr.

use std::collections::BTreeMap;

use josefk::admin::{
    Admin, ConfigChange, ConfigResource, ConfigSource, ConsumerGroupDescription, GroupDescription,
    NewTopic, OffsetSpec,
};
use josefk::{ErrorCode, IsolationLevel, TopicPartition};

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
            let mut missing = Vec::new();
            for group in &groups {
                match describe_group(&admin, group).await? {
                    Some(Described::Consumer(g)) => print_consumer_group(&g, quiet)?,
                    Some(Described::Classic(g)) => print_classic_group(&g, quiet)?,
                    None => missing.push(group.as_str()),
                }
            }
            if !missing.is_empty() {
                return Err(does_not_exist(&missing));
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
            // As Kafka's tool: only a group without members (or none at all) can be reset; the
            // coordinator would refuse the commit of an outsider with a bare UNKNOWN_MEMBER_ID.
            if let Some(described) = describe_group(&admin, &group).await? {
                let state = described.state();
                if state != "Empty" {
                    return Err(not_inactive(&group, state));
                }
            }
            let chosen = partitions_of(&admin, &topic, &partitions).await?;
            let offsets = reset_targets(&admin, &chosen, &to).await?;
            admin
                .alter_group_offsets(&group, &offsets)
                .await
                .map_err(|e| match e.kafka_code() {
                    // A member joined since the check.
                    Some(
                        ErrorCode::UnknownMemberId
                        | ErrorCode::IllegalGeneration
                        | ErrorCode::RebalanceInProgress
                        | ErrorCode::StaleMemberEpoch,
                    ) => CliError::runtime(format!(
                        "Assignments can only be reset if the group '{group}' is inactive, but \
                         a member joined it meanwhile ({e}). Stop its members first."
                    )),
                    _ => e.into(),
                })?;
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
            // Kafka's tool moves an offset outside the log to its nearest end, with a warning:
            // committed as given, it would make the group reset by `auto.offset.reset` later.
            let earliest = lookup(OffsetSpec::Earliest).await?;
            let latest = lookup(OffsetSpec::Latest).await?;
            return Ok(partitions
                .iter()
                .map(|tp| {
                    let (low, high) = (earliest[tp].offset, latest[tp].offset);
                    let o = if n > high {
                        diagln!(
                            "josefk: warning: New offset ({n}) is higher than latest offset for \
                             topic partition {tp}. Value will be set to {high}"
                        );
                        high
                    } else if n < low {
                        diagln!(
                            "josefk: warning: New offset ({n}) is lower than earliest offset for \
                             topic partition {tp}. Value will be set to {low}"
                        );
                        low
                    } else {
                        n
                    };
                    (tp.clone(), o)
                })
                .collect());
        }
    };
    Ok(partitions
        .iter()
        .map(|tp| (tp.clone(), offsets[tp].offset))
        .collect())
}

/// A group as its coordinator describes it.
enum Described {
    /// A KIP-848 `consumer` group (ConsumerGroupDescribe).
    Consumer(ConsumerGroupDescription),
    /// A classic group (DescribeGroups): consumer groups of the classic protocol, Connect, and
    /// groups that only hold committed offsets.
    Classic(GroupDescription),
}

impl Described {
    fn state(&self) -> &str {
        match self {
            Described::Consumer(g) => &g.state,
            Described::Classic(g) => &g.state,
        }
    }
}

/// Describes `group` as Java's admin client does: ConsumerGroupDescribe first, and DescribeGroups
/// when the broker says it is not a `consumer` group (GROUP_ID_NOT_FOUND) or does not know the
/// API. DescribeGroups alone reports a `consumer` group as `Dead` with no members. `None`: the
/// group does not exist.
async fn describe_group(admin: &Admin, group: &str) -> CliResult<Option<Described>> {
    match admin.describe_consumer_groups(&[group]).await {
        Ok(described) => {
            if let Some(g) = described.into_iter().next() {
                return Ok((g.state != "Dead").then_some(Described::Consumer(g)));
            }
        }
        Err(e)
            if matches!(e, josefk::Error::UnsupportedVersion { .. })
                || matches!(
                    e.kafka_code(),
                    Some(ErrorCode::GroupIdNotFound | ErrorCode::UnsupportedVersion)
                ) => {}
        Err(e) => return Err(e.into()),
    }
    let classic = admin.describe_groups(&[group]).await?.into_iter().next();
    Ok(classic
        .filter(|g| !g.state.is_empty() && g.state != "Dead")
        .map(Described::Classic))
}

/// Kafka's tool prints "Consumer group 'x' does not exist." and exits 0; here it is an error, so
/// scripts can tell.
fn does_not_exist(groups: &[&str]) -> CliError {
    let names: Vec<String> = groups.iter().map(|g| format!("`{g}`")).collect();
    CliError::runtime(if names.len() == 1 {
        format!("consumer group {} does not exist", names[0])
    } else {
        format!("consumer groups {} do not exist", names.join(", "))
    })
}

fn not_inactive(group: &str, state: &str) -> CliError {
    CliError::runtime(format!(
        "Assignments can only be reset if the group '{group}' is inactive, but the current \
         state is {state}. Stop its members first."
    ))
}

fn partition_list(partitions: &[TopicPartition]) -> String {
    if partitions.is_empty() {
        return "-".to_owned();
    }
    partitions
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

fn instance(id: Option<&str>) -> String {
    id.map(|i| format!(" instance {i}")).unwrap_or_default()
}

/// The fields both kinds of group share come first, in the same order, so `awk` columns agree.
fn print_classic_group(g: &GroupDescription, quiet: bool) -> CliResult {
    outln!(
        "group {} state {} protocol-type {} assignor {} coordinator {} members {} group-type \
         classic",
        g.group_id,
        g.state,
        or_dash(&g.protocol_type),
        or_dash(&g.protocol),
        g.coordinator,
        g.members.len()
    )?;
    for m in &g.members {
        outln!(
            "  member {} client-id {} host {}{} assigned {}",
            m.member_id,
            m.client_id,
            m.client_host,
            instance(m.group_instance_id.as_deref()),
            m.assignment
                .as_deref()
                .map_or("?".to_owned(), partition_list)
        )?;
    }
    note_state(&g.group_id, &g.state, quiet);
    Ok(())
}

fn print_consumer_group(g: &ConsumerGroupDescription, quiet: bool) -> CliResult {
    outln!(
        "group {} state {} protocol-type consumer assignor {} coordinator {} members {} \
         group-type consumer group-epoch {} assignment-epoch {}",
        g.group_id,
        g.state,
        or_dash(&g.assignor),
        g.coordinator,
        g.members.len(),
        g.group_epoch,
        g.assignment_epoch
    )?;
    for m in &g.members {
        let mut subscribed = m.subscribed_topics.join(",");
        if let Some(regex) = &m.subscribed_topic_regex {
            let sep = if subscribed.is_empty() { "" } else { "," };
            subscribed = format!("{subscribed}{sep}regex:{regex}");
        }
        outln!(
            "  member {} client-id {} host {}{} assigned {} epoch {} subscribed {}{}{}{}",
            m.member_id,
            m.client_id,
            m.client_host,
            instance(m.group_instance_id.as_deref()),
            partition_list(&m.assignment),
            m.member_epoch,
            or_dash(&subscribed),
            if m.target_assignment == m.assignment {
                String::new()
            } else {
                format!(" target {}", partition_list(&m.target_assignment))
            },
            m.rack
                .as_deref()
                .map(|r| format!(" rack {r}"))
                .unwrap_or_default(),
            if m.uses_consumer_protocol == Some(false) {
                " classic-member"
            } else {
                ""
            }
        )?;
    }
    note_state(&g.group_id, &g.state, quiet);
    Ok(())
}

/// Kafka's tool's notes for a group without members or in a rebalance.
fn note_state(group: &str, state: &str, quiet: bool) {
    if quiet {
        return;
    }
    match state {
        "Empty" => diagln!("consumer group `{group}` has no active members"),
        "PreparingRebalance" | "CompletingRebalance" | "Assigning" | "Reconciling" => {
            diagln!("warning: consumer group `{group}` is rebalancing")
        }
        _ => {}
    }
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
            // OffsetFetch answers a group that does not exist with no offsets, like one that has
            // committed nothing; scripts need to tell a typo from an idle group.
            if committed.is_empty() && describe_group(&admin, &group).await?.is_none() {
                return Err(does_not_exist(&[&group]));
            }
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
