package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/tcauth/tcauth/protocol"
)

// envCredentials reads TASKCLUSTER_CLIENT_ID / _ACCESS_TOKEN /
// _CERTIFICATE (no root URL needed: these commands take full URLs).
func envCredentials() (protocol.Credentials, error) {
	c := protocol.Credentials{ClientID: os.Getenv("TASKCLUSTER_CLIENT_ID"), AccessToken: os.Getenv("TASKCLUSTER_ACCESS_TOKEN"),
		Certificate: os.Getenv("TASKCLUSTER_CERTIFICATE")}
	if c.ClientID == "" || c.AccessToken == "" {
		return c, badInput("TASKCLUSTER_CLIENT_ID and TASKCLUSTER_ACCESS_TOKEN must be set")
	}
	return c, nil
}

// httpCommand sends one Hawk-signed request to any URL — typically a
// service behind `tcauth sidecar` — and prints the answer: curl for Hawk.
func httpCommand() *cli.Command {
	return &cli.Command{
		Name:      "http",
		Usage:     "send a Hawk-signed request with the TASKCLUSTER_* credentials and print the response",
		ArgsUsage: "METHOD URL",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "data", Aliases: []string{"d"}, Usage: "request body (@FILE reads a file, @- stdin)"},
			&cli.StringFlag{Name: "content-type", Value: "application/json", Usage: "content type of the body"},
			&cli.BoolFlag{Name: "hash", Usage: "sign a payload hash of the body"},
			&cli.StringSliceFlag{Name: "authorized-scope", Usage: "restrict the request to these scopes (authorizedScopes; repeat)"},
			&cli.StringSliceFlag{Name: "header", Aliases: []string{"H"}, Usage: "extra header 'Name: value' (repeat)"},
			&cli.BoolFlag{Name: "include", Aliases: []string{"i"}, Usage: "print the status line and response headers"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 2 {
				return badInput("expected METHOD and URL")
			}
			method, target := strings.ToUpper(c.Args().Get(0)), c.Args().Get(1)
			creds, err := envCredentials()
			if err != nil {
				return err
			}
			if c.IsSet("authorized-scope") {
				creds.AuthorizedScopes = c.StringSlice("authorized-scope")
			}
			body, err := readData(c, c.String("data"))
			if err != nil {
				return err
			}
			req, err := http.NewRequestWithContext(c.Context, method, target, bytes.NewReader(body))
			if err != nil {
				return badInput("%v", err)
			}
			so := protocol.SignOptions{}
			if c.IsSet("data") {
				req.Header.Set("Content-Type", c.String("content-type"))
				if c.Bool("hash") {
					so.HasPayload, so.ContentType, so.Payload = true, c.String("content-type"), body
				}
			}
			for _, h := range c.StringSlice("header") {
				k, v, ok := strings.Cut(h, ":")
				if !ok {
					return badInput("--header %q: expected 'Name: value'", h)
				}
				req.Header.Add(strings.TrimSpace(k), strings.TrimSpace(v))
			}
			auth, err := protocol.SignRequest(creds, method, target, so)
			if err != nil {
				return badInput("%v", err)
			}
			req.Header.Set("Authorization", auth)
			resp, err := (&http.Client{Timeout: 2 * time.Minute}).Do(req)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			if c.Bool("include") {
				fmt.Fprintf(c.App.Writer, "%s %s\n", resp.Proto, resp.Status)
				_ = resp.Header.Write(c.App.Writer)
				fmt.Fprintln(c.App.Writer)
			}
			lw := &lastByteWriter{w: c.App.Writer}
			if _, err := io.Copy(lw, resp.Body); err != nil {
				return err
			}
			if lw.last != 0 && lw.last != '\n' {
				fmt.Fprintln(c.App.Writer)
			}
			if resp.StatusCode >= 400 {
				return errNo
			}
			return nil
		},
	}
}

func readData(c *cli.Context, data string) ([]byte, error) {
	switch {
	case data == "@-":
		return io.ReadAll(c.App.Reader)
	case strings.HasPrefix(data, "@"):
		b, err := os.ReadFile(data[1:])
		if err != nil {
			return nil, badInput("%v", err)
		}
		return b, nil
	}
	return []byte(data), nil
}

// signedURLCommand prints a bewit URL for a GET, usable with curl or a
// browser until it expires.
func signedURLCommand() *cli.Command {
	return &cli.Command{
		Name:      "signed-url",
		Usage:     "print a URL signed with a bewit (for GET) using the TASKCLUSTER_* credentials",
		ArgsUsage: "URL",
		Flags: []cli.Flag{
			&cli.DurationFlag{Name: "ttl", Value: 15 * time.Minute, Usage: "how long the URL stays valid"},
		},
		Action: func(c *cli.Context) error {
			target, err := oneArg(c, "URL")
			if err != nil {
				return err
			}
			creds, err := envCredentials()
			if err != nil {
				return err
			}
			if c.Duration("ttl") <= 0 {
				return badInput("--ttl must be positive")
			}
			u, err := protocol.SignedURL(creds, target, c.Duration("ttl"), time.Now())
			if err != nil {
				return badInput("%v", err)
			}
			fmt.Fprintln(c.App.Writer, u)
			return nil
		},
	}
}

// lastByteWriter remembers the last byte written, so that output can end
// with a newline when the server's answer does not.
type lastByteWriter struct {
	w    io.Writer
	last byte
}

func (l *lastByteWriter) Write(p []byte) (int, error) {
	if len(p) > 0 {
		l.last = p[len(p)-1]
	}
	return l.w.Write(p)
}
