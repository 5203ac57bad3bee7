package main

// swrproxy as a process when one of its parts fails: serve runs every background loop and
// listener under one errgroup, so the failure of one stops the others, run returns it, and main
// logs it and exits 1. The part made to fail is the admin listener: its socket is torn down under
// the process, as the kernel does for `ss -K` (shutdown(2) of a listening socket makes its accept
// fail with EINVAL, which no retry cures), while the other loops would run on forever.

import (
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/swrproxy/swrproxy/internal/testenv"
)

// listeningFD returns this process's descriptor of the socket that listens on addr (ip:port).
func listeningFD(t *testing.T, addr string) int {
	t.Helper()
	want := netip.MustParseAddrPort(addr)
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		// An accepted connection has the listener's local address too: only a listener accepts.
		if on, err := syscall.GetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_ACCEPTCONN); err != nil || on != 1 {
			continue
		}
		sa, err := syscall.Getsockname(fd)
		if in4, ok := sa.(*syscall.SockaddrInet4); ok && err == nil &&
			netip.AddrPortFrom(netip.AddrFrom4(in4.Addr), uint16(in4.Port)) == want {
			return fd
		}
	}
	t.Fatalf("no socket of this process listens on %s", addr)
	return -1
}

// breakListener tears down the socket listening on addr: its pending and future accepts fail.
func breakListener(t *testing.T, addr string) {
	t.Helper()
	if err := syscall.Shutdown(listeningFD(t, addr), syscall.SHUT_RDWR); err != nil {
		t.Fatalf("shutdown of the listener on %s: %v", addr, err)
	}
}

func TestAFailingListenerEndsRunWithItsReason(t *testing.T) {
	t.Parallel()
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") })
	var logs syncBuffer
	p := startProxyLogging(t, o.URL, map[string]string{"SWR_ADMIN_LISTEN": "127.0.0.1:0"}, &logs)
	admin := strings.TrimPrefix(p.Admin, "http://")
	expect(t, get(t, p.URL+"/x"), 200, "BYPASS", "ok")

	breakListener(t, admin)
	var err error
	select {
	case err = <-p.done:
		p.done <- err // for the cleanup's stop
	case <-time.After(15 * time.Second):
		t.Fatalf("run went on for 15s after its admin listener failed: the listener's error was dropped\n%s", logs.String())
	}
	if err == nil || !strings.Contains(err.Error(), "listener "+admin+": ") || !strings.Contains(err.Error(), "invalid argument") {
		t.Fatalf("run = %v, want the admin listener's failure (listener %s: accept … invalid argument)", err, admin)
	}
	// The reason is logged as the shutdown begins; the other listener is closed, not left serving.
	if s := logs.String(); !strings.Contains(s, `level=ERROR msg="shutting down: finishing in-flight requests" reason="listener `+admin+": ") {
		t.Errorf("the log does not give the failure as the reason of the shutdown:\n%s", s)
	}
	if accepting(p.URL) {
		t.Error("the proxy listener still accepts after run returned")
	}
}

func TestAFailingListenerEndsTheProcessWithExitStatusOne(t *testing.T) {
	// Not parallel: realMain reads the process's environment and working directory.
	t.Chdir(t.TempDir()) // no .env there
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") })
	proxyAddr := "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))
	admin := "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))
	for k, v := range map[string]string{"SWR_UPSTREAM": o.URL, "SWR_LISTEN": proxyAddr, "SWR_ADMIN_LISTEN": admin,
		"SWR_REDIS_URL": "", "SWR_HEALTH_INTERVAL": "1h"} {
		t.Setenv(k, v)
	}
	var logs syncBuffer
	exit := make(chan int, 1)
	go func() { exit <- realMain(nil, io.Discard, &logs) }()
	testenv.WaitFor(t, 10*time.Second, "the admin listener to accept", func() bool {
		select {
		case code := <-exit:
			t.Fatalf("swrproxy exited (%d) before its admin listener accepted:\n%s", code, logs.String())
		default:
		}
		return accepting("http://" + admin)
	})

	breakListener(t, admin)
	select {
	case code := <-exit:
		if code != 1 {
			t.Errorf("exit status %d after the admin listener failed, want 1", code)
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("swrproxy went on for 15s after its admin listener failed: the listener's error was dropped\n%s", logs.String())
	}
	if s := logs.String(); !strings.Contains(s, `level=ERROR msg="swrproxy stopped" err="listener `+admin+": ") {
		t.Errorf("the last words do not name the failed listener:\n%s", s)
	}
}
