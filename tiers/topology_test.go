package tiers

import (
	"testing"

	"github.com/swrproxy/swrproxy/internal/redistest"
)

// topologyTests are the tier's tests that hold on every Redis deployment swrproxy supports: L2
// sharing between instances, lifetimes, key layout, fetch locks, generations and soft purges,
// variants, the hot set and the warm start, L1 against L2. Each takes the topology it runs on.
var topologyTests = []redistest.Case{
	{Name: "AnotherInstanceReadsFromL2ThenL1", Test: testAnotherInstanceReadsFromL2ThenL1},
	{Name: "L2LifetimeIsWhatIsLeftOfTheEntry", Test: testL2LifetimeIsWhatIsLeftOfTheEntry},
	{Name: "AnEntryPastItsLifetimeIsNotStored", Test: testAnEntryPastItsLifetimeIsNotStored},
	{Name: "RedisKeysCarryNoClientText", Test: testRedisKeysCarryNoClientText},
	{Name: "OnlyOneCallerHoldsTheLock", Test: testOnlyOneCallerHoldsTheLock},
	{Name: "ManyCallersRaceForOneLock", Test: testManyCallersRaceForOneLock},
	{Name: "AHeldLockIsRenewed", Test: testAHeldLockIsRenewed},
	{Name: "ALockWhoseHolderDiedExpires", Test: testALockWhoseHolderDiedExpires},
	{Name: "UnlockReleasesOnlyItsOwnLock", Test: testUnlockReleasesOnlyItsOwnLock},
	{Name: "DeleteRefusesAFetchThatBeganBefore", Test: testDeleteRefusesAFetchThatBeganBefore},
	{Name: "AGenerationOutlivesItsExpiredHash", Test: testAGenerationOutlivesItsExpiredHash},
	{Name: "MarkStaleKeepsTheEntryButBumpsTheGeneration", Test: testMarkStaleKeepsTheEntryButBumpsTheGeneration},
	{Name: "ASoftPurgeKeepsTheGenerationAsLongAsAClear", Test: testASoftPurgeKeepsTheGenerationAsLongAsAClear},
	{Name: "VariantsOfOneKeyCoexist", Test: testVariantsOfOneKeyCoexist},
	{Name: "OnlyTheLeastRecentlyStoredVariantIsEvicted", Test: testOnlyTheLeastRecentlyStoredVariantIsEvicted},
	{Name: "ADeletedVariantLeavesTheOrder", Test: testADeletedVariantLeavesTheOrder},
	{Name: "VariantFieldsCarryNoRequestText", Test: testVariantFieldsCarryNoRequestText},
	{Name: "TheVariantsOfOneURLAreBoundedInBytes", Test: testTheVariantsOfOneURLAreBoundedInBytes},
	{Name: "WarmLoadsTheFleetsHotKeysNewestFirstWithinTheBudget", Test: testWarmLoadsTheFleetsHotKeysNewestFirstWithinTheBudget},
	{Name: "TheHotSetIsBounded", Test: testTheHotSetIsBounded},
	{Name: "WarmNeverStoresAKeyInvalidatedAfterItsReadBegan", Test: testWarmNeverStoresAKeyInvalidatedAfterItsReadBegan},
	{Name: "WarmSizesLargeObjectsBeforeReadingThem", Test: testWarmSizesLargeObjectsBeforeReadingThem},
	{Name: "L1CopyExpiresAfterL1MaxTTL", Test: testL1CopyExpiresAfterL1MaxTTL},
	{Name: "ExpiredL2ObjectIsNotKeptInL1", Test: testExpiredL2ObjectIsNotKeptInL1},
	{Name: "ReloadReplacesTheL1Copy", Test: testReloadReplacesTheL1Copy},
	{Name: "VariantsIncludeThoseAnotherInstanceStoredInRedis", Test: testVariantsIncludeThoseAnotherInstanceStoredInRedis},
	{Name: "HotnessIsSharedAcrossInstances", Test: testHotnessIsSharedAcrossInstances},
}

// TestTheTiersOnEveryTopology runs topologyTests on a single server, a Redis Cluster of 3 masters
// with replicas, and a Sentinel-managed primary: one of each for the package (a cluster takes
// seconds to form), emptied before every test.
func TestTheTiersOnEveryTopology(t *testing.T) { redistest.OnEveryTopology(t, topologyTests) }
