package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"sync"

	"github.com/stratus-cloud/stratus/fsm"
)

// Passwords are hashed here, in the handler that proposes the change, with
// fsm.HashPassword (PBKDF2-SHA-256, random 16-byte salt, self-describing
// string); the state machine only stores the string. Clear-text passwords
// never go into a command, an event, a log line or an error text.

// passwordIterations is the PBKDF2 work factor of new hashes. Tests lower it
// to keep the suite fast; stored hashes name their own count, so lowering it
// never breaks old hashes.
var passwordIterations = fsm.DefaultPasswordIterations

// maxPasswordLen bounds a password's length: PBKDF2 hashes any length, but
// megabyte passwords only cost CPU.
const maxPasswordLen = 512

// hashPassword hashes a new password for storage.
func hashPassword(password string) (string, *Error) {
	if e := checkNewPassword(password); e != nil {
		return "", e
	}
	h, err := fsm.HashPassword(password, passwordIterations)
	if err != nil {
		return "", ErrInternal("could not hash the password")
	}
	return h, nil
}

// checkNewPassword applies the password policy: not blank, not huge.
func checkNewPassword(password string) *Error {
	switch {
	case password == "":
		return ErrParam("the password must not be empty")
	case len(password) > maxPasswordLen:
		return ErrParam("the password is longer than %d bytes", maxPasswordLen)
	}
	return nil
}

var (
	dummyOnce sync.Once
	dummyHash string
)

// passwordMatches reports whether password matches the user's stored hash.
// A user without a password (or no user at all: pass nil) never matches, but
// a hash is still computed, so that a failed login takes as long whether or
// not the user exists.
func passwordMatches(u *fsm.User, password string) bool {
	if u == nil || u.PasswordHash == "" || len(password) > maxPasswordLen {
		dummyOnce.Do(func() { dummyHash, _ = fsm.HashPassword("no such user", passwordIterations) })
		fsm.CheckPassword(dummyHash, password)
		return false
	}
	return fsm.CheckPassword(u.PasswordHash, password)
}

// sessionKeyHash is what the sessions table stores of a session key. The
// key is 20 random bytes, so a plain SHA-256 suffices: there is nothing to
// guess.
func sessionKeyHash(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// sessionKeyMatches compares a presented key with a stored hash in
// constant time.
func sessionKeyMatches(storedHash, key string) bool {
	got := sessionKeyHash(key)
	return subtle.ConstantTimeCompare([]byte(got), []byte(storedHash)) == 1
}
