// Command franz-go-consume is franz-go as a peer in josefk's benches/consume_compare.rs: it reads
// a topic from the beginning and prints one `CONSUME_COMPARE_RESULT ...` line (protocol:
// peers/rdkafka-consume/src/protocol.rs).
//
// Every partition is assigned directly (ConsumePartitions at the start offset; no group, no
// commits), as the rdkafka and krafka peers do, and polled with PollRecords(ctx, 500) (the
// max.poll.records the others get) under a 100 ms deadline, as the others poll. Fetch settings:
// FetchMaxBytes 50 MiB, FetchMaxPartitionBytes 1 MiB, FetchMinBytes 1, FetchMaxWait 500 ms.
//
// Run through the bench, or by hand: `go run ./cmd/franz-go-consume --bootstrap 127.0.0.1:9092
// --topic t --partitions 6 --expected 1000 --isolation read_uncommitted`.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"josefk.invalid/franz-go-peer/internal/worker"
)

const who = "franz-go-consume"

type args struct {
	bootstrap, topic, isolation string
	partitions                  int32
	expected                    uint64
}

func parse(argv []string) (args, error) {
	f := worker.Flags(argv)
	var a args
	var err error
	if a.bootstrap, err = f.Get("--bootstrap"); err != nil {
		return a, err
	}
	if a.topic, err = f.Get("--topic"); err != nil {
		return a, err
	}
	if a.partitions, err = f.Int32("--partitions"); err != nil {
		return a, err
	}
	if a.expected, err = f.Uint("--expected"); err != nil {
		return a, err
	}
	if a.isolation, err = f.Get("--isolation"); err != nil {
		return a, err
	}
	if a.isolation != "read_committed" && a.isolation != "read_uncommitted" {
		return a, fmt.Errorf("--isolation: unknown level %s", a.isolation)
	}
	return a, nil
}

func main() {
	a, err := parse(os.Args[1:])
	if err != nil {
		worker.Exit(who, err)
	}
	isolation := kgo.ReadUncommitted()
	if a.isolation == "read_committed" {
		isolation = kgo.ReadCommitted()
	}
	offsets := make(map[int32]kgo.Offset, a.partitions)
	for p := int32(0); p < a.partitions; p++ {
		offsets[p] = kgo.NewOffset().AtStart()
	}
	// SASL_SSL when the bench asks for it (worker.SecurityOpts).
	security, err := worker.SecurityOpts()
	if err != nil {
		worker.Exit(who, err)
	}
	opts := append([]kgo.Opt{
		kgo.SeedBrokers(a.bootstrap),
		kgo.ClientID("consume-compare-franz-go"),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{a.topic: offsets}),
		kgo.FetchIsolationLevel(isolation),
		kgo.FetchMaxBytes(worker.FetchMaxBytes),
		kgo.FetchMaxPartitionBytes(worker.MaxPartitionFetchBytes),
		kgo.FetchMinBytes(worker.FetchMinBytes),
		kgo.FetchMaxWait(worker.FetchMaxWait),
	}, security...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		worker.Exit(who, err)
	}

	tally := worker.NewTally(a.partitions)
	errs := 0
	tally.Start()
	for !tally.Done(a.expected) {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		fetches := cl.PollRecords(ctx, worker.MaxPollRecords)
		cancel()
		fetches.EachError(func(topic string, partition int32, err error) {
			// The poll's own deadline is reported as a fetch error: an empty poll, not a failure.
			if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
				return
			}
			if errs == 0 {
				fmt.Fprintf(os.Stderr, "%s: %s[%d]: %v\n", who, topic, partition, err)
			}
			errs++
		})
		n := 0
		fetches.EachRecord(func(r *kgo.Record) {
			tally.Record(r.Partition, r.Offset, len(r.Key), r.Value)
			n++
		})
		if n > 0 {
			tally.Polled()
		}
	}
	res := tally.Result()
	cl.Close()
	res.CPUS = worker.OwnCPUSeconds()
	fmt.Println(res.Line())
}
