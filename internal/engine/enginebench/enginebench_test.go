package enginebench

import "testing"

// BenchmarkEngineThroughput is the headline figure: broker -> router ->
// default pipeline -> Append projection, one stream, in order.
func BenchmarkEngineThroughput(b *testing.B) { Throughput(b) }

// BenchmarkEngineThroughput4Streams spreads the same work over four streams.
func BenchmarkEngineThroughput4Streams(b *testing.B) { ThroughputStreams(b, 4) }

// BenchmarkFullPathSingleEvents ingests one event per call.
func BenchmarkFullPathSingleEvents(b *testing.B) { FullPath(b, 1) }

// BenchmarkFullPathBatch100 ingests batches of 100, as NDJSON ingest does.
func BenchmarkFullPathBatch100(b *testing.B) { FullPath(b, 100) }

// BenchmarkParallelIngestBatch100 is the HTTP layer's NDJSON load: 64
// goroutines ingesting batches of 100 into one stream, no projection.
func BenchmarkParallelIngestBatch100(b *testing.B) { ParallelIngest(b, 100) }

// BenchmarkParallelIngestSingleEvents is the same with one event per call.
func BenchmarkParallelIngestSingleEvents(b *testing.B) { ParallelIngest(b, 1) }
