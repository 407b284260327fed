package verify

import (
	"strings"
	"testing"
)

// TestDecoderIsStrict: the decoding every other test relies on refuses what a lenient decoder would drop.
func TestDecoderIsStrict(t *testing.T) {
	tests := []struct {
		name, doc, wantErr string
	}{
		{"unknown field", `
apiVersion: apps/v1
kind: Deployment
metadata: {name: x}
spec: {replicas: 1, replica: 2}`, "unknown field"},
		{"misplaced field", `
apiVersion: v1
kind: Service
metadata: {name: x}
spec: {ports: [{port: 80, containerPort: 80}]}`, "unknown field"},
		{"duplicate key", `
apiVersion: v1
kind: ConfigMap
metadata: {name: x}
data: {a: "1", a: "2"}`, "already set"},
		{"wrong type", `
apiVersion: apps/v1
kind: Deployment
metadata: {name: x}
spec: {replicas: two}`, "replicas"},
		{"unknown kind", `
apiVersion: example.com/v1
kind: Widget
metadata: {name: x}`, "no upstream type"},
		{"istio unknown spec field", `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: x}
spec: {action: CUSTOM, provider: {name: gatehouse}, rules: [{}], failOpen: true}`, "unknown field"},
		{"istio bad enum", `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: x}
spec: {action: CUSTOMISED}`, "CUSTOMISED"},
		{"istio unknown envelope field", `
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: x}
status: {}
spec: {mtls: {mode: STRICT}}`, "unknown field"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decodeStrict([]byte(tt.doc))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("err = %v, want one mentioning %q", err, tt.wantErr)
			}
		})
	}
}
