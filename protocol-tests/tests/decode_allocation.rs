//! What decoding a response allocates, against the frame's size: the pre-check only lets through
//! counts the frame can hold, so the worst case is a frame packed with the smallest elements, each
//! of which `kafka-protocol` stores in a much larger struct. This measures that multiple with a
//! counting allocator for the densest answers of the APIs with the largest element structs, and
//! bounds it, and checks a count the frame cannot hold is refused before anything is reserved.
//!
//! One test function only: the allocator counts every thread of the process.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::{Bytes, BytesMut};
use josefk::protocol::codec::ApiRequest;
use josefk::protocol::decode_response;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Encodable, HeaderVersion};

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let now = CURRENT.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(now, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Largest allowed ratio of bytes allocated while decoding to bytes of frame.
const MAX_MULTIPLE: f64 = 64.0;

/// Decodes `response` encoded at `version` through josefk's path and returns the peak bytes
/// allocated while decoding, divided by the frame's size.
fn multiple<R: ApiRequest>(response: &R::Response, version: i16) -> (usize, f64)
where
    R::Response: Encodable,
{
    let mut frame = BytesMut::new();
    frame.extend_from_slice(&1i32.to_be_bytes());
    if R::Response::header_version(version) >= 1 {
        frame.extend_from_slice(&[0]);
    }
    response.encode(&mut frame, version).expect("encodes");
    let frame: Bytes = frame.freeze();
    let len = frame.len();
    let base = CURRENT.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let decoded = decode_response::<R>(frame, version, None).expect("decodes");
    let peak = PEAK.load(Ordering::Relaxed) - base;
    drop(decoded);
    (len, peak as f64 / len as f64)
}

#[test]
fn decoding_allocates_a_bounded_multiple_of_the_frame() {
    const N: usize = 20_000;
    let mut report = Vec::new();
    let mut check = |what: &str, (len, m): (usize, f64)| {
        report.push(format!("{what}: {len} bytes, {m:.1}x"));
        assert!(
            m <= MAX_MULTIPLE,
            "{what}: decoding allocates {m:.1}x the frame"
        );
    };

    let members = vec![describe_groups_response::DescribedGroupMember::default(); N];
    let groups = DescribeGroupsResponse::default().with_groups(vec![
        describe_groups_response::DescribedGroup::default().with_members(members),
    ]);
    for v in [0, 5] {
        check(
            &format!("DescribeGroups v{v} members"),
            multiple::<DescribeGroupsRequest>(&groups, v),
        );
    }
    let join = JoinGroupResponse::default().with_members(vec![
        join_group_response::JoinGroupResponseMember::default();
        N
    ]);
    for v in [1, 9] {
        check(
            &format!("JoinGroup v{v} members"),
            multiple::<JoinGroupRequest>(&join, v),
        );
    }
    let topics = MetadataResponse::default().with_topics(vec![
        metadata_response::MetadataResponseTopic::default()
            .with_name(Some(TopicName("".into())));
        N
    ]);
    for v in [1, 12] {
        check(
            &format!("Metadata v{v} topics"),
            multiple::<MetadataRequest>(&topics, v),
        );
    }
    let fetch = FetchResponse::default()
        .with_responses(vec![fetch_response::FetchableTopicResponse::default()
            .with_partitions(vec![fetch_response::PartitionData::default(); N])]);
    for v in [4, 12] {
        check(
            &format!("Fetch v{v} partitions"),
            multiple::<FetchRequest>(&fetch, v),
        );
    }
    let produce = ProduceResponse::default().with_responses(vec![
        produce_response::TopicProduceResponse::default().with_partition_responses(vec![
                produce_response::PartitionProduceResponse::default();
                N
            ]),
    ]);
    for v in [3, 12] {
        check(
            &format!("Produce v{v} partitions"),
            multiple::<ProduceRequest>(&produce, v),
        );
    }
    let commit = OffsetCommitResponse::default().with_topics(vec![
        offset_commit_response::OffsetCommitResponseTopic::default();
        N
    ]);
    for v in [2, 9] {
        check(
            &format!("OffsetCommit v{v} topics"),
            multiple::<OffsetCommitRequest>(&commit, v),
        );
    }
    let versions = ApiVersionsResponse::default()
        .with_api_keys(vec![api_versions_response::ApiVersion::default(); N]);
    for v in [0, 3] {
        check(
            &format!("ApiVersions v{v} api_keys"),
            multiple::<ApiVersionsRequest>(&versions, v),
        );
    }
    // A count the frame cannot hold, small enough not to abort without the pre-check (which
    // would then reserve 1 000 000 topics, about 100 MB, for a 40-byte frame).
    let mut frame = vec![0, 0, 0, 1, 0]; // correlation id, no header tags
    frame.extend_from_slice(&[0, 0, 0, 0, 1, 0]); // throttle, no brokers, null cluster id
    frame.extend_from_slice(&[0, 0, 0, 1]); // controller
    frame.extend_from_slice(&[0xc1, 0x84, 0x3d]); // 1 000 000 topics (compact: + 1)
    frame.resize(40, 0);
    let len = frame.len();
    let base = CURRENT.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let error = decode_response::<MetadataRequest>(Bytes::from(frame), 12, None);
    let m = (PEAK.load(Ordering::Relaxed) - base) as f64 / len as f64;
    report.push(format!("hostile Metadata v12 count: {len} bytes, {m:.1}x"));
    assert!(error.is_err());
    assert!(m <= MAX_MULTIPLE, "a refused frame allocated {m:.1}x");
    eprintln!("{}", report.join("\n"));
}
