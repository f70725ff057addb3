// Package sse reads a text/event-stream answer as the Server-Sent Events
// format has it: the tests and the load generator follow live reads with it.
package sse

import (
	"bufio"
	"io"
	"strings"
)

// Message is one event (ID, Event, Data) or one comment line (Comment).
type Message struct {
	ID, Event, Data string
	Comment         string
}

// Read calls fn with each message of r, in order, until r ends or fn
// returns false. A comment comes as a message of its own, the moment its
// line is read; an event once the blank line that ends it is.
func Read(r io.Reader, fn func(Message) bool) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var m Message
	for sc.Scan() {
		line := sc.Text()
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch {
		case line == "":
			if m != (Message{}) && !fn(m) {
				return nil
			}
			m = Message{}
		case field == "":
			if !fn(Message{Comment: value}) {
				return nil
			}
		case field == "id":
			m.ID = value
		case field == "event":
			m.Event = value
		case field == "data":
			m.Data = value
		}
	}
	return sc.Err()
}
