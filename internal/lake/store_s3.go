package lake

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// Defaults of S3Options.
const (
	DefaultS3Region      = "us-east-1"
	DefaultS3MaxAttempts = 5
	DefaultS3MaxBackoff  = 5 * time.Second
)

// S3Options configures an S3Store. The zero value talks to AWS S3 with the
// standard credential chain.
type S3Options struct {
	// Endpoint is the base URL of an S3-compatible server, e.g.
	// "http://127.0.0.1:7070". When set, requests use path-style addressing
	// and the EC2 instance metadata service is not consulted for
	// credentials. Empty means AWS. (Open fills it from $CLICKSTREAM_S3_ENDPOINT.)
	Endpoint string
	// Region; empty means the standard chain (AWS_REGION, profile), then
	// DefaultS3Region.
	Region string
	// PathStyle forces path-style addressing (bucket in the path) without a
	// custom Endpoint.
	PathStyle bool
	// MaxAttempts bounds the attempts of each request, first one included;
	// 0 means DefaultS3MaxAttempts. Throttling, 5xx and network errors are
	// retried with exponential backoff and jitter up to DefaultS3MaxBackoff.
	MaxAttempts int
	// CreateBucket makes Open create the bucket if it does not exist
	// (development stacks; production buckets are provisioned).
	CreateBucket bool
}

// S3Store is a Store on an S3 bucket, rooted at an optional key prefix.
//
// PutIfAbsent is a conditional PutObject (If-None-Match: *), which S3 and
// versitygw resolve to exactly one winner. Put is a single PutObject, fine
// for objects up to a few hundred MB.
type S3Store struct {
	client  *s3.Client
	retryer aws.RetryerV2 // classifies and paces PutIfAbsent's own retries
	bucket  string
	root    string // "" or the prefix with a trailing '/'
	region  string
}

var _ Store = (*S3Store)(nil)

// NewS3Store returns a store on bucket under prefix ("" for the whole
// bucket). It does not contact the server; see EnsureBucket.
func NewS3Store(ctx context.Context, bucket, prefix string, opts S3Options) (*S3Store, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if err := checkBucket(bucket); err != nil {
		return nil, fmt.Errorf("lake: s3 store: %w", err)
	}
	prefix = strings.Trim(prefix, "/")
	if prefix != "" {
		if err := checkKey(prefix); err != nil {
			return nil, fmt.Errorf("lake: s3 store prefix: %w", err)
		}
		prefix += "/"
	}
	attempts := opts.MaxAttempts
	if attempts <= 0 {
		attempts = DefaultS3MaxAttempts
	}
	newRetryer := func() aws.Retryer {
		return retry.NewStandard(func(o *retry.StandardOptions) {
			o.MaxAttempts = attempts
			o.MaxBackoff = DefaultS3MaxBackoff
			// The client-side retry quota would turn a burst of errors
			// from a busy local gateway into hard failures; the attempt
			// cap and backoff already bound the load.
			o.RateLimiter = ratelimit.None
		})
	}
	// Writers put files of many partitions in parallel: keep more than the
	// default 10 idle connections per host, or each burst reconnects.
	httpClient := awshttp.NewBuildableClient().WithTransportOptions(func(t *http.Transport) {
		t.MaxIdleConnsPerHost = 64
	})
	loadOpts := []func(*config.LoadOptions) error{
		config.WithRetryer(newRetryer),
		config.WithHTTPClient(httpClient),
	}
	if opts.Region != "" {
		loadOpts = append(loadOpts, config.WithRegion(opts.Region))
	}
	if opts.Endpoint != "" {
		// Off AWS, asking the instance metadata address for credentials
		// only adds seconds of timeouts before the real error.
		loadOpts = append(loadOpts, config.WithEC2IMDSClientEnableState(imds.ClientDisabled))
	}
	cfg, err := config.LoadDefaultConfig(ctx, loadOpts...)
	if err != nil {
		return nil, fmt.Errorf("lake: s3 store: load AWS config: %w", err)
	}
	if cfg.Region == "" {
		cfg.Region = DefaultS3Region
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		if opts.Endpoint != "" {
			o.BaseEndpoint = aws.String(opts.Endpoint)
			o.UsePathStyle = true
		}
		if opts.PathStyle {
			o.UsePathStyle = true
		}
		// Objects put by other tools, and every ranged GET, come back
		// without a checksum the SDK can check; it would log a warning
		// for each such response.
		o.DisableLogOutputChecksumValidationSkipped = true
	})
	return &S3Store{
		client:  client,
		retryer: newRetryer().(aws.RetryerV2),
		bucket:  bucket,
		root:    prefix,
		region:  cfg.Region,
	}, nil
}

// Client returns the underlying S3 client, for operations the Store
// interface lacks (ranged reads, bucket administration in tests).
func (s *S3Store) Client() *s3.Client { return s.client }

// Bucket returns the store's bucket name.
func (s *S3Store) Bucket() string { return s.bucket }

// URI returns "s3://bucket" or "s3://bucket/prefix".
func (s *S3Store) URI() string {
	if s.root == "" {
		return "s3://" + s.bucket
	}
	return "s3://" + s.bucket + "/" + strings.TrimSuffix(s.root, "/")
}

// EnsureBucket creates the bucket if it does not exist yet.
func (s *S3Store) EnsureBucket(ctx context.Context) error {
	_, err := s.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(s.bucket)})
	if err == nil {
		return nil
	}
	if httpStatus(err) != http.StatusNotFound {
		return fmt.Errorf("lake: head bucket %s: %w", s.bucket, err)
	}
	in := &s3.CreateBucketInput{Bucket: aws.String(s.bucket)}
	if s.region != DefaultS3Region {
		in.CreateBucketConfiguration = &types.CreateBucketConfiguration{
			LocationConstraint: types.BucketLocationConstraint(s.region),
		}
	}
	_, err = s.client.CreateBucket(ctx, in)
	var owned *types.BucketAlreadyOwnedByYou
	var exists *types.BucketAlreadyExists
	switch {
	case err == nil, errors.As(err, &owned):
		return nil
	case errors.As(err, &exists):
		// Either someone else's bucket or a racing creator of ours: it is
		// fine if we can reach it.
		if _, herr := s.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(s.bucket)}); herr == nil {
			return nil
		}
	}
	return fmt.Errorf("lake: create bucket %s: %w", s.bucket, err)
}

func (s *S3Store) putInput(key string, data []byte) *s3.PutObjectInput {
	return &s3.PutObjectInput{
		Bucket:        aws.String(s.bucket),
		Key:           aws.String(s.root + key),
		Body:          bytes.NewReader(data),
		ContentLength: aws.Int64(int64(len(data))),
	}
}

// Put writes data at key with one PutObject.
func (s *S3Store) Put(ctx context.Context, key string, data []byte) error {
	if err := checkKey(key); err != nil {
		return err
	}
	if _, err := s.client.PutObject(ctx, s.putInput(key, data)); err != nil {
		return fmt.Errorf("lake: put %s: %w", s.URI()+"/"+key, err)
	}
	return nil
}

// PutIfAbsent writes data at key with a conditional PutObject
// (If-None-Match: *). A 412 Precondition Failed means another writer won:
// ErrExists. A 409 ConditionalRequestConflict (a racing conditional write
// still in flight) is retried, and reported as ErrExists once attempts run
// out.
//
// It retries by itself rather than through the SDK, so that it knows when
// an earlier attempt may have landed without its answer arriving (network
// error, 5xx): if a later attempt then gets 412, the object is read back and
// PutIfAbsent succeeds when it holds exactly data, as it was then this
// writer that won.
func (s *S3Store) PutIfAbsent(ctx context.Context, key string, data []byte) error {
	if err := checkKey(key); err != nil {
		return err
	}
	name := s.URI() + "/" + key
	ambiguous := false // an earlier attempt may have written the object
	for attempt := 1; ; attempt++ {
		in := s.putInput(key, data)
		in.IfNoneMatch = aws.String("*")
		_, err := s.client.PutObject(ctx, in, func(o *s3.Options) { o.Retryer = aws.NopRetryer{} })
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("lake: put if absent %s: %w", name, ctx.Err())
		}
		status, code := httpStatus(err), errorCode(err)
		switch {
		case status == http.StatusPreconditionFailed || code == "PreconditionFailed":
			if ambiguous {
				got, gerr := s.Get(ctx, key)
				if gerr == nil && bytes.Equal(got, data) {
					return nil
				}
			}
			return fmt.Errorf("lake: put if absent %s: %w", name, ErrExists)
		case status == http.StatusConflict || code == "ConditionalRequestConflict":
			if attempt >= s.retryer.MaxAttempts() {
				return fmt.Errorf("lake: put if absent %s: conflicting writes after %d attempts: %w", name, attempt, ErrExists)
			}
		case s.retryer.IsErrorRetryable(err):
			ambiguous = true
			if attempt >= s.retryer.MaxAttempts() {
				return fmt.Errorf("lake: put if absent %s: after %d attempts: %w", name, attempt, err)
			}
		default:
			return fmt.Errorf("lake: put if absent %s: %w", name, err)
		}
		delay, derr := s.retryer.RetryDelay(attempt, err)
		if derr != nil {
			return fmt.Errorf("lake: put if absent %s: %w", name, err)
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("lake: put if absent %s: %w", name, ctx.Err())
		case <-t.C:
		}
	}
}

// Get reads the whole object at key.
func (s *S3Store) Get(ctx context.Context, key string) ([]byte, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{
		Bucket: aws.String(s.bucket),
		Key:    aws.String(s.root + key),
	})
	if err != nil {
		if isNotFound(err) {
			return nil, fmt.Errorf("lake: get %s/%s: %w", s.URI(), key, ErrNotExist)
		}
		return nil, fmt.Errorf("lake: get %s/%s: %w", s.URI(), key, err)
	}
	defer out.Body.Close()
	var buf bytes.Buffer
	if n := aws.ToInt64(out.ContentLength); n > 0 {
		buf.Grow(int(n) + bytes.MinRead)
	}
	if _, err := buf.ReadFrom(out.Body); err != nil {
		return nil, fmt.Errorf("lake: get %s/%s: read body: %w", s.URI(), key, err)
	}
	return buf.Bytes(), nil
}

// GetSized reads the object at key, which must hold exactly size bytes.
// The announced length is checked before the body is read, and the body is
// read through a limit of size+1 bytes, so that a server sending more than
// it announced cannot grow the read past the recorded size either.
func (s *S3Store) GetSized(ctx context.Context, key string, size int64) ([]byte, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	if size < 0 {
		return nil, fmt.Errorf("lake: get %s/%s: negative size %d", s.URI(), key, size)
	}
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{
		Bucket: aws.String(s.bucket),
		Key:    aws.String(s.root + key),
	})
	if err != nil {
		if isNotFound(err) {
			return nil, fmt.Errorf("lake: get %s/%s: %w", s.URI(), key, ErrNotExist)
		}
		return nil, fmt.Errorf("lake: get %s/%s: %w", s.URI(), key, err)
	}
	defer out.Body.Close()
	if n := out.ContentLength; n != nil && *n != size {
		return nil, fmt.Errorf("lake: get %s/%s: %w", s.URI(), key, sizeError(*n, size))
	}
	var buf bytes.Buffer
	if out.ContentLength != nil {
		buf.Grow(int(size) + 1) // the announced length, which is size
	}
	got, err := buf.ReadFrom(io.LimitReader(out.Body, size+1))
	if err != nil {
		return nil, fmt.Errorf("lake: get %s/%s: read body: %w", s.URI(), key, err)
	}
	if got != size {
		if got > size {
			got = -1
		}
		return nil, fmt.Errorf("lake: get %s/%s: %w", s.URI(), key, sizeError(got, size))
	}
	return buf.Bytes(), nil
}

// List returns the objects whose keys start with prefix, sorted, paging
// through ListObjectsV2.
func (s *S3Store) List(ctx context.Context, prefix string) ([]ObjectInfo, error) {
	if err := checkPrefix(prefix); err != nil {
		return nil, err
	}
	p := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{
		Bucket: aws.String(s.bucket),
		Prefix: aws.String(s.root + prefix),
	})
	var objs []ObjectInfo
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("lake: list %s/%s: %w", s.URI(), prefix, err)
		}
		for _, o := range page.Contents {
			key, ok := strings.CutPrefix(aws.ToString(o.Key), s.root)
			if !ok || key == "" || strings.HasSuffix(key, "/") {
				continue // folder markers made by other tools are not objects
			}
			objs = append(objs, ObjectInfo{Key: key, Size: aws.ToInt64(o.Size), ModTime: aws.ToTime(o.LastModified)})
		}
	}
	// S3 returns keys in byte order already; S3-compatible servers on a
	// filesystem may not.
	if !slices.IsSortedFunc(objs, compareKeys) {
		slices.SortFunc(objs, compareKeys)
	}
	return objs, nil
}

func compareKeys(a, b ObjectInfo) int { return strings.Compare(a.Key, b.Key) }

// Delete removes the object at key; a missing key is not an error.
func (s *S3Store) Delete(ctx context.Context, key string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	_, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{
		Bucket: aws.String(s.bucket),
		Key:    aws.String(s.root + key),
	})
	if err != nil && !isNotFound(err) {
		return fmt.Errorf("lake: delete %s/%s: %w", s.URI(), key, err)
	}
	return nil
}

// httpStatus returns the HTTP status of a failed request, or 0.
func httpStatus(err error) int {
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

// errorCode returns the S3 error code of err ("NoSuchKey", ...), or "".
func errorCode(err error) string {
	var ae interface{ ErrorCode() string }
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func isNotFound(err error) bool {
	var nsk *types.NoSuchKey
	var nf *types.NotFound
	return errors.As(err, &nsk) || errors.As(err, &nf) || httpStatus(err) == http.StatusNotFound && errorCode(err) != "NoSuchBucket"
}
