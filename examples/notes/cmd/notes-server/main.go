// Command notes-server runs the notes example service on a loopback
// address, for use behind `tcauth sidecar --upstream`.
package main

import (
	"flag"
	"log"
	"net/http"
	"time"

	"github.com/tcauth/tcauth/examples/notes"
)

func main() {
	addr := flag.String("listen", "127.0.0.1:9000", "address to listen on (keep it private: only the sidecar may reach it)")
	flag.Parse()
	srv := &http.Server{Addr: *addr, Handler: notes.New(), ReadHeaderTimeout: 10 * time.Second}
	log.Printf("notes example listening on %s", *addr)
	log.Fatal(srv.ListenAndServe())
}
