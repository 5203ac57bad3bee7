package tiers

import (
	"testing"

	"github.com/swrproxy/swrproxy/internal/redistest"
)

// topologyTests are the tier's tests that hold on every Redis deployment swrproxy supports: L2
// sharing between instances, lifetimes, key layout, fetch locks, generations and soft purges,
// variants, the hot set and the warm start, L1 against L2. Each takes the topology it runs on.
var topologyTests = []struct {
	name string
	test func(*testing.T, redistest.Topology)
}{
	{"AnotherInstanceReadsFromL2ThenL1", testAnotherInstanceReadsFromL2ThenL1},
	{"L2LifetimeIsWhatIsLeftOfTheEntry", testL2LifetimeIsWhatIsLeftOfTheEntry},
	{"AnEntryPastItsLifetimeIsNotStored", testAnEntryPastItsLifetimeIsNotStored},
	{"RedisKeysCarryNoClientText", testRedisKeysCarryNoClientText},
	{"OnlyOneCallerHoldsTheLock", testOnlyOneCallerHoldsTheLock},
	{"ManyCallersRaceForOneLock", testManyCallersRaceForOneLock},
	{"AHeldLockIsRenewed", testAHeldLockIsRenewed},
	{"ALockWhoseHolderDiedExpires", testALockWhoseHolderDiedExpires},
	{"UnlockReleasesOnlyItsOwnLock", testUnlockReleasesOnlyItsOwnLock},
	{"DeleteRefusesAFetchThatBeganBefore", testDeleteRefusesAFetchThatBeganBefore},
	{"AGenerationOutlivesItsExpiredHash", testAGenerationOutlivesItsExpiredHash},
	{"MarkStaleKeepsTheEntryButBumpsTheGeneration", testMarkStaleKeepsTheEntryButBumpsTheGeneration},
	{"ASoftPurgeKeepsTheGenerationAsLongAsAClear", testASoftPurgeKeepsTheGenerationAsLongAsAClear},
	{"VariantsOfOneKeyCoexist", testVariantsOfOneKeyCoexist},
	{"OnlyTheLeastRecentlyStoredVariantIsEvicted", testOnlyTheLeastRecentlyStoredVariantIsEvicted},
	{"ADeletedVariantLeavesTheOrder", testADeletedVariantLeavesTheOrder},
	{"VariantFieldsCarryNoRequestText", testVariantFieldsCarryNoRequestText},
	{"TheVariantsOfOneURLAreBoundedInBytes", testTheVariantsOfOneURLAreBoundedInBytes},
	{"WarmLoadsTheFleetsHotKeysNewestFirstWithinTheBudget", testWarmLoadsTheFleetsHotKeysNewestFirstWithinTheBudget},
	{"TheHotSetIsBounded", testTheHotSetIsBounded},
	{"WarmNeverStoresAKeyInvalidatedAfterItsReadBegan", testWarmNeverStoresAKeyInvalidatedAfterItsReadBegan},
	{"WarmSizesLargeObjectsBeforeReadingThem", testWarmSizesLargeObjectsBeforeReadingThem},
	{"L1CopyExpiresAfterL1MaxTTL", testL1CopyExpiresAfterL1MaxTTL},
	{"ExpiredL2ObjectIsNotKeptInL1", testExpiredL2ObjectIsNotKeptInL1},
	{"ReloadReplacesTheL1Copy", testReloadReplacesTheL1Copy},
	{"VariantsIncludeThoseAnotherInstanceStoredInRedis", testVariantsIncludeThoseAnotherInstanceStoredInRedis},
}

// TestTheTiersOnEveryTopology runs topologyTests on a single server, a Redis Cluster of 3 masters
// with replicas, and a Sentinel-managed primary: one of each for the package (a cluster takes
// seconds to form), emptied before every test.
func TestTheTiersOnEveryTopology(t *testing.T) {
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
