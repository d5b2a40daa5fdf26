package reliability

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/tcauth/tcauth/controlplane"
	"github.com/tcauth/tcauth/integration/harness"
	"github.com/tcauth/tcauth/protocol/tcclient"
)

// The register model: each key is a role whose single scope is the
// register's value. A write is updateRole with a unique value; a read is
// role (linearizable by default on every node). A write whose outcome is
// unknown (timeout, connection lost after sending, a 5xx) may or may not
// have taken effect: it is recorded as returning at the end of time, as
// Jepsen records :info operations. A read that fails is left out — it
// observed nothing.

type regInput struct {
	write bool
	key   string
	value string
}

type regOutput struct {
	value string
}

var registerModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		for _, op := range history {
			k := op.Input.(regInput).key
			byKey[k] = append(byKey[k], op)
		}
		keys := make([]string, 0, len(byKey))
		for k := range byKey {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() any { return initialValue },
	Step: func(state, input, output any) (bool, any) {
		in := input.(regInput)
		if in.write {
			return true, in.value
		}
		return output.(regOutput).value == state.(string), state
	},
	Equal: func(a, b any) bool { return a.(string) == b.(string) },
	DescribeOperation: func(input, output any) string {
		in := input.(regInput)
		if in.write {
			return fmt.Sprintf("write(%s, %s)", in.key, in.value)
		}
		return fmt.Sprintf("read(%s) -> %s", in.key, output.(regOutput).value)
	},
}

const initialValue = "v0"

// history records operations from many goroutines.
type history struct {
	start time.Time
	mu    sync.Mutex
	ops   []porcupine.Operation
}

func (h *history) now() int64 { return int64(time.Since(h.start)) }

func (h *history) add(op porcupine.Operation) {
	h.mu.Lock()
	h.ops = append(h.ops, op)
	h.mu.Unlock()
}

// workload drives register operations and unique creates against every
// node until stopped.
type workload struct {
	cluster *harness.Cluster
	nodes   func() []int // indexes of nodes to send to (all, even dead ones)
	keys    []string
	hist    *history

	ops, writesOK, writesUnknown, writesFailed, readsOK, readsFailed atomic.Int64

	mu          sync.Mutex
	ackedCreate []string
	// unknownWhy holds the first few errors that left a write's outcome
	// open: many of them make the linearizability check slow, and the
	// log should say which answers they were.
	unknownWhy []string
	cancel     context.CancelFunc
	wg         sync.WaitGroup
}

// definitelyNotSent reports errors after which the request cannot have
// reached a server: connection refused / unreachable before anything was
// written. Everything else leaves a write's outcome open.
func definitelyNotSent(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EHOSTUNREACH)
}

// definiteRefusal reports API answers that mean the write was not applied:
// 4xx (validation, scopes), and a 5xx the server marks as not proposed
// (controlplane.NotAppliedHeader). Any other 5xx leaves the outcome open.
func definiteRefusal(err error) bool {
	var e *tcclient.Error
	if !errors.As(err, &e) {
		return false
	}
	return (e.StatusCode >= 400 && e.StatusCode < 500) || e.Header.Get(controlplane.NotAppliedHeader) == "true"
}

func setupKeys(ctx context.Context, c *harness.Cluster, node int, prefix string, n int) ([]string, error) {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("%s-k%02d", prefix, i)
		body := map[string]any{"description": "register", "scopes": []string{"reg:" + initialValue}}
		if err := harness.Eventually(30*time.Second, func() error {
			err := c.Client(node, nil).Do(ctx, http.MethodPut, "/roles/"+keys[i], nil, body, nil)
			var e *tcclient.Error
			if errors.As(err, &e) && e.StatusCode == http.StatusConflict {
				return nil // an earlier attempt went through
			}
			return err
		}); err != nil {
			return nil, fmt.Errorf("create %s: %w", keys[i], err)
		}
	}
	return keys, nil
}

func startWorkload(c *harness.Cluster, nodes func() []int, keys []string, clients int) *workload {
	w := &workload{cluster: c, nodes: nodes, keys: keys, hist: &history{start: time.Now()}}
	ctx, cancel := context.WithCancel(context.Background())
	w.cancel = cancel
	for id := 0; id < clients; id++ {
		w.wg.Add(1)
		go w.client(ctx, id)
	}
	return w
}

func (w *workload) client(ctx context.Context, id int) {
	defer w.wg.Done()
	rng := rand.New(rand.NewPCG(uint64(id), uint64(time.Now().UnixNano())))
	for seq := 0; ctx.Err() == nil; seq++ {
		targets := w.nodes()
		node := targets[rng.IntN(len(targets))]
		api := w.cluster.Client(node, nil)
		api.HTTPClient = &http.Client{Timeout: 3 * time.Second}
		w.ops.Add(1)
		switch r := rng.IntN(10); {
		case r < 4: // write
			key := w.keys[rng.IntN(len(w.keys))]
			value := fmt.Sprintf("c%d-%d", id, seq)
			call := w.hist.now()
			err := api.Do(context.Background(), http.MethodPost, "/roles/"+key, nil,
				map[string]any{"description": "register", "scopes": []string{"reg:" + value}}, nil)
			ret := w.hist.now()
			switch {
			case err == nil:
				w.writesOK.Add(1)
			case definitelyNotSent(err) || definiteRefusal(err):
				w.writesFailed.Add(1)
				backoff(ctx)
				continue
			default:
				w.writesUnknown.Add(1)
				w.noteUnknown(node, err)
				ret = math.MaxInt64
			}
			w.hist.add(porcupine.Operation{ClientId: id, Input: regInput{write: true, key: key, value: value}, Call: call, Return: ret, Output: regOutput{}})
		case r < 8: // read
			key := w.keys[rng.IntN(len(w.keys))]
			var out struct{ Scopes []string }
			call := w.hist.now()
			err := api.Do(context.Background(), http.MethodGet, "/roles/"+key, nil, nil, &out)
			ret := w.hist.now()
			if err != nil || len(out.Scopes) != 1 {
				w.readsFailed.Add(1)
				backoff(ctx)
				continue
			}
			w.readsOK.Add(1)
			value := out.Scopes[0][len("reg:"):]
			w.hist.add(porcupine.Operation{ClientId: id, Input: regInput{key: key}, Call: call, Return: ret, Output: regOutput{value: value}})
		default: // unique create
			roleID := fmt.Sprintf("uc-%d-%d-%d", w.hist.start.UnixNano()%1e6, id, seq)
			err := api.Do(context.Background(), http.MethodPut, "/roles/"+roleID, nil,
				map[string]any{"description": "unique create", "scopes": []string{"uc:" + roleID}}, nil)
			if err == nil {
				w.mu.Lock()
				w.ackedCreate = append(w.ackedCreate, roleID)
				w.mu.Unlock()
			}
		}
		if ctx.Err() == nil && w.ops.Load()%50 == 0 {
			time.Sleep(time.Millisecond)
		}
	}
}

func (w *workload) noteUnknown(node int, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.unknownWhy) < 3 {
		w.unknownWhy = append(w.unknownWhy, fmt.Sprintf("%s: %v", w.cluster.Nodes[node].ID, err))
	}
}

// backoff pauses a client after a failure, as a real client would, so
// that a dead node is not hammered with thousands of instant failures.
func backoff(ctx context.Context) {
	select {
	case <-ctx.Done():
	case <-time.After(50 * time.Millisecond):
	}
}

// stop ends the workload and returns the recorded history.
func (w *workload) stop() []porcupine.Operation {
	w.cancel()
	w.wg.Wait()
	return w.hist.ops
}

// check runs porcupine on the history; a timeout counts as a failure to
// prove linearizability (reported, not silently passed).
func checkLinearizable(ops []porcupine.Operation) (porcupine.CheckResult, error) {
	res, info := porcupine.CheckOperationsVerbose(registerModel, ops, 90*time.Second)
	if res == porcupine.Illegal {
		path := fmt.Sprintf("/tmp/tcauth-linearizability-%d.html", time.Now().UnixNano())
		if err := porcupine.VisualizePath(registerModel, info, path); err == nil {
			return res, fmt.Errorf("history is not linearizable; visualisation in %s", path)
		}
		return res, errors.New("history is not linearizable")
	}
	if res == porcupine.Unknown {
		return res, errors.New("linearizability check timed out")
	}
	return res, nil
}
