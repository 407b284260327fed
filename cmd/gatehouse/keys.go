package main

import (
	"crypto/rand"
	"fmt"

	"gatehouse/token"
)

func runKeysGenerate(e *env, args []string) error {
	fs := newFlags(e, "keys generate", "--alg EdDSA|ES256|RS256 --out DIR\n\nWrites a new key pair into DIR (created 0700): KID.pem (private, 0600) and KID.pub.pem (public, 0644).\nThe kid is the file name. Give deciders (the ext_authz sidecars) only the .pub.pem files.")
	alg := fs.String("alg", "EdDSA", "signing algorithm: EdDSA, ES256 or RS256")
	out := fs.String("out", "", "directory for the key files (required)")
	rest, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(fs, rest, 0); err != nil {
		return err
	}
	if *out == "" {
		fmt.Fprintln(e.stderr, "gatehouse keys generate: --out is required")
		fs.Usage()
		return errUsage
	}
	kid, err := token.WriteKeyPair(*out, *alg, rand.Reader)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "wrote %s key %q to %s\n", *alg, kid, *out)
	return nil
}
