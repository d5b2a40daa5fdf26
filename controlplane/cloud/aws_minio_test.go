package cloud

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/tcauth/tcauth/controlplane/controlplanetest/peers"
)

// minio is a running MinIO server (S3 and its STS) and its root key.
type minio struct {
	url          string
	user, secret string
}

// startMinIO runs the program named by TCAUTH_MINIO (the minio server
// binary, see `make deps-minio`) on a private port and data directory,
// stopped at the end of the test. MinIO is AGPL-3.0: it is only ever run
// as a separate process, never imported.
func startMinIO(t *testing.T) minio {
	t.Helper()
	bin := peers.Need(t, "TCAUTH_MINIO", "path of a minio server binary: make deps-minio builds bin/peers/minio")
	m := minio{user: "tcauth-root", secret: "tcauth-root-secret-0123456789"}
	port := peers.FreePorts(t, 1)[0]
	m.url = "http://127.0.0.1:" + port
	cmd := exec.Command(bin, "server", t.TempDir(), "--address", "127.0.0.1:"+port, "--quiet")
	// Its own HOME: MinIO writes its config directory there.
	cmd.Env = append(os.Environ(), "MINIO_ROOT_USER="+m.user, "MINIO_ROOT_PASSWORD="+m.secret,
		"MINIO_BROWSER=off", "MINIO_UPDATE=off", "HOME="+t.TempDir())
	exited := peers.Run(t, "minio", cmd)
	peers.WaitListening(t, "minio", "127.0.0.1:"+port, exited, 60*time.Second)
	waitMinIOReady(t, m.url, exited)
	return m
}

// waitMinIOReady polls MinIO's readiness probe: the port opens before
// the object layer is up.
func waitMinIOReady(t *testing.T, base string, exited <-chan struct{}) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(base + "/minio/health/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-exited:
			t.Fatal("minio exited")
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("minio not ready after 60 s")
		}
	}
}

func (m minio) s3(id, secret, token string) *s3.Client {
	return s3.New(s3.Options{Region: "us-east-1", BaseEndpoint: aws.String(m.url), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(id, secret, token)})
}

// s3Probe runs the S3 calls a test checks, each answering nil or S3's
// error code.
type s3Probe struct{ c *s3.Client }

func s3Code(err error) string {
	if err == nil {
		return ""
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return err.Error()
}

func (p s3Probe) put(bucket, key string) string {
	_, err := p.c.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: strings.NewReader("data of " + key)})
	return s3Code(err)
}

func (p s3Probe) get(bucket, key string) string {
	out, err := p.c.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		return s3Code(err)
	}
	defer out.Body.Close()
	b, _ := io.ReadAll(out.Body)
	if string(b) != "data of "+key {
		return "content " + string(b)
	}
	return ""
}

func (p s3Probe) list(bucket, prefix string) string {
	_, err := p.c.ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	return s3Code(err)
}

func (p s3Probe) del(bucket, key string) string {
	_, err := p.c.DeleteObject(context.Background(), &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	return s3Code(err)
}

// TestAWSMinIO: credentials from awsS3Credentials in assume-role mode,
// used against MinIO's S3, reach exactly the bucket and prefix asked for,
// with the level's rights.
func TestAWSMinIO(t *testing.T) {
	m := startMinIO(t)
	root := s3Probe{c: m.s3(m.user, m.secret, "")}
	for _, b := range []string{"tcauth-test", "tcauth-other"} {
		if _, err := root.c.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String(b)}); err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range []string{"in/ro.txt", "out/secret.txt", "inside.txt"} {
		if code := root.put("tcauth-test", k); code != "" {
			t.Fatalf("root put %s: %s", k, code)
		}
	}
	if code := root.put("tcauth-other", "in/x.txt"); code != "" {
		t.Fatalf("root put: %s", code)
	}
	svc := newAWSService(t, &AWSConfig{Mode: AWSModeAssumeRole, STSEndpoint: m.url, AllowedBuckets: []AWSBucketCredentials{
		{AccessKeyID: m.user, SecretAccessKey: m.secret, Buckets: []string{"tcauth-test", "tcauth-other"}}}})
	probe := func(readOnly bool) s3Probe {
		cr, err := svc.AWSS3Credentials(context.Background(), "tcauth-test", "in/", readOnly)
		if err != nil {
			t.Fatal(err)
		}
		if cr.SessionToken == "" || cr.AccessKeyID == m.user || time.Until(cr.Expires) < 50*time.Minute || time.Until(cr.Expires) > 61*time.Minute {
			t.Fatalf("credentials %s expiring %v", cr.AccessKeyID, cr.Expires)
		}
		return s3Probe{c: m.s3(cr.AccessKeyID, cr.SecretAccessKey, cr.SessionToken)}
	}
	rw, ro := probe(false), probe(true)
	const denied = "AccessDenied"
	for _, c := range []struct {
		name string
		got  func() string
		want string
	}{
		{"rw put inside", func() string { return rw.put("tcauth-test", "in/new.txt") }, ""},
		{"rw get inside", func() string { return rw.get("tcauth-test", "in/new.txt") }, ""},
		{"rw get root's object inside", func() string { return rw.get("tcauth-test", "in/ro.txt") }, ""},
		{"rw list inside", func() string { return rw.list("tcauth-test", "in/") }, ""},
		{"rw delete inside", func() string { return rw.del("tcauth-test", "in/new.txt") }, ""},
		{"rw put outside", func() string { return rw.put("tcauth-test", "out/new.txt") }, denied},
		{"rw put sibling of the prefix", func() string { return rw.put("tcauth-test", "inside.txt") }, denied},
		{"rw get outside", func() string { return rw.get("tcauth-test", "out/secret.txt") }, denied},
		{"rw list outside", func() string { return rw.list("tcauth-test", "out/") }, denied},
		{"rw list everything", func() string { return rw.list("tcauth-test", "") }, denied},
		{"rw delete outside", func() string { return rw.del("tcauth-test", "out/secret.txt") }, denied},
		{"rw put other bucket", func() string { return rw.put("tcauth-other", "in/new.txt") }, denied},
		{"rw get other bucket", func() string { return rw.get("tcauth-other", "in/x.txt") }, denied},
		{"ro get inside", func() string { return ro.get("tcauth-test", "in/ro.txt") }, ""},
		{"ro list inside", func() string { return ro.list("tcauth-test", "in/") }, ""},
		{"ro put inside", func() string { return ro.put("tcauth-test", "in/ro-new.txt") }, denied},
		{"ro overwrite inside", func() string { return ro.put("tcauth-test", "in/ro.txt") }, denied},
		{"ro delete inside", func() string { return ro.del("tcauth-test", "in/ro.txt") }, denied},
		{"ro get outside", func() string { return ro.get("tcauth-test", "out/secret.txt") }, denied},
	} {
		if got := c.got(); got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
	// The read-only caller's refused writes changed nothing.
	if code := root.get("tcauth-test", "in/ro.txt"); code != "" {
		t.Errorf("in/ro.txt after refused writes: %s", code)
	}
	if code := root.get("tcauth-test", "in/ro-new.txt"); code != "NoSuchKey" {
		t.Errorf("in/ro-new.txt: %q, want NoSuchKey", code)
	}
	// MinIO's STS has no GetFederationToken: the reason for mode assume-role.
	fed := newAWSService(t, &AWSConfig{STSEndpoint: m.url, AllowedBuckets: []AWSBucketCredentials{
		{AccessKeyID: m.user, SecretAccessKey: m.secret, Buckets: []string{"tcauth-test"}}}})
	if _, err := fed.AWSS3Credentials(context.Background(), "tcauth-test", "in/", true); !errors.Is(err, ErrUpstream) {
		t.Errorf("GetFederationToken against MinIO: %v, want ErrUpstream", err)
	} else {
		t.Logf("GetFederationToken against MinIO: %v", err)
	}
}
