// Package agent is the host agent's logic (stratus agent) and its wire
// protocol with the management servers: register, heartbeat, watch the
// host's desired state, reconcile libvirt to it and report what changed.
package agent
