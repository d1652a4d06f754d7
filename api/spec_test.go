package api

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// The reference dump sits in the shared folder beside the repository.
var reference = filepath.Join("..", "..", "shared", "cloudstack", "listApis-4.18.json")

// TestCommandsMatchCloudStack418 checks every command we serve against
// CloudStack 4.18's listApis: the name exists, the async flag agrees, every
// parameter we take exists there with the same type and required flag, and
// we take every parameter 4.18 requires.
func TestCommandsMatchCloudStack418(t *testing.T) {
	raw, err := os.ReadFile(reference)
	if err != nil {
		t.Skipf("reference dump not found at %s: %v", reference, err)
	}
	var dump struct {
		API []struct {
			Name    string `json:"name"`
			IsAsync bool   `json:"isasync"`
			Params  []struct {
				Name     string `json:"name"`
				Type     string `json:"type"`
				Required bool   `json:"required"`
			} `json:"params"`
		} `json:"api"`
	}
	if err := json.Unmarshal(raw, &dump); err != nil {
		t.Fatal(err)
	}
	s, _ := newTestServer(t)
	for _, c := range s.Commands() {
		var found bool
		for _, ref := range dump.API {
			if ref.Name != c.Name {
				continue
			}
			found = true
			if ref.IsAsync != c.Async {
				t.Errorf("%s: isasync %v, CloudStack says %v", c.Name, c.Async, ref.IsAsync)
			}
			refParams := map[string]struct {
				typ      string
				required bool
			}{}
			for _, p := range ref.Params {
				refParams[p.Name] = struct {
					typ      string
					required bool
				}{p.Type, p.Required}
			}
			ours := map[string]bool{}
			for _, p := range c.Params {
				ours[p.Name] = true
				rp, ok := refParams[p.Name]
				if !ok {
					t.Errorf("%s: parameter %s is not in CloudStack 4.18", c.Name, p.Name)
					continue
				}
				if rp.typ != p.Type || rp.required != p.Required {
					t.Errorf("%s: parameter %s is %s required=%v, CloudStack has %s required=%v", c.Name, p.Name, p.Type, p.Required, rp.typ, rp.required)
				}
			}
			for name, rp := range refParams {
				if rp.required && !ours[name] {
					t.Errorf("%s: missing required parameter %s", c.Name, name)
				}
			}
		}
		if !found {
			t.Errorf("command %s is not in CloudStack 4.18", c.Name)
		}
	}
}
