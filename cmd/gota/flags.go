package main

import (
	"flag"
	"fmt"
	"io"
)

// newFlagSet returns the flag set of command name: errors and usage go to
// stderr, and the usage is "usage: gota " + synopsis, the notes, one a
// line, then the flags' defaults.
func newFlagSet(name string, stderr io.Writer, synopsis string, notes ...string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: gota "+synopsis)
		for _, n := range notes {
			fmt.Fprintln(stderr, n)
		}
		fs.PrintDefaults()
	}
	return fs
}

// parseArgs parses args, where flags may follow the positional arguments,
// and checks there are at least min and, unless max < 0, at most max
// positional arguments. A bad flag or count prints the usage and returns
// exitError{2}.
func parseArgs(fs *flag.FlagSet, args []string, min, max int) ([]string, error) {
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return nil, exitError{2} // the flag package has printed the problem and the usage
	}
	if len(pos) < min || (max >= 0 && len(pos) > max) {
		fs.Usage()
		return nil, exitError{2}
	}
	return pos, nil
}

// parseInterspersed parses flags that may come before, between or after
// the file names.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		// After "--" everything is a file name.
		if len(args) > 0 && len(rest) < len(args) && args[len(args)-len(rest)-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}
