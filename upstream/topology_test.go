package upstream

import (
	"testing"

	"github.com/swrproxy/swrproxy/internal/redistest"
)

// topologyTests are the pool and budget tests that hold on every Redis deployment swrproxy
// supports: the fleet's pool in Redis (seeding, adds and removals reaching every instance over
// pub/sub, catching up, its bound) and the fleet's origin budget (the cap across instances,
// waiting, leases that expire, renew and are removed).
var topologyTests = []redistest.Case{
	{Name: "TheEnvironmentsListSeedsAnEmptyRedisAndTheFleetsPoolWinsAfter", Test: testTheEnvironmentsListSeedsAnEmptyRedisAndTheFleetsPoolWinsAfter},
	{Name: "AddAndRemoveReachTheWholeFleet", Test: testAddAndRemoveReachTheWholeFleet},
	{Name: "TheFleetsPoolHoldsAtMostMaxBackends", Test: testTheFleetsPoolHoldsAtMostMaxBackends},
	{Name: "AnAddToAnEmptyRedisSeedsItFirst", Test: testAnAddToAnEmptyRedisSeedsItFirst},
	{Name: "AnInstanceCatchesUpWithChangesMadeBeforeItsWatchBegan", Test: testAnInstanceCatchesUpWithChangesMadeBeforeItsWatchBegan},
	{Name: "AnAddRefusedAsPresentReloadsThePool", Test: testAnAddRefusedAsPresentReloadsThePool},
	{Name: "AnOlderReloadDoesNotUndoANewerOne", Test: testAnOlderReloadDoesNotUndoANewerOne},
	{Name: "SyncWarnsWhenTheEnvironmentsListIsNotTheFleets", Test: testSyncWarnsWhenTheEnvironmentsListIsNotTheFleets},
	{Name: "TheFleetCapHoldsAcrossInstances", Test: testTheFleetCapHoldsAcrossInstances},
	{Name: "AClientWaitsForTheFleetWhileBackgroundYields", Test: testAClientWaitsForTheFleetWhileBackgroundYields},
	{Name: "AForegroundAcquisitionGivesUpOnAFullFleetAfterMaxWait", Test: testAForegroundAcquisitionGivesUpOnAFullFleetAfterMaxWait},
	{Name: "ACrashedInstancesSlotsExpireAfterOneLease", Test: testACrashedInstancesSlotsExpireAfterOneLease},
	{Name: "ARenewedSlotOutlivesItsLease", Test: testARenewedSlotOutlivesItsLease},
	{Name: "RenewalNeverWritesBackARemovedSlot", Test: testRenewalNeverWritesBackARemovedSlot},
	{Name: "RunRemovesTheInstancesSlotsWhenItEnds", Test: testRunRemovesTheInstancesSlotsWhenItEnds},
	{Name: "TheSemaphoreKeyExpiresWithItsLastLease", Test: testTheSemaphoreKeyExpiresWithItsLastLease},
}

// TestThePoolAndBudgetOnEveryTopology runs topologyTests on a single server, a Redis Cluster (3
// masters with replicas) and a Sentinel-managed primary, one of each for the package.
func TestThePoolAndBudgetOnEveryTopology(t *testing.T) { redistest.OnEveryTopology(t, topologyTests) }
