package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/tcauth/tcauth/controlplane"
	"github.com/tcauth/tcauth/protocol/tcclient"
	"github.com/tcauth/tcauth/raftstore"
)

// statusTimeout bounds the call to each member: an unreachable node is a
// row saying so, not a hang.
const statusTimeout = 3 * time.Second

// errNoQuorum is the exit of `cluster status` when the cluster cannot
// commit: no reachable node leads, or fewer than a majority of voters answer.
var errNoQuorum = errors.New("no quorum")

// nodeRow is one line of `tcauth cluster status`: the member as the
// configuration has it, and its own figures (nil when it did not answer).
type nodeRow struct {
	ID          string                `json:"id"`
	RaftAddress string                `json:"raftAddress"`
	APIURL      string                `json:"apiUrl,omitempty"`
	Voter       bool                  `json:"voter"`
	Status      *raftstore.NodeStatus `json:"status,omitempty"`
	Error       string                `json:"error,omitempty"`
	// Lag is the leader's last log index minus this node's applied index
	// (entries it has still to apply); nil without both figures.
	Lag *uint64 `json:"lag,omitempty"`
}

type clusterReport struct {
	Leader  string    `json:"leader,omitempty"`
	Quorum  bool      `json:"quorum"`
	Healthy int       `json:"votersAnswering"`
	Voters  int       `json:"voters"`
	Nodes   []nodeRow `json:"nodes"`
	Problem string    `json:"problem,omitempty"`
}

func clusterStatusCommand() *cli.Command {
	return &cli.Command{
		Name: "status",
		Usage: "every member's own Raft figures (state, term, last contact, commit/applied index, lag); " +
			"exits 1 without quorum (scope auth:tcauth:cluster:status on every node)",
		Flags: []cli.Flag{&cli.BoolFlag{Name: "json", Usage: "print JSON instead of a table"}},
		Action: func(c *cli.Context) error {
			client, err := apiClient()
			if err != nil {
				return err
			}
			rep, err := gatherStatus(c.Context, client)
			if err != nil {
				return err
			}
			if c.Bool("json") {
				err = writeJSON(c.App.Writer, rep)
			} else {
				err = printStatusTable(c.App.Writer, rep)
			}
			if err != nil {
				return err
			}
			if !rep.Quorum {
				return &exitError{code: 1, err: fmt.Errorf("%w: %s", errNoQuorum, rep.Problem)}
			}
			return nil
		},
	}
}

// gatherStatus asks the entry node for the members, then every member for
// its own figures, in parallel.
func gatherStatus(ctx context.Context, entry *tcclient.Client) (*clusterReport, error) {
	var first controlplane.ClusterStatus
	cctx, cancel := context.WithTimeout(ctx, statusTimeout)
	err := entry.Do(cctx, http.MethodGet, "/tcauth/cluster/status", nil, nil, &first)
	cancel()
	if err != nil {
		return nil, err
	}
	rows := make([]nodeRow, len(first.Members))
	var wg sync.WaitGroup
	for i, m := range first.Members {
		rows[i] = nodeRow{ID: m.ID, RaftAddress: m.RaftAddress, APIURL: m.APIURL, Voter: m.Voter}
		if m.ID == first.Node.ID {
			st := first.Node
			rows[i].Status = &st
			continue
		}
		if m.APIURL == "" {
			rows[i].Error = "unknown: the node has not published its API address (it joined before joins carried it and has not led since)"
			continue
		}
		wg.Add(1)
		go func(r *nodeRow) {
			defer wg.Done()
			r.Status, r.Error = askNode(ctx, entry, r.APIURL, r.ID)
		}(&rows[i])
	}
	wg.Wait()
	return summarize(rows), nil
}

// askNode fetches one member's own status with the operator's credentials.
func askNode(ctx context.Context, entry *tcclient.Client, apiURL, id string) (*raftstore.NodeStatus, string) {
	cl := &tcclient.Client{RootURL: apiURL, Credentials: entry.Credentials, HTTPClient: entry.HTTPClient}
	ctx, cancel := context.WithTimeout(ctx, statusTimeout)
	defer cancel()
	var st controlplane.ClusterStatus
	if err := cl.Do(ctx, http.MethodGet, "/tcauth/cluster/status", nil, nil, &st); err != nil {
		return nil, "unreachable: " + err.Error()
	}
	if st.Node.ID != id {
		return nil, fmt.Sprintf("%s answers as node %q", apiURL, st.Node.ID)
	}
	return &st.Node, ""
}

// summarize computes lag and quorum. Quorum: a reachable node leads (a
// leader steps down once it has not heard from a majority within its
// lease) and a majority of the voters answered.
func summarize(rows []nodeRow) *clusterReport {
	rep := &clusterReport{Nodes: rows}
	var leader *raftstore.NodeStatus
	for _, r := range rows {
		if r.Voter {
			rep.Voters++
		}
		if r.Status == nil {
			continue
		}
		if r.Voter {
			rep.Healthy++
		}
		if r.Status.State == "Leader" && (leader == nil || r.Status.Term > leader.Term) {
			leader = r.Status
		}
	}
	if leader != nil {
		rep.Leader = leader.ID
		for i := range rows {
			if st := rows[i].Status; st != nil {
				lag := uint64(0)
				if leader.LastLogIndex > st.AppliedIndex {
					lag = leader.LastLogIndex - st.AppliedIndex
				}
				rows[i].Lag = &lag
			}
		}
	}
	need := rep.Voters/2 + 1
	switch {
	case leader == nil:
		rep.Problem = fmt.Sprintf("no reachable node is the leader (%d of %d voters answered, %d needed)", rep.Healthy, rep.Voters, need)
	case rep.Healthy < need:
		rep.Problem = fmt.Sprintf("only %d of %d voters answered, %d needed", rep.Healthy, rep.Voters, need)
	default:
		rep.Quorum = true
	}
	return rep
}

func printStatusTable(w io.Writer, rep *clusterReport) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tADDRESS\tSTATE\tVOTER\tTERM\tLAST CONTACT\tCOMMIT\tAPPLIED\tLAG")
	var notes []string
	for _, r := range rep.Nodes {
		if r.Status == nil {
			state, _, _ := strings.Cut(r.Error, ":")
			fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t-\t-\t-\t-\t-\n", r.ID, r.RaftAddress, state, r.Voter)
			notes = append(notes, r.ID+": "+r.Error)
			continue
		}
		st := r.Status
		lag := "-"
		if r.Lag != nil {
			lag = strconv.FormatUint(*r.Lag, 10)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%d\t%s\t%d\t%d\t%s\n", r.ID, r.RaftAddress, st.State, r.Voter, st.Term,
			lastContact(st), st.CommitIndex, st.AppliedIndex, lag)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, n := range notes {
		fmt.Fprintln(w, n)
	}
	if rep.Quorum {
		_, err := fmt.Fprintf(w, "quorum: yes (leader %s, %d of %d voters answering)\n", rep.Leader, rep.Healthy, rep.Voters)
		return err
	}
	_, err := fmt.Fprintf(w, "quorum: NO — %s\n", rep.Problem)
	return err
}

func lastContact(st *raftstore.NodeStatus) string {
	switch {
	case st.State == "Leader":
		return "-"
	case st.LastContactSeconds < 0:
		return "never"
	}
	return (time.Duration(st.LastContactSeconds * float64(time.Second))).Round(time.Millisecond).String()
}
