// Package redistest starts throwaway redis-server processes for tests, on free loopback ports.
// It never uses a Redis that is already running on the machine, and never skips: a skipped
// Redis test hides a broken tier.
package redistest

import (
	"context"
	"crypto/tls"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/swrproxy/swrproxy/internal/testcerts"
	"github.com/swrproxy/swrproxy/internal/testenv"
)

// Server is a redis-server child process owned by one test.
type Server struct {
	tb       testing.TB
	dir      string
	args     []string       // extra redis-server arguments
	conf     string         // a config file to start with (a sentinel's, which it rewrites), or ""
	username string         // the ACL user the readiness PING authenticates as, or ""
	certs    *testcerts.Set // TLS only, with this set's server certificate (StartTLS), or nil
	password string
	Port     int

	mu     sync.Mutex
	cmd    *exec.Cmd
	frozen *time.Timer // set while the process is stopped by Freeze
}

// Start starts a redis-server on a free 127.0.0.1 port and stops it (by process id) when the test ends.
// It fails the test with install instructions when redis-server is missing.
func Start(tb testing.TB) *Server {
	tb.Helper()
	s := &Server{tb: tb, dir: tb.TempDir(), Port: testenv.FreePort(tb)}
	s.Restart()
	tb.Cleanup(s.Stop)
	return s
}

// StartClusterNode starts a one-node Redis Cluster on a free 127.0.0.1 port (every slot on that
// one master): enough for cluster clients, their routing and a test that freezes the node.
// Stopped when the test ends, like Start. StartCluster starts a real one.
func StartClusterNode(tb testing.TB) *Server {
	tb.Helper()
	dir := tb.TempDir()
	s := &Server{tb: tb, dir: dir, Port: testenv.FreePort(tb),
		args: []string{"--cluster-enabled", "yes", "--cluster-config-file", dir + "/nodes.conf"}}
	s.Restart()
	tb.Cleanup(s.Stop)
	rdb := redis.NewClient(&redis.Options{Addr: s.Addr(), MaxRetries: -1})
	defer rdb.Close()
	ctx := context.Background()
	if err := rdb.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", 0, 16383).Err(); err != nil {
		tb.Fatalf("redis-server on %s: CLUSTER ADDSLOTSRANGE: %v", s.Addr(), err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		info, err := rdb.ClusterInfo(ctx).Result()
		if err == nil && strings.Contains(info, "cluster_state:ok") {
			return s
		}
		if time.Now().After(deadline) {
			tb.Fatalf("redis cluster on %s not ok within 10s: %v %q", s.Addr(), err, info)
		}
	}
}

// MaxFreeze bounds how long Freeze keeps the server stopped if the test never calls Thaw.
const MaxFreeze = 30 * time.Second

// Freeze stops the server process (SIGSTOP), as a stalled Redis: connections stay open and the
// kernel still accepts new ones and queues what clients send, but nothing is answered until Thaw.
// The process is continued by Thaw, by Stop, when the test ends, or after MaxFreeze, whichever
// comes first. Freezing a frozen or stopped server does nothing.
func (s *Server) Freeze() {
	s.tb.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil || s.frozen != nil {
		return
	}
	if err := s.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		s.tb.Fatalf("freeze redis-server (pid %d): %v", s.cmd.Process.Pid, err)
	}
	s.frozen = time.AfterFunc(MaxFreeze, s.Thaw)
}

// Thaw continues a server stopped by Freeze (SIGCONT); it then executes whatever clients sent
// meanwhile. Thawing a server that is not frozen does nothing. Safe to call from any goroutine.
func (s *Server) Thaw() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.thaw()
}

func (s *Server) thaw() {
	if s.frozen == nil {
		return
	}
	s.frozen.Stop()
	s.frozen = nil
	if s.cmd != nil {
		s.cmd.Process.Signal(syscall.SIGCONT)
	}
}

// Addr is the server's host:port.
func (s *Server) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.Port) }

// URL is the server's redis:// URL (rediss:// with the credentials for StartTLS), database 0.
func (s *Server) URL() string {
	if s.certs != nil {
		return "rediss://" + s.username + ":" + s.password + "@" + s.Addr() + "/0"
	}
	return "redis://" + s.Addr() + "/0"
}

// StartTLS starts a redis-server that speaks TLS only, with certs' server certificate (valid
// for 127.0.0.1), and requires User and Password; its URL is rediss:// with them. Stopped when
// the test ends, like Start.
func StartTLS(tb testing.TB, certs *testcerts.Set) *Server {
	tb.Helper()
	s := &Server{tb: tb, dir: tb.TempDir(), Port: testenv.FreePort(tb), certs: certs, username: User, password: Password}
	s.args = append(append([]string{}, dataArgs...), "--port", "0", "--tls-port", strconv.Itoa(s.Port),
		"--tls-cert-file", certs.ServerCertFile, "--tls-key-file", certs.ServerKeyFile,
		"--tls-ca-cert-file", certs.CAFile, "--tls-auth-clients", "no")
	s.Restart()
	tb.Cleanup(s.Stop)
	return s
}

// clientTLS is the client side of the server's TLS, or nil.
func (s *Server) clientTLS() *tls.Config {
	if s.certs == nil {
		return nil
	}
	return &tls.Config{RootCAs: s.certs.CAPool, MinVersion: tls.VersionTLS12}
}

// Client returns a new client for the server, closed when the test ends.
func (s *Server) Client() *redis.Client {
	rdb := redis.NewClient(&redis.Options{Addr: s.Addr()})
	s.tb.Cleanup(func() { rdb.Close() })
	return rdb
}

// Stop kills the server and waits for it to exit. Stopping a stopped server does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	s.thaw() // SIGKILL ends a stopped process too, but leave nothing stopped behind
	s.cmd.Process.Kill()
	s.cmd.Wait()
	s.cmd = nil
}

// Restart starts the server again on the same port (after Stop) and waits until it answers PING.
func (s *Server) Restart() {
	s.tb.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		s.tb.Fatal("redis-server not found: run `make test` (it installs it) or `apt-get install redis-server`")
	}
	s.mu.Lock()
	if s.cmd != nil {
		s.mu.Unlock()
		return
	}
	args := []string{"--port", strconv.Itoa(s.Port), "--bind", "127.0.0.1", "--dir", s.dir, "--loglevel", "warning"}
	if s.conf != "" {
		args = append([]string{s.conf}, args...) // a sentinel: it takes no persistence settings
	} else {
		args = append(args, "--save", "", "--appendonly", "no")
	}
	cmd := exec.Command(bin, append(args, s.args...)...)
	cmd.SysProcAttr = procAttr()
	if err := cmd.Start(); err != nil {
		s.mu.Unlock()
		s.tb.Fatalf("start redis-server: %v", err)
	}
	s.cmd = cmd
	s.mu.Unlock()

	rdb := redis.NewClient(&redis.Options{Addr: s.Addr(), Username: s.username, Password: s.password, TLSConfig: s.clientTLS(), MaxRetries: -1})
	defer rdb.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		err := rdb.Ping(ctx).Err()
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			s.tb.Fatalf("redis-server on %s did not answer PING within 10s: %v", s.Addr(), err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
