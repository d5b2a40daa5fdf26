// Command tcauth is the one binary of tcauth: the control plane, the sidecar,
// a development mode, and admin and offline scope commands.
package main

import (
	"fmt"
	"os"

	"github.com/urfave/cli/v2"
)

func main() {
	app := newApp()
	if err := app.Run(permuteArgs(app, os.Args)); err != nil {
		if err != errNo {
			fmt.Fprintln(os.Stderr, "tcauth:", err)
		}
		os.Exit(exitCode(err))
	}
}

func newApp() *cli.App {
	return &cli.App{
		Name:  "tcauth",
		Usage: "Taskcluster-compatible authentication: control plane, sidecar and tools",
		Commands: []*cli.Command{
			scopesCommand(),
			clientCommand(),
			roleCommand(),
			clusterCommand(),
			httpCommand(),
			signedURLCommand(),
			controlplaneCommand(),
			devCommand(),
			sidecarCommand(),
			signinCommand(),
		},
	}
}
