// Command franz-go-copy is franz-go as a peer in josefk's benches/pipeline_compare.rs: an
// exactly-once copier on kgo.GroupTransactSession (consume in a group at read_committed, produce
// in a transaction with the consumed offsets), the counterpart of josefk's Pipeline and Java's
// TransactionalMessageCopier.
//
// A transaction ends after 1,000 records (`--commit-records`) or 100 ms (`--commit-ms`),
// whichever comes first, with End(TryCommit), which flushes, commits the offsets in the
// transaction and commits (or aborts, when a rebalance happened meanwhile). Output records keep
// the input's key and value; the partition comes from the key (franz-go's default partitioner,
// murmur2 as Java's). It exits after `--records` records were committed, printing one line
// `PIPELINE_COPY_RESULT committed=<n> transactions=<t> aborted=<a>`.
//
// Flags: --bootstrap --input --output --group --txn-id --records [--commit-records 1000]
// [--commit-ms 100].
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"josefk.invalid/franz-go-peer/internal/worker"
)

const who = "franz-go-copy"

func main() {
	if err := run(); err != nil {
		worker.Exit(who, err)
	}
}

func run() error {
	f := worker.Flags(os.Args[1:])
	var err error
	get := func(name string) string {
		var v string
		if err == nil {
			v, err = f.Get(name)
		}
		return v
	}
	num := func(name string, def uint64) uint64 {
		if err != nil {
			return 0
		}
		if _, missing := f.Get(name); missing != nil {
			return def
		}
		var v uint64
		v, err = f.Uint(name)
		return v
	}
	bootstrap, input, output := get("--bootstrap"), get("--input"), get("--output")
	group, txnID := get("--group"), get("--txn-id")
	records := num("--records", 0)
	perTxn := num("--commit-records", 1000)
	interval := time.Duration(num("--commit-ms", 100)) * time.Millisecond
	if err != nil {
		return err
	}

	sess, err := kgo.NewGroupTransactSession(
		kgo.SeedBrokers(bootstrap),
		kgo.TransactionalID(txnID),
		kgo.TransactionTimeout(60*time.Second),
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(input),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.RequireStableFetchOffsets(),
	)
	if err != nil {
		return err
	}
	defer sess.Close()

	ctx := context.Background()
	var committed, transactions, aborted uint64
	for committed < records {
		if err := sess.Begin(); err != nil {
			return fmt.Errorf("begin: %w", err)
		}
		var n uint64
		var mu sync.Mutex
		var produceErr error
		deadline := time.Now().Add(interval)
		for n < perTxn && time.Now().Before(deadline) {
			pollCtx, cancel := context.WithDeadline(ctx, deadline)
			fetches := sess.PollRecords(pollCtx, int(perTxn-n))
			cancel()
			for _, fe := range fetches.Errors() {
				if !errors.Is(fe.Err, context.DeadlineExceeded) && !errors.Is(fe.Err, context.Canceled) {
					return fmt.Errorf("poll: %w", fe.Err)
				}
			}
			fetches.EachRecord(func(r *kgo.Record) {
				out := &kgo.Record{Topic: output, Key: r.Key, Value: r.Value}
				sess.Produce(ctx, out, func(_ *kgo.Record, err error) {
					if err != nil {
						mu.Lock()
						if produceErr == nil {
							produceErr = err
						}
						mu.Unlock()
					}
				})
				n++
			})
		}
		// End flushes first, so every promise has run before produceErr is read.
		ok, err := sess.End(ctx, kgo.TryCommit)
		if err != nil {
			return fmt.Errorf("end: %w", err)
		}
		mu.Lock()
		failed := produceErr
		mu.Unlock()
		if failed != nil {
			return fmt.Errorf("produce: %w", failed)
		}
		if n == 0 {
			continue
		}
		if ok {
			committed += n
			transactions++
		} else {
			aborted++
		}
	}
	fmt.Printf("PIPELINE_COPY_RESULT committed=%d transactions=%d aborted=%d\n", committed, transactions, aborted)
	return nil
}
