package cluster

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"
)

// logStoreWorkload is what one benchmark run does to a raft.db: what a
// server's log store sees under sustained writes.
type logStoreWorkload struct {
	entries   int    // entries written in all
	maxBatch  int    // StoreLogs batches are 1 to maxBatch entries (raft's MaxAppendEntries)
	minSize   int    // entry payloads are minSize to maxSize bytes
	maxSize   int    //
	threshold uint64 // entries between compactions (SnapshotThreshold, or what one SnapshotInterval brings)
	trailing  uint64 // entries a compaction keeps (TrailingLogs)
	cache     int    // raft.LogCache capacity in front of the store; 0 for none
	bolt      *bbolt.Options
}

// logStoreFigures is what a run measured.
type logStoreFigures struct {
	liveHeap     uint64        // heap live after GC at the end, above what it was before the store opened
	peakLiveHeap uint64        // the highest live heap seen after a compaction
	allocBytes   uint64        // bytes the store allocated (StoreLogs, GetLog, DeleteRange)
	allocObjects uint64        // objects it allocated
	diskBytes    int64         // raft.db's size at the end
	rssFile      int64         // file-backed resident memory added (raft.db's mmap)
	batchMean    time.Duration // StoreLogs call, mean
	batchP99     time.Duration // StoreLogs call, 99th percentile
	openWarm     time.Duration // reopening raft.db, its pages in the page cache
	openCold     time.Duration // reopening after its pages were dropped from the cache
	freePages    int           // bbolt's free and pending pages at the end
}

// defaultLogStoreWorkload follows a busy server: 100,000 entries of 2-4 KB
// (3 KB on average: deploys wrapped in once-requests), batches of up to
// raft's MaxAppendEntries, compaction every SnapshotThreshold entries
// keeping raft's default TrailingLogs.
func defaultLogStoreWorkload() logStoreWorkload {
	w := logStoreWorkload{
		entries: 100_000, maxBatch: raftMaxAppendEntries, minSize: 2 << 10, maxSize: 4 << 10,
		threshold: 8192, trailing: 10240,
	}
	if s := os.Getenv("STRATUS_LOGSTORE_ENTRIES"); s != "" {
		if n, err := strconv.Atoi(s); err == nil && n > 0 {
			w.entries = n
		}
	}
	return w
}

// BenchmarkLogStore writes a long log through raft-boltdb into a real file
// and compacts it as raft does, under each set of options. Each sub-run is
// the whole workload once: run it with -benchtime=1x. A follower's FSM
// reads back every entry it stores (raft's processLogs), so each stored
// entry is read once with GetLog.
func BenchmarkLogStore(b *testing.B) {
	// earlier is how builds before the tuning ran the store: bbolt's
	// defaults, batches of up to 256, no log cache.
	earlier := func(w *logStoreWorkload) { w.bolt, w.maxBatch, w.cache = nil, 256, 0 }
	current := func(w *logStoreWorkload) {
		w.bolt, w.maxBatch, w.cache = logStoreOptions("").BoltOptions, raftMaxAppendEntries, raftLogCacheSize
	}
	and := func(fs ...func(*logStoreWorkload)) func(*logStoreWorkload) {
		return func(w *logStoreWorkload) {
			for _, f := range fs {
				f(w)
			}
		}
	}
	bolt := func(typ bbolt.FreelistType, nosync bool) func(*logStoreWorkload) {
		return func(w *logStoreWorkload) { w.bolt = &bbolt.Options{FreelistType: typ, NoFreelistSync: nosync} }
	}
	// At 500 entries/s (a deploy ramp) raft's snapshot check, every one to
	// two SnapshotIntervals, finds far more than SnapshotThreshold new
	// entries: 60,000 to 120,000 at raft's default of 120 s, 15,000 to
	// 30,000 at 30 s.
	every := func(n uint64) func(*logStoreWorkload) {
		return func(w *logStoreWorkload) { w.threshold, w.entries = n, max(w.entries, int(3*n)) }
	}
	runs := []struct {
		name string
		set  func(*logStoreWorkload)
	}{
		{"earlier", earlier},
		{"map", and(earlier, bolt(bbolt.FreelistMapType, false))},
		{"nofreelistsync", and(earlier, bolt(bbolt.FreelistArrayType, true))},
		{"map-nofreelistsync", and(earlier, bolt(bbolt.FreelistMapType, true))},
		{"mmap1G", and(earlier, func(w *logStoreWorkload) { w.bolt = &bbolt.Options{InitialMmapSize: 1 << 30} })},
		{"trailing4096", and(earlier, func(w *logStoreWorkload) { w.trailing = 4096 })},
		{"trailing2048", and(earlier, func(w *logStoreWorkload) { w.trailing = 2048 })},
		{"threshold4096", and(earlier, every(4096))},
		{"cache512", and(earlier, func(w *logStoreWorkload) { w.cache = 512 })},
		{"batch128", and(earlier, func(w *logStoreWorkload) { w.maxBatch = 128 })},
		{"current", current},
		{"earlier-every60k", and(earlier, every(60_000))},
		{"map-nofreelistsync-every60k", and(earlier, bolt(bbolt.FreelistMapType, true), every(60_000))},
		{"current-every60k", and(current, every(60_000))},
		{"current-every15k", and(current, every(15_000))},
		{"current-every30k", and(current, every(30_000))},
	}
	for _, r := range runs {
		b.Run(r.name, func(b *testing.B) {
			w := defaultLogStoreWorkload()
			r.set(&w)
			for range b.N {
				f := runLogStoreWorkload(b, filepath.Join(b.TempDir(), "raft.db"), w)
				reportLogStoreFigures(b, w, f)
			}
		})
	}
}

// BenchmarkLogStoreOpen measures how long a large raft.db takes to open,
// warm and cold, with the freelist synced to disk and without (then bbolt
// rebuilds it by walking every page at open). The file is grown to about
// the size seen at 32,000 VMs (273 MB) by writing without compaction, then
// compacted down to TrailingLogs, so most of its pages are free.
func BenchmarkLogStoreOpen(b *testing.B) {
	for _, nosync := range []bool{false, true} {
		b.Run(fmt.Sprintf("nofreelistsync=%v", nosync), func(b *testing.B) {
			w := defaultLogStoreWorkload()
			w.entries, w.threshold = 70_000, 70_000
			w.bolt = &bbolt.Options{NoFreelistSync: nosync}
			for range b.N {
				f := runLogStoreWorkload(b, filepath.Join(b.TempDir(), "raft.db"), w)
				reportLogStoreFigures(b, w, f)
			}
		})
	}
}

func reportLogStoreFigures(b *testing.B, w logStoreWorkload, f logStoreFigures) {
	const mb = 1 << 20
	b.ReportMetric(float64(f.liveHeap)/mb, "live-MB")
	b.ReportMetric(float64(f.peakLiveHeap)/mb, "peak-live-MB")
	b.ReportMetric(float64(f.allocBytes)/float64(w.entries), "alloc-B/entry")
	b.ReportMetric(float64(f.allocObjects)/float64(w.entries), "allocs/entry")
	b.ReportMetric(float64(f.diskBytes)/mb, "disk-MB")
	b.ReportMetric(float64(f.rssFile)/mb, "rss-file-MB")
	b.ReportMetric(float64(f.batchMean.Microseconds())/1000, "batch-ms")
	b.ReportMetric(float64(f.batchP99.Microseconds())/1000, "batch-p99-ms")
	b.ReportMetric(float64(f.openWarm.Microseconds())/1000, "open-warm-ms")
	b.ReportMetric(float64(f.openCold.Microseconds())/1000, "open-cold-ms")
	b.ReportMetric(float64(f.freePages), "free-pages")
}

// runLogStoreWorkload runs w against a new raft.db at path.
func runLogStoreWorkload(tb testing.TB, path string, w logStoreWorkload) logStoreFigures {
	var f logStoreFigures
	before := liveHeap()
	rssBefore := rssFileBytes(tb)
	store, err := raftboltdb.New(raftboltdb.Options{Path: path, BoltOptions: w.bolt})
	if err != nil {
		tb.Fatal(err)
	}
	var logs raft.LogStore = store
	if w.cache > 0 {
		if logs, err = raft.NewLogCache(w.cache, store); err != nil {
			tb.Fatal(err)
		}
	}
	src := payloadSource()
	rng := rand.New(rand.NewPCG(1, 2))
	var (
		batches []time.Duration
		ms      runtime.MemStats
		sinceGC uint64
	)
	for next := uint64(1); next <= uint64(w.entries); {
		batch := makeLogBatch(rng, src, next, min(1+rng.IntN(w.maxBatch), w.entries-int(next)+1), w)
		next += uint64(len(batch))
		runtime.ReadMemStats(&ms)
		startBytes, startObjects := ms.TotalAlloc, ms.Mallocs
		start := time.Now()
		if err := logs.StoreLogs(batch); err != nil {
			tb.Fatal(err)
		}
		batches = append(batches, time.Since(start))
		readBack(tb, logs, batch)
		sinceGC += uint64(len(batch))
		if sinceGC >= w.threshold {
			compactLog(tb, logs, next-1, w.trailing)
			sinceGC = 0
		}
		runtime.ReadMemStats(&ms)
		f.allocBytes += ms.TotalAlloc - startBytes
		f.allocObjects += ms.Mallocs - startObjects
		if sinceGC == 0 {
			f.peakLiveHeap = max(f.peakLiveHeap, above(liveHeap(), before))
		}
	}
	f.liveHeap = above(liveHeap(), before)
	f.peakLiveHeap = max(f.peakLiveHeap, f.liveHeap)
	f.rssFile = rssFileBytes(tb) - rssBefore
	stats := store.Stats()
	f.freePages = stats.FreePageN + stats.PendingPageN
	runtime.KeepAlive(logs)
	if err := store.Close(); err != nil {
		tb.Fatal(err)
	}
	f.batchMean, f.batchP99 = meanAndP99(batches)
	fi, err := os.Stat(path)
	if err != nil {
		tb.Fatal(err)
	}
	f.diskBytes = fi.Size()
	f.openWarm = timeOpen(tb, path, w, uint64(w.entries))
	dropFromPageCache(tb, path)
	f.openCold = timeOpen(tb, path, w, uint64(w.entries))
	return f
}

// payloadSource is random base64 text to cut entries from: a once-request
// is JSON around a base64 body, which neither compresses nor repeats.
func payloadSource() []byte {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	rng := rand.New(rand.NewPCG(3, 4))
	src := make([]byte, 64<<10)
	for i := range src {
		src[i] = alphabet[rng.IntN(len(alphabet))]
	}
	return src
}

// makeLogBatch makes n entries from index first on, each with its own
// payload as raft's are (a proposal's bytes, or decoded from an RPC).
func makeLogBatch(rng *rand.Rand, src []byte, first uint64, n int, w logStoreWorkload) []*raft.Log {
	batch := make([]*raft.Log, n)
	for i := range batch {
		size := w.minSize + rng.IntN(w.maxSize-w.minSize+1)
		off := rng.IntN(len(src) - size)
		batch[i] = &raft.Log{
			Index: first + uint64(i), Term: 1, Type: raft.LogCommand,
			Data: bytes.Clone(src[off : off+size]), AppendedAt: time.Now(),
		}
	}
	return batch
}

// readBack reads each stored entry once, as a follower's FSM apply does.
func readBack(tb testing.TB, logs raft.LogStore, batch []*raft.Log) {
	for _, want := range batch {
		var got raft.Log
		if err := logs.GetLog(want.Index, &got); err != nil {
			tb.Fatal(err)
		}
		if len(got.Data) != len(want.Data) {
			tb.Fatalf("entry %d: read %d bytes, stored %d", want.Index, len(got.Data), len(want.Data))
		}
	}
}

// compactLog deletes what raft's compactLogs would after a snapshot at
// last: everything but the newest trailing entries.
func compactLog(tb testing.TB, logs raft.LogStore, last, trailing uint64) {
	if last <= trailing {
		return
	}
	first, err := logs.FirstIndex()
	if err != nil {
		tb.Fatal(err)
	}
	if upTo := last - trailing; first <= upTo {
		if err := logs.DeleteRange(first, upTo); err != nil {
			tb.Fatal(err)
		}
	}
}

// timeOpen reopens raft.db with the workload's options, checks that it
// holds the log it was left with, and reports how long the open took.
func timeOpen(tb testing.TB, path string, w logStoreWorkload, last uint64) time.Duration {
	start := time.Now()
	store, err := raftboltdb.New(raftboltdb.Options{Path: path, BoltOptions: w.bolt})
	took := time.Since(start)
	if err != nil {
		tb.Fatal(err)
	}
	defer store.Close()
	if got, err := store.LastIndex(); err != nil || got != last {
		tb.Fatalf("reopened raft.db: last index %d (%v), want %d", got, err, last)
	}
	return took
}

// liveHeap collects and returns the bytes of heap still live.
func liveHeap() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// above is a-b, or 0 when the heap shrank below where it started.
func above(a, b uint64) uint64 {
	if a < b {
		return 0
	}
	return a - b
}

func meanAndP99(ds []time.Duration) (time.Duration, time.Duration) {
	if len(ds) == 0 {
		return 0, 0
	}
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	sorted := slices.Clone(ds)
	slices.Sort(sorted)
	return sum / time.Duration(len(ds)), sorted[len(sorted)*99/100]
}
