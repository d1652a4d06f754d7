package fence

import (
	"context"
	"errors"
)

// Target is the host a fence acts on, in our own types.
type Target struct {
	HostID  string
	Name    string
	Address string // management IP
	// IPMI is the host's out-of-band management, for the ipmi fence and
	// power actions; nil when none is configured.
	IPMI *IPMIConfig
}

// IPMIConfig reaches a host's BMC. Password is a secret: never log it.
type IPMIConfig struct {
	Address  string
	Port     int
	Username string
	Password string
}

// Fencer makes sure a failed host can no longer run its VMs. Fence returns
// nil only once that is certain; an error leaves the host unfenced and its
// VMs where they are.
type Fencer interface {
	Name() string
	Fence(ctx context.Context, t Target) error
}

// Sentinel errors.
var (
	// ErrManual means the provider never fences by itself: an operator
	// must confirm the host is down (declareHostAsDegraded).
	ErrManual = errors.New("this host's HA provider cannot fence it; an operator must confirm it is down")
	// ErrNotConfigured means the provider lacks what it needs (out-of-band
	// settings, a fence command).
	ErrNotConfigured = errors.New("fence provider is not configured for this host")
)
