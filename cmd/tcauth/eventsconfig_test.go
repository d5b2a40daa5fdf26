package main

import (
	"path/filepath"
	"testing"
	"time"
)

func TestLoadEventsConfig(t *testing.T) {
	dir, write := tempWriter(t)
	urlFile := write("url", "amqp://tc:hunter2-secret@rabbit.internal:5672/taskcluster\n")
	ec, err := loadEventsConfig(write("good.yaml", "urlFile: "+urlFile+"\nexchangePrefix: exchange/x/v1/\noutboxLimit: 500\nackInterval: 1s\nconfirmTimeout: 30s\n"))
	if err != nil {
		t.Fatal(err)
	}
	if ec.URLFile != urlFile || ec.ExchangePrefix != "exchange/x/v1/" || ec.OutboxLimit != 500 ||
		time.Duration(ec.AckInterval) != time.Second || time.Duration(ec.ConfirmTimeout) != 30*time.Second {
		t.Fatalf("decoded %+v", ec)
	}
	checkConfigLoader(t, loadEventsConfig, dir, map[string]string{
		"typo.yaml":         "url: amqp://h/\nackIntervall: 1s\n",
		"empty.yaml":        "",
		"no-url.yaml":       "exchangePrefix: x/\n",
		"both.yaml":         "url: amqp://a:hunter2-secret@h/\nurlFile: " + urlFile + "\n",
		"bad-scheme.yaml":   "url: https://a:hunter2-secret@h/\n",
		"bad-duration.yaml": "url: amqp://h/\nackInterval: often\n",
		"negative.yaml":     "url: amqp://h/\nconfirmTimeout: -1s\n",
		"too-big.yaml":      "url: amqp://h/\noutboxLimit: 100000000\n",
		"missing-file.yaml": "urlFile: " + filepath.Join(dir, "absent") + "\n",
		"not-a-map.yaml":    "- url\n",
	}, "hunter2")
}
