package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"syscall"
	"time"

	"github.com/ipfs/go-datastore"
	pebbleds "github.com/ipfs/go-ds-pebble"
)

// ErrDiskFull is returned (wrapped, together with syscall.ENOSPC) by writes
// the node refuses because the disk holding its data directory is almost
// full. The record in question is not acknowledged; the node keeps it in
// memory and retries the write once there is room.
var ErrDiskFull = errors.New("the disk holding the node's data is full")

// diskReserve is the free space the node leaves on its data directory's
// file system. The embedded store (pebble) treats a failed write to its
// log as fatal and exits the process, so a disk that fills up would kill
// the node, even through a peer's DHT put. Refusing writes while less than
// this is free turns a full disk into an error the caller sees, and leaves
// room for the store's own log rotation, flushes and compactions.
var diskReserve uint64 = 16 << 20

// diskGuard refuses writes to a datastore while the file system under dir
// has less than diskReserve free.
type diskGuard struct {
	datastore.Batching
	dir string
}

// openStore opens the pebble datastore at dir/store behind a disk guard.
// On a full disk pebble's open does not return (it retries writing its
// log and tables), so a node refuses to start there with a clear error.
// A damaged store is moved aside and rebuilt (openCheckedStore); the
// StoreRepair it returns then says so.
func openStore(dir string, log *slog.Logger, now time.Time) (datastore.Batching, *StoreRepair, error) {
	g := &diskGuard{dir: dir}
	if err := g.check(); err != nil {
		return nil, nil, err
	}
	pds, rep, err := openCheckedStore(filepath.Join(dir, "store"), log, now)
	if err != nil {
		return nil, nil, err
	}
	if _, ok := freeSpace(dir); !ok {
		return pds, rep, nil // the platform cannot tell; nothing to guard with
	}
	g.Batching = pds
	return g, rep, nil
}

func (g *diskGuard) check() error {
	free, ok := freeSpace(g.dir)
	if !ok || free >= diskReserve {
		return nil
	}
	return fmt.Errorf("%w: %d MiB free under %s, the node keeps %d MiB in reserve (%w)",
		ErrDiskFull, free>>20, g.dir, diskReserve>>20, syscall.ENOSPC)
}

func (g *diskGuard) Put(ctx context.Context, k datastore.Key, v []byte) error {
	if err := g.check(); err != nil {
		return err
	}
	return g.Batching.Put(ctx, k, v)
}

func (g *diskGuard) Delete(ctx context.Context, k datastore.Key) error {
	if err := g.check(); err != nil {
		return err
	}
	return g.Batching.Delete(ctx, k)
}

func (g *diskGuard) Sync(ctx context.Context, k datastore.Key) error {
	if err := g.check(); err != nil {
		return err
	}
	return g.Batching.Sync(ctx, k)
}

func (g *diskGuard) Batch(ctx context.Context) (datastore.Batch, error) {
	b, err := g.Batching.Batch(ctx)
	if err != nil {
		return nil, err
	}
	return &guardedBatch{Batch: b, g: g}, nil
}

// Close closes the datastore. The pebble datastore flushes its memtable
// first, and pebble retries a failed flush for ever, so on a full disk
// Close would never return. What the node acknowledged is in pebble's
// synced log and is replayed at the next open, so on a full disk the
// flush is skipped.
func (g *diskGuard) Close() error {
	if pds, ok := g.Batching.(*pebbleds.Datastore); ok && g.check() != nil {
		return pds.DB.Close()
	}
	return g.Batching.Close()
}

type guardedBatch struct {
	datastore.Batch
	g *diskGuard
}

func (b *guardedBatch) Commit(ctx context.Context) error {
	if err := b.g.check(); err != nil {
		return err
	}
	return b.Batch.Commit(ctx)
}
