package api

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAPIDocListsEveryCommand keeps docs/api.md, the operators' coverage
// table, in step with the commands the server registers: each one needs a
// row "| name | sync or async | ... |" with the right flag, and the table
// names nothing the server lacks.
func TestAPIDocListsEveryCommand(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "docs", "api.md"))
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]string{}
	for _, line := range strings.Split(string(raw), "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 4 || !strings.HasPrefix(strings.TrimSpace(line), "|") {
			continue
		}
		name := strings.Trim(strings.TrimSpace(cells[1]), "`")
		if mode := strings.TrimSpace(cells[2]); mode == "sync" || mode == "async" {
			rows[name] = mode
		}
	}
	s, _ := newTestServer(t)
	for _, c := range s.Commands() {
		want := map[bool]string{true: "async", false: "sync"}[c.Async]
		got, ok := rows[c.Name]
		switch {
		case !ok:
			t.Errorf("docs/api.md has no row for %s", c.Name)
		case got != want:
			t.Errorf("docs/api.md says %s is %s; it is %s", c.Name, got, want)
		}
		delete(rows, c.Name)
	}
	for name := range rows {
		t.Errorf("docs/api.md lists %s, which the server does not serve", name)
	}
}
