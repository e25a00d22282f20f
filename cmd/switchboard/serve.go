package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/switchboard-dev/switchboard/services/kit"
	"github.com/switchboard-dev/switchboard/services/registry"
)

// serve runs one service with the env the operator renders.
func serve(ctx context.Context, args []string, _, stderr io.Writer) error {
	if len(args) != 1 {
		return fmt.Errorf("%w: serve takes one service name (%s)", errUsage, strings.Join(registry.Names(), ", "))
	}
	def, ok := registry.Lookup(args[0])
	if !ok {
		return fmt.Errorf("%w: unknown service %q; this binary serves %s", errUsage, args[0], strings.Join(registry.Names(), ", "))
	}
	log, err := newLogger(stderr, false)
	if err != nil {
		return err
	}
	cfg, err := kit.LoadConfig(def.Name, def.Needs, kit.OSEnv)
	if err != nil {
		return fmt.Errorf("%s: %w", def.Name, err)
	}
	slog.SetDefault(log)
	return kit.Run(ctx, def, cfg, kit.RunOptions{Log: log})
}
