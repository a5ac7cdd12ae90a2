// Package lockedbuf holds a log that some goroutines write while another
// reads it: a child process's stderr (os/exec copies it from a goroutine of
// its own), or a node's slog output in a test. A plain bytes.Buffer read
// meanwhile races. It owns nothing else and must never grow beyond that one
// type.
package lockedbuf

import (
	"bytes"
	"sync"
)

// Buffer is a bytes.Buffer that one goroutine may write while another
// reads it.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns what was written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
