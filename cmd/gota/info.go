package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/gota-dev/gota/core/updater"
)

func runInfo(args []string) error { return remoteInfo(os.Stdout, os.Stderr, args) }

func remoteInfo(stdout, stderr io.Writer, args []string) error {
	rf := newRemoteFlags("info --port PORT [flags]", stderr, 0, switchBaudUsage)
	asJSON := rf.fs.Bool("json", false, "print JSON")
	if _, err := rf.parse(args, 0); err != nil {
		return err
	}
	ctx, cancel := rf.context()
	defer cancel()
	out := &output{w: stderr}
	// Offer everything so the capabilities shown are the agent's.
	s, p, err := rf.session(ctx, out, updater.Options{Baud: rf.baud, Compression: true})
	if err != nil {
		return err
	}
	defer p.Close()
	defer s.Close()
	di, err := s.Info(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		return printRemoteInfoJSON(stdout, di)
	}
	printRemoteInfo(stdout, di)
	return nil
}

// remoteInfoJSON is the --json form of info.
type remoteInfoJSON struct {
	Chip       string                         `json:"chip,omitempty"`
	ChipRev    int                            `json:"chip_rev,omitempty"`
	Agent      string                         `json:"agent,omitempty"`
	Running    string                         `json:"running"`
	Next       string                         `json:"next"`
	Partitions map[string]remotePartitionJSON `json:"partitions"`
}

type remotePartitionJSON struct {
	State         string  `json:"state,omitempty"`
	Name          string  `json:"name,omitempty"`
	Version       string  `json:"version,omitempty"`
	Date          string  `json:"date,omitempty"`
	Time          string  `json:"time,omitempty"`
	IDFVersion    string  `json:"idf_version,omitempty"`
	SecureVersion *uint32 `json:"secure_version,omitempty"`
	SHA256        string  `json:"sha256,omitempty"`
}

func printRemoteInfoJSON(w io.Writer, di *updater.DeviceInfo) error {
	j := remoteInfoJSON{Chip: di.Chip, ChipRev: di.ChipRev, Agent: di.Agent, Running: di.Running, Next: di.Next, Partitions: map[string]remotePartitionJSON{}}
	for _, p := range di.Partitions {
		pj := remotePartitionJSON{State: string(p.State), Name: p.Name, Version: p.Version, Date: p.Date, Time: p.Time, IDFVersion: p.IDFVersion, SHA256: p.SHA256}
		if p.Name != "" {
			sv := p.SecureVersion
			pj.SecureVersion = &sv
		}
		j.Partitions[p.Label] = pj
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(j)
}

func remoteSubtypeName(st int) string {
	switch {
	case st == 0:
		return "factory"
	case st >= 0x10 && st < 0x20:
		return fmt.Sprintf("ota_%d", st-0x10)
	case st == 0x20:
		return "test"
	case st < 0:
		return "?"
	}
	return fmt.Sprintf("0x%02x", st)
}

func printRemoteInfo(w io.Writer, di *updater.DeviceInfo) {
	c := di.Caps
	var caps []string
	for _, f := range []struct {
		on   bool
		name string
	}{{c.Compression, "deflate"}, {c.Resume, "resume"}, {c.BaudChange, "baud"}, {c.SHA256, "sha256"}, {c.Reorder, "reorder"}} {
		if f.on {
			caps = append(caps, f.name)
		}
	}
	if len(caps) == 0 {
		caps = []string{"core only"}
	}
	fmt.Fprintf(w, "device   %s rev v%d.%d\n", di.Chip, di.ChipRev/100, di.ChipRev%100)
	fmt.Fprintf(w, "agent    %s, protocol %d (%s; frames %d B, window %d B)\n", di.Agent, c.Version, strings.Join(caps, ", "), c.MaxFrame, c.Window)
	fmt.Fprintf(w, "running  %s\nnext     %s\n\n", di.Running, di.Next)
	for _, p := range di.Partitions {
		mark := "  "
		if p.Label == di.Running {
			mark = "* "
		}
		state := p.State
		if state == "" {
			state = "-"
		}
		fmt.Fprintf(w, "%s%-8s %-7s", mark, p.Label, remoteSubtypeName(p.Subtype))
		if p.Size > 0 {
			fmt.Fprintf(w, " 0x%06x %9d", p.Offset, p.Size)
		}
		fmt.Fprintf(w, "  %-9s", state)
		if p.Name != "" {
			fmt.Fprintf(w, " %s %s (%s %s, IDF %s, secure version %d)", p.Name, p.Version, p.Date, p.Time, p.IDFVersion, p.SecureVersion)
		} else {
			fmt.Fprint(w, " (no app)")
		}
		fmt.Fprintln(w)
		if p.SHA256 != "" {
			fmt.Fprintf(w, "  %-16s sha256 %s, %d bytes\n", "", p.SHA256, p.ImageLen)
		}
	}
}
