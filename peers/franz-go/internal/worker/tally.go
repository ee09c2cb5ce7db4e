package worker

import (
	"fmt"
	"time"
)

// Consume-worker settings every client is given (protocol.rs).
const (
	FetchMaxBytes          = 50 * 1024 * 1024
	MaxPartitionFetchBytes = 1024 * 1024
	FetchMinBytes          = 1
	FetchMaxWait           = 500 * time.Millisecond
	MaxPollRecords         = 500
	// IdleLimit: a consume worker gives up when no record arrived for this long.
	IdleLimit = 30 * time.Second
)

// Tally counts and checks records as a consume worker receives them (protocol.rs Tally): bytes
// are key + value lengths; Aborted counts values starting with 'a' (the bench's mark on records
// of aborted transactions); Disorder counts records whose offset is not above the previous one
// of its partition.
type Tally struct {
	Records, Bytes, Aborted, Disorder uint64
	lastOffset                        []int64
	start, lastRecord                 time.Time
}

// NewTally is a tally for partitions 0..partitions.
func NewTally(partitions int32) *Tally {
	if partitions < 0 {
		partitions = 0
	}
	last := make([]int64, partitions)
	for i := range last {
		last[i] = -1
	}
	return &Tally{lastOffset: last}
}

// Start starts the clock (call just before the first poll).
func (t *Tally) Start() { t.start = time.Now() }

// Record counts one record.
func (t *Tally) Record(partition int32, offset int64, keyLen int, value []byte) {
	t.Records++
	t.Bytes += uint64(keyLen + len(value))
	if len(value) > 0 && value[0] == 'a' {
		t.Aborted++
	}
	if partition >= 0 && int(partition) < len(t.lastOffset) && offset > t.lastOffset[partition] {
		t.lastOffset[partition] = offset
	} else {
		t.Disorder++
	}
}

// Polled marks the end of a poll that returned records.
func (t *Tally) Polled() { t.lastRecord = time.Now() }

// Done is true once expected records are counted, or nothing came for IdleLimit.
func (t *Tally) Done(expected uint64) bool {
	if t.Records >= expected {
		return true
	}
	since := t.lastRecord
	if since.IsZero() {
		since = t.start
	}
	return !since.IsZero() && time.Since(since) > IdleLimit
}

// Result is the tally as a result, elapsed from Start to the last poll that returned records;
// CPUS is left for the caller.
func (t *Tally) Result() ConsumeResult {
	elapsed := 0.0
	if !t.start.IsZero() && !t.lastRecord.IsZero() {
		elapsed = t.lastRecord.Sub(t.start).Seconds()
	}
	return ConsumeResult{
		Records:  t.Records,
		Bytes:    t.Bytes,
		Aborted:  t.Aborted,
		Disorder: t.Disorder,
		ElapsedS: elapsed,
	}
}

// ConsumeResult is protocol.rs ConsumeResult: what a consume worker reports.
type ConsumeResult struct {
	Records, Bytes, Aborted, Disorder uint64
	ElapsedS, CPUS                    float64
}

// Line is the `CONSUME_COMPARE_RESULT ...` line.
func (r ConsumeResult) Line() string {
	return fmt.Sprintf("CONSUME_COMPARE_RESULT records=%d bytes=%d aborted=%d disorder=%d elapsed_s=%s cpu_s=%s",
		r.Records, r.Bytes, r.Aborted, r.Disorder, fixed(r.ElapsedS, 6), fixed(r.CPUS, 3))
}
