package main

import (
	"fmt"

	"gatehouse/envoy"
)

func runEnvoyCheck(e *env, args []string) error {
	fs := newFlags(e, "envoy check", "FILE [--authz-addr HOST:PORT]\n\nValidates an Envoy v3 bootstrap YAML against Envoy's own protos and warns where its ext_authz\nsetup would fail open, has no timeout, or normalises paths differently from Gatehouse. Exits 1 on\nan invalid config, 0 otherwise (warnings are printed).")
	addr := fs.String("authz-addr", "127.0.0.1:9191", "Gatehouse's authz.listen address the config should point at")
	rest, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(fs, rest, 1); err != nil {
		return err
	}
	warnings, err := envoy.Check(rest[0], *addr)
	if err != nil {
		return err
	}
	for _, w := range warnings {
		fmt.Fprintf(e.stdout, "%s: warning: %s\n", rest[0], w)
	}
	if len(warnings) == 0 {
		fmt.Fprintf(e.stdout, "%s: ok\n", rest[0])
	}
	return nil
}
