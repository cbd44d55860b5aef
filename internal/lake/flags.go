package lake

import "github.com/spf13/pflag"

// AddFlags binds the S3 options to the flags every command that opens a
// lake or an output shares: --s3-endpoint, --s3-region, --s3-path-style.
func (o *S3Options) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.Endpoint, "s3-endpoint", o.Endpoint,
		"S3-compatible endpoint URL, path-style addressing (env "+EnvS3Endpoint+"; empty: AWS)")
	fs.StringVar(&o.Region, "s3-region", o.Region, "S3 region (empty: AWS_REGION, the profile, then us-east-1)")
	fs.BoolVar(&o.CreateBucket, "s3-create-bucket", o.CreateBucket, "create the S3 bucket if it does not exist")
	fs.BoolVar(&o.PathStyle, "s3-path-style", o.PathStyle, "use path-style addressing without a custom endpoint")
}
