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
	switch {
	case c.ClientID == "":
		return c, badInput("TASKCLUSTER_CLIENT_ID is not set: export the clientId and TASKCLUSTER_ACCESS_TOKEN to sign requests")
	case c.AccessToken == "":
		return c, errNoAccessToken
	}
	return c, nil
}

// httpCommand sends one Hawk-signed request to any URL — typically a
// service behind `tcauth sidecar` — and prints the answer: curl for Hawk.
func httpCommand() *cli.Command {
	return &cli.Command{
		Name:      "http",
		Usage:     "send a Hawk-signed request with the TASKCLUSTER_* credentials and print the response",
		ArgsUsage: "METHOD URL  (a URL without scheme, e.g. /api/auth/v1/ping, is relative to TASKCLUSTER_ROOT_URL)",
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
			method := strings.ToUpper(c.Args().Get(0))
			target, err := resolveURL(c.Args().Get(1))
			if err != nil {
				return err
			}
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
			durationFlag("ttl", 15*time.Minute, `how long the URL stays valid ("5m", "2 hours")`),
		},
		Action: func(c *cli.Context) error {
			target, err := oneArg(c, "URL")
			if err != nil {
				return err
			}
			if target, err = resolveURL(target); err != nil {
				return err
			}
			creds, err := envCredentials()
			if err != nil {
				return err
			}
			if flagDuration(c, "ttl") <= 0 {
				return badInput("--ttl must be positive")
			}
			u, err := protocol.SignedURL(creds, target, flagDuration(c, "ttl"), time.Now())
			if err != nil {
				return badInput("%v", err)
			}
			fmt.Fprintln(c.App.Writer, u)
			return nil
		},
	}
}

// resolveURL takes a URL without a scheme ("/api/auth/v1/ping",
// "api/auth/v1/clients/") as a path below TASKCLUSTER_ROOT_URL, the way
// the official clients build every request from the root URL.
func resolveURL(target string) (string, error) {
	if strings.HasPrefix(target, "http://") || strings.HasPrefix(target, "https://") {
		return target, nil
	}
	root := os.Getenv("TASKCLUSTER_ROOT_URL")
	if root == "" {
		return "", badInput("%q is not a full URL and TASKCLUSTER_ROOT_URL is not set: give http(s)://host/path or export TASKCLUSTER_ROOT_URL", target)
	}
	return strings.TrimRight(root, "/") + "/" + strings.TrimLeft(target, "/"), nil
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
