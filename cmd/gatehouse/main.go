// Command gatehouse is the one Gatehouse binary: the ext_authz decision server and login issuer (`serve`), and the
// tools around them (`policy lint|test|explain`, `check`, `user hash`, `keys generate`, `envoy check`).
//
// The CLI uses the standard flag package: every command takes -h/--help, flags may come before or after
// positional arguments, and errors exit with status 2 for usage and 1 for failures.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// command is one `gatehouse ...` verb. run returns errUsage for bad arguments.
type command struct {
	name    string
	summary string
	run     func(env *env, args []string) error
}

// env is what a command may touch, so tests run commands in-process.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
}

var errUsage = errors.New("usage")

// exitError carries a specific exit status (e.g. lint found errors) without printing more.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

func commands() []command {
	return []command{
		{"serve", "run the ext_authz server and the issuer", runServe},
		{"check", "send one Envoy-shaped CheckRequest to a running server", runCheck},
		{"policy lint", "check a policy file: errors and warnings as FILE:LINE: message", runPolicyLint},
		{"policy test", "run decision cases against a policy", runPolicyTest},
		{"policy explain", "explain the decision for one request", runPolicyExplain},
		{"user hash", "read a password on stdin, print its argon2id hash", runUserHash},
		{"keys generate", "write a new signing key pair", runKeysGenerate},
		{"envoy check", "validate an Envoy bootstrap config against Gatehouse", runEnvoyCheck},
	}
}

func main() {
	os.Exit(run(&env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr}, os.Args[1:]))
}

func run(e *env, args []string) int {
	cmd, rest := lookup(args)
	if cmd == nil {
		if len(args) > 0 && !isHelp(args[0]) {
			fmt.Fprintf(e.stderr, "gatehouse: unknown command %q\n\n", strings.Join(args, " "))
			usage(e.stderr, args)
			return 2
		}
		usage(e.stdout, args)
		return 0
	}
	err := cmd.run(e, rest)
	var ee exitError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	case errors.As(err, &ee):
		return ee.code
	default:
		fmt.Fprintf(e.stderr, "gatehouse %s: %v\n", cmd.name, err)
		return 1
	}
}

func isHelp(s string) bool { return s == "-h" || s == "--help" || s == "help" || s == "-help" }

// lookup matches the longest command name (two words before one).
func lookup(args []string) (*command, []string) {
	cmds := commands()
	for n := 2; n >= 1; n-- {
		if len(args) < n {
			continue
		}
		name := strings.Join(args[:n], " ")
		for i := range cmds {
			if cmds[i].name == name {
				return &cmds[i], args[n:]
			}
		}
	}
	return nil, nil
}

func usage(w io.Writer, args []string) {
	prefix := ""
	if len(args) > 0 && !isHelp(args[0]) {
		prefix = args[0]
	}
	cmds := commands()
	fmt.Fprintln(w, "Gatehouse: Envoy external authorization and login issuer.")
	fmt.Fprintln(w, "\nUsage: gatehouse COMMAND [flags] [args]\n\nCommands:")
	for _, c := range cmds {
		if prefix != "" && !strings.HasPrefix(c.name, prefix) {
			continue
		}
		fmt.Fprintf(w, "  %-16s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'gatehouse COMMAND --help' for a command's flags.")
}

// newFlags builds a FlagSet whose usage prints the command's synopsis.
func newFlags(e *env, name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet("gatehouse "+name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprintf(e.stderr, "Usage: gatehouse %s %s\n", name, synopsis)
		var n int
		fs.VisitAll(func(*flag.Flag) { n++ })
		if n > 0 {
			fmt.Fprintln(e.stderr, "\nFlags:")
			fs.PrintDefaults()
		}
	}
	return fs
}

// parseInterspersed parses flags that may appear before, between or after positional arguments
// (`policy explain POLICY --method GET`), which the flag package alone stops at.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, errUsage
		}
		args = fs.Args()
		if len(args) == 0 {
			return positional, nil
		}
		if args[0] == "--" {
			return append(positional, args[1:]...), nil
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
}

// wantArgs checks the positional argument count, printing usage when it is off.
func wantArgs(fs *flag.FlagSet, got []string, n int) error {
	if len(got) != n {
		fmt.Fprintf(fs.Output(), "%s: want %d argument(s), got %d\n", fs.Name(), n, len(got))
		fs.Usage()
		return errUsage
	}
	return nil
}
