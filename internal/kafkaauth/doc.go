// Package kafkaauth secures a Kafka client's connections, for ingest and
// gen alike: TLS that always verifies the broker (TLS 1.2 or later, the CAs
// of --kafka-ca-file or the system's, an optional client certificate) and
// SASL (SCRAM-SHA-512, SCRAM-SHA-256 or PLAIN) with a password that comes
// from a file or $CLICKSTREAM_KAFKA_PASSWORD, never from a flag, and never
// prints (secret.Secret).
//
// A command binds the flags, takes the password from the environment,
// checks, and applies the result to sarama's configuration:
//
//	auth := kafkaauth.NewConfig()
//	auth.AddFlags(fs) // --kafka-tls, --kafka-ca-file, --kafka-user, ...
//	...
//	auth.SecretsFromEnv(nil)
//	if err := errors.Join(auth.Validate(), kafkaauth.CheckBrokers(brokers)); err != nil { ... }
//	sc := sarama.NewConfig()
//	if err := auth.Apply(sc); err != nil { ... }
//	client, err := sarama.NewClient(brokers, sc)
//	if err != nil {
//		return kafkaauth.Explain(err) // ErrAuthentication, ErrUntrusted
//	}
package kafkaauth
