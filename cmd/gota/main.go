// Command gota inspects ESP32 images, partition tables and otadata, runs a
// virtual ESP32, and updates devices over the air through a serial line.
//
// Each command group lives in its own file and registers itself in init.
package main

import (
	"fmt"
	"os"
	"sort"
	"strings"
)

// command is one "gota <group> [<verb>]" entry.
type command struct {
	name  string // e.g. "image info" or "flash"
	usage string // one line: arguments and flags
	run   func(args []string) error
}

var commands = map[string]*command{}

func register(c *command) { commands[c.name] = c }

// exitError carries a specific exit status (e.g. 1 when some file is invalid)
// without printing anything more.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

func main() {
	args := os.Args[1:]
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage()
		return
	}
	c, rest := lookup(args)
	if c == nil {
		fmt.Fprintf(os.Stderr, "gota: unknown command %q\n\n", strings.Join(args, " "))
		usage()
		os.Exit(2)
	}
	if err := c.run(rest); err != nil {
		if e, ok := err.(exitError); ok {
			os.Exit(e.code)
		}
		fmt.Fprintf(os.Stderr, "gota %s: %v\n", c.name, err)
		os.Exit(1)
	}
}

// lookup finds the longest registered command name that prefixes args.
func lookup(args []string) (*command, []string) {
	if len(args) >= 2 {
		if c := commands[args[0]+" "+args[1]]; c != nil {
			return c, args[2:]
		}
	}
	if c := commands[args[0]]; c != nil {
		return c, args[1:]
	}
	return nil, nil
}

func usage() {
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintln(os.Stderr, "usage: gota <command> [arguments]\n\ncommands:")
	for _, n := range names {
		fmt.Fprintf(os.Stderr, "  %-20s %s\n", n, commands[n].usage)
	}
}
