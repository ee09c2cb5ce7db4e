// Package worker is the Go side of the worker protocols of josefk's compare benches: command-line
// flags, payloads, latency percentiles, CPU time and the result lines, written to match
// `peers/common/worker.rs`, `peers/rdkafka-txn/src/txn_proto.rs` and
// `peers/rdkafka-consume/src/protocol.rs` byte for byte, so the bench orchestrators read a
// franz-go worker exactly as they read the Rust ones.
package worker

import (
	"fmt"
	"math"
	"os"
	"sort"
	"strconv"
	"syscall"
	"time"
)

// PayloadPool is how many distinct payloads a worker cycles through (worker.rs PAYLOAD_POOL).
const PayloadPool = 1024

// Flags is a worker command line of `--flag value` pairs: each flag's value is the word after it.
type Flags []string

// Get returns the value of a required flag.
func (f Flags) Get(name string) (string, error) {
	for i, a := range f {
		if a == name && i+1 < len(f) {
			return f[i+1], nil
		}
	}
	return "", fmt.Errorf("missing %s", name)
}

// Uint returns the value of a required non-negative integer flag.
func (f Flags) Uint(name string) (uint64, error) {
	s, err := f.Get(name)
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %v", name, err)
	}
	return n, nil
}

// Int32 returns the value of a required 32-bit integer flag.
func (f Flags) Int32(name string) (int32, error) {
	s, err := f.Get(name)
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(s, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("%s: %v", name, err)
	}
	return int32(n), nil
}

// Exit prints a worker's command-line error and exits with code 2 (worker.rs parse_or_exit).
func Exit(who string, err error) {
	fmt.Fprintf(os.Stderr, "%s: %v\n", who, err)
	os.Exit(2)
}

// Payloads returns PayloadPool payloads of size random uppercase letters from the same
// fixed-seed xorshift as worker.rs payload_pool, so every client sends the same bytes.
func Payloads(size int) [][]byte {
	state := uint64(0x9E3779B97F4A7C15)
	pool := make([][]byte, PayloadPool)
	for i := range pool {
		p := make([]byte, size)
		for j := range p {
			state ^= state << 13
			state ^= state >> 7
			state ^= state << 17
			p[j] = 'A' + byte(state%26)
		}
		pool[i] = p
	}
	return pool
}

// Latencies are durations in whole microseconds (saturating at u32::MAX as worker.rs does).
type Latencies []uint32

// Record adds one latency.
func (l *Latencies) Record(d time.Duration) {
	us := d.Microseconds()
	if us < 0 {
		us = 0
	}
	if us > int64(^uint32(0)) {
		us = int64(^uint32(0))
	}
	*l = append(*l, uint32(us))
}

// P50P99Ms returns the 50th and 99th percentiles in milliseconds, taken as Java's tool does
// (sorted[(int)(p * n)]); NaN when empty.
func (l Latencies) P50P99Ms() (float64, float64) {
	if len(l) == 0 {
		return math.NaN(), math.NaN()
	}
	sort.Slice(l, func(i, j int) bool { return l[i] < l[j] })
	at := func(p float64) float64 {
		i := int(p * float64(len(l)))
		if i > len(l)-1 {
			i = len(l) - 1
		}
		return float64(l[i]) / 1000.0
	}
	return at(0.5), at(0.99)
}

// PercentileMs returns the p quantile in milliseconds, taken as P50P99Ms does; NaN when empty.
func (l Latencies) PercentileMs(p float64) float64 {
	if len(l) == 0 {
		return math.NaN()
	}
	sort.Slice(l, func(i, j int) bool { return l[i] < l[j] })
	i := int(p * float64(len(l)))
	if i > len(l)-1 {
		i = len(l) - 1
	}
	return float64(l[i]) / 1000.0
}

// Due is when record i of a fixed-rate run at rate records/s is due, after the first send
// (worker.rs due): an open-loop schedule.
func Due(i, rate uint64) time.Duration {
	if rate == 0 {
		rate = 1
	}
	return time.Duration(float64(i) / float64(rate) * float64(time.Second))
}

// P999Field is the ` p999_ms=..` field a fixed-rate worker appends to its result line.
func P999Field(ms float64) string {
	return " p999_ms=" + fixed(ms, 3)
}

// OwnCPUSeconds is this process's user+sys CPU since it started, every thread and the garbage
// collector included.
func OwnCPUSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return math.NaN()
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}

// ProduceResult is worker.rs WorkerResult: what a produce worker reports.
type ProduceResult struct {
	Acked, Failed, Bytes uint64
	ElapsedS             float64
	P50Ms, P99Ms         float64
	CPUS                 float64
}

// Line is the `PRODUCE_COMPARE_RESULT ...` line.
func (r ProduceResult) Line() string {
	return fmt.Sprintf("PRODUCE_COMPARE_RESULT acked=%d failed=%d bytes=%d elapsed_s=%s p50_ms=%s p99_ms=%s cpu_s=%s",
		r.Acked, r.Failed, r.Bytes, fixed(r.ElapsedS, 6), fixed(r.P50Ms, 3), fixed(r.P99Ms, 3), fixed(r.CPUS, 3))
}

// TxnResult is txn_proto.rs TxnResult: what a transaction worker reports.
type TxnResult struct {
	Txns, Records, Failed uint64
	ElapsedS              float64
	P50Ms, P99Ms          float64
	CPUS                  float64
}

// Line is the `TXN_COMPARE_RESULT ...` line.
func (r TxnResult) Line() string {
	return fmt.Sprintf("TXN_COMPARE_RESULT txns=%d records=%d failed=%d elapsed_s=%s p50_ms=%s p99_ms=%s cpu_s=%s",
		r.Txns, r.Records, r.Failed, fixed(r.ElapsedS, 6), fixed(r.P50Ms, 3), fixed(r.P99Ms, 3), fixed(r.CPUS, 3))
}

// fixed formats like Rust's `{:.N}`: NaN as "NaN", infinities as "inf" (Go writes "+Inf"), which
// Rust's f64 parser reads back.
func fixed(f float64, prec int) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	}
	return strconv.FormatFloat(f, 'f', prec, 64)
}
