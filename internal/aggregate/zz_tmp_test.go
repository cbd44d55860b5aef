package aggregate

import (
	"bytes"
	"math/rand/v2"
	"os"
	"runtime/pprof"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
)

func TestTmpHang(t *testing.T) {
	rng := rand.New(rand.NewPCG(10, 10))
	evs := randomEvents(rng, genConfig{events: 60, users: 5, urls: 4, countries: 2, span: time.Hour, tick: time.Second})
	seeds := [][]byte{writeParquet(t, evs), writeParquet(t, evs, parquet.PageBufferSize(128), parquet.MaxRowsPerRowGroup(20)), writeParquet(t, evs, lakeWriterOptions...)}
	for i := range 20000 {
		data := bytes.Clone(seeds[i%3])
		for range 1 + rng.IntN(4) {
			switch rng.IntN(4) {
			case 0:
				data[rng.IntN(len(data))] = byte(rng.Uint32())
			case 1:
				p := rng.IntN(len(data) - 4)
				v := []uint32{0, 0xffffffff, 0x7fffffff, 1 << 20, 0x80}[rng.IntN(5)]
				data[p], data[p+1], data[p+2], data[p+3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
			case 2:
				p := rng.IntN(len(data))
				data = append(data[:p], data[min(len(data), p+rng.IntN(8)):]...)
			case 3:
				p := rng.IntN(len(data))
				data = append(data[:p], append([]byte{byte(rng.Uint32()), 0xff}, data[p:]...)...)
			}
		}
		done := make(chan struct{})
		start := time.Now()
		go func() { defer close(done); ComputeParquet([][]byte{data}, testWindow(), 0) }()
		select {
		case <-done:
			if d := time.Since(start); d > 100*time.Millisecond {
				t.Logf("slow %d: %v", i, d)
				os.WriteFile("/tmp/slow.parquet", data, 0o644)
			}
		case <-time.After(5 * time.Second):
			os.WriteFile("/tmp/hang.parquet", data, 0o644)
			pprof.Lookup("goroutine").WriteTo(os.Stderr, 2)
			t.Fatalf("hang at %d", i)
		}
	}
}
