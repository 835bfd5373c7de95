package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/gota-dev/gota/core/updater"
	"github.com/gota-dev/gota/protocol"
)

// The actions of gota accept, rollback and reboot.

func acceptFn(ctx context.Context, s *updater.Session) error { return s.Accept(ctx) }

func rollbackFn(ctx context.Context, s *updater.Session) error { return s.Rollback(ctx) }

func rebootFn(ctx context.Context, s *updater.Session) error { return s.Reboot(ctx) }

func runAccept(args []string) error {
	return remoteSimple(os.Stdout, os.Stderr, "accept", args, acceptFn)
}

func runRollback(args []string) error {
	return remoteSimple(os.Stdout, os.Stderr, "rollback", args, rollbackFn)
}

func runReboot(args []string) error {
	return remoteSimple(os.Stdout, os.Stderr, "reboot", args, rebootFn)
}

// remoteSimple connects, runs do and prints the resulting state.
func remoteSimple(stdout, stderr io.Writer, name string, args []string, do func(context.Context, *updater.Session) error) error {
	rf := newRemoteFlags(name+" --port PORT [flags]", stderr, 0, switchBaudUsage)
	if _, err := rf.parse(args, 0); err != nil {
		return err
	}
	ctx, cancel := rf.context()
	defer cancel()
	out := &output{w: stderr}
	s, p, err := rf.session(ctx, out, updater.Options{Baud: rf.baud})
	if err != nil {
		return err
	}
	defer p.Close()
	defer s.Close()
	if err := do(ctx, s); err != nil {
		return err
	}
	di, err := s.Info(ctx)
	if err != nil {
		return err
	}
	state := protocol.OTANone
	if rp := di.Find(di.Running); rp != nil {
		state = rp.State
	}
	fmt.Fprintf(stdout, "%s: running %s (%s), next boot %s\n", name, di.Running, state, di.Next)
	return nil
}
