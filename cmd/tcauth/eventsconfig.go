package main

import (
	"github.com/urfave/cli/v2"

	"github.com/tcauth/tcauth/controlplane/events"
)

func eventsConfigFlag() *cli.StringFlag {
	return &cli.StringFlag{Name: "events-config", Usage: "YAML file configuring the publication of client and role changes " +
		"to an AMQP broker (url or urlFile, exchangePrefix, outboxLimit, ackInterval, confirmTimeout; docs/events.md); unset = none",
		EnvVars: []string{"TCAUTH_EVENTS_CONFIG"}}
}

// loadEventsConfig reads an --events-config file ("" = none). Unknown keys
// are refused, and the configuration is checked (the urlFile read) before
// anything starts, so a mistake names the file instead of leaving events
// silently unpublished. Errors never show the broker's password.
func loadEventsConfig(path string) (*events.Config, error) {
	ec, err := decodeConfigFile[events.Config]("--events-config", path)
	if ec == nil || err != nil {
		return nil, err
	}
	if err := ec.Validate(); err != nil {
		return nil, badInput("--events-config %s: %v", path, err)
	}
	return ec, nil
}
