// Package dev carries the demo policy, users and config that `gatehouse serve` uses when started without --config,
// so a fresh checkout runs with `make run` and nothing else.
package dev

import _ "embed"

// Policy is the demo route policy (policy.yaml).
//
//go:embed policy.yaml
var Policy []byte

// Users is the demo users file (users.yaml).
//
//go:embed users.yaml
var Users []byte

// Config is the example config (gatehouse.yaml).
//
//go:embed gatehouse.yaml
var Config []byte
