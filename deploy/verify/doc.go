// Package verify holds the tests of Gatehouse's Kubernetes and Istio manifests (deploy/kubernetes, deploy/istio).
//
// It is a separate, test-only module so that the main gatehouse module never carries Kubernetes, kustomize or Istio
// dependencies. Run it with `cd deploy/verify && go vet ./... && go test ./...`.
package verify
