package api

import (
	"encoding/json"
	"net/http"
	"sync"
	"testing"

	"github.com/stratus-cloud/stratus/fsm"
)

// TestOneJobPerVMUnderRacingRequests: requests that arrive together for
// the same VM each read it idle, but only one of them may leave a job for
// it; the others are refused as a concurrent operation (530, 4300), as
// they would be had they come a moment later. Two jobs working on one VM
// at once could undo each other's steps (a start racing a destroy).
func TestOneJobPerVMUnderRacingRequests(t *testing.T) {
	sc := buildScaleCloud(t, scaleSize{hosts: 2, vms: 8, accounts: 1, domains: 1, zones: 1, pods: 1, clusters: 1})
	st := sc.c.State()
	for round, cmds := range [][]string{
		{"stopVirtualMachine"},
		{"stopVirtualMachine", "rebootVirtualMachine", "destroyVirtualMachine", "migrateVirtualMachine"},
	} {
		vmID := scaleID(12, 1+round)
		if v, _ := fsm.Get[fsm.VM](st, nil, fsm.TableVMs, vmID); v == nil || v.State != fsm.VMRunning {
			t.Fatalf("fixture VM %s is not Running: %+v", vmID, v)
		}
		const racers = 16
		codes := make([]int, racers)
		bodies := make([]string, racers)
		var start, done sync.WaitGroup
		start.Add(1)
		for i := range racers {
			done.Add(1)
			go func() {
				defer done.Done()
				start.Wait()
				cmd := cmds[i%len(cmds)]
				p := map[string]string{"command": cmd, "id": vmID}
				if cmd == "migrateVirtualMachine" {
					p = map[string]string{"command": cmd, "virtualmachineid": vmID}
				}
				rec := signedAs(t, sc.s, adminKey, adminSecret, p)
				codes[i], bodies[i] = rec.Code, rec.Body.String()
			}()
		}
		start.Done()
		done.Wait()
		accepted := 0
		for i, code := range codes {
			switch code {
			case http.StatusOK:
				accepted++
			case ErrCodeInternal:
				var top map[string]struct {
					CSErrorCode int `json:"cserrorcode"`
				}
				if err := json.Unmarshal([]byte(bodies[i]), &top); err != nil || len(top) != 1 {
					t.Fatalf("refusal is not one CloudStack error object: %s", bodies[i])
				}
				for _, v := range top {
					if v.CSErrorCode != CSConcurrentOperation {
						t.Errorf("refused with cserrorcode %d, want %d: %s", v.CSErrorCode, CSConcurrentOperation, bodies[i])
					}
				}
			default:
				t.Errorf("%s: status %d: %s", cmds[i%len(cmds)], code, bodies[i])
			}
		}
		jobs, err := fsm.List[fsm.AsyncJob](st, nil, fsm.TableJobs, "pending_instance", vmID)
		if err != nil {
			t.Fatal(err)
		}
		if accepted != 1 || len(jobs) != 1 {
			t.Fatalf("round %d (%v): %d requests accepted and %d jobs pending for the VM; want 1 and 1", round, cmds, accepted, len(jobs))
		}
	}
}
