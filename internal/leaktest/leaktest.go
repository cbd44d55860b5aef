// Package leaktest fails a package's tests when goroutines outlive them:
// every goroutine the code under test starts must have an owner that stops
// it and waits for it. Use it as the package's TestMain:
//
//	func TestMain(m *testing.M) { leaktest.Main(m) }
//
// or, for goroutines of a dependency that the package must stop (here the
// workers of an Elasticsearch bulk indexer):
//
//	func TestMain(m *testing.M) { leaktest.Main(m, "esutil.(*worker)") }
package leaktest

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// module is the import path prefix of this module's code in a stack trace.
const module = "github.com/dataco/clickstream/"

// Check waits up to five seconds for every goroutine running code of this
// module, or whose stack contains one of also, to end, and reports those
// still running. Goroutines of the testing framework and Check's own are
// not counted. Call it after m.Run.
func Check(also ...string) error { return check(5*time.Second, also) }

func check(wait time.Duration, also []string) error {
	var leaked []string
	deadline := time.Now().Add(wait)
	for {
		leaked = leaked[:0]
		for g := range strings.SplitSeq(stacks(), "\n\n") {
			if counted(g, also) {
				leaked = append(leaked, g)
			}
		}
		if len(leaked) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d goroutines leaked:\n%s", len(leaked), strings.Join(leaked, "\n\n"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// counted tells whether the goroutine with stack g is one Check waits for.
func counted(g string, also []string) bool {
	if strings.Contains(g, "leaktest.Check") ||
		strings.Contains(g, "testing.(*M).") || strings.Contains(g, "testing.tRunner") {
		return false
	}
	if strings.Contains(g, module) {
		return true
	}
	for _, s := range also {
		if strings.Contains(g, s) {
			return true
		}
	}
	return false
}

// stacks returns the stacks of all goroutines, in full.
func stacks() string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return string(buf[:n])
		}
		buf = make([]byte, 2*len(buf))
	}
}

// Main runs a package's tests, then, if they passed, fails the run when
// Check(also...) finds goroutines that outlived them.
func Main(m *testing.M, also ...string) {
	code := m.Run()
	if code == 0 {
		if err := Check(also...); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}
