package leaktest

import (
	"strings"
	"testing"
	"time"
)

func TestMain(m *testing.M) { Main(m) }

func TestCounted(t *testing.T) {
	tests := []struct {
		name  string
		stack string
		also  []string
		want  bool
	}{
		{"module code", "goroutine 7 [chan receive]:\ngithub.com/dataco/clickstream/worker.(*Worker).loop(...)", nil, true},
		{"created by module code", "goroutine 7 [sleep]:\ntime.Sleep(...)\ncreated by github.com/dataco/clickstream/worker.New in goroutine 1", nil, true},
		{"dependency", "goroutine 9 [select]:\ngithub.com/elastic/go-elasticsearch/v8/esutil.(*worker).run(...)", nil, false},
		{"dependency asked for", "goroutine 9 [select]:\ngithub.com/elastic/go-elasticsearch/v8/esutil.(*worker).run(...)", []string{"esutil.(*worker)"}, true},
		{"test runner", "goroutine 1 [chan receive]:\ntesting.(*M).Run(...)\nmain.main()\n\tgithub.com/dataco/clickstream/worker/_testmain.go:51", nil, false},
		{"a test", "goroutine 20 [running]:\ngithub.com/dataco/clickstream/worker.TestX(...)\ntesting.tRunner(...)", nil, false},
		{"the checker", "goroutine 1 [running]:\ngithub.com/dataco/clickstream/internal/leaktest.Check(...)", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := counted(tt.stack, tt.also); got != tt.want {
				t.Errorf("counted = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestCheckWaitsThenReports(t *testing.T) {
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-stop
	}()
	err := check(200*time.Millisecond, nil)
	if err == nil || !strings.Contains(err.Error(), "1 goroutines leaked") || !strings.Contains(err.Error(), "TestCheckWaitsThenReports") {
		t.Errorf("check with a goroutine running: %v", err)
	}
	close(stop)
	<-done
	if err := check(5*time.Second, nil); err != nil {
		t.Errorf("check after the goroutine ended: %v", err)
	}

	// A goroutine that ends while check waits is not a leak.
	go time.Sleep(100 * time.Millisecond)
	if err := check(5*time.Second, nil); err != nil {
		t.Errorf("check with a goroutine about to end: %v", err)
	}
}
