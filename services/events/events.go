// Package events holds the contracts of the events services exchange: one
// struct per subject, which its publisher marshals and its consumers decode.
// A service talks to another asynchronously through this package, never by
// importing it.
//
// Where an event carries a whole entity (a user, an account, a video, an
// order, a payment), the entity's shape is declared here too, and the service
// that owns it answers its API with the same struct, so the event and the
// API cannot drift apart. The JSON field names are the wire format: renaming
// one breaks every consumer, including those still reading older events
// from the stream.
//
// Each struct names its subject (EventType), so kit.Bus.Publish takes the
// subject from the data and a payload can never go out under another
// subject's name.
package events
