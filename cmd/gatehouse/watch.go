package main

import (
	"context"
	"crypto/sha256"
	"os"
	"time"
)

// watchFiles polls paths until ctx ends and calls onChange when any file's content changes from what it is when
// watchFiles returns. Polling content hashes (not mtimes, not inotify) survives editors that replace files and
// Kubernetes ConfigMap symlink swaps alike, at the cost of reading two small files every interval.
func watchFiles(ctx context.Context, paths []string, interval time.Duration, onChange func()) {
	sums := make([][32]byte, len(paths))
	for i, p := range paths {
		sums[i] = fileSum(p)
	}
	go every(ctx, interval, func() {
		changed := false
		for i, p := range paths {
			if s := fileSum(p); s != sums[i] {
				sums[i], changed = s, true
			}
		}
		if changed {
			onChange()
		}
	})
}

// every calls f each interval until ctx ends.
func every(ctx context.Context, interval time.Duration, f func()) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			f()
		}
	}
}

// fileSum hashes a file; an unreadable file hashes to zero, so its reappearance counts as a change.
func fileSum(path string) [32]byte {
	b, err := os.ReadFile(path)
	if err != nil {
		return [32]byte{}
	}
	return sha256.Sum256(b)
}
