package main

import (
	"github.com/urfave/cli/v2"

	"github.com/tcauth/tcauth/controlplane/cloud"
)

func cloudConfigFlag() *cli.StringFlag {
	return &cli.StringFlag{Name: "cloud-config", Usage: "YAML file configuring the third-party credential backends " +
		"(websocktunnel, azure, gcp, sentry, aws, github sections; secrets preferably from ...File keys); unset = none", EnvVars: []string{"TCAUTH_CLOUD_CONFIG"}}
}

// loadCloudConfig reads a --cloud-config file ("" = none). Unknown keys
// are refused, so a misspelt option stops the start-up naming the file
// and the line instead of leaving a backend silently unconfigured. The
// sections are checked (and secret files read) when the node starts.
func loadCloudConfig(path string) (*cloud.Config, error) {
	cc, err := decodeConfigFile[cloud.Config]("--cloud-config", path)
	if cc == nil || err != nil {
		return nil, err
	}
	// Checked here too, so that a bad section (an unreadable secret file,
	// a missing key) is reported with the file's name before anything starts.
	if _, err := cloud.New(*cc); err != nil {
		return nil, badInput("--cloud-config %s: %v", path, err)
	}
	return cc, nil
}
