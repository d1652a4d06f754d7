package api

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestErrorConstructors(t *testing.T) {
	cases := []struct {
		name     string
		err      *Error
		code     int
		cs       int
		text     string
		topLevel bool
	}{
		{"missing param", ErrMissingParam("createZone", "name"), 431, 9999,
			"Unable to execute API command createzone due to missing parameter name", false},
		{"invalid value", ErrInvalidParamValue("listZones", "pagesize", "ten"), 431, 9999,
			"Unable to execute API command listzones due to invalid value ten for parameter pagesize", false},
		{"entity not found", ErrEntityNotFound("listVirtualMachines", "id", "0b1f8c1e-2f4a-4d7e-9a55-1c2d3e4f5a6b"), 431, 9999,
			"Unable to execute API command listvirtualmachines due to invalid value. Invalid parameter id value=0b1f8c1e-2f4a-4d7e-9a55-1c2d3e4f5a6b due to incorrect long value format, or entity does not exist or due to incorrect parameter annotation for the field in api cmd class.", false},
		{"param", ErrParam("zone %s already exists", "z1"), 431, 4350, "zone z1 already exists", false},
		{"unauthorized default", ErrUnauthorized(""), 401, 0, "unable to verify user credentials and/or request signature", false},
		{"unauthorized text", ErrUnauthorized("the user is disabled"), 401, 0, "the user is disabled", false},
		{"unknown command", ErrUnknownCommand("launchRocket"), 432, 9999, "Unknown API command: launchRocket", true},
		{"internal", ErrInternal("boom"), 530, 4250, "boom", false},
		{"internal default", ErrInternal(""), 530, 4250, "internal error", false},
		{"in use", ErrInUse("zone z1 still has pods"), 536, 4375, "zone z1 still has pods", false},
		{"permission", ErrPermissionDenied("not yours"), 531, 4365, "not yours", false},
		{"unavailable default", ErrUnavailable(""), 503, 4380, "the cluster has no leader right now; retry the request shortly", false},
		{"unavailable adds retry", ErrUnavailable("no leader"), 503, 4380, "no leader; retry the request shortly", false},
		{"unavailable keeps retry", ErrUnavailable("timed out; retry it"), 503, 4380, "timed out; retry it", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := tc.err
			if e.Code != tc.code || e.CSCode != tc.cs || e.Text != tc.text || e.TopLevel != tc.topLevel {
				t.Fatalf("got %+v\nwant code=%d cs=%d top=%v text=%q", *e, tc.code, tc.cs, tc.topLevel, tc.text)
			}
		})
	}
}

func TestEntityNotFoundHasTheSubstringClientsMatch(t *testing.T) {
	// The Go SDK's Get<X>ByID and the Terraform provider look for exactly
	// this substring.
	id := "9d8c7b6a-1111-4222-8333-444455556666"
	want := "Invalid parameter id value=" + id + " due to incorrect long value format, or entity does not exist"
	if got := ErrEntityNotFound("listZones", "id", id).Text; !strings.Contains(got, want) {
		t.Fatalf("text %q lacks %q", got, want)
	}
}

func TestErrorImplementsError(t *testing.T) {
	var err error = ErrParam("bad %s", "thing")
	if got := err.Error(); !strings.Contains(got, "431") || !strings.Contains(got, "bad thing") {
		t.Fatalf("Error() = %q", got)
	}
	if got := ErrUnauthorized("").Error(); strings.Contains(got, "cs ") {
		t.Fatalf("401 without cserrorcode shows one: %q", got)
	}
	var nilErr *Error
	if nilErr.Error() != "<nil>" {
		t.Fatalf("nil *Error")
	}
	wrapped := fmt.Errorf("handler: %w", ErrInUse("busy"))
	var target *Error
	if !errors.As(wrapped, &target) || target.Code != ErrCodeResourceInUse {
		t.Fatalf("errors.As through %%w failed: %v", wrapped)
	}
}
