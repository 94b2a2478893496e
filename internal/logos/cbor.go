package logos

import (
	"reflect"

	"github.com/fxamacker/cbor/v2"
)

// qtCBOR decodes what Qt writes into a plugin's metadata note: one CBOR
// data item (RFC 8949) of maps keyed by integers or strings. The plugin
// file is untrusted, so the decoder is bounded: nesting, array and map
// sizes are limited, duplicate map keys are refused, integers decode as
// int64 (an overflow is an error), and tags are kept as cbor.Tag and read
// through by the caller.
var qtCBOR = func() cbor.DecMode {
	dm, err := cbor.DecOptions{
		MaxNestedLevels:  64,
		MaxArrayElements: 1 << 16,
		MaxMapPairs:      1 << 16,
		IndefLength:      cbor.IndefLengthAllowed,
		DupMapKey:        cbor.DupMapKeyEnforcedAPF,
		IntDec:           cbor.IntDecConvertSigned,
		DefaultMapType:   reflect.TypeOf(map[any]any(nil)),
		UTF8:             cbor.UTF8RejectInvalid,
	}.DecMode()
	if err != nil {
		panic(err)
	}
	return dm
}()

// decodeCBOR decodes the first data item of b and returns what follows it
// (Qt pads the note).
func decodeCBOR(b []byte) (any, []byte, error) {
	var v any
	rest, err := qtCBOR.UnmarshalFirst(b, &v)
	if err != nil {
		return nil, nil, err
	}
	return untag(v), rest, nil
}

// untag reads through tags, as Qt's own reader does for the values it
// knows.
func untag(v any) any {
	switch x := v.(type) {
	case cbor.Tag:
		return untag(x.Content)
	case map[any]any:
		for k, e := range x {
			x[k] = untag(e)
		}
	case []any:
		for i := range x {
			x[i] = untag(x[i])
		}
	}
	return v
}
