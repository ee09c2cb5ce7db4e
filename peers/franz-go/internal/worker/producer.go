package worker

import (
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// ProducerSettings are the producer settings every client of the produce and transaction
// benches gets.
type ProducerSettings struct {
	Bootstrap    string
	ClientID     string
	LingerMs     uint64
	BatchSize    uint64
	BufferMemory uint64
	// Compression is "none", "lz4", "gzip", "snappy" or "zstd".
	Compression string
	// TransactionalID makes the producer transactional when not empty.
	TransactionalID string
}

// ProducerOpts are the kgo options for s: acks=all, idempotent (franz-go's default, kept),
// linger, batch.size as the batch cap, buffer.memory as the buffered-bytes cap, and Java's
// keyless partitioning (KIP-794: stick to a partition for batch.size bytes, adaptive), which is
// what josefk and Java do; franz-go's own default sticks for 64 KiB.
func ProducerOpts(s ProducerSettings) ([]kgo.Opt, error) {
	var codec kgo.CompressionCodec
	switch s.Compression {
	case "none":
		codec = kgo.NoCompression()
	case "lz4":
		codec = kgo.Lz4Compression()
	case "gzip":
		codec = kgo.GzipCompression()
	case "snappy":
		codec = kgo.SnappyCompression()
	case "zstd":
		codec = kgo.ZstdCompression()
	default:
		return nil, fmt.Errorf("--compression: unknown codec %q", s.Compression)
	}
	opts := []kgo.Opt{
		kgo.SeedBrokers(s.Bootstrap),
		kgo.ClientID(s.ClientID),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(time.Duration(s.LingerMs) * time.Millisecond),
		kgo.ProducerBatchMaxBytes(int32(s.BatchSize)),
		kgo.ProducerBatchCompression(codec),
		kgo.MaxBufferedBytes(int(s.BufferMemory)),
		// The record cap (default 50,000) would bind long before 32 MiB of 100 B records; the
		// others are bounded by bytes only (rdkafka's message cap is set to 10,000,000 too).
		kgo.MaxBufferedRecords(10_000_000),
		kgo.RecordPartitioner(kgo.UniformBytesPartitioner(int(s.BatchSize), true, true, nil)),
	}
	if s.TransactionalID != "" {
		opts = append(opts, kgo.TransactionalID(s.TransactionalID))
	}
	security, err := SecurityOpts()
	if err != nil {
		return nil, err
	}
	return append(opts, security...), nil
}
