package main

import (
	"errors"
	"io"
	"os"

	"github.com/urfave/cli/v2"
	"gopkg.in/yaml.v3"

	"github.com/tcauth/tcauth/controlplane/cloud"
)

func cloudConfigFlag() *cli.StringFlag {
	return &cli.StringFlag{Name: "cloud-config", Usage: "YAML file configuring the third-party credential backends " +
		"(websocktunnel, gcp, sentry, azure sections; secrets preferably from ...File keys); unset = none", EnvVars: []string{"TCAUTH_CLOUD_CONFIG"}}
}

// loadCloudConfig reads a --cloud-config file ("" = none). Unknown keys
// are refused, so a misspelt option stops the start-up naming the file
// and the line instead of leaving a backend silently unconfigured. The
// sections are checked (and secret files read) when the node starts.
func loadCloudConfig(path string) (*cloud.Config, error) {
	if path == "" {
		return nil, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, badInput("--cloud-config: %v", err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	dec.KnownFields(true)
	var cc cloud.Config
	if err := dec.Decode(&cc); err != nil {
		if errors.Is(err, io.EOF) {
			err = errors.New("the file is empty")
		}
		return nil, badInput("--cloud-config %s: %v", path, err)
	}
	// Checked here too, so that a bad section (an unreadable secret file,
	// a missing key) is reported with the file's name before anything starts.
	if _, err := cloud.New(cc); err != nil {
		return nil, badInput("--cloud-config %s: %v", path, err)
	}
	return &cc, nil
}
