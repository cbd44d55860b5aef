package lake

import (
	"fmt"

	"github.com/spf13/pflag"

	"github.com/dataco/clickstream/internal/secret"
)

// AddFlags binds the S3 options to the flags every command that opens a
// lake or an output shares: --s3-endpoint, --s3-region, --s3-path-style.
func (o *S3Options) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.Endpoint, "s3-endpoint", o.Endpoint,
		"S3-compatible endpoint URL, path-style addressing (env "+EnvS3Endpoint+"; empty: AWS)")
	fs.StringVar(&o.Region, "s3-region", o.Region, "S3 region (empty: AWS_REGION, the profile, then us-east-1)")
	fs.BoolVar(&o.CreateBucket, "s3-create-bucket", o.CreateBucket, "create the S3 bucket if it does not exist")
	fs.BoolVar(&o.PathStyle, "s3-path-style", o.PathStyle, "use path-style addressing without a custom endpoint")
}

// Validate refuses an endpoint carrying credentials
// ("http://key:secret@host"): S3 credentials come from the AWS chain,
// and an endpoint is shown in errors.
func (o S3Options) Validate() error {
	if o.Endpoint == "" {
		return nil
	}
	if err := secret.RefuseInAddresses("--s3-endpoint", "S3 credentials come from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY or an AWS profile", o.Endpoint); err != nil {
		return fmt.Errorf("lake: %w", err)
	}
	return nil
}
