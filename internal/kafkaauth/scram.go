package kafkaauth

import (
	"fmt"

	"github.com/IBM/sarama"
	"github.com/xdg-go/scram"
)

var (
	sha256Hash = scram.SHA256
	sha512Hash = scram.SHA512
)

// scramClient is sarama's SCRAMClient on github.com/xdg-go/scram: one
// conversation per connection. The conversation checks the server's final
// signature, so a broker that does not know the password fails too.
type scramClient struct {
	hash scram.HashGeneratorFcn
	conv *scram.ClientConversation
}

// newSCRAMClient returns sarama's SCRAMClientGeneratorFunc for hash.
func newSCRAMClient(hash scram.HashGeneratorFcn) func() sarama.SCRAMClient {
	return func() sarama.SCRAMClient { return &scramClient{hash: hash} }
}

// Begin starts a conversation for the user and password (SASLprep'd).
func (c *scramClient) Begin(user, password, authzID string) error {
	cl, err := c.hash.NewClient(user, password, authzID)
	if err != nil {
		return fmt.Errorf("kafkaauth: SCRAM: %w", err)
	}
	c.conv = cl.NewConversation()
	return nil
}

// Step answers the server's challenge.
func (c *scramClient) Step(challenge string) (string, error) {
	return c.conv.Step(challenge)
}

// Done reports whether the conversation is over.
func (c *scramClient) Done() bool { return c.conv.Done() }
