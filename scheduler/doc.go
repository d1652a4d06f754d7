// Package scheduler is the leader-only brain: placement, the job runner and
// host HA. It runs through cluster's leadership hooks, which cmd fills. It has
// no code yet; the hosts and VMs work fills it.
package scheduler
