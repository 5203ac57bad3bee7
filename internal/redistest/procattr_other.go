//go:build !linux

package redistest

import "syscall"

// procAttr is nil where the kernel has no parent-death signal: Stop and the test's cleanup end
// the servers.
func procAttr() *syscall.SysProcAttr { return nil }
