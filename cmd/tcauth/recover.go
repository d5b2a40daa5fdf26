package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
	"github.com/urfave/cli/v2/altsrc"

	"github.com/tcauth/tcauth/raftstore"
)

// controlplaneRecoverCommand is `tcauth controlplane recover`: the offline
// step of recovering a cluster that lost quorum (raftstore.Recover). It is
// a command run on a stopped node rather than a peers.json file picked up
// at start (Consul's way) so that nothing can apply a membership change
// later by accident — a file left behind, or copied along with a data
// directory — and so that the operator sees at once what was recovered
// (index, term, clients) or why it was refused, before any node starts.
func controlplaneRecoverCommand() *cli.Command {
	return &cli.Command{
		Name:      "recover",
		Usage:     "rewrite a stopped node's cluster membership from a peers file (recovery of a cluster that lost quorum)",
		UsageText: "tcauth controlplane recover --data-dir DIR --peers peers.json [--node-id ID] [--dry-run] [--json]",
		Description: "Run on each surviving node while every node is stopped. peers.json lists the servers of the\n" +
			"recovered cluster: [{\"id\": \"n1\", \"address\": \"10.0.0.1:7801\"}] (add \"non_voter\": true for a\n" +
			"non-voter). The node keeps its state (every write it acknowledged). Start it again afterwards as usual.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "data-dir", Usage: "the node's --data-dir", EnvVars: []string{"TCAUTH_DATA_DIR"}},
			&cli.StringFlag{Name: "peers", Usage: "JSON file: the recovered cluster's servers"},
			&cli.StringFlag{Name: "node-id", Usage: "this node's id (default: the one the data directory records; must match it)"},
			&cli.BoolFlag{Name: "dry-run", Usage: "check everything and print the node's last index and term, changing nothing"},
			&cli.BoolFlag{Name: "json", Usage: "print the result as JSON"},
		},
		Action: runRecover,
	}
}

func runRecover(c *cli.Context) error {
	if err := requireFlags(c, "data-dir", "peers"); err != nil {
		return err
	}
	if c.Args().Len() > 0 {
		return badInput("unexpected arguments %q (see --help)", c.Args().Slice())
	}
	peers, err := raftstore.ReadPeersFile(c.String("peers"))
	if err != nil {
		return badInput("--peers: %v", err)
	}
	dir := c.String("data-dir")
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return badInput("--data-dir %s: not a directory", dir)
	}
	rc := raftstore.RecoverConfig{DataDir: filepath.Join(dir, "raft"), NodeID: c.String("node-id"),
		Peers: peers, DryRun: c.Bool("dry-run"), Logger: newLogger("warn")}
	// The control plane's own lock first, as the node's process holds it
	// from before it opens the store (raftstore.Recover then takes the Raft
	// directory's). Not in a directory without state, which Recover
	// refuses: a wrong --data-dir is left as it was.
	if has, err := raftstore.HasState(rc.DataDir); err == nil && has {
		lock, err := raftstore.LockDataDir(dir)
		if err != nil {
			return err
		}
		defer lock.Unlock()
	}
	res, err := raftstore.Recover(rc)
	if errors.Is(err, raftstore.ErrBadPeersFile) {
		return badInput("--peers: %v", err) // e.g. this node is not listed
	}
	if err != nil {
		return err
	}
	if c.Bool("json") {
		enc := json.NewEncoder(c.App.Writer)
		enc.SetEscapeHTML(false)
		return enc.Encode(res)
	}
	printRecoverResult(c, res)
	return nil
}

func printRecoverResult(c *cli.Context, res raftstore.RecoverResult) {
	var servers []string
	for _, p := range res.Servers {
		s := p.ID + " " + p.Address
		if p.NonVoter {
			s += " (non-voter)"
		}
		servers = append(servers, s)
	}
	w := c.App.Writer
	if res.DryRun {
		fmt.Fprintf(w, "dry run: node %s holds state up to index %d, term %d (%d clients, %d roles); nothing was changed\n",
			res.NodeID, res.LastIndex, res.LastTerm, res.Clients, res.Roles)
		fmt.Fprintf(w, "recovering would make the cluster: %s\n", strings.Join(servers, ", "))
		return
	}
	fmt.Fprintf(w, "recovered node %s: state up to index %d, term %d (%d clients, %d roles) kept\n",
		res.NodeID, res.LastIndex, res.LastTerm, res.Clients, res.Roles)
	fmt.Fprintf(w, "cluster membership is now: %s\n", strings.Join(servers, ", "))
	fmt.Fprintln(w, "start the node(s) again as before (without --bootstrap or --join)")
}

// autopilotFlags are controlplane's dead-server clean-up flags
// (raftstore.AutopilotConfig; the defaults are its documented ones).
func autopilotFlags() []cli.Flag {
	d := raftstore.DefaultAutopilotConfig()
	return []cli.Flag{
		altsrc.NewBoolFlag(&cli.BoolFlag{Name: "autopilot-cleanup-dead-servers", EnvVars: []string{"TCAUTH_AUTOPILOT_CLEANUP_DEAD_SERVERS"},
			Usage: "let the leader remove members it has not heard from for --autopilot-dead-server-threshold (off by default)"}),
		configDuration("autopilot-dead-server-threshold", d.DeadServerLastContactThreshold,
			"how long the leader must not have heard from a member before removing it (at least "+raftstore.MinDeadServerLastContactThreshold.String()+
				"; longer than any planned outage of a node)", "TCAUTH_AUTOPILOT_DEAD_SERVER_THRESHOLD"),
		altsrc.NewIntFlag(&cli.IntFlag{Name: "autopilot-min-quorum", Value: d.MinQuorum, EnvVars: []string{"TCAUTH_AUTOPILOT_MIN_QUORUM"},
			Usage: "the clean-up never leaves fewer voters than this"}),
	}
}

// autopilotConfig reads autopilotFlags, refusing bad values (exit 2).
func autopilotConfig(c *cli.Context) (raftstore.AutopilotConfig, error) {
	cfg := raftstore.DefaultAutopilotConfig()
	cfg.CleanupDeadServers = c.Bool("autopilot-cleanup-dead-servers")
	cfg.DeadServerLastContactThreshold = flagDuration(c, "autopilot-dead-server-threshold")
	cfg.MinQuorum = c.Int("autopilot-min-quorum")
	if cfg.DeadServerLastContactThreshold <= 0 || cfg.MinQuorum <= 0 {
		return cfg, badInput("--autopilot-dead-server-threshold and --autopilot-min-quorum must be positive")
	}
	if err := cfg.Check(); err != nil {
		return cfg, badInput("%v", err)
	}
	// The check interval follows a short threshold, so that the removal
	// comes close to it (the default 2s suits thresholds of minutes).
	if q := cfg.DeadServerLastContactThreshold / 4; q < cfg.CheckInterval {
		cfg.CheckInterval = max(q, 100*time.Millisecond)
	}
	return cfg, nil
}
