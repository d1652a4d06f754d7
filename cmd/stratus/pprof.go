package main

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/go-hclog"
)

// pprofAddrFile, in the data dir, holds the address the profiling
// endpoint listens on, so tools can find a port picked with :0.
const pprofAddrFile = "pprof-addr"

// pprofListenAddr gives an address without a host the loopback one: the
// profiling endpoint shows memory contents and costs CPU, so it is never
// on a public interface unless the operator names one.
func pprofListenAddr(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("-pprof-addr %q: %w", addr, err)
	}
	if host == "" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port), nil
}

// startPprof serves net/http/pprof on its own listener (never on the API
// port) and writes the bound address to the data dir. It returns a
// function that stops it.
func startPprof(addr, dataDir string, logger hclog.Logger) (func(), error) {
	addr, err := pprofListenAddr(addr)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("pprof listen on %s: %w", addr, err)
	}
	bound := ln.Addr().String()
	if ip := ln.Addr().(*net.TCPAddr).IP; !ip.IsLoopback() {
		logger.Warn("pprof endpoint listens on a non-loopback address", "addr", bound)
	}
	if err := os.WriteFile(filepath.Join(dataDir, pprofAddrFile), []byte(bound+"\n"), 0o600); err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("write %s: %w", pprofAddrFile, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Warn("pprof endpoint stopped", "error", err)
		}
	}()
	logger.Info("pprof endpoint listening", "addr", bound)
	return func() { _ = srv.Close() }, nil
}
