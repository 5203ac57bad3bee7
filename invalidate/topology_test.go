package invalidate

import (
	"testing"

	"github.com/swrproxy/swrproxy/internal/redistest"
)

// topologyTests are the invalidation tests that hold on every Redis deployment swrproxy
// supports: clear, refresh and auto by key, prefix, tag and all, with every instance's
// acknowledgement over pub/sub, and keyed variants cleared in both tiers on every instance.
var topologyTests = []redistest.Case{
	{Name: "ClearRemovesTheKeyFromBothTiersAndEveryInstanceAcknowledges", Test: testClearRemovesTheKeyFromBothTiersAndEveryInstanceAcknowledges},
	{Name: "RefreshKeepsTheCopyAsStaleAndQueuesItsVariants", Test: testRefreshKeepsTheCopyAsStaleAndQueuesItsVariants},
	{Name: "AutoRefreshesHotKeysAndClearsColdOnes", Test: testAutoRefreshesHotKeysAndClearsColdOnes},
	{Name: "PrefixesTagsAndAllSelectTheirKeys", Test: testPrefixesTagsAndAllSelectTheirKeys},
	{Name: "EveryInstanceDropsItsL1CopyBeforeTheReply", Test: testEveryInstanceDropsItsL1CopyBeforeTheReply},
	{Name: "AWriteInvalidationClearsTheKeyWithoutWaitingForAcks", Test: testAWriteInvalidationClearsTheKeyWithoutWaitingForAcks},
	{Name: "AKeyClearsItsKeyedVariantsInBothTiersOnEveryInstance", Test: testAKeyClearsItsKeyedVariantsInBothTiersOnEveryInstance},
}

// TestInvalidationOnEveryTopology runs topologyTests on a single server, a Redis Cluster (3
// masters with replicas: plain pub/sub, which a cluster broadcasts to every node) and a
// Sentinel-managed primary, one of each for the package, emptied before every test.
func TestInvalidationOnEveryTopology(t *testing.T) { redistest.OnEveryTopology(t, topologyTests) }
