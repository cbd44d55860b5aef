package gen

import (
	"testing"

	"github.com/dataco/clickstream/internal/bots"
)

// TestBotAgentsAreBots: the generator's bot agents are bots to ingest's
// classifier, and its people's agents are not, so that Message.Bot is
// what the lake's is_bot should say.
func TestBotAgentsAreBots(t *testing.T) {
	c := bots.New(nil)
	for _, a := range botAgents {
		if !c.IsBot(a.ua) {
			t.Errorf("bot agent %q is not a bot to package bots", a.ua)
		}
	}
	for _, a := range agents {
		if c.IsBot(a.ua) {
			t.Errorf("human agent %q is a bot to package bots", a.ua)
		}
	}
}

// TestBotShare: bot users are about BotShare of the users, send a few
// times as many clicks each as people, always name their agent, and
// Message.Bot marks exactly the messages whose agent is a bot's.
func TestBotShare(t *testing.T) {
	cfg := testConfig(100_000)
	cfg.Users = 2000
	c := bots.New(nil)
	var botEvents, valid int
	botUsers, users := map[string]bool{}, map[string]bool{}
	g, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for {
		m, ok := g.Next()
		if !ok {
			break
		}
		if !m.Valid {
			continue
		}
		valid++
		users[m.Event.UserID] = true
		if m.Event.IsBot {
			t.Fatal("Event.IsBot set by the generator: Parse would not set it")
		}
		if got := c.IsBot(m.Event.UserAgent); got != m.Bot {
			t.Fatalf("message of agent %q: Bot %v, classified %v", m.Event.UserAgent, m.Bot, got)
		}
		if m.Bot {
			botEvents++
			botUsers[m.Event.UserID] = true
		}
	}
	if tr := g.Truth(); tr.Messages != int64(cfg.Events) || tr.Valid != int64(valid) || tr.Bots != int64(botEvents) {
		t.Errorf("Truth() = %+v; counted %d messages, %d valid, %d of bots", tr, cfg.Events, valid, botEvents)
	}
	userShare := float64(len(botUsers)) / float64(len(users))
	eventShare := float64(botEvents) / float64(valid)
	t.Logf("bots: %d of %d users (%.1f%%), %d of %d events (%.1f%%)", len(botUsers), len(users), 100*userShare, botEvents, valid, 100*eventShare)
	if userShare < cfg.BotShare/2 || userShare > cfg.BotShare*2 {
		t.Errorf("bot users %.3f of users, want about %.3f", userShare, cfg.BotShare)
	}
	if eventShare < 2*userShare || eventShare > 0.5 {
		t.Errorf("bot events %.3f of events for %.3f of users: bots should click several times as much as people", eventShare, userShare)
	}

	cfg.BotShare = 0
	for _, m := range generate(t, cfg) {
		if m.Bot || (m.Valid && c.IsBot(m.Event.UserAgent)) {
			t.Fatalf("a bot's message with --bot-share 0: %q", m.Value)
		}
	}
	cfg.BotShare = 1.5
	if err := cfg.Validate(); err == nil {
		t.Error("bot share 1.5 is valid")
	}
}
