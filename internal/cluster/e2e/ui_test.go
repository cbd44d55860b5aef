package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/dataco/clickstream/internal/cluster"
	"github.com/dataco/clickstream/worker"
)

// EnvScreenshots names a folder where TestUI saves screenshots of the
// pages it visits (PNG), for the documentation.
const EnvScreenshots = "CLICKSTREAM_UI_SCREENSHOTS"

// chromium returns the path of a headless-capable Chromium:
// $CLICKSTREAM_CHROMIUM, else chromium (Debian's package, which
// deploy/local/stack.sh installs) or Chrome on PATH.
func chromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("CLICKSTREAM_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("no chromium on PATH: run `deploy/local/stack.sh tools` (apt-get install chromium), set $CLICKSTREAM_CHROMIUM, or use -short")
	return ""
}

// TestUI drives the coordinator's web UI in headless Chromium while a job
// runs on a real cluster: the job appears on the jobs page (opened before
// it was submitted: the page updates itself), its progress moves, and
// when the worker holding one of its tasks is killed, the job's page
// shows the task re-leased to another worker. A failpoint holds the task
// (the worker stops itself before committing its partial), so no step
// depends on timing.
func TestUI(t *testing.T) {
	c := newCluster(t)
	browser := chromium(t)
	httpAddr := freeAddr(t)
	_, addr := c.coordinator("--http-listen", httpAddr, "--backup-after", "-1s")
	base := "http://" + httpAddr
	cl := c.client(addr)
	c.ready(cl)

	// The victim takes one task at a time and stops (SIGSTOP) before it
	// commits the first: its task stays running, held, as long as its
	// lease lives (a long TTL; the test revokes it when it kills it).
	victim := c.workerEnv("w1", []string{worker.EnvCrashAt + "=pause-before-partial:1"}, "--parallelism", "1", "--ttl", "60s")
	c.waitWorkers(1)

	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browser), chromedp.NoSandbox, chromedp.WindowSize(1280, 900))...)
	t.Cleanup(cancelAlloc)
	ctx, cancelCtx := chromedp.NewContext(alloc)
	t.Cleanup(cancelCtx)
	shots := os.Getenv(EnvScreenshots)
	shot := func(name string) {
		t.Helper()
		if shots == "" {
			return
		}
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		if err := os.WriteFile(filepath.Join(shots, name+".png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// poll waits until the JavaScript predicate holds on the page.
	poll := func(what, predicate string) {
		t.Helper()
		if _, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](predicate,
			chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(90*time.Second))); err != nil {
			html, _ := chromedp.Run(ctx, chromedp.Evaluate[string]("document.body ? document.body.innerText : ''"))
			t.Fatalf("waiting for %s: %v\npage:\n%s", what, err, html)
		}
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/")); err != nil {
		t.Fatal(err)
	}
	poll("the jobs page", `document.querySelector("#jobs") !== null`)

	j := c.submit(cl, c.spec(c.outURI()))
	id := j.GetId()
	row := fmt.Sprintf(`document.querySelector('#jobs tr[data-job="%s"]')`, id)
	poll("the job on the jobs page, without a reload", row+` !== null`)
	poll("the victim holding a task", fmt.Sprintf(`(function () {
		var r = %s; return r !== null && r.querySelector(".progress").textContent.trim() === "0/%d" &&
			r.textContent.indexOf("1 running") >= 0; })()`, row, buckets))

	// Another worker does every other task: the progress moves to all
	// but the held one. It stops itself too, the same way, at its next
	// task: the victim's, once re-leased to it. (It reports the tasks it
	// did at its lease's keep-alives, every third of its TTL.)
	w2 := c.workerEnv("w2", []string{fmt.Sprintf("%s=pause-before-partial:%d", worker.EnvCrashAt, buckets)}, "--ttl", "30s")
	poll("progress to all tasks but the held one", fmt.Sprintf(`(function () {
		var r = %s; return r !== null && r.querySelector(".progress").textContent.trim() === "%d/%d"; })()`, row, buckets-1, buckets))
	shot("jobs")

	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/jobs/"+id)); err != nil {
		t.Fatal(err)
	}
	held := `document.querySelector('#tasks tr[data-state="running"][data-worker="w1"]')`
	poll("the held task running on w1", held+` !== null`)
	poll("the timeline", `document.querySelectorAll("#timeline rect").length >= `+fmt.Sprint(buckets))
	task := strings.TrimSpace(evalString(t, ctx, held+`.getAttribute("data-task")`))
	shot("job-running")

	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/workers")); err != nil {
		t.Fatal(err)
	}
	poll("both workers, w1 with its task, w2 with the tasks it did", fmt.Sprintf(`document.querySelector('#workers tr[data-worker="w1"][data-running="1"]') !== null &&
		document.querySelector('#workers tr[data-worker="w2"][data-done="%d"]') !== null`, buckets-1))
	shot("workers")

	// Kill the victim; its registration lease goes with it, as it would
	// expire after the TTL: the leader re-leases its task to w2, where it
	// is held again, running.
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/jobs/"+id)); err != nil {
		t.Fatal(err)
	}
	poll("the job page", held+` !== null`)
	victim.kill(t)
	c.revokeWorker("w1")
	poll("the task re-leased to w2", fmt.Sprintf(`(function () {
		var r = document.querySelector('#tasks tr[data-task="%s"]');
		return r !== null && r.getAttribute("data-state") === "running" && r.getAttribute("data-worker") === "w2" &&
			r.getAttribute("data-attempts") === "2"; })()`, task))
	poll("the lost attempt on the timeline", `document.querySelector("#timeline rect.b-lost") !== null`)
	shot("job-released")

	// A third worker finishes it once w2 is gone as well.
	c.worker("w3")
	w2.kill(t)
	c.revokeWorker("w2")
	poll("the job succeeded", `document.querySelector('#job[data-state="succeeded"]') !== null`)
	poll("its tasks' records cleaned up", `document.querySelector("#tasks-cleaned") !== null`)

	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/ingest")); err != nil {
		t.Fatal(err)
	}
	poll("the lake's sources", `document.querySelectorAll("#sources tr[data-source]").length > 0`)
	shot("ingest")
	c.checkResult(c.wait(cl, id), c.outURI())
}

func evalString(t *testing.T, ctx context.Context, expr string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// revokeWorker revokes the registration lease of worker id, as its expiry
// would: the worker is gone for the cluster.
func (c *testCluster) revokeWorker(id string) {
	c.t.Helper()
	cli, err := cluster.Dial(context.Background(), cluster.ParseEndpoints(c.etcd), c.auth)
	if err != nil {
		c.t.Fatal(err)
	}
	defer cli.Close()
	resp, err := cli.Get(context.Background(), cluster.Keys{Prefix: c.prefix}.Worker(id))
	if err != nil || len(resp.Kvs) == 0 {
		c.t.Fatalf("registration of %s: %v", id, err)
	}
	if _, err := cli.Revoke(context.Background(), clientv3.LeaseID(resp.Kvs[0].Lease)); err != nil {
		c.t.Fatal(err)
	}
}
