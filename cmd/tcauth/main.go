// Command tcauth is the one binary of tcauth: the control plane, the sidecar,
// a development mode, and admin and offline scope commands.
package main

import (
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/tcauth/tcauth/protocol/buildinfo"
)

func main() {
	app := newApp()
	if err := app.Run(prepareArgs(app, os.Args)); err != nil {
		if err != errNo {
			fmt.Fprintln(os.Stderr, "tcauth:", describeError(err))
		}
		os.Exit(exitCode(err))
	}
}

func newApp() *cli.App {
	cli.VersionPrinter = func(c *cli.Context) { fmt.Fprintln(c.App.Writer, buildinfo.Get().String()) }
	app := &cli.App{
		Name:                 "tcauth",
		Usage:                "Taskcluster-compatible authentication: control plane, sidecar and tools",
		Version:              buildinfo.Get().Version,
		EnableBashCompletion: true,
		Commands: []*cli.Command{
			apiCommand(),
			scopesCommand(),
			clientCommand(),
			roleCommand(),
			clusterCommand(),
			keyringCommand(),
			checkCommand(),
			httpCommand(),
			signedURLCommand(),
			controlplaneCommand(),
			devCommand(),
			sidecarCommand(),
			signinCommand(),
			fromNowCommand(),
			versionCommand(),
			completionCommand(),
		},
	}
	strictUsage(app)
	return app
}
