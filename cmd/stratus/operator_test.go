package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// Operator commands given a dev cloud's cloud.json reach the first server
// that answers, so they work while any one server is down.
func TestFirstAnsweringSkipsDownServers(t *testing.T) {
	health := func(status int) *httptest.Server {
		return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/v1/health" {
				http.NotFound(w, r)
				return
			}
			w.WriteHeader(status)
		}))
	}
	down := health(http.StatusOK)
	down.Close() // refuses connections now
	sick := health(http.StatusInternalServerError)
	defer sick.Close()
	up := health(http.StatusOK)
	defer up.Close()

	servers := []CloudServer{{ID: "server-1", APIURL: down.URL + "/client/api"},
		{ID: "server-2", APIURL: sick.URL + "/client/api"}, {ID: "server-3", APIURL: up.URL + "/client/api"}}
	got, err := firstAnswering(servers)
	if err != nil || got != up.URL {
		t.Fatalf("firstAnswering = %q, %v; want %q", got, err, up.URL)
	}
	_, err = firstAnswering(servers[:2])
	if err == nil || !strings.Contains(err.Error(), down.URL) || !strings.Contains(err.Error(), "make run") {
		t.Fatalf("with no server answering: err = %v; want one naming %s and how to start the cloud", err, down.URL)
	}
}
