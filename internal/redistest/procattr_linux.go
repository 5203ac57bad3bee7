package redistest

import "syscall"

// procAttr makes the kernel kill a server when the test binary that started it dies (a test that
// timed out, a killed run), so that no redis-server outlives its tests. (Pdeathsig follows the
// thread that started the process; Go only ends threads that a goroutine locked and left.)
func procAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} }
