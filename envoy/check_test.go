package envoy

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
)

// The listener and filter every fixture's single warning must name.
const fixtureWhere = `listener "ingress": ext_authz filter "envoy.filters.http.ext_authz"`

func TestCheckFixtures(t *testing.T) {
	tests := []struct {
		file string
		want string // the one expected warning, by substring; "" for none
	}{
		{"minimal-good.yaml", ""},
		{"fail-open.yaml", fixtureWhere + ": failure_mode_allow is true"},
		{"no-timeout.yaml", fixtureWhere + ": grpc_service has no timeout"},
		{"merge-slashes-off.yaml", `listener "ingress": merge_slashes is not true`},
		{"normalize-path-off.yaml", `listener "ingress": normalize_path is not true`},
		{"escaped-slashes-kept.yaml", `listener "ingress": path_with_escaped_slashes_action is KEEP_UNCHANGED`},
		{"escaped-slashes-default.yaml", `listener "ingress": path_with_escaped_slashes_action is IMPLEMENTATION_SPECIFIC_DEFAULT`},
		{"underscores-allowed.yaml", `listener "ingress": headers with underscores are allowed`},
		{"status-403.yaml", fixtureWhere + ": status_on_error is 403 (Forbidden), not a 5xx"},
		{"status-unset.yaml", fixtureWhere + ": status_on_error is unset"},
		{"transport-auto.yaml", fixtureWhere + ": transport_api_version is AUTO"},
		{"shadow-mode.yaml", fixtureWhere + ": shadow_mode is true"},
		{"no-authorization-header.yaml", fixtureWhere + ": allowed_headers/disallowed_headers keep the authorization header from Gatehouse"},
		{"no-browser-headers.yaml", fixtureWhere + ": allowed_headers/disallowed_headers keep accept, origin, sec-fetch-site from Gatehouse"},
		{"missing-authz-cluster.yaml", fixtureWhere + `: calls cluster "gatehous", which is not defined`},
		{"missing-route-cluster.yaml", `listener "ingress", virtual host "app", route #0: sends to cluster "ap", which is not defined`},
		{"http1-authz-cluster.yaml", fixtureWhere + `: cluster "gatehouse" does not speak HTTP/2`},
		{"wrong-authz-port.yaml", fixtureWhere + `: cluster "gatehouse" points at [127.0.0.1:9192], but Gatehouse's authz.listen is 127.0.0.1:9191`},
		{"router-first.yaml", `listener "ingress": the router filter comes before ext_authz filter "envoy.filters.http.ext_authz"`},
		{"vhost-authz-disabled.yaml", `listener "ingress", virtual host "app": disables ext_authz for the whole virtual host`},
		{"no-ext-authz.yaml", "no ext_authz filter found in any listener"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			warnings, err := Check(filepath.Join("testdata", tt.file), testAuthzAddr(t))
			if err != nil {
				t.Fatalf("Check: %v", err)
			}
			if tt.want == "" {
				if len(warnings) != 0 {
					t.Fatalf("want no warnings, got:\n%s", strings.Join(warnings, "\n"))
				}
				return
			}
			// Each fixture breaks exactly one thing, so exactly one warning.
			if len(warnings) != 1 || !strings.Contains(warnings[0], tt.want) {
				t.Fatalf("want one warning containing\n  %s\ngot %d:\n  %s", tt.want, len(warnings), strings.Join(warnings, "\n  "))
			}
		})
	}
}

func TestCheckFixtureErrors(t *testing.T) {
	tests := []struct {
		file   string
		kind   error
		marker string // text on the line the error must point at
		want   string
	}{
		{"unknown-type.yaml", ErrUnknownType, "v3.ExtAuth\n", `unknown @type "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuth"`},
		{"invalid-field.yaml", ErrInvalid, "failure_mode_alow: false", `unknown field "failure_mode_alow"`},
		{"invalid-value.yaml", ErrInvalid, "timeout: 1\n", "value of the wrong kind (unexpected token 1)"},
		{"invalid-rule.yaml", ErrInvalid, `stat_prefix: ""`, "invalid HttpConnectionManager.StatPrefix: value length must be at least 1 runes"},
		{"duplicate-key.yaml", ErrInvalid, "failure_mode_allow: true", `duplicate key "failure_mode_allow"`},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			path := filepath.Join("testdata", tt.file)
			warnings, err := Check(path, testAuthzAddr(t))
			if err == nil {
				t.Fatalf("want an error, got warnings %q", warnings)
			}
			if !errors.Is(err, tt.kind) {
				t.Errorf("errors.Is(err, %v) = false; err = %v", tt.kind, err)
			}
			prefix := fmt.Sprintf("%s:%d: ", path, lineOf(t, path, tt.marker))
			if msg := err.Error(); !strings.HasPrefix(msg, prefix) || !strings.Contains(msg, tt.want) {
				t.Errorf("error = %q\nwant prefix %q and text %q", msg, prefix, tt.want)
			}
		})
	}
}

func TestCheckAddress(t *testing.T) {
	b, err := LoadBootstrap("sidecar.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		addr    string
		wantErr bool
		warns   int
	}{
		{"", false, 0},                // no address: port not compared
		{"127.0.0.1:9191", false, 0},  //
		{"0.0.0.0:9191", false, 0},    // wildcard listen reachable on loopback
		{"localhost:9191", false, 0},  //
		{"[::1]:9191", false, 0},      // loopback either way
		{"gatehouse:9191", false, 0},  // names cannot be resolved offline
		{"127.0.0.1:9292", false, 1},  // wrong port
		{"10.1.2.3:9191", false, 1},   // a different IP
		{"127.0.0.1", true, 0},        // no port
		{"127.0.0.1:9191:x", true, 0}, //
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			warnings, err := CheckBootstrap(b, tt.addr)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if len(warnings) != tt.warns {
				t.Fatalf("got %d warnings, want %d: %q", len(warnings), tt.warns, warnings)
			}
		})
	}
}

func TestCheckEmptyBootstrap(t *testing.T) {
	warnings, err := CheckBootstrap(&bootstrapv3.Bootstrap{}, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "no ext_authz filter found") {
		t.Fatalf("warnings = %q", warnings)
	}
}

func TestStringMatches(t *testing.T) {
	exact := func(s string) *matcherv3.StringMatcher {
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: s}}
	}
	tests := []struct {
		name string
		m    *matcherv3.StringMatcher
		want bool
	}{
		{"exact", exact("authorization"), true},
		{"exact case", exact("Authorization"), false},
		{"exact ignore case", &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "Authorization"}, IgnoreCase: true}, true},
		{"prefix", &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: "auth"}}, true},
		{"suffix", &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Suffix{Suffix: "zation"}}, true},
		{"contains", &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Contains{Contains: "oriz"}}, true},
		{"regex whole", &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: "auth.*"}}}, true},
		{"regex partial", &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: "auth"}}}, false},
		{"other", exact("cookie"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := stringMatches(tt.m, "authorization"); got != tt.want {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestWholePercent(t *testing.T) {
	tests := []struct {
		fp   *typev3.FractionalPercent
		want bool
	}{
		{nil, true},
		{&typev3.FractionalPercent{Numerator: 100}, true},
		{&typev3.FractionalPercent{Numerator: 99}, false},
		{&typev3.FractionalPercent{Numerator: 100, Denominator: typev3.FractionalPercent_TEN_THOUSAND}, false},
		{&typev3.FractionalPercent{Numerator: 1_000_000, Denominator: typev3.FractionalPercent_MILLION}, true},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.fp), func(t *testing.T) {
			if got := wholePercent(tt.fp); got != tt.want {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
}

// lineOf returns the 1-based line of the first occurrence of marker in file.
func lineOf(t *testing.T, file, marker string) int {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	i := strings.Index(string(data), marker)
	if i < 0 {
		t.Fatalf("%s: marker %q not found", file, marker)
	}
	return strings.Count(string(data[:i]), "\n") + 1
}
