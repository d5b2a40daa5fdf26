package cloud

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	ststypes "github.com/aws/aws-sdk-go-v2/service/sts/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// AWSConfig is the `aws` section: the buckets callers may get temporary
// S3 credentials for (the reference's awsCredentials.allowedBuckets), and
// how to ask STS for them.
type AWSConfig struct {
	// Mode is AWSModeFederationToken (the default: what Taskcluster does
	// on AWS) or AWSModeAssumeRole, for S3-compatible stores whose STS
	// lacks GetFederationToken (MinIO). Both send the same inline policy.
	Mode string `yaml:"mode"`
	// STSEndpoint is the STS base URL. Default: AWS's endpoint for Region
	// as the SDK resolves it (https://sts.us-east-1.amazonaws.com). For
	// MinIO, its S3 URL (http://127.0.0.1:9000).
	STSEndpoint string `yaml:"stsEndpoint"`
	// Region signs the requests. Default DefaultAWSRegion.
	Region string `yaml:"region"`
	// RoleArn is sent by assume-role (AWS requires the role to assume;
	// MinIO ignores it). Refused with federation-token.
	RoleArn string `yaml:"roleArn"`
	// AllowedBuckets: each entry's key may delegate access to its buckets;
	// a bucket may appear under one entry only.
	AllowedBuckets []AWSBucketCredentials `yaml:"allowedBuckets"`
}

// AWSBucketCredentials is one IAM key (needs sts:GetFederationToken, or
// sts:AssumeRole, and the S3 rights it delegates) and its buckets. Exactly
// one of SecretAccessKey and SecretAccessKeyFile is set.
type AWSBucketCredentials struct {
	AccessKeyID         string   `yaml:"accessKeyId"`
	SecretAccessKey     string   `yaml:"secretAccessKey"`
	SecretAccessKeyFile string   `yaml:"secretAccessKeyFile"`
	Buckets             []string `yaml:"buckets"`
}

// AWS modes and defaults.
const (
	AWSModeFederationToken = "federation-token"
	AWSModeAssumeRole      = "assume-role"
	DefaultAWSRegion       = "us-east-1"
)

// The reference's request: this name (it must match the federated-user
// ARN the deployment's IAM policy allows) and one hour.
const (
	awsSessionName = "TemporaryS3ReadWriteCredentials"
	awsDuration    = 3600
)

var (
	// awsBucketRe is the control plane's bucket pattern: S3's naming rules
	// without dots (Taskcluster forbids them, as Amazon recommends), so a
	// configured bucket can always be asked for.
	awsBucketRe = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$`)
	awsRegionRe = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)
)

// AWSCredentials is the reply of awsS3Credentials: STS's temporary key.
type AWSCredentials struct {
	AccessKeyID     string
	SecretAccessKey string
	SessionToken    string
	Expires         time.Time
}

type awsBackend struct {
	mode    string
	roleArn string
	// clients holds one STS client per configured key, by bucket.
	clients map[string]*sts.Client
}

// checkAWS validates the aws section and builds an STS client per key.
func (s *Service) checkAWS() error {
	c := s.cfg.AWS
	if c == nil {
		return nil
	}
	b := &awsBackend{mode: c.Mode, roleArn: c.RoleArn, clients: map[string]*sts.Client{}}
	if b.mode == "" {
		b.mode = AWSModeFederationToken
	}
	if b.mode != AWSModeFederationToken && b.mode != AWSModeAssumeRole {
		return fmt.Errorf("cloud: aws.mode %q is neither %s nor %s", c.Mode, AWSModeFederationToken, AWSModeAssumeRole)
	}
	if b.roleArn != "" && b.mode != AWSModeAssumeRole {
		return errors.New("cloud: aws.roleArn is only used with mode assume-role")
	}
	region := c.Region
	if region == "" {
		region = DefaultAWSRegion
	}
	if !awsRegionRe.MatchString(region) {
		return fmt.Errorf("cloud: aws.region %q is not a region name", region)
	}
	var endpoint *string
	if c.STSEndpoint != "" {
		// Not quoted in the error: a URL may carry a password.
		u, err := url.Parse(c.STSEndpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
			return errors.New("cloud: aws.stsEndpoint is not an http(s) URL without user, query or fragment")
		}
		endpoint = aws.String(c.STSEndpoint)
	}
	if len(c.AllowedBuckets) == 0 {
		return errors.New("cloud: aws.allowedBuckets is empty")
	}
	for i, e := range c.AllowedBuckets {
		client, err := s.awsClient(fmt.Sprintf("aws.allowedBuckets[%d]", i), e, region, endpoint)
		if err != nil {
			return err
		}
		if err := b.addBuckets(i, e.Buckets, client); err != nil {
			return err
		}
	}
	s.aws = b
	return nil
}

func (s *Service) awsClient(name string, e AWSBucketCredentials, region string, endpoint *string) (*sts.Client, error) {
	if e.AccessKeyID == "" {
		return nil, fmt.Errorf("cloud: %s.accessKeyId is required", name)
	}
	secret, err := secretValue(name+".secretAccessKey", e.SecretAccessKey, e.SecretAccessKeyFile)
	if err != nil {
		return nil, err
	}
	if secret == "" {
		return nil, fmt.Errorf("cloud: %s: secretAccessKey or secretAccessKeyFile is required", name)
	}
	return sts.New(sts.Options{
		Region:       region,
		BaseEndpoint: endpoint,
		Credentials:  credentials.NewStaticCredentialsProvider(e.AccessKeyID, secret, ""),
		HTTPClient:   s.cfg.HTTPClient,
		// One retry: a caller waiting on the API should not sit through
		// the SDK's default backoff of three attempts.
		RetryMaxAttempts: 2,
	}), nil
}

func (b *awsBackend) addBuckets(i int, buckets []string, client *sts.Client) error {
	if len(buckets) == 0 {
		return fmt.Errorf("cloud: aws.allowedBuckets[%d].buckets is empty", i)
	}
	for _, bucket := range buckets {
		if !awsBucketRe.MatchString(bucket) {
			return fmt.Errorf("cloud: aws.allowedBuckets[%d]: bucket %q is not an S3 bucket name (3-63 lower-case letters, digits and hyphens)", i, bucket)
		}
		if _, dup := b.clients[bucket]; dup {
			return fmt.Errorf("cloud: aws.allowedBuckets: bucket %q is listed twice", bucket)
		}
		b.clients[bucket] = client
	}
	return nil
}

// AWSS3Credentials returns temporary credentials for bucket limited to
// keys starting with prefix: read (GetObject, ListBucket under the prefix,
// GetBucketLocation) and, unless readOnly, PutObject and DeleteObject.
// Errors: ErrInput (a prefix starting with "/", as the reference, or
// holding an IAM wildcard or policy variable, which would widen the grant
// beyond the caller's scope) → 400; ErrNotConfigured, ErrNotFound
// (bucket not configured) → 404; ErrUpstream (STS failed) → 5xx.
func (s *Service) AWSS3Credentials(ctx context.Context, bucket, prefix string, readOnly bool) (AWSCredentials, error) {
	if err := checkAWSPrefix(prefix); err != nil {
		return AWSCredentials{}, err
	}
	if s.aws == nil {
		return AWSCredentials{}, newErr(ErrNotConfigured, "No credentials available for bucket %s (the cloud configuration has no aws section)", bucket)
	}
	client, ok := s.aws.clients[bucket]
	if !ok {
		return AWSCredentials{}, newErr(ErrNotFound, "No credentials available for bucket %s", bucket)
	}
	return s.aws.request(ctx, client, awsPolicy(bucket, prefix, readOnly))
}

// request asks STS for credentials limited by policy, with the
// configured operation.
func (b *awsBackend) request(ctx context.Context, client *sts.Client, policy string) (AWSCredentials, error) {
	var (
		creds *ststypes.Credentials
		err   error
		op    = "GetFederationToken"
	)
	if b.mode == AWSModeAssumeRole {
		op = "AssumeRole"
		var out *sts.AssumeRoleOutput
		out, err = client.AssumeRole(ctx, &sts.AssumeRoleInput{RoleArn: aws.String(b.roleArn),
			RoleSessionName: aws.String(awsSessionName), Policy: aws.String(policy), DurationSeconds: aws.Int32(awsDuration)})
		if err == nil {
			creds = out.Credentials
		}
	} else {
		var out *sts.GetFederationTokenOutput
		out, err = client.GetFederationToken(ctx, &sts.GetFederationTokenInput{Name: aws.String(awsSessionName),
			Policy: aws.String(policy), DurationSeconds: aws.Int32(awsDuration)})
		if err == nil {
			creds = out.Credentials
		}
	}
	if err != nil {
		return AWSCredentials{}, awsError(op, err)
	}
	if creds == nil || creds.AccessKeyId == nil || creds.SecretAccessKey == nil || creds.SessionToken == nil || creds.Expiration == nil {
		return AWSCredentials{}, newErr(ErrUpstream, "aws: STS %s answered without credentials", op)
	}
	return AWSCredentials{AccessKeyID: *creds.AccessKeyId, SecretAccessKey: *creds.SecretAccessKey,
		SessionToken: *creds.SessionToken, Expires: creds.Expiration.UTC()}, nil
}

// checkAWSPrefix refuses a leading "/" with the reference's message, and
// what IAM would not read literally in the policy's Resource and
// StringLike condition: "*" and "?" are wildcards there and "${" starts a
// policy variable, so the credentials would reach keys outside the prefix
// the caller's scope names. (The reference passes them on.) Invalid
// UTF-8 is refused too.
func checkAWSPrefix(prefix string) error {
	if strings.HasPrefix(prefix, "/") {
		return newErr(ErrInput, "The `prefix` may not start with a slash `/`; got `%s`", prefix)
	}
	if !utf8.ValidString(prefix) {
		// S3 keys are UTF-8; JSON would replace the bytes and grant
		// another prefix than the one asked for.
		return newErr(ErrInput, "The `prefix` is not valid UTF-8")
	}
	if strings.ContainsAny(prefix, "*?") || strings.Contains(prefix, "${") {
		return newErr(ErrInput, "The `prefix` may not contain `*`, `?` or `${`: IAM policies read them as wildcards or variables; got `%s`", prefix)
	}
	return nil
}

// awsError names the operation, STS's error code and HTTP status, never
// its message or the request (neither is needed to diagnose, and keeping
// provider text out of errors is the rule).
func awsError(op string, err error) error {
	status := 0
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) {
		status = re.HTTPStatusCode()
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return newErr(ErrUpstream, "aws: STS %s answered %d %s", op, status, ae.ErrorCode())
	}
	for _, ce := range []error{context.Canceled, context.DeadlineExceeded} {
		if errors.Is(err, ce) {
			return newErr(ErrUpstream, "aws: STS %s: %v", op, ce)
		}
	}
	return newErr(ErrUpstream, "aws: STS %s failed (HTTP status %d): the request did not complete", op, status)
}

// awsPolicy is the reference's inline session policy (field order and Sids
// as Taskcluster sends them, so a deployment's IAM limits match).
func awsPolicy(bucket, prefix string, readOnly bool) string {
	type statement struct {
		Sid       string                         `json:"Sid"`
		Effect    string                         `json:"Effect"`
		Action    []string                       `json:"Action"`
		Resource  []string                       `json:"Resource"`
		Condition map[string]map[string][]string `json:"Condition,omitempty"`
	}
	actions := []string{"s3:GetObject"}
	if !readOnly {
		actions = append(actions, "s3:PutObject", "s3:DeleteObject")
	}
	bucketARN := "arn:aws:s3:::" + bucket
	doc := struct {
		Version   string      `json:"Version"`
		Statement []statement `json:"Statement"`
	}{"2012-10-17", []statement{
		{Sid: "ReadWriteObjectsUnderPrefix", Effect: "Allow", Action: actions, Resource: []string{bucketARN + "/" + prefix + "*"}},
		{Sid: "ListObjectsUnderPrefix", Effect: "Allow", Action: []string{"s3:ListBucket"}, Resource: []string{bucketARN},
			Condition: map[string]map[string][]string{"StringLike": {"s3:prefix": {prefix + "*"}}}},
		{Sid: "GetBucketLocation", Effect: "Allow", Action: []string{"s3:GetBucketLocation"}, Resource: []string{bucketARN}},
	}}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	// As JSON.stringify: "<", ">" and "&" in a prefix stay as they are.
	enc.SetEscapeHTML(false)
	_ = enc.Encode(doc) // cannot fail: strings only
	return strings.TrimSuffix(buf.String(), "\n")
}
