package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Defaults of the comparison; each has a BENCH_* environment override.
const (
	DefaultEvents = 10_000_000
	DefaultRounds = 3
	DefaultSeed   = 1
	DefaultDir    = "bench/out/data"
	DefaultOut    = "bench/out"
	DefaultPlots  = "docs/bench"
	DefaultShapes = "heavy,light"
	// DefaultSparkConf: two cores, so four shuffle partitions rather than
	// Spark's 200; the driver gets room for 10 M events.
	DefaultSparkConf = "spark.sql.shuffle.partitions=4,spark.driver.memory=3g,spark.ui.enabled=false"
)

// Shape is how a dataset's events spread over users and files.
type Shape struct {
	Name    string
	Users   int
	Buckets int  // ingest --buckets: the lake's user buckets, so files per hour
	Compact bool // clickstream compact after ingest: one file per (hour, bucket)
}

// knownShapes: few heavy users, as ingested; many light users in fewer,
// larger files (fewer buckets, compacted).
var knownShapes = map[string]Shape{
	"heavy": {Name: "heavy", Users: 10_000, Buckets: 16},
	"light": {Name: "light", Users: 1_000_000, Buckets: 4, Compact: true},
}

// Config is one comparison run.
type Config struct {
	Bin        string // the clickstream binary
	Dir        string // datasets (lakes), reused when they match
	Out        string // compare.json, rows, logs
	Plots      string // PNG plots
	Events     int
	Users      int // > 0: every shape gets this many users
	Shapes     []Shape
	Rounds     int // timed rounds after the warm-up round
	Seed       int64
	Contenders []string // empty: all
	Python     string   // the bench virtualenv's python (bench/compare/setup.sh)
	SparkJar   string   // iceberg-spark-runtime
	JavaHome   string
	SparkConf  string // comma-separated key=value for spark-submit --conf
	Scripts    string // folder of the engine scripts

	shapes string
}

// NewConfig returns the defaults, overridden by BENCH_* variables.
func NewConfig() *Config {
	c := &Config{
		Bin: env("BENCH_BIN", "bin/clickstream"), Dir: env("BENCH_DIR", DefaultDir), Out: env("BENCH_OUT", DefaultOut),
		Plots: env("BENCH_PLOTS", DefaultPlots), Events: envInt("BENCH_EVENTS", DefaultEvents), Users: envInt("BENCH_USERS", 0),
		Rounds: envInt("BENCH_ROUNDS", DefaultRounds), Seed: int64(envInt("BENCH_SEED", DefaultSeed)),
		Python: os.Getenv("BENCH_PYTHON"), SparkJar: os.Getenv("BENCH_SPARK_JAR"), JavaHome: os.Getenv("BENCH_JAVA_HOME"),
		SparkConf: env("BENCH_SPARK_CONF", DefaultSparkConf),
		Scripts:   env("BENCH_SCRIPTS", "bench/compare"), shapes: env("BENCH_SHAPES", DefaultShapes),
	}
	if s := os.Getenv("BENCH_CONTENDERS"); s != "" {
		c.Contenders = strings.Split(s, ",")
	}
	return c
}

// AddFlags binds the configuration to flags; they override the environment.
func (c *Config) AddFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Bin, "bin", c.Bin, "the clickstream binary (BENCH_BIN)")
	fs.StringVar(&c.Dir, "dir", c.Dir, "datasets, reused while they match (BENCH_DIR)")
	fs.StringVar(&c.Out, "out", c.Out, "compare.json, rows and logs (BENCH_OUT)")
	fs.StringVar(&c.Plots, "plots", c.Plots, "PNG plots (BENCH_PLOTS)")
	fs.IntVar(&c.Events, "events", c.Events, "generated messages per dataset (BENCH_EVENTS)")
	fs.IntVar(&c.Users, "users", c.Users, "users of every shape (BENCH_USERS; 0: the shape's own)")
	fs.StringVar(&c.shapes, "shapes", c.shapes, "shapes, comma-separated: heavy (10 k users), light (1 M users, fewer larger files) (BENCH_SHAPES)")
	fs.IntVar(&c.Rounds, "rounds", c.Rounds, "timed rounds after the warm-up round (BENCH_ROUNDS)")
	fs.Int64Var(&c.Seed, "seed", c.Seed, "clickstream gen --seed (BENCH_SEED)")
	fs.Func("contenders", "only these contenders, comma-separated (BENCH_CONTENDERS; default all)", func(s string) error {
		c.Contenders = strings.Split(s, ",")
		return nil
	})
}

var errConfig = errors.New("bench-compare: config")

// Validate checks the configuration and resolves the shapes and paths.
func (c *Config) Validate() error {
	var errs []error
	if c.Events < 1 {
		errs = append(errs, fmt.Errorf("events %d: want at least 1", c.Events))
	}
	if c.Rounds < 1 {
		errs = append(errs, fmt.Errorf("rounds %d: want at least 1", c.Rounds))
	}
	c.Shapes = nil
	for _, name := range strings.Split(c.shapes, ",") {
		s, ok := knownShapes[strings.TrimSpace(name)]
		if !ok {
			errs = append(errs, fmt.Errorf("shape %q: want heavy or light", name))
			continue
		}
		if c.Users > 0 {
			s.Users = c.Users
		}
		c.Shapes = append(c.Shapes, s)
	}
	for _, name := range c.Contenders {
		if !knownContender(name) {
			errs = append(errs, fmt.Errorf("contender %q: want one of %s", name, strings.Join(contenderNames(), ", ")))
		}
	}
	for _, p := range []*string{&c.Bin, &c.Dir, &c.Out, &c.Plots, &c.Scripts} {
		abs, err := filepath.Abs(*p)
		if err != nil {
			errs = append(errs, err)
		}
		*p = abs
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", errConfig, err)
	}
	return nil
}

// wants reports whether contender name runs.
func (c *Config) wants(name string) bool {
	if len(c.Contenders) == 0 {
		return true
	}
	for _, n := range c.Contenders {
		if n == name {
			return true
		}
	}
	return false
}

func env(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func envInt(key string, def int) int {
	v := os.Getenv(key)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(strings.ReplaceAll(v, "_", ""))
	if err != nil {
		return -1 // refused by Validate
	}
	return n
}
