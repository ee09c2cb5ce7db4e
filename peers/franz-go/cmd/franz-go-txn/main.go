// Command franz-go-txn is franz-go as a peer in josefk's benches/txn_compare.rs: a transactional
// (or, with `--txn-id -`, plain idempotent) producer run as the bench asks (protocol:
// peers/rdkafka-txn/src/txn_proto.rs), printing one `TXN_COMPARE_RESULT ...` line.
//
// Records go to Client.Produce with a promise, without waiting. franz-go's EndTransaction does
// not flush, so a commit here is Flush then EndTransaction(TryCommit), timed together: what
// Java's, librdkafka's and josefk's commit_transaction do in one call. A transaction in which
// any record failed is aborted instead (Java's commitTransaction refuses such a transaction too),
// so only records the broker acknowledged in committed transactions count.
//
// Run through the bench, or by hand with the flags `--bootstrap --topic --txn-id --records
// --per-txn --interval-ms --size --linger-ms --batch-size --buffer-memory`.
package main

import (
	"context"
	"fmt"
	"math"
	"os"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"josefk.invalid/franz-go-peer/internal/worker"
)

const who = "franz-go-txn"

// timeout bounds each transactional call, as the other peers' 60 s.
const timeout = 60 * time.Second

type args struct {
	worker.ProducerSettings
	topic                             string
	records, perTxn, intervalMs, size uint64
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
	get("--txn-id", &a.TransactionalID)
	num("--records", &a.records)
	num("--per-txn", &a.perTxn)
	num("--interval-ms", &a.intervalMs)
	num("--size", &a.size)
	num("--linger-ms", &a.LingerMs)
	num("--batch-size", &a.BatchSize)
	num("--buffer-memory", &a.BufferMemory)
	if a.TransactionalID == "-" {
		a.TransactionalID = ""
	}
	a.Compression = "none"
	a.ClientID = "txn-compare-franz-go"
	return a, err
}

// commitDue is txn_proto.rs TxnArgs::commit_due.
func (a *args) commitDue(inTxn uint64, openFor time.Duration) bool {
	return (a.perTxn > 0 && inTxn >= a.perTxn) ||
		(a.intervalMs > 0 && uint64(openFor.Milliseconds()) >= a.intervalMs)
}

// deliveries counts promises (called serially by franz-go; the mutex makes reads from the main
// goroutine safe).
type deliveries struct {
	mu      sync.Mutex
	acked   uint64
	failed  uint64
	lastAck time.Time
}

func (d *deliveries) done(_ *kgo.Record, err error) {
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
	d.lastAck = now
}

func (d *deliveries) failures() uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.failed
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
	transactional := a.TransactionalID != ""
	ctx := context.Background()
	{
		// Connect (and, transactional, get the producer id: Java's initTransactions) before the
		// clock starts, as the other workers do.
		c, cancel := context.WithTimeout(ctx, timeout)
		err := cl.Ping(c)
		if err == nil && transactional {
			_, _, err = cl.ProducerID(c)
		}
		cancel()
		if err != nil {
			worker.Exit(who, fmt.Errorf("connect: %w", err))
		}
	}
	payloads := worker.Payloads(int(a.size))
	d := &deliveries{}

	var commits worker.Latencies
	var txns, committed, inTxn uint64
	failedBefore := uint64(0)
	// commit flushes the open transaction and ends it: committed if every record of it was
	// acknowledged, else aborted.
	commit := func() bool {
		c, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		t := time.Now()
		err := cl.Flush(c)
		failed := d.failures()
		if err == nil && failed > failedBefore {
			err = fmt.Errorf("%d records of the transaction failed", failed-failedBefore)
		}
		failedBefore = failed
		if err == nil {
			err = cl.EndTransaction(c, kgo.TryCommit)
			if err == nil {
				commits.Record(time.Since(t))
				return true
			}
		}
		fmt.Fprintf(os.Stderr, "%s: commit failed: %v\n", who, err)
		if err := cl.EndTransaction(c, kgo.TryAbort); err != nil {
			fmt.Fprintf(os.Stderr, "%s: abort failed: %v\n", who, err)
		}
		return false
	}

	var txnBegan time.Time
	start := time.Now()
	for i := uint64(0); i < a.records; i++ {
		if transactional && inTxn == 0 {
			if err := cl.BeginTransaction(); err != nil {
				worker.Exit(who, fmt.Errorf("begin transaction: %w", err))
			}
			txnBegan = time.Now()
		}
		r := &kgo.Record{Topic: a.topic, Value: payloads[i%uint64(len(payloads))]}
		cl.Produce(ctx, r, d.done)
		inTxn++
		last := i+1 == a.records
		if transactional && (last || a.commitDue(inTxn, time.Since(txnBegan))) {
			if commit() {
				txns++
				committed += inTxn
			}
			inTxn = 0
		}
	}
	elapsed := time.Since(start).Seconds()
	if !transactional {
		if err := cl.Flush(ctx); err != nil {
			fmt.Fprintf(os.Stderr, "%s: flush: %v\n", who, err)
		}
		d.mu.Lock()
		committed = d.acked
		elapsed = d.lastAck.Sub(start).Seconds()
		if d.lastAck.IsZero() || elapsed <= 0 {
			elapsed = math.NaN()
		}
		d.mu.Unlock()
	}
	res := worker.TxnResult{Txns: txns, Records: committed, Failed: d.failures(), ElapsedS: elapsed}
	res.P50Ms, res.P99Ms = commits.P50P99Ms()
	cl.Close()
	res.CPUS = worker.OwnCPUSeconds()
	fmt.Println(res.Line())
}
