// Package fence holds the fence drivers the leader's HA controller uses
// before it restarts a failed host's VMs elsewhere: lease (trust the
// agent's self-fence), ipmi (power off through ipmitool), command (an
// operator's script) and none (an operator confirms).
package fence
