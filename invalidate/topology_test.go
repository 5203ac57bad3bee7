package invalidate

import (
	"testing"

	"github.com/swrproxy/swrproxy/internal/redistest"
)

// topologyTests are the invalidation tests that hold on every Redis deployment swrproxy
// supports: clear, refresh and auto by key, prefix, tag and all, with every instance's
// acknowledgement over pub/sub, and keyed variants cleared in both tiers on every instance.
var topologyTests = []struct {
	name string
	test func(*testing.T, redistest.Topology)
}{
	{"ClearRemovesTheKeyFromBothTiersAndEveryInstanceAcknowledges", testClearRemovesTheKeyFromBothTiersAndEveryInstanceAcknowledges},
	{"RefreshKeepsTheCopyAsStaleAndQueuesItsVariants", testRefreshKeepsTheCopyAsStaleAndQueuesItsVariants},
	{"AutoRefreshesHotKeysAndClearsColdOnes", testAutoRefreshesHotKeysAndClearsColdOnes},
	{"PrefixesTagsAndAllSelectTheirKeys", testPrefixesTagsAndAllSelectTheirKeys},
	{"EveryInstanceDropsItsL1CopyBeforeTheReply", testEveryInstanceDropsItsL1CopyBeforeTheReply},
	{"AWriteInvalidationClearsTheKeyWithoutWaitingForAcks", testAWriteInvalidationClearsTheKeyWithoutWaitingForAcks},
	{"AKeyClearsItsKeyedVariantsInBothTiersOnEveryInstance", testAKeyClearsItsKeyedVariantsInBothTiersOnEveryInstance},
}

// TestInvalidationOnEveryTopology runs topologyTests on a single server, a Redis Cluster (3
// masters with replicas: plain pub/sub, which a cluster broadcasts to every node) and a
// Sentinel-managed primary, one of each for the package, emptied before every test.
func TestInvalidationOnEveryTopology(t *testing.T) {
	for _, topo := range redistest.Topologies(t) {
		t.Run(topo.Name(), func(t *testing.T) {
			for _, tt := range topologyTests {
				t.Run(tt.name, func(t *testing.T) {
					topo.Flush(t)
					tt.test(t, topo)
				})
			}
		})
	}
}
