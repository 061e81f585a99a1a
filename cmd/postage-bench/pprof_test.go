package main

import (
	"io"
	"net"
	"net/http"
	"testing"
)

func TestStartPprof(t *testing.T) {
	t.Setenv(pprofEnv, "0.0.0.0:0")
	if err := startPprof(); err == nil {
		t.Fatal("a non-loopback address was accepted")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	t.Setenv(pprofEnv, addr)
	if err := startPprof(); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + addr + "/debug/pprof/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || len(b) == 0 {
		t.Fatalf("GET /debug/pprof/: %d", resp.StatusCode)
	}
}
