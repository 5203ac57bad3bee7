package proxy

import (
	"errors"
	"log/slog"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

// failingListener fails its first Accepts with errs, then accepts from the real listener.
type failingListener struct {
	net.Listener
	errs []error
}

func (l *failingListener) Accept() (net.Conn, error) {
	if len(l.errs) > 0 {
		err := l.errs[0]
		l.errs = l.errs[1:]
		return nil, err
	}
	return l.Listener.Accept()
}

func acceptErr(errno syscall.Errno) error {
	return &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", errno)}
}

func TestKeepAcceptingWaitsOutARunOutOfDescriptorsAndReturnsOtherErrors(t *testing.T) {
	real, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fl := &failingListener{Listener: real, errs: []error{acceptErr(syscall.EMFILE), acceptErr(syscall.ENFILE), acceptErr(syscall.ECONNABORTED)}}
	ln := KeepAccepting(fl, slog.New(slog.DiscardHandler))
	defer ln.Close()
	client, err := net.Dial("tcp", real.Addr().String()) // waits in the backlog for the Accept
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	c, err := ln.Accept()
	if err != nil {
		t.Fatalf("Accept after EMFILE, ENFILE, ECONNABORTED = %v, want the next connection", err)
	}
	c.Close()

	permanent := errors.New("listener broken")
	ln2 := KeepAccepting(&failingListener{Listener: real, errs: []error{permanent}}, slog.New(slog.DiscardHandler))
	if _, err := ln2.Accept(); !errors.Is(err, permanent) {
		t.Errorf("Accept = %v, want the permanent error returned", err)
	}
}

func TestClosingAKeepAcceptingListenerEndsItsWait(t *testing.T) {
	real, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	errs := make([]error, 100)
	for i := range errs {
		errs[i] = acceptErr(syscall.EMFILE)
	}
	ln := KeepAccepting(&failingListener{Listener: real, errs: errs}, slog.New(slog.DiscardHandler))
	done := make(chan error, 1)
	go func() { _, err := ln.Accept(); done <- err }()
	ln.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("Accept after Close = %v, want net.ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Accept still waiting 10 s after Close")
	}
}
