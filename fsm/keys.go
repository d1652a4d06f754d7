package fsm

import (
	"crypto/rand"
	"encoding/base64"
)

// NewKey returns a random URL-safe key made of n random bytes, the shape of
// CloudStack's API and secret keys. Proposers call it; appliers never do.
func NewKey(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("fsm: crypto/rand failed: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b)
}
