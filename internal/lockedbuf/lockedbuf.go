// Package lockedbuf holds a child process's output while the parent reads
// it: os/exec copies a command's stderr into its Writer from a goroutine of
// its own, so a plain bytes.Buffer read before the command exits races.
// It owns nothing else and must never grow beyond that one type.
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
