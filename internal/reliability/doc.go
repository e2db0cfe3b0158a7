// Package reliability holds the evidence that nothing is lost or
// duplicated under the conditions AWS really produces: event chaos
// (shuffled, duplicated, late and dropped events repaired by the
// reconciler), crashes between an AWS create call and its record, retries
// under concurrency, and load on the API. Everything runs through the real
// wired App against the emulator; the package has only tests and their
// helpers (eventfuzz holds the event-decoding fuzz target).
package reliability
