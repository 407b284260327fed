package verify

import (
	"encoding/json"
	"fmt"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	securityv1 "istio.io/api/security/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// object is one decoded manifest.
type object struct {
	Kind      string
	Name      string
	Namespace string
	Obj       any // *appsv1.Deployment, *corev1.Service, ..., or *istioObject
}

func (o *object) String() string { return fmt.Sprintf("%s %s/%s", o.Kind, o.Namespace, o.Name) }

// istioObject is an Istio custom resource: the envelope is decoded strictly like any Kubernetes object, the spec
// strictly (unknown fields are errors) into the istio.io/api message with protojson. istio.io/client-go's types
// are not used: their JSON decoding allows unknown fields, which would defeat the point.
type istioObject struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              json.RawMessage `json:"spec"`

	Message proto.Message `json:"-"`
}

// kubeTypes maps apiVersion/kind to a new typed object. A kind missing here fails the test, so a new kind of
// manifest comes with its decoding.
var kubeTypes = map[string]func() any{
	"v1/Namespace":                       func() any { return &corev1.Namespace{} },
	"v1/ConfigMap":                       func() any { return &corev1.ConfigMap{} },
	"v1/Secret":                          func() any { return &corev1.Secret{} },
	"v1/Service":                         func() any { return &corev1.Service{} },
	"apps/v1/Deployment":                 func() any { return &appsv1.Deployment{} },
	"apps/v1/StatefulSet":                func() any { return &appsv1.StatefulSet{} },
	"policy/v1/PodDisruptionBudget":      func() any { return &policyv1.PodDisruptionBudget{} },
	"networking.k8s.io/v1/NetworkPolicy": func() any { return &networkingv1.NetworkPolicy{} },
	"security.istio.io/v1/AuthorizationPolicy": func() any {
		return &istioObject{Message: &securityv1.AuthorizationPolicy{}}
	},
	"security.istio.io/v1/RequestAuthentication": func() any {
		return &istioObject{Message: &securityv1.RequestAuthentication{}}
	},
	"security.istio.io/v1/PeerAuthentication": func() any {
		return &istioObject{Message: &securityv1.PeerAuthentication{}}
	},
}

// decodeStrict decodes one YAML document into its upstream type: unknown or duplicate fields, wrong types and
// unknown kinds are errors.
func decodeStrict(doc []byte) (*object, error) {
	var head struct {
		metav1.TypeMeta `json:",inline"`
		Metadata        struct {
			Name string `json:"name"`
		} `json:"metadata"`
	}
	if err := yaml.Unmarshal(doc, &head); err != nil {
		return nil, err
	}
	tm := head.TypeMeta
	newObj, ok := kubeTypes[tm.APIVersion+"/"+tm.Kind]
	if !ok {
		return nil, fmt.Errorf("apiVersion %q kind %q: no upstream type registered in deploy/verify", tm.APIVersion, tm.Kind)
	}
	obj := newObj()
	if err := yaml.UnmarshalStrict(doc, obj); err != nil {
		return nil, fmt.Errorf("%s %s: %w", tm.Kind, head.Metadata.Name, err)
	}
	o := &object{Kind: tm.Kind, Obj: obj}
	if m, ok := obj.(metav1.Object); ok {
		o.Name, o.Namespace = m.GetName(), m.GetNamespace()
	}
	if io, ok := obj.(*istioObject); ok {
		if len(io.Spec) == 0 {
			return nil, fmt.Errorf("%s %s: no spec", tm.Kind, io.Name)
		}
		if err := protojson.Unmarshal(io.Spec, io.Message); err != nil {
			return nil, fmt.Errorf("%s %s: spec: %w", tm.Kind, io.Name, err)
		}
	}
	if o.Name == "" {
		return nil, fmt.Errorf("%s without metadata.name", tm.Kind)
	}
	return o, nil
}
