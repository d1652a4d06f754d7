//go:build stratus_cmdv2

package fsm

// CommandVersion is one above the release's in a build with the
// stratus_cmdv2 tag: e2e's rolling upgrade builds the "next release" that
// way to exercise the version gate (e2e/upgrade_test.go).
const CommandVersion uint16 = 2
