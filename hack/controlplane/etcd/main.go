// Command etcd is upstream etcd's server, built from the Go module proxy at the version
// pinned in ../versions.env. It is a module of its own so that its dependencies never
// change the versions the Kubernetes binaries are built with.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
