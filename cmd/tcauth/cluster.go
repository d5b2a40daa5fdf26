package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"github.com/urfave/cli/v2"

	"github.com/tcauth/tcauth/protocol/tcclient"
	"github.com/tcauth/tcauth/raftstore"
)

// clusterCommand is the operator's view of the Raft cluster, through any
// node's API (writes are forwarded to the leader). Each subcommand needs
// its own auth:tcauth:cluster:* scope.
func clusterCommand() *cli.Command {
	return &cli.Command{
		Name:  "cluster",
		Usage: "list, remove and hand over cluster members; save and restore backups",
		Subcommands: []*cli.Command{
			{
				Name: "peers", Usage: "list the members (id, Raft address, voter, leader)",
				Action: func(c *cli.Context) error { return call(c, http.MethodGet, "/tcauth/cluster/peers", nil, nil) },
			},
			clusterStatusCommand(),
			{
				Name: "remove", Usage: "take a node out of the cluster", ArgsUsage: "NODE-ID",
				Action: func(c *cli.Context) error {
					id, err := oneArg(c, "node id")
					if err != nil {
						return err
					}
					return call(c, http.MethodDelete, "/tcauth/cluster/members/"+tcclient.PathSegment(id), nil, nil)
				},
			},
			{
				Name: "transfer-leadership", Usage: "ask the leader to hand over to another voter",
				Action: func(c *cli.Context) error {
					return call(c, http.MethodPost, "/tcauth/cluster/transfer-leadership", nil, nil)
				},
			},
			{
				Name:      "pki",
				Usage:     "write a cluster CA and a certificate per node for Raft mutual TLS (offline; for trials and tests — production uses its own CA)",
				ArgsUsage: "NODE-ID...",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "dir", Value: "pki", Usage: "output directory (existing files are kept)"},
					&cli.StringSliceFlag{Name: "host", Usage: "extra DNS name or IP every node certificate is valid for (repeat)"},
				},
				Action: func(c *cli.Context) error {
					if c.NArg() == 0 {
						return badInput("name at least one node")
					}
					if err := raftstore.GenerateDevPKI(c.String("dir"), c.Args().Slice(), c.StringSlice("host")...); err != nil {
						return err
					}
					fmt.Fprintf(c.App.ErrWriter, "wrote %s/ca.pem and a certificate per node (<node>.pem, <node>-key.pem)\n", c.String("dir"))
					return nil
				},
			},
			{
				Name:  "snapshot",
				Usage: "back up or restore the whole state (tokens stay sealed with the cluster keyring)",
				Subcommands: []*cli.Command{
					{Name: "save", Usage: "write a backup to FILE (- for stdout)", ArgsUsage: "FILE", Action: snapshotSave},
					{Name: "restore", Usage: "replace the cluster's state with the backup in FILE (shows what it replaces; asks, or --force)", ArgsUsage: "FILE",
						Flags:  []cli.Flag{&cli.BoolFlag{Name: "force", Usage: "restore without asking (needed when stdin is not a terminal)"}},
						Action: snapshotRestore},
				},
			},
		},
	}
}

func snapshotSave(c *cli.Context) error {
	path, err := oneArg(c, "output file")
	if err != nil {
		return err
	}
	client, err := apiClient()
	if err != nil {
		return err
	}
	resp, err := client.DoRaw(c.Context, http.MethodGet, "/tcauth/cluster/snapshot", nil, "", nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if path == "-" {
		_, err = io.Copy(c.App.Writer, resp.Body)
		return err
	}
	// Written beside the target and renamed, so a failed download never
	// leaves a half backup under the real name.
	tmp := path + ".partial"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	n, err := io.Copy(f, resp.Body)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	fmt.Fprintf(c.App.ErrWriter, "saved %d bytes at index %s to %s\n", n, resp.Header.Get("X-Tcauth-Applied-Index"), path)
	return nil
}

func snapshotRestore(c *cli.Context) error {
	path, err := oneArg(c, "backup file")
	if err != nil {
		return err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return badInput("%v", err)
	}
	backup, err := raftstore.SummarizeBackup(bytes.NewReader(data))
	if err != nil {
		return badInput("%s: %v", path, err)
	}
	client, err := apiClient()
	if err != nil {
		return err
	}
	if err := confirmRestore(c, client, path, backup); err != nil {
		return err
	}
	resp, err := client.DoRaw(c.Context, http.MethodPut, "/tcauth/cluster/snapshot", nil, "application/x-ndjson", data)
	if err != nil {
		return err
	}
	resp.Body.Close()
	fmt.Fprintf(c.App.ErrWriter, "restored %s (%d bytes)\n", path, len(data))
	return nil
}

// confirmRestore shows what a restore replaces with what, and goes on only
// with --force or a "yes" typed at a terminal: a restore replaces every
// client and role, and a script must say so explicitly.
func confirmRestore(c *cli.Context, client *tcclient.Client, path string, backup raftstore.BackupSummary) error {
	w := c.App.ErrWriter
	fmt.Fprintf(w, "restoring %s into %s replaces ALL of the cluster's clients and roles:\n", path, client.RootURL)
	fmt.Fprintf(w, "  backup:  %s\n", describeState(backup))
	if cur, err := currentState(c, client); err != nil {
		fmt.Fprintf(w, "  cluster: unknown (%v)\n", err)
	} else {
		fmt.Fprintf(w, "  cluster: %s\n", describeState(cur))
	}
	if c.Bool("force") {
		return nil
	}
	if !isTerminal(os.Stdin) {
		return badInput("not restoring: stdin is not a terminal to confirm on; pass --force to restore")
	}
	fmt.Fprint(w, "type yes to restore: ")
	line, _ := bufio.NewReader(os.Stdin).ReadString('\n')
	if strings.TrimSpace(line) != "yes" {
		return badInput("not restored: the answer was not yes")
	}
	return nil
}

func currentState(c *cli.Context, client *tcclient.Client) (raftstore.BackupSummary, error) {
	resp, err := client.DoRaw(c.Context, http.MethodGet, "/tcauth/cluster/snapshot", nil, "", nil)
	if err != nil {
		return raftstore.BackupSummary{}, err
	}
	defer resp.Body.Close()
	return raftstore.SummarizeBackup(resp.Body)
}

func describeState(s raftstore.BackupSummary) string {
	newest := "no recorded change"
	if !s.Newest.IsZero() {
		newest = "newest change " + s.Newest.UTC().Format(time.RFC3339) + " (" + s.NewestWhat + ")"
	}
	return fmt.Sprintf("%d clients, %d roles, %s", s.Clients, s.Roles, newest)
}

// isTerminal reports whether f is a terminal (TCGETS succeeds), not merely
// a character device: /dev/null is one too, and nobody answers there.
func isTerminal(f *os.File) bool {
	var t syscall.Termios
	_, _, errno := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), syscall.TCGETS, uintptr(unsafe.Pointer(&t)))
	return errno == 0
}
