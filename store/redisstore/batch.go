package redisstore

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// mgetBatcher sends the MGETs of concurrent Revoked calls in pipelines: one write and one read per batch instead
// of per call. On loopback the write syscall (which also runs Redis's receive path) cost a strict-mode decision
// a quarter of its CPU. Each call is still exactly one MGET answered in one round trip; a call that finds the
// batchers idle is sent at once, alone, so batching adds no wait at low load.
type mgetBatcher struct {
	client redis.UniversalClient
	queue  chan *mgetCall
	closed chan struct{}
	start  sync.Once
	stop   sync.Once
}

type mgetCall struct {
	keys []string
	vals []any
	err  error
	done chan struct{}
}

const (
	batchMax = 128 // calls per pipeline
	// batchTimeout bounds a pipeline for the workers' sake; callers wait with their own deadline.
	batchTimeout = time.Second
)

var errClosed = errors.New("redisstore: store closed")

func newMGetBatcher(client redis.UniversalClient) *mgetBatcher {
	return &mgetBatcher{client: client, queue: make(chan *mgetCall, 1024), closed: make(chan struct{})}
}

// mget is MGET keys, batched with concurrent calls.
func (b *mgetBatcher) mget(ctx context.Context, keys []string) ([]any, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b.start.Do(func() {
		// One pipeline in flight per CPU: more only made batches smaller (measured: a second worker on one CPU
		// cost a fifth of the strict-mode throughput at 64 concurrent requests).
		for range runtime.GOMAXPROCS(0) {
			go b.work()
		}
	})
	c := &mgetCall{keys: keys, done: make(chan struct{})}
	select {
	case <-b.closed:
		return nil, errClosed
	default:
	}
	select {
	case b.queue <- c:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-b.closed:
		return nil, errClosed
	}
	select {
	case <-c.done:
		return c.vals, c.err
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-b.closed: // the workers may have stopped before taking it
		return nil, errClosed
	}
}

func (b *mgetBatcher) close() { b.stop.Do(func() { close(b.closed) }) }

func (b *mgetBatcher) work() {
	batch := make([]*mgetCall, 0, batchMax)
	for {
		select {
		case c := <-b.queue:
			batch = append(batch[:0], c)
		case <-b.closed:
			return
		}
		// The call that woke this worker readied it to run next, before the other requests in flight had a
		// chance to queue theirs; yield once so they do. With nothing else runnable this returns at once.
		runtime.Gosched()
	fill:
		for len(batch) < batchMax {
			select {
			case c := <-b.queue:
				batch = append(batch, c)
			default:
				break fill
			}
		}
		b.exec(batch)
	}
}

func (b *mgetBatcher) exec(batch []*mgetCall) {
	ctx, cancel := context.WithTimeout(context.Background(), batchTimeout)
	defer cancel()
	if len(batch) == 1 {
		c := batch[0]
		c.vals, c.err = b.client.MGet(ctx, c.keys...).Result()
		close(c.done)
		return
	}
	cmds := make([]*redis.SliceCmd, len(batch))
	// Per-command results carry the errors, including a failed pipeline's.
	_, _ = b.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, c := range batch {
			cmds[i] = p.MGet(ctx, c.keys...)
		}
		return nil
	})
	for i, c := range batch {
		c.vals, c.err = cmds[i].Result()
		close(c.done)
	}
}
