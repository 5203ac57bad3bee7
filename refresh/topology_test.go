package refresh

import (
	"testing"

	"github.com/swrproxy/swrproxy/internal/redistest"
)

// topologyTests are the fill tests that hold on every Redis deployment swrproxy supports: fills
// on two instances collapsed into one origin request through the Redis fetch lock, a wait for
// another instance's fetch that runs out of time, a purge during a fetch.
var topologyTests = []redistest.Case{
	{Name: "FillsOnTwoInstancesShareOneOriginRequest", Test: testFillsOnTwoInstancesShareOneOriginRequest},
	{Name: "AWaitForAnotherInstancesFetchThatRunsOutOfTimeIsATimeout", Test: testAWaitForAnotherInstancesFetchThatRunsOutOfTimeIsATimeout},
	{Name: "APurgeDuringAFetchIsNotUndone", Test: testAPurgeDuringAFetchIsNotUndone},
}

// TestFillsOnEveryTopology runs topologyTests on a single server, a Redis Cluster (3 masters
// with replicas) and a Sentinel-managed primary, one of each for the package, emptied before
// every test.
func TestFillsOnEveryTopology(t *testing.T) { redistest.OnEveryTopology(t, topologyTests) }
