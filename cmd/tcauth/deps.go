package main

// Blank imports pin modules that later packages use, so `go mod tidy`
// keeps go.mod stable while those packages are written.
import (
	_ "github.com/anishathalye/porcupine"
	_ "github.com/hashicorp/golang-lru/v2"
	_ "github.com/hashicorp/raft"
	_ "github.com/hashicorp/raft-boltdb/v2"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/prometheus/client_golang/prometheus/promhttp"
	_ "go.etcd.io/bbolt"
	_ "gopkg.in/yaml.v3"
)
