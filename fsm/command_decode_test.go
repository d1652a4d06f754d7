package fsm

import (
	"encoding/json"
	"reflect"
	"testing"
)

// commandBodies has one value of the body of every command type, for
// TestCommandBodiesKeepEveryField.
var commandBodies = map[MessageType]func() any{
	BootstrapRequestType:   func() any { return new(BootstrapRequest) },
	ZoneUpsertRequestType:  func() any { return new(ZoneUpsertRequest) },
	ZoneDeleteRequestType:  func() any { return new(DeleteRequest) },
	ConfigSetRequestType:   func() any { return new(ConfigSetRequest) },
	UserKeysSetRequestType: func() any { return new(UserKeysSetRequest) },
	TxnRequestType:         func() any { return new(TxnRequest) },
	OnceRequestType:        func() any { return new(OnceRequest) },
}

// decodeAs decodes body as the appliers do (decode) into a new value of
// the type v points at.
func decodeAs(t MessageType, v any, body []byte) any {
	switch v.(type) {
	case *BootstrapRequest:
		return decode[BootstrapRequest](t, body)
	case *ZoneUpsertRequest:
		return decode[ZoneUpsertRequest](t, body)
	case *DeleteRequest:
		return decode[DeleteRequest](t, body)
	case *ConfigSetRequest:
		return decode[ConfigSetRequest](t, body)
	case *UserKeysSetRequest:
		return decode[UserKeysSetRequest](t, body)
	case *TxnRequest:
		return decode[TxnRequest](t, body)
	case *OnceRequest:
		got, err := DecodeOnce(body)
		if err != nil {
			panic(err)
		}
		return got
	}
	panic("decodeAs: no decoder for " + reflect.TypeOf(v).String())
}

// TestCommandBodiesKeepEveryField encodes the body of every command type,
// with every field set, as Encode writes it, and decodes it as the
// appliers do: the body must come back equal to what encoding/json decodes
// (which older builds used, and which a server of another build in the
// same cluster may still use), and equal to itself. A command type with
// an applier but no entry here fails the test, so a new command cannot
// skip the check.
func TestCommandBodiesKeepEveryField(t *testing.T) {
	for typ := range appliers {
		if _, ok := commandBodies[typ]; !ok && typ != NoopRequestType {
			t.Errorf("command type %s has an applier but no body in commandBodies", typ)
		}
	}
	for typ, alloc := range commandBodies {
		t.Run(typ.String(), func(t *testing.T) {
			v := alloc()
			seed := 0
			fillRow(t, reflect.ValueOf(v).Elem(), &seed)
			body, err := json.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			got := decodeAs(typ, v, body)
			want := alloc()
			if err := json.Unmarshal(body, want); err != nil {
				t.Fatal(err)
			}
			requireDecodedLikeEncodingJSON(t, got, want, body, seed)
		})
	}
}

// TestCommandDecodeRefusesWhatEncodingJSONRefuses: a body of the wrong
// shape fails to decode with the v2 decoder too, so an applier panics
// rather than apply a half-read command (every replica alike).
func TestCommandDecodeRefusesWhatEncodingJSONRefuses(t *testing.T) {
	for _, body := range []string{
		`{"ops":[{"verb":"create","table":"vms","id":7}]}`, // a number for a string
		`{"ops":"none"}`, // a string for a list
		`{"ops":[`,       // cut off
	} {
		var v1 TxnRequest
		if json.Unmarshal([]byte(body), &v1) == nil {
			t.Fatalf("encoding/json decodes %s; pick a body it refuses", body)
		}
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("decode of %s did not fail", body)
				}
			}()
			decode[TxnRequest](TxnRequestType, []byte(body))
		}()
	}
}
