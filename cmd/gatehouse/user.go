package main

import (
	"bufio"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"

	"gatehouse/password"
)

func runUserHash(e *env, args []string) error {
	fs := newFlags(e, "user hash", "< password\n\nReads one password from the first line of stdin and prints its argon2id hash\n(m=65536,t=3,p=2) for the users file. Example: read -rs PW && printf '%s' \"$PW\" | gatehouse user hash")
	rest, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(fs, rest, 0); err != nil {
		return err
	}
	line, err := bufio.NewReader(e.stdin).ReadString('\n')
	if err != nil && line == "" {
		return errors.New("no password on stdin")
	}
	pw := strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
	if pw == "" {
		return errors.New("empty password")
	}
	h, err := password.Hash(pw, password.DefaultParams, rand.Reader)
	if err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, h)
	return nil
}
