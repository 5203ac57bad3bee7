package main

import (
	"os"
	"os/exec"
	"regexp"
	"runtime/debug"
	"testing"
)

func TestVersionFlagPrintsVersionAndCommitAndExitsZero(t *testing.T) {
	bin, err := buildBinary()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--version")
	cmd.Dir = t.TempDir()                           // no .env there
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")} // no SWR_UPSTREAM: --version needs no config
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("swrproxy --version: %v, want exit 0\n%s", err, out)
	}
	// go build records the revision from the checkout (or nothing outside one).
	if !regexp.MustCompile(`^swrproxy dev \(([0-9a-f]{40}(-dirty)?|unknown)\)\n$`).Match(out) {
		t.Errorf("swrproxy --version printed %q, want \"swrproxy dev (<commit>)\\n\"", out)
	}
}

func TestCommitIsTheRecordedRevisionMarkedDirtyOrUnknown(t *testing.T) {
	const rev = "0390ff1511b9f0fb67867c53e098f70e3f6a9dd7"
	tests := []struct {
		settings []debug.BuildSetting
		ok       bool
		want     string
	}{
		{[]debug.BuildSetting{{Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: "false"}}, true, rev},
		{[]debug.BuildSetting{{Key: "vcs.modified", Value: "true"}, {Key: "vcs.revision", Value: rev}}, true, rev + "-dirty"},
		{[]debug.BuildSetting{{Key: "vcs.modified", Value: "true"}}, true, "unknown"},
		{[]debug.BuildSetting{{Key: "-compiler", Value: "gc"}}, true, "unknown"},
		{nil, false, "unknown"},
	}
	for _, tt := range tests {
		if got := commit(&debug.BuildInfo{Settings: tt.settings}, tt.ok); got != tt.want {
			t.Errorf("commit(%v, %v) = %q, want %q", tt.settings, tt.ok, got, tt.want)
		}
	}
}
