package main

import (
	"flag"
	"fmt"
	"os"
	"strings"

	"gatehouse/policy"
)

func runPolicyLint(e *env, args []string) error {
	fs := newFlags(e, "policy lint", "FILE\n\nPrints errors and warnings as FILE:LINE: message. Exits 1 on any error (warnings alone exit 0).")
	rest, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(fs, rest, 1); err != nil {
		return err
	}
	data, err := os.ReadFile(rest[0])
	if err != nil {
		return err
	}
	errs := 0
	for _, d := range policy.Lint(rest[0], data) {
		fmt.Fprintln(e.stdout, d.String())
		if d.Severity == policy.SeverityError {
			errs++
		}
	}
	if errs > 0 {
		return exitError{1}
	}
	return nil
}

func runPolicyTest(e *env, args []string) error {
	fs := newFlags(e, "policy test", "POLICY CASES\n\nRuns the decision cases in CASES against POLICY. Prints one line per failing case\n(expected vs actual decision, status and rule), then \"N passed, M failed\". Exits 1 if any case fails.")
	rest, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(fs, rest, 2); err != nil {
		return err
	}
	p, err := policy.Load(rest[0])
	if err != nil {
		return err
	}
	cases, err := policy.LoadCases(rest[1])
	if err != nil {
		return err
	}
	if policy.WriteCaseReport(e.stdout, policy.RunCases(p, cases)) > 0 {
		return exitError{1}
	}
	return nil
}

func runPolicyExplain(e *env, args []string) error {
	fs := newFlags(e, "policy explain", "POLICY --method M --path P [--host H] [--roles a,b | --anonymous]\n\nPrints the canonical path, the matching rule (name, index, line), its requirement, the caller's\nresolved roles and permissions, and the decision with its reason.")
	method := fs.String("method", "GET", "HTTP method")
	path := fs.String("path", "", "request path as Envoy sends it (may include a query)")
	host := fs.String("host", "", "request authority (Host), port allowed")
	roles := fs.String("roles", "", "comma-separated roles of an authenticated caller (empty: authenticated, no roles)")
	anonymous := fs.Bool("anonymous", false, "the caller has no token")
	rest, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(fs, rest, 1); err != nil {
		return err
	}
	rolesSet := false
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "roles" {
			rolesSet = true
		}
	})
	if *path == "" {
		fmt.Fprintln(e.stderr, "gatehouse policy explain: --path is required")
		fs.Usage()
		return errUsage
	}
	if *anonymous && rolesSet {
		fmt.Fprintln(e.stderr, "gatehouse policy explain: --roles and --anonymous exclude each other")
		return errUsage
	}
	p, err := policy.Load(rest[0])
	if err != nil {
		return err
	}
	var rs []string
	for _, r := range strings.Split(*roles, ",") {
		if r = strings.TrimSpace(r); r != "" {
			rs = append(rs, r)
		}
	}
	return p.Explain(*method, *host, *path, rs, *anonymous).Format(e.stdout)
}
