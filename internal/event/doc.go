// Package event holds the click event contract: the Event type stored in the
// lake, the parser that validates raw Kafka message values against it, and
// an encoder that writes events back as valid messages.
//
// Parse accepts one JSON object per message; the rules are documented on
// Parser.Parse. Every rejection is a *RejectError whose Reason is a stable
// code, fit for metric labels and for filing the raw message aside.
//
// Usage:
//
//	e, err := event.Parse(msg.Value)
//	if err != nil {
//		rejected.WithLabelValues(string(event.ReasonOf(err))).Inc()
//		return quarantine(msg, err)
//	}
//	batch = append(batch, e)
//
// With a size limit other than MaxSize:
//
//	p := event.Parser{MaxSize: 16 << 10}
//	e, err := p.Parse(raw)
//
// ParseAliased skips the copies: the event's strings point into the message
// where it holds them verbatim, and an Interner hands out one shared copy of
// the values a stream repeats (url, country, city, user_agent):
//
//	in := event.NewInterner(0) // one per goroutine
//	e, err := event.Parser{}.ParseAliased(raw, in)
//
// Encode writes an event as a message that Parse turns back into the same
// event:
//
//	raw := event.Encode(event.Event{UserID: "42", Timestamp: ms, URL: "/", Country: "DE"})
package event
