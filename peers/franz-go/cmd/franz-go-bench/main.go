// Command franz-go-bench is franz-go as a peer in josefk's benches/produce_compare.rs: it
// produces N keyless records of a given size as fast as it can and prints one
// `PRODUCE_COMPARE_RESULT ...` line (protocol: peers/common/worker.rs).
//
// Each record is handed to Client.Produce with a promise (franz-go's asynchronous path; Produce
// blocks while MaxBufferedBytes are buffered, as Java's send blocks on buffer.memory). Only
// records whose promise reports success count as acknowledged; latency is the Produce call to
// the promise. With --rate R, record i is sent no earlier than i/R s after the first (fixed-rate
// mode) and the result line ends with ` p999_ms=..`.
//
// Run through the bench, which builds it with `go build` into its target dir, or by hand:
// `go run ./cmd/franz-go-bench --bootstrap 127.0.0.1:9092 --topic t --records 100000 --size 100
// --compression none --linger-ms 5 --batch-size 16384 --buffer-memory 33554432`.
package main

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"josefk.invalid/franz-go-peer/internal/worker"
)

const who = "franz-go-bench"

type args struct {
	worker.ProducerSettings
	topic   string
	records uint64
	size    uint64
	// rate is records/s in fixed-rate mode (--rate, optional); 0 sends as fast as possible.
	rate uint64
}

func parse(argv []string) (args, error) {
	f := worker.Flags(argv)
	var a args
	var err error
	get := func(name string, dst *string) {
		if err == nil {
			*dst, err = f.Get(name)
		}
	}
	num := func(name string, dst *uint64) {
		if err == nil {
			*dst, err = f.Uint(name)
		}
	}
	get("--bootstrap", &a.Bootstrap)
	get("--topic", &a.topic)
	num("--records", &a.records)
	num("--size", &a.size)
	get("--compression", &a.Compression)
	num("--linger-ms", &a.LingerMs)
	num("--batch-size", &a.BatchSize)
	num("--buffer-memory", &a.BufferMemory)
	a.ClientID = "produce-compare-franz-go"
	for _, x := range argv {
		if x == "--rate" {
			num("--rate", &a.rate)
		}
	}
	return a, err
}

// deliveries counts promises; franz-go calls promises serially, the mutex only makes the final
// read after Flush plainly safe.
type deliveries struct {
	mu        sync.Mutex
	acked     uint64
	failed    uint64
	bytes     uint64
	lastAck   time.Time
	latencies worker.Latencies
}

func (d *deliveries) done(sent time.Time, r *kgo.Record, err error) {
	now := time.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	if err != nil {
		if d.failed == 0 {
			fmt.Fprintf(os.Stderr, "%s: first delivery failure: %v\n", who, err)
		}
		d.failed++
		return
	}
	d.acked++
	d.bytes += uint64(len(r.Value))
	d.lastAck = now
	d.latencies.Record(now.Sub(sent))
}

func main() {
	a, err := parse(os.Args[1:])
	if err != nil {
		worker.Exit(who, err)
	}
	opts, err := worker.ProducerOpts(a.ProducerSettings)
	if err != nil {
		worker.Exit(who, err)
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		worker.Exit(who, err)
	}
	ctx := context.Background()
	// Connect before the clock starts, as the other workers do.
	pingCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
	if err := cl.Ping(pingCtx); err != nil {
		worker.Exit(who, fmt.Errorf("connect: %w", err))
	}
	cancel()
	payloads := worker.Payloads(int(a.size))
	d := &deliveries{latencies: make(worker.Latencies, 0, a.records)}

	start := time.Now()
	for i := uint64(0); i < a.records; i++ {
		if a.rate > 0 {
			if wait := time.Until(start.Add(worker.Due(i, a.rate))); wait > 0 {
				time.Sleep(wait)
			}
		}
		r := &kgo.Record{Topic: a.topic, Value: payloads[i%uint64(len(payloads))]}
		sent := time.Now()
		cl.Produce(ctx, r, func(r *kgo.Record, err error) { d.done(sent, r, err) })
	}
	if err := cl.Flush(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "%s: flush: %v\n", who, err)
	}
	d.mu.Lock()
	res := worker.ProduceResult{Acked: d.acked, Failed: d.failed, Bytes: d.bytes}
	if !d.lastAck.IsZero() {
		res.ElapsedS = d.lastAck.Sub(start).Seconds()
	}
	res.P50Ms, res.P99Ms = d.latencies.P50P99Ms()
	p999 := d.latencies.PercentileMs(0.999)
	d.mu.Unlock()
	cl.Close()
	res.CPUS = worker.OwnCPUSeconds()
	if a.rate > 0 {
		fmt.Println(res.Line() + worker.P999Field(p999))
	} else {
		fmt.Println(res.Line())
	}
}
