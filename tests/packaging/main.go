// kstatus prints the kstatus verdict (sigs.k8s.io/cli-utils/pkg/kstatus/status, the library
// Flux and `kubectl wait`-style tools use) of Kubernetes objects read from JSON files.
//
//	go run . a.json b.json ...
//
// Each file holds one object, or a List (`kind: List`, `items`). For every object it prints one
// JSON line: {"kind", "namespace", "name", "status", "message"}. tests/packaging_e2e.rs runs it
// on status objects that the operator produced on the test control plane.
package main

import (
	"encoding/json"
	"fmt"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

type verdict struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Status    string `json:"status"`
	Message   string `json:"message"`
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: kstatus FILE.json...")
		os.Exit(2)
	}
	out := json.NewEncoder(os.Stdout)
	for _, path := range os.Args[1:] {
		objs, err := read(path)
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", path, err)
			os.Exit(1)
		}
		for _, u := range objs {
			res, err := status.Compute(u)
			if err != nil {
				fmt.Fprintf(os.Stderr, "%s: %s/%s: %v\n", path, u.GetKind(), u.GetName(), err)
				os.Exit(1)
			}
			if err := out.Encode(verdict{
				Kind:      u.GetKind(),
				Namespace: u.GetNamespace(),
				Name:      u.GetName(),
				Status:    res.Status.String(),
				Message:   res.Message,
			}); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
		}
	}
}

func read(path string) ([]*unstructured.Unstructured, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var u unstructured.Unstructured
	if err := u.UnmarshalJSON(data); err != nil {
		return nil, err
	}
	if !u.IsList() {
		return []*unstructured.Unstructured{&u}, nil
	}
	list, err := u.ToList()
	if err != nil {
		return nil, err
	}
	objs := make([]*unstructured.Unstructured, 0, len(list.Items))
	for i := range list.Items {
		objs = append(objs, &list.Items[i])
	}
	return objs, nil
}
