package fsm

// Retention of the records every command writes: the leader's purger
// (scheduler/purge.go) removes finished async jobs and old events, so that
// the store, which every server holds in memory, does not grow with every
// command ever run. The names and defaults are CloudStack's.
const (
	SettingJobExpireMinutes = "job.expire.minutes"
	SettingEventPurgeDelay  = "event.purge.delay"
)

func init() {
	settingDefs = append(settingDefs,
		SettingDef{Name: SettingJobExpireMinutes, Category: "Advanced", Type: "Integer", Default: "1440", Dynamic: true,
			Description: "Minutes a finished async job (and its result, for queryAsyncJobResult) is kept before the leader removes it; 0 or less keeps jobs for ever. Pending jobs are never removed."},
		SettingDef{Name: SettingEventPurgeDelay, Category: "Advanced", Type: "Integer", Default: "15", Dynamic: true,
			Description: "Days an event is kept before the leader removes it; 0 or less keeps events for ever."},
	)
}
