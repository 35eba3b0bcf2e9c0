// Command pause is the pod sandbox's first process: it holds the pod's namespaces open,
// reaps every orphan re-parented to it (PID 1 of a pod that shares its process namespace)
// and exits 0 on SIGINT or SIGTERM. It does what Kubernetes' build/pause/linux/pause.c does,
// written in Go so that it builds here from the standard library alone.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// version is set at link time (-X main.version=...) to the image tag it is shipped in.
var version = "dev"

func main() {
	if len(os.Args) > 1 && (os.Args[1] == "-v" || os.Args[1] == "--version") {
		fmt.Printf("pause %s\n", version)
		return
	}
	if os.Getpid() != 1 {
		fmt.Fprintln(os.Stderr, "Warning: pause should be the first process")
	}
	signals := make(chan os.Signal, 16)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	reap() // children that exited before Notify took effect
	for sig := range signals {
		if sig == syscall.SIGCHLD {
			reap()
			continue
		}
		fmt.Fprintf(os.Stderr, "Shutting down, got signal: %s\n", sig)
		os.Exit(0)
	}
}

// reap collects every exited child without blocking: SIGCHLD signals coalesce, so one
// signal may stand for many children.
func reap() {
	for {
		var status syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return
		}
	}
}
