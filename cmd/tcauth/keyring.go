package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/tcauth/tcauth/raftstore"
)

// keyringCommand rotates the token keyring (docs/operations.md "Rotate the
// keyring"). add, promote, remove and show edit or read a keyring file
// offline (each node's copy; a node reads it at start); status and reseal
// call a running control plane with the TASKCLUSTER_* credentials.
func keyringCommand() *cli.Command {
	file := &cli.StringFlag{Name: "keyring", Usage: "the keyring `FILE` (a node's --keyring, by default <data-dir>/keyring.json)"}
	term := &cli.UintFlag{Name: "term", Usage: "the key term `N`"}
	return &cli.Command{
		Name:  "keyring",
		Usage: "rotate the token keyring: edit keyring files, show them, re-seal stored tokens",
		Subcommands: []*cli.Command{
			{Name: "add", Usage: "add a new random key term to FILE, not primary (do it on every node, then restart each)",
				Flags: []cli.Flag{file}, Action: keyringAdd},
			{Name: "promote", Usage: "make term N the primary of FILE: new tokens are sealed with it (every node must hold it first)",
				Flags: []cli.Flag{file, term}, Action: keyringEdit(raftstore.PromoteKeyringTerm, "term %d is now the primary of %s")},
			{Name: "remove", Usage: "remove term N from FILE (not the primary; only once `tcauth keyring reseal` reports nothing under it)",
				Flags: []cli.Flag{file, term}, Action: keyringEdit(raftstore.RemoveKeyringTerm, "removed term %d from %s")},
			{Name: "show", Usage: "show FILE's terms, primary and key fingerprints (never the keys)",
				Flags:  []cli.Flag{file, &cli.BoolFlag{Name: "json", Usage: "print JSON"}},
				Action: keyringShow},
			{Name: "status", Usage: "show the keyring a running node uses and how many stored tokens each term seals (needs auth:tcauth:keyring:status)",
				Action: func(c *cli.Context) error { return call(c, http.MethodGet, "/tcauth/keyring/status", nil, nil) }},
			{Name: "reseal", Usage: "re-seal every stored token under the leader's primary term (needs auth:tcauth:keyring:reseal)",
				Flags:  []cli.Flag{&cli.BoolFlag{Name: "json", Usage: "print the server's report as JSON"}},
				Action: keyringReseal},
		},
	}
}

// keyringFileErr makes a refused edit exit 2 (bad input) with one line.
func keyringFileErr(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, raftstore.ErrKeyringTermUnknown) || errors.Is(err, raftstore.ErrRemovePrimary) ||
		errors.Is(err, raftstore.ErrBadKeyring) || errors.Is(err, os.ErrNotExist) || strings.Contains(err.Error(), "readable by others") {
		return &exitError{code: 2, err: err}
	}
	return err
}

var errNoKeyringFlag = &exitError{code: 2, err: errors.New("--keyring FILE is required: the node's keyring file (its --keyring, by default <data-dir>/keyring.json)")}

func keyringAdd(c *cli.Context) error {
	path := c.String("keyring")
	if path == "" {
		return errNoKeyringFlag
	}
	t, err := raftstore.AddKeyringTerm(path)
	if err != nil {
		return keyringFileErr(err)
	}
	k, err := raftstore.LoadKeyringFile(path)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "added term %d to %s; the primary is still term %d\n", t, path, k.PrimaryTerm())
	return printKeyring(c.App.Writer, k.Info())
}

func keyringEdit(edit func(string, uint32) error, done string) cli.ActionFunc {
	return func(c *cli.Context) error {
		path, t := c.String("keyring"), c.Uint("term")
		if path == "" {
			return errNoKeyringFlag
		}
		if t == 0 || uint64(t) > uint64(^uint32(0)) {
			return badInput("--term N is required: a key term, 1 to %d (see tcauth keyring show)", ^uint32(0))
		}
		if err := edit(path, uint32(t)); err != nil {
			return keyringFileErr(err)
		}
		k, err := raftstore.LoadKeyringFile(path)
		if err != nil {
			return err
		}
		fmt.Fprintf(c.App.Writer, done+"\n", t, path)
		return printKeyring(c.App.Writer, k.Info())
	}
}

func keyringShow(c *cli.Context) error {
	if c.String("keyring") == "" {
		return errNoKeyringFlag
	}
	k, err := raftstore.LoadKeyringFile(c.String("keyring"))
	if err != nil {
		return keyringFileErr(err)
	}
	if c.Bool("json") {
		return writeJSON(c.App.Writer, k.Info())
	}
	return printKeyring(c.App.Writer, k.Info())
}

// printKeyring prints one line per term: term, fingerprint, primary.
func printKeyring(w io.Writer, info raftstore.KeyringInfo) error {
	for _, t := range info.Terms {
		mark := ""
		if t.Primary {
			mark = "  primary"
		}
		if _, err := fmt.Fprintf(w, "term %d  fingerprint %s%s\n", t.Term, t.Fingerprint, mark); err != nil {
			return err
		}
	}
	return nil
}

func keyringReseal(c *cli.Context) error {
	client, err := apiClient()
	if err != nil {
		return err
	}
	var raw json.RawMessage
	if err := client.Do(c.Context, http.MethodPost, "/tcauth/keyring/reseal", nil, nil, &raw); err != nil {
		return err
	}
	if c.Bool("json") {
		return printJSON(c.App.Writer, raw)
	}
	var rep raftstore.ResealReport
	if err := json.Unmarshal(raw, &rep); err != nil {
		return err
	}
	_, err = io.WriteString(c.App.Writer, resealSummary(rep))
	return err
}

// resealSummary says what was re-sealed and what each term still seals:
// the figure to check before removing a term from the keyring files.
func resealSummary(rep raftstore.ResealReport) string {
	var b strings.Builder
	fmt.Fprintf(&b, "re-sealed %d access tokens and %d login records under term %d (%d log entries)\n",
		rep.ResealedTokens, rep.ResealedLoginData, rep.Primary, rep.Entries)
	terms := map[uint32]bool{}
	for t := range rep.TokensByTerm {
		terms[t] = true
	}
	for t := range rep.LoginDataByTerm {
		terms[t] = true
	}
	sorted := make([]uint32, 0, len(terms))
	for t := range terms {
		sorted = append(sorted, t)
	}
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
	old := 0
	for _, t := range sorted {
		fmt.Fprintf(&b, "term %d seals %d access tokens and %d login records\n", t, rep.TokensByTerm[t], rep.LoginDataByTerm[t])
		if t != rep.Primary {
			old += rep.TokensByTerm[t] + rep.LoginDataByTerm[t]
		}
	}
	if rep.Unopenable > 0 {
		fmt.Fprintf(&b, "%d could not be opened with the leader's keyring (a term it lacks) and were left as they are\n", rep.Unopenable)
	}
	if old == 0 && rep.Unopenable == 0 {
		fmt.Fprintf(&b, "nothing is sealed under another term than %d: older terms can be removed from every node's keyring file\n", rep.Primary)
	} else {
		fmt.Fprintf(&b, "%d are still sealed under older terms: do not remove those terms yet (run reseal again once every node's primary is term %d)\n", old, rep.Primary)
	}
	return b.String()
}
