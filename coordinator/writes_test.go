package coordinator

import (
	"fmt"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestTakeBatch: batches keep the queue's order, stay within etcd's
// limits of a transaction, and never hold a key twice (etcd refuses a
// transaction that does), nor a key under a range another write deletes.
func TestTakeBatch(t *testing.T) {
	put := func(keys ...string) *write {
		w := &write{keys: keys}
		for _, k := range keys {
			w.ops = append(w.ops, clientv3.OpPut(k, ""))
		}
		return w
	}
	launch := func(k string) *write {
		w := put(k+"/lease", k)
		w.conds = []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision("w"), "=", 1)}
		return w
	}
	done := func(k string) *write {
		return &write{ops: []clientv3.Op{clientv3.OpPut(k, ""), clientv3.OpDelete(k+"/", clientv3.WithPrefix())}, keys: []string{k}, prefixes: []string{k + "/"}}
	}
	var many []*write
	for i := range 100 {
		many = append(many, launch(fmt.Sprintf("t%03d", i)))
	}
	tests := []struct {
		name    string
		pending []*write
		want    []int // batch sizes
	}{
		{"disjoint writes go together", []*write{put("a"), put("b"), put("c")}, []int{3}},
		{"a key again starts a batch", []*write{put("a"), put("b"), put("a"), put("c")}, []int{2, 2}},
		{"a key under a deleted range starts a batch", []*write{done("t1"), put("t1/lease"), put("t2")}, []int{1, 2}},
		{"a deleted range over a key starts a batch", []*write{put("t1/lease"), done("t1")}, []int{1, 1}},
		{"at most maxBatchOps operations", many, []int{maxBatchOps / 2, 100 - maxBatchOps/2}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tm := &term{pending: tc.pending}
			var got []int
			var order []*write
			for len(tm.pending) > 0 {
				b := tm.takeBatch()
				got = append(got, len(b))
				order = append(order, b...)
				ops, conds := 0, 0
				for _, w := range b {
					ops += len(w.ops)
					conds += len(w.conds)
				}
				if ops > maxBatchOps || conds > maxBatchConds {
					t.Fatalf("a batch of %d operations and %d conditions", ops, conds)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("batches of %v, want %v", got, tc.want)
			}
			for i, w := range order {
				if w != tc.pending[i] {
					t.Fatalf("write %d out of order", i)
				}
			}
		})
	}
}
