//go:build !stratus_cmdv2

package fsm

// CommandVersion is the highest command schema version this build
// understands (see BaseCommandVersion). Raise it, and append the
// command or version that needs it, in the same release.
const CommandVersion uint16 = 1
