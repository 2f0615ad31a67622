// Command k8s-testbin is the test control plane of contiguity-operator: one
// multi-call binary built from the Kubernetes Go modules.
//
// Invoked as (argv[0] or first argument):
//
//	etcd ...            the etcd server
//	kube-apiserver ...  the Kubernetes API server
//	kubectl ...         kubectl
//	up --dir DIR        a supervisor: generates certificates and an admin token,
//	                    starts etcd and kube-apiserver on free loopback ports,
//	                    waits until the API server is ready, writes DIR/kubeconfig
//	                    and prints one JSON line describing the control plane.
//	                    It stops both servers when its standard input closes
//	                    (with --watch-stdin) or on SIGTERM/SIGINT, and restarts
//	                    both (keeping the etcd data) on SIGUSR1.
//
// It is only used by the test harness, the quickstart and the benchmark.
package main

import (
	"fmt"
	"os"
	"path/filepath"

	_ "time/tzdata"

	"go.etcd.io/etcd/server/v3/etcdmain"
	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	kubectl "k8s.io/kubectl/pkg/cmd"
	apiserver "k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() {
	tool := filepath.Base(os.Args[0])
	args := os.Args
	if tool != "etcd" && tool != "kube-apiserver" && tool != "kubectl" {
		if len(os.Args) < 2 {
			fmt.Fprintln(os.Stderr, "usage: k8s-testbin up|etcd|kube-apiserver|kubectl [flags]")
			os.Exit(2)
		}
		tool = os.Args[1]
		args = append([]string{tool}, os.Args[2:]...)
	}
	switch tool {
	case "etcd":
		etcdmain.Main(args)
	case "kube-apiserver":
		cmd := apiserver.NewAPIServerCommand()
		cmd.SetArgs(args[1:])
		os.Exit(cli.Run(cmd))
	case "kubectl":
		cmd := kubectl.NewDefaultKubectlCommand()
		cmd.SetArgs(args[1:])
		os.Exit(cli.Run(cmd))
	case "up":
		os.Exit(up(args[1:]))
	default:
		fmt.Fprintf(os.Stderr, "k8s-testbin: unknown tool %q\n", tool)
		os.Exit(2)
	}
}
