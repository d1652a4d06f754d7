package fsm

import (
	"bufio"
	"io"
)

type ioNopCloser struct{ io.Reader }

func (ioNopCloser) Close() error { return nil }

func bufioWriter(w io.Writer) *bufio.Writer { return bufio.NewWriter(w) }
