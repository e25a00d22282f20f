// Package render turns a Platform into the Kubernetes objects that run it.
//
// Everything here is a pure function of its inputs: no client, no clock, no
// randomness (credentials come in through Options). The reconciler applies
// what Platform returns and prunes the rest; `switchboard render` prints it.
// Because the reconciler compares desired against live objects to stay
// write-free in steady state, builders spell values in the form the API
// server stores them (canonical quantities, explicit protocols).
package render
