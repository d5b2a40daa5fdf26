package raftstore

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/hashicorp/raft"
)

// tlsStreamLayer carries Raft traffic over mutual TLS: every connection,
// in and out, must present a certificate signed by the cluster CA, and the
// dialer checks the server's name against the address it dialled (a
// certificate alone is not enough; cf. Consul #5069).
//
// Both sides offer, by ALPN, the formats they read (format.go); the dialer
// records what each peer's handshake agreed in formats.
type tlsStreamLayer struct {
	net.Listener
	advertise net.Addr
	client    *tls.Config
	formats   *peerFormats
}

func newTLSStreamLayer(bind string, advertise net.Addr, cfg *tls.Config, maxFormat int, formats *peerFormats) (*tlsStreamLayer, error) {
	server := cfg.Clone()
	server.NextProtos = alpnProtos(maxFormat)
	server.ClientAuth = tls.RequireAndVerifyClientCert
	if server.ClientCAs == nil {
		server.ClientCAs = cfg.RootCAs
	}
	server.MinVersion = tls.VersionTLS12
	ln, err := tls.Listen("tcp", bind, server)
	if err != nil {
		return nil, err
	}
	if advertise == nil {
		advertise = ln.Addr()
	}
	client := cfg.Clone()
	client.MinVersion = tls.VersionTLS12
	client.NextProtos = alpnProtos(maxFormat)
	return &tlsStreamLayer{Listener: ln, advertise: advertise, client: client, formats: formats}, nil
}

func (t *tlsStreamLayer) Addr() net.Addr { return t.advertise }

func (t *tlsStreamLayer) Accept() (net.Conn, error) {
	for {
		c, err := t.Listener.Accept()
		if err != nil {
			return nil, err
		}
		// Finish the handshake here, with a deadline, so a peer without a
		// valid certificate is dropped before raft reads a byte from it.
		tc := c.(*tls.Conn)
		_ = tc.SetDeadline(time.Now().Add(10 * time.Second))
		if err := tc.Handshake(); err != nil {
			tc.Close()
			continue
		}
		_ = tc.SetDeadline(time.Time{})
		return tc, nil
	}
}

func (t *tlsStreamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	host, _, err := net.SplitHostPort(string(address))
	if err != nil {
		return nil, err
	}
	cfg := t.client.Clone()
	cfg.ServerName = host
	d := &net.Dialer{Timeout: timeout}
	c, err := tls.DialWithDialer(d, "tcp", string(address), cfg)
	if err == nil && t.formats != nil {
		t.formats.set(string(address), alpnFormat(c.ConnectionState().NegotiatedProtocol))
	}
	return c, err
}

// LoadTLSConfig builds the mutual-TLS configuration of a node from PEM
// files: the cluster CA, and this node's certificate and key (used both as
// server and as client certificate).
func LoadTLSConfig(caFile, certFile, keyFile string) (*tls.Config, error) {
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("raftstore: %s holds no PEM certificate", caFile)
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, ClientCAs: pool, MinVersion: tls.VersionTLS12}, nil
}

var errNoTLS = errors.New("raftstore: Raft traffic needs Config.TLS (mutual TLS) unless AllowInsecure is set")
