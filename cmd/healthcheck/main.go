// Command healthcheck is the container health probe of the swrproxy images, which have no shell
// and no curl. It sends one GET and exits 0 when the answer is 200 within 2 seconds, 1 otherwise
// (Docker's HEALTHCHECK contract). It uses only the standard library.
//
//	healthcheck [URL]
//
// Without URL it probes swrproxy's own GET /_swr/healthz on the port of SWR_ADMIN_LISTEN when that
// is set, else of SWR_LISTEN, else 8000: the same environment the proxy reads, so the probe follows
// the configuration. The host is 127.0.0.1 unless the listener is bound to one address.
package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

const timeout = 2 * time.Second

func main() { os.Exit(run(os.Args[1:], os.Getenv, os.Stderr)) }

func run(args []string, getenv func(string) string, stderr io.Writer) int {
	var url string
	switch len(args) {
	case 0:
		url = defaultURL(getenv)
	case 1:
		url = args[0]
	default:
		fmt.Fprintln(stderr, "usage: healthcheck [URL]")
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := check(ctx, url); err != nil {
		fmt.Fprintf(stderr, "healthcheck: %v\n", err)
		return 1
	}
	return 0
}

// defaultURL is swrproxy's health endpoint as the environment configures its listeners.
func defaultURL(getenv func(string) string) string {
	listen := strings.TrimSpace(getenv("SWR_ADMIN_LISTEN"))
	if listen == "" {
		listen = strings.TrimSpace(getenv("SWR_LISTEN"))
	}
	host, port, err := net.SplitHostPort(listen)
	if err != nil || port == "" || port == "0" {
		host, port = "", "8000"
	}
	switch host {
	case "", "0.0.0.0", "::", "localhost":
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port) + "/_swr/healthz"
}

// check reports nil when GET url answers 200 before ctx ends.
func check(ctx context.Context, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	// No proxy from the environment, no keep-alive: one short request to ourselves.
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	res, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, res.Status)
	}
	return nil
}
