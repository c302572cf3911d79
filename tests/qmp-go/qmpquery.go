// qmpquery - a real QMP client (DigitalOcean's go-qemu, as Debian packages
// it) for the tests: connect to a QMP Unix socket, complete the
// qmp_capabilities handshake, run one command and print its reply.
//
//	qmpquery SOCKET [COMMAND]     (COMMAND defaults to query-status)
//
// go-qemu writes each request without a trailing newline, which is why the
// tests use it: a server that waits for a line never answers.
//
// Exit status: 0 the reply is a return, 1 it is an error, 2 usage or
// connection failure, 3 no reply within the timeout.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/digitalocean/go-qemu/qmp"
)

const timeout = 10 * time.Second

func fail(status int, format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "qmpquery: "+format+"\n", args...)
	os.Exit(status)
}

func main() {
	if len(os.Args) < 2 || len(os.Args) > 3 {
		fail(2, "usage: qmpquery SOCKET [COMMAND]")
	}
	command := "query-status"
	if len(os.Args) == 3 {
		command = os.Args[2]
	}
	req, err := json.Marshal(qmp.Command{Execute: command})
	if err != nil {
		fail(2, "%v", err)
	}

	// A server that never answers must fail the test, not hang it.
	timer := time.AfterFunc(timeout, func() {
		fail(3, "no reply within %v", timeout)
	})
	defer timer.Stop()

	mon, err := qmp.NewSocketMonitor("unix", os.Args[1], timeout)
	if err != nil {
		fail(2, "connect %s: %v", os.Args[1], err)
	}
	if err := mon.Connect(); err != nil {
		fail(2, "handshake with %s: %v", os.Args[1], err)
	}
	defer mon.Disconnect()

	reply, err := mon.Run(req)
	if err != nil {
		// go-qemu turns an error reply into err with its desc.
		fmt.Printf("error: %v\n", err)
		timer.Stop()
		mon.Disconnect()
		os.Exit(1)
	}
	fmt.Printf("%s\n", reply)
}
