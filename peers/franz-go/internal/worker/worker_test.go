package worker

import (
	"math"
	"testing"
	"time"
)

// The expected values were printed by peers/common/worker.rs itself (payload_pool,
// Latencies::p50_p99_ms, WorkerResult::line), so these tests hold the Go side to the Rust one.

func TestPayloadsMatchTheRustWorkers(t *testing.T) {
	p := Payloads(100)
	if len(p) != PayloadPool {
		t.Fatalf("%d payloads, want %d", len(p), PayloadPool)
	}
	if got := string(p[0][:16]); got != "LKKYMHDMDSRZNGVH" {
		t.Errorf("payload 0 starts %q", got)
	}
	if got := string(p[1023][84:]); got != "TWWRHJSFLCZEZXYC" {
		t.Errorf("payload 1023 ends %q", got)
	}
	var sum uint64
	for _, x := range p {
		for _, b := range x {
			sum += uint64(b)
		}
	}
	if sum != 7932614 {
		t.Errorf("byte sum %d, want 7932614", sum)
	}
}

func TestPercentilesAsJavasTool(t *testing.T) {
	var l Latencies
	for _, ms := range []int{5, 1, 3, 2, 4} {
		l.Record(time.Duration(ms) * time.Millisecond)
	}
	p50, p99 := l.P50P99Ms()
	if p50 != 3 || p99 != 5 {
		t.Errorf("p50 %v p99 %v, want 3 5", p50, p99)
	}
	var empty Latencies
	if p50, p99 := empty.P50P99Ms(); !math.IsNaN(p50) || !math.IsNaN(p99) {
		t.Errorf("empty: %v %v, want NaN", p50, p99)
	}
}

func TestResultLineAsRustPrintsIt(t *testing.T) {
	r := ProduceResult{Acked: 1, Bytes: 100, ElapsedS: math.NaN(), P50Ms: 1.5, P99Ms: math.Inf(1), CPUS: 0.25}
	want := "PRODUCE_COMPARE_RESULT acked=1 failed=0 bytes=100 elapsed_s=NaN p50_ms=1.500 p99_ms=inf cpu_s=0.250"
	if got := r.Line(); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

func TestTallyCountsAbortedAndDisorder(t *testing.T) {
	tl := NewTally(2)
	tl.Start()
	tl.Record(0, 0, 0, []byte("cX"))
	tl.Record(0, 1, 2, []byte("aX"))
	tl.Record(0, 1, 0, []byte("cX")) // duplicate offset
	tl.Record(1, 5, 0, nil)
	tl.Record(7, 0, 0, []byte("c")) // partition not assigned
	tl.Polled()
	r := tl.Result()
	if r.Records != 5 || r.Bytes != 9 || r.Aborted != 1 || r.Disorder != 2 {
		t.Errorf("got %+v", r)
	}
	if !tl.Done(5) || tl.Done(6) {
		t.Error("Done counts wrong")
	}
}

func TestFlags(t *testing.T) {
	f := Flags{"--a", "1", "--b", "x"}
	if n, err := f.Uint("--a"); err != nil || n != 1 {
		t.Errorf("--a: %v %v", n, err)
	}
	if _, err := f.Uint("--b"); err == nil {
		t.Error("--b parsed as a number")
	}
	if _, err := f.Get("--c"); err == nil {
		t.Error("missing --c accepted")
	}
	if _, err := (Flags{"--a"}).Get("--a"); err == nil {
		t.Error("flag without value accepted")
	}
}

func TestFixedRateHelpers(t *testing.T) {
	// 1,000 samples 1..1000 ms: p99.9 is sorted[999] (Java's (int)(p*n)), i.e. 1000 ms.
	var l Latencies
	for ms := 1000; ms >= 1; ms-- {
		l.Record(time.Duration(ms) * time.Millisecond)
	}
	if got := l.PercentileMs(0.999); got != 1000 {
		t.Errorf("p99.9 %v, want 1000", got)
	}
	if got := l.PercentileMs(0.5); got != 501 {
		t.Errorf("p50 %v, want 501", got)
	}
	if got := (Latencies{}).PercentileMs(0.999); !math.IsNaN(got) {
		t.Errorf("empty: %v, want NaN", got)
	}
	// Record 25,000 at 10,000/s is due 2.5 s after the first (worker.rs due).
	if got := Due(25_000, 10_000); got != 2500*time.Millisecond {
		t.Errorf("due %v, want 2.5s", got)
	}
	if got := P999Field(1.5); got != " p999_ms=1.500" {
		t.Errorf("field %q", got)
	}
}
