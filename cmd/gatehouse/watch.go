package main

import (
	"context"
	"crypto/sha256"
	"os"
	"time"
)

// watchFiles polls paths and calls onChange when any file's content changes. Polling content hashes (not mtimes,
// not inotify) survives editors that replace files and Kubernetes ConfigMap symlink swaps alike, at the cost of
// reading two small files every interval.
func watchFiles(ctx context.Context, paths []string, interval time.Duration, onChange func()) {
	sums := make([][32]byte, len(paths))
	for i, p := range paths {
		sums[i] = fileSum(p)
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			changed := false
			for i, p := range paths {
				if s := fileSum(p); s != sums[i] {
					sums[i], changed = s, true
				}
			}
			if changed {
				onChange()
			}
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
